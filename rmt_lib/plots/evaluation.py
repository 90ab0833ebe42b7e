"""How well the model answers: accuracy against input length, right vs. wrong answers, estimates
against their targets.

Inputs are accuracy curves (a `Missing` curve is named in its panel instead of drawn, so a figure keeps
its layout), and the results of the probes' failure and target checks.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rmt_lib import paper
from rmt_lib.evaluate.results import AccuracyCurve
from rmt_lib.paths import Missing
from rmt_lib.plots.style import (CURVE_COLOURS, FACT_COLOUR, OTHER_COLOUR, PAPER_COLOURS, QUESTION_COLOUR,
                                 RIGHT_COLOUR, WRONG_COLOUR, new_figure, panel_note)


def plot_accuracy_vs_length(panels: Mapping[str, Sequence[AccuracyCurve | Missing]], *,
                            trained_length: int | None = None, chance: float | None = None) -> Figure:
    """Accuracy against input length (segments, log scale) with 95% intervals, one panel per source.

    `panels` maps a panel title to its curves (e.g. RMT and baseline); a `Missing` curve is named in the
    panel instead of drawn. The paper's names for our lengths ("16k" = 32 segments) label the axis.
    """
    if not panels:
        raise ValueError("no panel to draw")
    fig, axes = new_figure(5.2 * len(panels), 4.0, ncols=len(panels))
    for ax, (name, curves) in zip(axes[0], panels.items()):
        drawn = [c for c in curves if isinstance(c, AccuracyCurve)]
        missing = [c for c in curves if isinstance(c, Missing)]
        if not drawn:
            panel_note(ax, "\n\n".join(textwrap.fill(f"{m.what} ({m.path}) is not there yet", 48) for m in missing)
                       or "nothing to show")
            ax.set_title(name, fontsize=10)
            continue
        lengths = sorted({n for c in drawn for n in c.lengths})
        for i, c in enumerate(drawn):
            x = np.array(c.lengths, dtype=np.float64)  # (n_lengths,)
            acc = np.array([r.accuracy for r in c.rows])
            lo = np.array([r.low for r in c.rows])
            hi = np.array([r.high for r in c.rows])
            colour = CURVE_COLOURS.get(c.label, f"C{i + 2}")
            ax.errorbar(x, acc, yerr=[acc - lo, hi - acc], fmt="o-", color=colour, capsize=3, markersize=4,
                        linewidth=1.3, label=c.label)
        if trained_length is not None:
            ax.axvline(trained_length, color="#999999", linestyle=":", linewidth=1)
            ax.text(trained_length, 1.0, "trained up to here ", rotation=90, fontsize=7, color="#777777",
                    va="top", ha="right")
        if chance is not None:
            ax.axhline(chance, color="#999999", linestyle="--", linewidth=1)
            ax.text(lengths[0], chance, "chance", fontsize=7, color="#777777", va="bottom")
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [f"{n:,}" + (f"\n({paper.LENGTH_NAMES[n]})" if n in paper.LENGTH_NAMES else "")
                                for n in lengths], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("input length (segments; the paper's name)")
        ax.set_ylim(0, 1.02)
        if missing:
            ax.text(0.98, 0.98, "\n".join(textwrap.fill(f"{m.what}: not there yet", 40) for m in missing),
                    transform=ax.transAxes, fontsize=7, color="#777777", ha="right", va="top")
        ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 0.06))
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel("accuracy (95% Wilson interval)")
    return fig


def plot_failure_cases(report, *, chance: float | None = None) -> Figure:
    """A `FailureReport` (`rmt_lib.probes.failure_cases`) in two panels: where the facts were (segments
    from the last fact to the question) for right and wrong answers, and what the memory did: the accuracy
    where it did / did not single out the fact segments (95% intervals; `chance` as a dashed line)."""
    fig, axes = new_figure(9.0, 3.3, ncols=2)
    ax = axes[0, 0]
    distance = np.array([o.segments_to_question for o in report.outcomes], dtype=np.float64)  # (n_samples,)
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


def plot_target_checks(checks: Sequence, *, title: str | None = None) -> Figure:
    """`TargetCheck`s (`rmt_lib.probes.figure8_checks`) as estimates with 95% intervals, one panel per
    distinct target (dashed line); a green point meets its target with its whole interval, orange by the
    estimate only, red not at all."""
    if not checks:
        raise ValueError("no target checks to plot")
    targets = sorted({c.target for c in checks}, reverse=True)
    # Each panel as tall as its number of checks (+1 for its title), so the rows of all panels match.
    fig, axes = new_figure(7.0, 0.9 + 0.42 * len(checks) + 0.5 * len(targets), nrows=len(targets),
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


def plot_against_paper(curves: Sequence[AccuracyCurve | Missing], *, trained_length: int | None = None) -> Figure:
    """Our accuracy curves beside the paper's RMT and ARMT on QA1 (BABILong Table 4, quoted in
    `rmt_lib.paper`: inputs, not results), on one axis of segments: the paper's input of T tokens is
    drawn at T / 512 segments, the number of memory updates our input of that many segments also makes."""
    fig, axes = new_figure(6.4, 4.0)
    ax = axes[0, 0]
    for name, row in paper.TABLE4_QA1.items():
        x = [paper.segments_for(paper.TABLE4_LENGTHS[k]) for k in row]
        ax.plot(x, [v / 100 for v in row.values()], "s--", color=PAPER_COLOURS[name], markersize=4, linewidth=1.1,
                label=f"paper's {name} (BABILong Table 4)")
    for i, c in enumerate(c for c in curves if isinstance(c, AccuracyCurve)):
        acc = np.array([r.accuracy for r in c.rows])  # (n_lengths,)
        lo, hi = np.array([r.low for r in c.rows]), np.array([r.high for r in c.rows])
        ax.errorbar(c.lengths, acc, yerr=[acc - lo, hi - acc], fmt="o-", color=CURVE_COLOURS.get(c.label, f"C{i}"),
                    capsize=3, markersize=4, linewidth=1.4, label=f"ours: {c.label}")
    missing = [c for c in curves if isinstance(c, Missing)]
    if missing:
        ax.text(0.98, 0.02, "\n".join(textwrap.fill(f"{m.what}: not there yet", 40) for m in missing),
                transform=ax.transAxes, fontsize=7, color="#777777", ha="right", va="bottom")
    if trained_length is not None:
        ax.axvline(trained_length, color="#999999", linestyle=":", linewidth=1)
        ax.text(trained_length, 0.98, "our longest training input ", rotation=90, fontsize=7, color="#777777",
                ha="right", va="top")
    names = {paper.segments_for(t): k for k, t in paper.TABLE4_LENGTHS.items()}
    ticks = sorted(set(names) | {n for c in curves if isinstance(c, AccuracyCurve) for n in c.lengths})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{n:,}" + (f"\n({names[n]})" if n in names else "") for n in ticks], fontsize=6)
    ax.minorticks_off()
    ax.set_xlabel("input length in segments (the paper's length in tokens at 512-token segments)")
    ax.set_ylabel("QA1 accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    return fig
