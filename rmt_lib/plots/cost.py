"""What it costs: time and memory against input length, training throughput, the evaluate command.

Input: a results dict of the cost benchmark (load it with `rmt_lib.cost.load_results` and pass it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from rmt_lib.plots.style import FULL_COLOUR, REFERENCE_COLOUR, RMT_COLOUR, new_figure


def _rows(results: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return sorted(results["inference"].get(key, []), key=lambda r: r["n_segments"])


def _reference_slope(ax, xs: Sequence[float], y0: float, power: int, label: str) -> None:
    """A dashed line through (xs[0], y0) growing as x**power, labelled at its end."""
    x = np.array([xs[0], xs[-1]], dtype=float)
    ax.plot(x, y0 * (x / x[0]) ** power, ls=":", lw=1, color=REFERENCE_COLOUR)
    ax.annotate(label, (x[-1], y0 * (x[-1] / x[0]) ** power), fontsize=8, color=REFERENCE_COLOUR,
                xytext=(3, 0), textcoords="offset points", va="center")


def plot_length_scaling(results: Mapping[str, Any]) -> Figure:
    """Time per input (left) and peak memory (right) against input length, RMT vs. full attention.

    Full-attention lengths that were not run because their predicted peak passed the memory cap are drawn
    as hollow markers at the predicted peak, with the cap as a dashed line.
    """
    rmt, full, skipped = _rows(results, "rmt"), _rows(results, "full_attention"), _rows(results, "skipped")
    if not rmt:
        raise ValueError("the results hold no RMT inference rows: was the inference part of the run skipped?")
    fig, axes = new_figure(10, 4, ncols=2)
    ax_t, ax_m = axes[0]
    for rows, colour, label in ((rmt, RMT_COLOUR, "RMT, streamed"), (full, FULL_COLOUR, "full attention")):
        if not rows:
            continue
        n = [r["n_segments"] for r in rows]
        ax_t.plot(n, [r["time_s"] for r in rows], "o-", color=colour, label=label, ms=4)
        ax_m.plot(n, [r["peak_mb"] for r in rows], "o-", color=colour, label=label, ms=4)
    if skipped:
        ax_m.plot([r["n_segments"] for r in skipped], [r["predicted_peak_mb"] for r in skipped], "o", mfc="none",
                  color=FULL_COLOUR, label="full attention, predicted (not run)")
        ax_m.axhline(skipped[0]["memory_cap_mb"], ls="--", lw=1, color=REFERENCE_COLOUR)
        ax_m.annotate("memory cap", (rmt[0]["n_segments"], skipped[0]["memory_cap_mb"]), fontsize=8,
                      color=REFERENCE_COLOUR, xytext=(0, 3), textcoords="offset points")
    xs = [r["n_segments"] for r in rmt]
    mid = next((r for r in rmt if r["n_segments"] >= 8), rmt[0])  # past the fixed per-call costs
    _reference_slope(ax_t, [mid["n_segments"], xs[-1]], mid["time_s"], 1, "linear")
    if full:
        last = full[-1]
        _reference_slope(ax_t, [last["n_segments"] / 4, last["n_segments"]], last["time_s"] / 16, 2, "quadratic")
    ax_t.set(xscale="log", yscale="log", xlabel="input length (segments)", ylabel="seconds per input",
             title="time")
    ax_m.set(xscale="log", yscale="log", xlabel="input length (segments)", ylabel="peak memory of the process (MB)",
             title="peak memory")
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.grid(True, which="major", alpha=0.3)
    megabytes = FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax_m.yaxis.set_major_formatter(megabytes)
    ax_m.yaxis.set_minor_formatter(megabytes)
    ax_m.tick_params(axis="y", which="minor", labelsize=7)
    ax_m.legend(fontsize=8, loc="upper left")
    return fig


def plot_training_throughput(results: Mapping[str, Any]) -> Figure:
    """Training tokens/s per variant (bars), each labelled with its model FLOPs utilisation."""
    runs = [r for r in results["training"]["runs"] if "error" not in r]
    if not runs:
        raise ValueError("the results hold no successful training run")
    fig, axes = new_figure(8, 0.5 * len(runs) + 1.2)
    ax = axes[0, 0]
    y = np.arange(len(runs))
    speeds = [r["tokens_per_s"] for r in runs]
    ax.barh(y, speeds, color=RMT_COLOUR, alpha=0.8)
    for i, r in enumerate(runs):
        mfu = "" if r.get("mfu") is None else f"  MFU {100 * r['mfu']:.1f}%"
        ax.annotate(f"{r['tokens_per_s']:,.0f}{mfu}", (speeds[i], i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(y, [r["name"] for r in runs])
    ax.invert_yaxis()
    ax.set_xlim(0, max(speeds) * 1.35)
    ax.set(xlabel="training tokens per second (forward + backward + AdamW)", title="training throughput")
    return fig


def plot_evaluate(results: Mapping[str, Any]) -> Figure:
    """Wall time and peak RSS of `python -m rmt_lib evaluate` per sample, against the targets."""
    ev = {k: v for k, v in results["evaluate"].items() if v.get("returncode") == 0}
    if "short" not in ev or "long" not in ev:
        raise ValueError("the results lack a successful short and long evaluate run")
    names = list(ev)
    labels = [f"{name.replace('_', ' ')}\n{ev[name]['n_tokens']:,} tokens" for name in names]
    fig, axes = new_figure(9, 3.2, ncols=2)
    ax_t, ax_m = axes[0]
    x = np.arange(len(names))
    ax_t.bar(x, [ev[n]["wall_s"] for n in names], color=RMT_COLOUR, alpha=0.8)  # the median run
    for i, n in enumerate(names):  # every run, where the command ran more than once
        runs = ev[n].get("wall_s_runs", [])
        ax_t.plot([i] * len(runs), runs, "o", ms=3, color="black", label="runs" if i == 0 and len(runs) > 1 else None)
    ax_m.bar(x, [ev[n]["peak_rss_mb"] for n in names], color=RMT_COLOUR, alpha=0.8)
    targets = results.get("targets", {})
    if "million_token_wall_s" in targets:
        ax_t.axhline(targets["million_token_wall_s"]["limit"], ls="--", lw=1, color=REFERENCE_COLOUR)
        ax_t.annotate("target", (x[-1], targets["million_token_wall_s"]["limit"]), fontsize=8,
                      color=REFERENCE_COLOUR, xytext=(0, 3), textcoords="offset points", ha="center")
    if "million_token_memory" in targets:
        cap = targets["million_token_memory"]["limit"] * ev["short"]["peak_rss_mb"]
        ax_m.axhline(cap, ls="--", lw=1, color=REFERENCE_COLOUR)
        ax_m.annotate(f"{targets['million_token_memory']['limit']}x short", (x[-1], cap), fontsize=8,
                      color=REFERENCE_COLOUR, xytext=(0, 3), textcoords="offset points", ha="center")
    for ax, title, unit in ((ax_t, "wall time (median of runs)", "seconds"), (ax_m, "peak memory", "peak RSS (MB)")):
        ax.set_xticks(x, labels, fontsize=8)
        ax.set(title=title, ylabel=unit)
    if ax_t.get_legend_handles_labels()[0]:
        ax_t.legend(fontsize=8, loc="upper left")
    return fig
