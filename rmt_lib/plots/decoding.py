"""What the memory holds: decoded world states, decoding accuracy, patching, and the fact over time.

Inputs are the results of `rmt_lib.probes.decode`, `.patch` and `.tracking` (plain dicts and arrays).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from rmt_lib.data import ACTORS, LOCATIONS
from rmt_lib.plots.style import (FACT_COLOUR, OTHER_COLOUR, REFERENCE_COLOUR, RIGHT_COLOUR, WRONG_COLOUR, new_figure,
                                 panel_note)

CLASS_NAMES = (*LOCATIONS, "not seen")
# One colour per location, light grey for "not seen" (the probe's classes, in CLASSES order).
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#eeeeee")
ACTION_COLOURS = ("#444444", OTHER_COLOUR, FACT_COLOUR)  # as run, reset, donor's memory


def _bin_centre(low: int, high: int) -> float:
    """Where a bin of segment counts [low, high) sits on a log axis: the geometric middle of its first and
    last count, with 0 drawn at 0.5."""
    return float(np.sqrt(max(low, 0.5) * max(high - 1, 0.5)))


def _interval(d: Mapping) -> tuple[float, float, float]:
    return d["estimate"], d["estimate"] - d["low"], d["high"] - d["estimate"]


def plot_decoding_by_distance(curves: Mapping[str, dict], *, chance: float | None = None,
                              title: str = "Decoding accuracy against distance from the fact") -> Figure:
    """Accuracy of the decoded location of actors already seen, against segments since their last fact
    (log scale), one line per `decoding_accuracy` result in `curves`, with 95% intervals."""
    fig, axes = new_figure(6.4, 3.8)
    ax = axes[0, 0]
    for i, (label, result) in enumerate(curves.items()):
        bins = result["by_distance"]
        x = np.array([_bin_centre(b["low"], b["high"]) for b in bins])
        est, lo, hi = np.array([_interval(b["accuracy"]) for b in bins]).T
        ax.errorbar(x, est, yerr=[lo, hi], fmt="o-", capsize=3, markersize=4, linewidth=1.3, color=f"C{i}",
                    label=label)
    if chance is not None:
        ax.axhline(chance, color=REFERENCE_COLOUR, linestyle="--", linewidth=1)
        ax.text(0.5, chance, " chance among locations", fontsize=7, color=REFERENCE_COLOUR, va="bottom")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("segments since the actor's last fact was read (bins: 0, 1, 2-3, 4-7, ...)")
    ax.set_ylabel("decoded location right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    return fig


def plot_decoded_sample(probabilities: np.ndarray, world: np.ndarray, *, fact_segments: Sequence[int] = (),
                        asked: int | None = None, title: str = "Decoded and true world state") -> Figure:
    """Along one sample: the decoded class of every actor after each segment (shade: the probe's
    confidence) above the true world state. `probabilities` (S + 1, A, C), `world` (S + 1, A); state 0
    (the initial memory) is left out, so column s is the memory after segment s."""
    p, w = np.asarray(probabilities)[1:], np.asarray(world)[1:]  # (S, A, C), (S, A)
    S, A = w.shape
    cmap = ListedColormap(CLASS_COLOURS)
    fig, axes = new_figure(min(12.0, 3.0 + 0.18 * S), 3.8, nrows=2, sharex=True)
    decoded = p.argmax(axis=-1)  # (S, A)
    axes[0, 0].imshow(decoded.T, cmap=cmap, vmin=0, vmax=len(CLASS_NAMES) - 1, aspect="auto", interpolation="nearest",
                      alpha=np.clip(p.max(axis=-1).T, 0.25, 1.0))
    wrong = np.argwhere(decoded != w)  # (n, 2): segment, actor
    axes[0, 0].scatter(wrong[:, 0], wrong[:, 1], marker="x", s=14, color="black", linewidths=0.8,
                       label="decoded wrong")
    axes[1, 0].imshow(w.T, cmap=cmap, vmin=0, vmax=len(CLASS_NAMES) - 1, aspect="auto", interpolation="nearest")
    for ax, name in zip(axes[:, 0], ("decoded from the memory", "true world state")):
        ax.set_yticks(range(A), [f"{a}{' (asked)' if k == asked else ''}" for k, a in enumerate(ACTORS[:A])],
                      fontsize=8)
        ax.set_title(name, fontsize=9, loc="left")
        for s in fact_segments:
            ax.axvline(s, color=FACT_COLOUR, linewidth=0.8, alpha=0.6)
    axes[1, 0].set_xlabel("segment (red lines: fact segments)")
    handles = [_patch(c, n) for c, n in zip(CLASS_COLOURS, CLASS_NAMES)]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def _patch(colour: str, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor="#999999", label=label)


def plot_patching(summary: Mapping, *, follow_target: float | None = None,
                  change_target: float | None = None, chance: float | None = None) -> Figure:
    """Left: what each intervention did (`patch_memory`'s summary), with 95% intervals and the book's
    thresholds. Right: how often noise changes the answer, against its size in typical distractor changes,
    with the fact's own change marked on the same scale."""
    if not summary.get("n_eligible"):
        fig, axes = new_figure(10.5, 3.6, ncols=2)
        for ax in axes[0]:
            panel_note(ax, "no eligible pair: nothing was patched")
        return fig
    rows = [("answer follows the donor's fact\n(patch after the fact segment)", summary["fact_follows"], follow_target),
            ("answer changes\n(patch after a distractor segment)", summary["distractor_changes"], change_target),
            ("answer still right\n(memory reset after the fact)", summary["reset_right"], chance)]
    fig, axes = new_figure(10.5, 3.6, ncols=2, width_ratios=(1.25, 1.0))
    ax = axes[0, 0]
    for k, (label, value, ref) in enumerate(rows):
        est, lo, hi = _interval(value)
        ax.barh(k, est, xerr=[[lo], [hi]], color=ACTION_COLOURS[k], capsize=3, height=0.6)
        ax.text(min(est + hi + 0.02, 0.9), k, f"{est:.0%}", va="center", fontsize=8)
        if ref is not None:
            ax.plot([ref, ref], [k - 0.4, k + 0.4], color=REFERENCE_COLOUR, linestyle="--", linewidth=1.2)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel(f"share of {summary['n_eligible']} pairs (dashed: threshold or chance)")
    ax.set_title("Interventions on the memory state", fontsize=10)
    ax = axes[0, 1]
    scales = sorted(summary["noise_changes"], key=float)
    est, lo, hi = np.array([_interval(summary["noise_changes"][s]) for s in scales]).T
    ax.errorbar([float(s) for s in scales], est, yerr=[lo, hi], fmt="o-", capsize=3, color="#444444", markersize=4)
    jump = summary["fact_change_over_distractor_change"]
    ax.axvline(jump, color=FACT_COLOUR, linestyle=":", linewidth=1.2)
    ax.text(jump, 0.95, " a fact's change", color=FACT_COLOUR, fontsize=7, va="top")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("noise norm / the sample's median distractor change")
    ax.set_ylabel("answer changes")
    ax.set_title("Noise added after the fact segment", fontsize=10)
    return fig


def plot_asked_trajectory(trajectory: np.ndarray, *, fact_segments: Sequence[int] = (),
                          labels: Sequence[str] | None = None, title: str = "") -> Figure:
    """The probe's probability of each class for one actor after each segment: `trajectory` (S + 1, C),
    state 0 left out. Fact segments about that actor are marked (and named, with `labels`)."""
    t = np.asarray(trajectory)[1:]  # (S, C)
    fig, axes = new_figure(8.0, 3.0)
    ax = axes[0, 0]
    x = np.arange(len(t))
    for c, name in enumerate(CLASS_NAMES):
        if t[:, c].max() > 0.05:
            ax.plot(x, t[:, c], color=CLASS_COLOURS[c] if c < len(LOCATIONS) else OTHER_COLOUR, linewidth=1.4,
                    label=name)
    for k, s in enumerate(fact_segments):
        ax.axvline(s, color=FACT_COLOUR, linestyle=":", linewidth=1)
        if labels is not None:
            ax.text(s, 1.02, labels[k], color=FACT_COLOUR, fontsize=7, ha="center", va="bottom")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("segment (the memory after it)")
    ax.set_ylabel("probe's probability")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


def plot_retention(records: Sequence[Mapping], *, lost_fractions: Sequence[float] = (),
                   title: str = "Confidence in the fact, from the fact to the question") -> Figure:
    """Left: the probe's median confidence in the asked actor's true location against segments since the
    supporting fact (`fact_retention` records), for right and for wrong answers, quartiles shaded. Right:
    where the wrong answers' facts were lost (0: just after the fact, 1: just before the question)."""
    fig, axes = new_figure(10.0, 3.6, ncols=2, width_ratios=(1.5, 1.0))
    if not records:
        for ax in axes[0]:
            panel_note(ax, "no sample holds its supporting fact before the question's segment")
        return fig
    ax = axes[0, 0]
    edges = np.unique(np.r_[0, np.geomspace(1, max(2, max(len(r["confidence"]) for r in records)), 12).astype(int)])
    for correct, colour, name in ((True, RIGHT_COLOUR, "right answers"), (False, WRONG_COLOUR, "wrong answers")):
        group = [np.asarray(r["confidence"]) for r in records if r["correct"] == correct]
        if not group:
            continue
        mid, q1, q2, q3 = [], [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            values = np.concatenate([c[lo:hi] for c in group])
            if len(values):
                mid.append(_bin_centre(lo, hi))
                a, b, c = np.quantile(values, [0.25, 0.5, 0.75])
                q1.append(a), q2.append(b), q3.append(c)
        ax.plot(mid, q2, "o-", color=colour, markersize=3, label=f"{name} ({len(group)})")
        ax.fill_between(mid, q1, q3, color=colour, alpha=0.2, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("segments since the supporting fact's segment")
    ax.set_ylabel("probe's probability of the answer")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=10)
    ax = axes[0, 1]
    ax.hist(lost_fractions, bins=np.linspace(0, 1, 11), color=WRONG_COLOUR, edgecolor="white")
    ax.set_xlabel("where the fact was lost (0: just after it, 1: at the question)")
    ax.set_ylabel("wrong answers")
    ax.set_title("Where wrong answers lost their fact", fontsize=10)
    return fig


def plot_intervention_frame(frames, k: int, *, action_names: Sequence[str]) -> Figure:
    """Frame k of `rmt_lib.probes.patch.InterventionFrames`: the world state decoded from the memory after
    the frame's segment; at the question, the decoded world state under each action (true state outlined);
    and the answer's probabilities under each action."""
    n_actions = len(action_names)
    fig, axes = new_figure(13.0, 3.3, ncols=n_actions + 2, width_ratios=(1,) * (n_actions + 1) + (1.3,))
    s = frames.segments[k]
    panels = [(frames.after[k], frames.truth_after[k], f"after segment {s}, as run", "#444444")]
    panels += [(frames.decoded[k, j], frames.truth, f"at the question: {name}", ACTION_COLOURS[j])
               for j, name in enumerate(action_names)]
    for j, (probs, truth, name, colour) in enumerate(panels):
        _world_heatmap(axes[0, j], probs, truth, frames.asked, labels=j == 0)
        axes[0, j].set_title(name, fontsize=8, color=colour)
    ax = axes[0, -1]
    width = 0.8 / n_actions
    for j, name in enumerate(action_names):
        ax.bar(np.arange(len(LOCATIONS)) + (j - (n_actions - 1) / 2) * width, frames.answer[k, j], width,
               color=ACTION_COLOURS[j], label=name)
    ax.set_xticks(range(len(LOCATIONS)), [f"{loc}{_mark(loc, frames)}" for loc in LOCATIONS], rotation=60, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_title("the answer", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(f"the decoded world state (outlined: the truth); the memory edited after segment {s}", fontsize=9)
    return fig


def _world_heatmap(ax, probs: np.ndarray, truth: np.ndarray, asked: int, *, labels: bool) -> None:
    """(A, C) decoded probabilities, grey scale, the true class of each actor outlined."""
    ax.imshow(probs, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    for a in range(len(truth)):
        ax.add_patch(_outline(truth[a], a))
    ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=60, fontsize=7)
    names = [f"{n}{' (asked)' if i == asked else ''}" for i, n in enumerate(ACTORS[:len(truth)])]
    ax.set_yticks(range(len(truth)), names if labels else [""] * len(truth), fontsize=7)


def _outline(column: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=RIGHT_COLOUR, linewidth=2)


def _mark(location: str, frames) -> str:
    if location == frames.target:
        return " (answer)"
    return " (donor's)" if location == frames.donor_target else ""
