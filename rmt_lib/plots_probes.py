"""Plots of the held-out measurements in the Figure 8 chapters: data in, matplotlib Figure out.

Like `rmt_lib.plots` (whose colours and `NotebookFigure` these share): no pyplot state, no model
calls, no files. Inputs are probe entries (`rmt_lib.probes.probe_samples(...)["samples"]`) or the
results of `rmt_lib.analysis`.

    plot_change_raster(entries)                 # every sample's memory change per segment, facts marked
    plot_distance_gallery(entries, n=6)         # the first n samples' distance matrices, none chosen
    plot_share_vs_baseline({...}, target_lift=3)  # attention share per unit vs. its uniform baseline
    plot_share_histograms({...}, baseline=...)  # distributions of per-sample shares vs. a baseline line
    plot_target_checks(checks)                  # estimates with 95% intervals against their targets
    plot_failure_cases(report)                  # right vs. wrong answers: fact distance, memory detection
    plot_heads_compared(comparison)             # per-head shares side by side, chosen heads outlined
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rmt_lib.plots import (ATTENTION_CMAP, DISTANCE_CMAP, FACT_COLOUR, OTHER_COLOUR, QUESTION_COLOUR,
                           NotebookFigure)

RIGHT_COLOUR = "#1b9e77"  # right answers
WRONG_COLOUR = "#d95f02"  # wrong answers


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, np.ndarray]:
    fig = NotebookFigure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _changes(entries: Sequence[Mapping]) -> np.ndarray:
    if not entries:
        raise ValueError("no probe entries to plot")
    lengths = {len(e["memory_change"]) for e in entries}
    if len(lengths) != 1:
        raise ValueError(f"all samples must have the same number of segments; got {sorted(lengths)}")
    return np.stack([np.asarray(e["memory_change"], dtype=np.float64) for e in entries])  # (n, S)


def plot_change_raster(entries: Sequence[Mapping], *, title: str | None = None) -> Figure:
    """Every sample's memory change per segment as one row of an image (log colour scale), rows sorted
    by the first fact's segment; fact segments dotted in red, the question segment in black.

    Nothing is selected: every entry is a row. Bright columns on the dots = the memory moves at facts.
    """
    change = _changes(entries)  # (n, S)
    order = sorted(range(len(entries)), key=lambda i: (min(entries[i]["fact_segments"]), i))
    change = change[order]
    n, S = change.shape
    positive = change[change > 0]
    lo, hi = (positive.min(), positive.max()) if len(positive) else (1e-6, 1.0)
    fig, axes = _figure(8.0, min(7.0, max(3.8, 2.2 + 0.018 * n)))
    ax = axes[0, 0]
    image = ax.imshow(np.clip(change, lo, None), cmap="magma", norm=LogNorm(lo, max(hi, lo * 1.0001)),
                      aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="memory change of the segment (log scale)")
    rows = [(r, s) for r, i in enumerate(order) for s in entries[i]["fact_segments"]]
    height_in = fig.get_size_inches()[1] - 1.4  # roughly the image's share of the figure
    cell = min(72.0 * height_in / n, 72.0 * 6.0 / S)  # points per cell, the smaller side
    size = float(np.clip((0.9 * cell) ** 2, 6.0, 16.0))  # hollow markers about a cell wide, yet visible
    ax.scatter([s for _, s in rows], [r for r, _ in rows], s=size, facecolors="none", edgecolors=FACT_COLOUR,
               linewidths=0.7, label="fact segment")
    questions = [(r, entries[i]["question_segment"]) for r, i in enumerate(order)]
    ax.scatter([s for _, s in questions], [r for r, _ in questions], s=size, facecolors="none",
               edgecolors="#1f77b4", marker="s", linewidths=0.7, label="question segment")
    ax.set_xlabel("segment")
    ax.set_ylabel("held-out sample\n(sorted by first fact)")
    fig.legend(loc="outside lower center", fontsize=7, ncol=2, frameon=False, markerscale=1.5)
    ax.set_title(title or f"Memory change in every segment of {n} samples ({S} segments)", fontsize=10)
    return fig


def plot_distance_gallery(entries: Sequence[Mapping], *, n: int = 6, ncols: int = 3, title: str | None = None) -> Figure:
    """The distance matrices of the FIRST `n` entries (no choosing), in the paper's colours (red =
    similar, blue = distant; each its own scale), the states after fact segments marked "F" on both axes."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    shown = list(entries[:n])
    if not shown:
        raise ValueError("no probe entries to plot")
    nrows = int(np.ceil(len(shown) / ncols))
    fig, axes = _figure(3.0 * ncols, 2.9 * nrows, nrows, ncols)
    for ax in axes.ravel()[len(shown):]:
        ax.set_axis_off()
    for k, (ax, e) in enumerate(zip(axes.ravel(), shown)):
        d = np.asarray(e["distance_matrix"], dtype=np.float64)
        ax.imshow(d, cmap=DISTANCE_CMAP, vmin=0.0, vmax=float(d.max()) or 1.0, interpolation="nearest")
        facts = sorted(set(int(s) + 1 for s in e["fact_segments"]))  # state index after the fact segment
        for axis, setter in ((ax.xaxis, ax.set_xticks), (ax.yaxis, ax.set_yticks)):
            setter(facts, ["F"] * len(facts))  # the fact states marked on both axes, as in panel (a)
            for label in axis.get_ticklabels():
                label.set_color(FACT_COLOUR)
                label.set_fontweight("bold")
        ax.tick_params(length=3, labelsize=7, color=FACT_COLOUR)
        verdict = "right" if e.get("correct") else "wrong"
        ax.set_title(f"sample {k}: facts in {', '.join(str(f - 1) for f in facts)}; {verdict}", fontsize=8)
    fig.suptitle(title or f"Distances between memory states, first {len(shown)} held-out samples "
                          "(red = similar, blue = distant)", fontsize=10)
    return fig


def plot_share_vs_baseline(series: Mapping[str, tuple[np.ndarray, np.ndarray]], *, target_lift: float | None = None,
                           xlabel: str = "uniform-attention share", ylabel: str = "attention share",
                           title: str | None = None) -> Figure:
    """One point per unit (e.g. per fact): its uniform-attention baseline (x) against the measured
    share (y), one colour per series. The line y = x is "no preference"; y = target_lift * x the target."""
    if not series:
        raise ValueError("no series to plot")
    fig, axes = _figure(5.2, 4.2)
    ax = axes[0, 0]
    colours = [FACT_COLOUR, "#1f77b4", OTHER_COLOUR, "#2ca02c"]
    top_x = 0.0
    for (name, (x, y)), colour in zip(series.items(), colours):
        x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"series {name!r}: x and y differ in length ({x.shape} vs {y.shape})")
        ax.scatter(x, y, s=10, alpha=0.6, color=colour, label=f"{name} (n={len(x)})", linewidths=0)
        top_x = max(top_x, float(x.max()) if len(x) else 0.0)
    grid = np.linspace(0.0, max(top_x * 1.1, 1e-3), 50)
    ax.plot(grid, grid, color=QUESTION_COLOUR, linestyle=":", linewidth=1, label="share = baseline (no preference)")
    if target_lift is not None:
        ax.plot(grid, np.minimum(target_lift * grid, 1.0), color=FACT_COLOUR, linestyle="--", linewidth=1,
                label=f"share = {target_lift:g} × baseline (target)")
    ax.set_xlim(0.0, grid[-1])
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_share_histograms(series: Mapping[str, np.ndarray], *, baseline: float | None = None,
                          xlabel: str = "attention share", title: str | None = None, bins: int = 30) -> Figure:
    """Distributions (fraction per bin, each series summing to one) of per-unit shares on [0, 1],
    with the uniform-attention `baseline` as a vertical line."""
    if not series:
        raise ValueError("no series to plot")
    fig, axes = _figure(5.6, 3.2)
    ax = axes[0, 0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    colours = ["#1f77b4", FACT_COLOUR, OTHER_COLOUR, "#2ca02c"]
    for (name, values), colour in zip(series.items(), colours):
        v = np.asarray(values, dtype=np.float64).ravel()
        if len(v) == 0:
            continue
        ax.hist(np.clip(v, 0.0, 1.0), bins=edges, weights=np.full(len(v), 1.0 / len(v)), alpha=0.55, color=colour,
                label=f"{name} (n={len(v)})")
    if baseline is not None:
        ax.axvline(baseline, color=QUESTION_COLOUR, linestyle="--", linewidth=1, label=f"uniform attention ({baseline:.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_target_checks(checks: Sequence, *, title: str | None = None) -> Figure:
    """`rmt_lib.analysis.TargetCheck`s as estimates with 95% intervals, one panel per distinct target
    (dashed line); a green point meets its target with its whole interval, orange by the estimate
    only, red not at all."""
    if not checks:
        raise ValueError("no target checks to plot")
    targets = sorted({c.target for c in checks}, reverse=True)
    fig, axes = _figure(7.0, 0.9 + 0.42 * len(checks) + 0.5 * len(targets), nrows=len(targets),
                        height_ratios=[sum(c.target == t for c in checks) + 1 for t in targets])
    status_colour = {"met": "#2ca02c", "estimate only": "#ff7f0e", "not met": FACT_COLOUR}
    for ax, target in zip(axes[:, 0], targets):
        group = [c for c in checks if c.target == target]
        y = np.arange(len(group))
        for yi, c in zip(y, group):
            ax.errorbar([c.estimate], [yi], xerr=[[c.estimate - c.low], [c.high - c.estimate]], fmt="o",
                        color=status_colour[c.status], capsize=4)
        ax.axvline(target, color=QUESTION_COLOUR, linestyle="--", linewidth=1)
        ax.set_yticks(y, [c.name for c in group], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"target ≥ {target:g}", fontsize=9, loc="left")
    handles = [Rectangle((0, 0), 1, 1, color=col, label=lab) for lab, col in
               (("met (whole interval)", status_colour["met"]), ("estimate only", status_colour["estimate only"]),
                ("not met", status_colour["not met"]))]
    axes[0, 0].legend(handles=handles, fontsize=7, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_failure_cases(report, *, chance: float | None = None) -> Figure:
    """A `rmt_lib.analysis.FailureReport` in two panels: where the facts were (segments from the last
    fact to the question) for right and wrong answers, and what the memory did: the accuracy where it
    did / did not single out the fact segments (95% intervals; `chance` as a dashed line)."""
    fig, axes = _figure(9.0, 3.3, ncols=2)
    ax = axes[0, 0]
    distance = np.array([o.segments_to_question for o in report.outcomes], dtype=np.float64)
    edges = np.histogram_bin_edges(distance, bins=int(min(20, max(1, np.ptp(distance) + 1))))
    for name, right, colour in (("right", True, RIGHT_COLOUR), ("wrong", False, WRONG_COLOUR)):
        v = np.array([o.segments_to_question for o in report.outcomes if o.correct == right], dtype=np.float64)
        if len(v):
            ax.hist(v, bins=edges, weights=np.full(len(v), 1.0 / len(v)), alpha=0.55, color=colour,
                    label=f"{name} answers (n={len(v)})")
    ax.set_xlabel("segments from the last fact to the question")
    ax.set_ylabel("fraction of samples")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_title("Where were the facts?", fontsize=10)
    ax = axes[0, 1]
    groups = report.accuracy_given_detection()
    for x, (name, interval) in enumerate(groups.items()):
        if interval is None:
            ax.text(x, 0.02, "no samples", ha="center", fontsize=8)
            continue
        est = interval["estimate"]
        ax.bar([x], [est], color=RIGHT_COLOUR if x == 0 else OTHER_COLOUR, width=0.6)
        ax.errorbar([x], [est], yerr=[[est - interval["low"]], [interval["high"] - est]], color=QUESTION_COLOUR,
                    capsize=5)
    if chance is not None:
        ax.axhline(chance, color=FACT_COLOUR, linestyle="--", linewidth=1, label=f"chance ({chance:.3f})")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    counts = [sum(o.facts_detected == (x == 0) for o in report.outcomes) for x in range(len(groups))]
    ax.set_xticks(range(len(groups)), [f"{name}\n(n={n})" for name, n in zip(groups, counts)])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("answer accuracy")
    ax.set_title("Accuracy when the memory did / did not\nsingle out both fact segments", fontsize=10)
    fig.suptitle(f"Right and wrong answers at {report.n_segments} segments", fontsize=10)
    return fig


def plot_heads_compared(comparison, *, title: str | None = None) -> Figure:
    """A `rmt_lib.analysis.HeadComparison`: one (layer x head) heatmap per column on a shared colour
    scale, each cell annotated, the automatically chosen head outlined in red."""
    panels = list(comparison.per_head.items())
    if not panels:
        raise ValueError("no heads to compare")
    n_layers, n_heads = np.asarray(panels[0][1]).shape
    fig, axes = _figure(1.0 * n_heads * len(panels) + 2.4, 0.75 * n_layers + 1.7, ncols=len(panels))
    top = max(float(np.max(v)) for _, v in panels) or 1.0
    image = None
    for ax, (name, shares) in zip(axes[0], panels):
        s = np.asarray(shares, dtype=np.float64)
        image = ax.imshow(s, cmap=ATTENTION_CMAP, vmin=0.0, vmax=top, aspect="auto")
        for (i, j), v in np.ndenumerate(s):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < top / 2 else "black")
        chosen = comparison.chosen.get(name)
        if chosen is not None:
            ax.add_patch(Rectangle((chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, edgecolor=FACT_COLOUR,
                                   linewidth=2.5))
        ax.set_xticks(range(n_heads), [f"h{j}" for j in range(n_heads)])
        ax.set_yticks(range(n_layers), [f"L{i}" for i in range(n_layers)])
        ax.set_xlabel("head")
        ax.set_title(f"{name}\n(uniform: {comparison.baseline[name]:.3f})", fontsize=9)
    axes[0, 0].set_ylabel("layer")
    what = {"write": "write-memory attention on fact tokens", "read": "question positions' attention on read memory"}
    fig.colorbar(image, ax=list(axes[0]), label="mean share")
    fig.suptitle(title or f"Per head: {what[comparison.kind]}; chosen head outlined", fontsize=10)
    return fig
