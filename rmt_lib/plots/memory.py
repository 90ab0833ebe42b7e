"""How the memory moves: distances between memory states and the change per segment, of one sample or many.

Memory-state index 0 is the initial memory and index s + 1 the memory after segment s, so a sample of
S segments has an (S+1, S+1) distance matrix and S memory changes ‖m_t − m_{t−1}‖. Inputs are arrays
or probe entries (`rmt_lib.probes.probe_samples(...)["samples"]`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rmt_lib.plots.style import (CURRENT_COLOUR, DISTANCE_CMAP, FACT_COLOUR, FIRST_COLOUR, OTHER_COLOUR,
                                 QUESTION_COLOUR, RIGHT_COLOUR, WRONG_COLOUR, new_figure)


def check_segments(fact_segments: Sequence[int], question_segment: int | None, n_segments: int) -> None:
    """Refuse a segment index outside 0..n_segments-1 (a mark drawn off the plot would go unnoticed)."""
    for s in [*fact_segments, *([question_segment] if question_segment is not None else [])]:
        if not 0 <= s < n_segments:
            raise ValueError(f"segment index {s} is outside 0..{n_segments - 1}")


def _mark_state_axes(ax: Axes, n_states: int, fact_segments: Sequence[int], question_segment: int | None) -> None:
    """Ticks on both axes at the states after the fact segments (F1, F2, ...) and the question segment (Q)."""
    marks: dict[int, tuple[str, str]] = {0: ("init", OTHER_COLOUR)}
    step = max(1, int(np.ceil((n_states - 1) / 8)))
    for s in range(0, n_states - 1, step):  # a sparse numeric scale for orientation
        marks[s + 1] = (str(s), OTHER_COLOUR)
    # Numeric ticks too close to a marked one would overprint it: drop them.
    special = [0] + [s + 1 for s in fact_segments] + ([question_segment + 1] if question_segment is not None else [])
    gap = max(1, step // 2)
    marks = {i: m for i, m in marks.items() if i == 0 or all(abs(i - j) >= gap for j in special)}
    names: dict[int, list[str]] = {}
    for k, s in enumerate(fact_segments, start=1):  # two facts may share a segment: "F1,F2"
        names.setdefault(s, []).append(f"F{k}")
    for s, ks in names.items():
        marks[s + 1] = (f"{','.join(ks)} ({s})", FACT_COLOUR)
    if question_segment is not None:
        name = "+".join(names.get(question_segment, []) + ["Q"])
        marks[question_segment + 1] = (f"{name} ({question_segment})", QUESTION_COLOUR)
    positions = sorted(marks)
    for axis, setter in ((ax.xaxis, ax.set_xticks), (ax.yaxis, ax.set_yticks)):
        setter(positions, [marks[i][0] for i in positions])
        for label, i in zip(axis.get_ticklabels(), positions):
            label.set_color(marks[i][1])
            if marks[i][1] != OTHER_COLOUR:
                label.set_fontweight("bold")
    ax.tick_params(axis="x", labelrotation=90)


def plot_distance_matrix(
    distance: np.ndarray,
    *,
    fact_segments: Sequence[int] = (),
    question_segment: int | None = None,
    title: str | None = None,
    vmax: float | None = None,
    size: float = 5.0,
) -> Figure:
    """Panels (a)/(b): the (S+1, S+1) L2 distance matrix between memory states.

    Row/column 0 is the initial memory, index s + 1 the memory after segment s. Fact segments (F1,
    F2, ...) and the question segment (Q) are labelled on both axes. RED = similar, BLUE = distant.
    """
    d = np.asarray(distance, dtype=np.float64)  # (S+1, S+1)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance must be a square matrix; got shape {d.shape}")
    n = d.shape[0]
    check_segments(fact_segments, question_segment, n - 1)
    fig, axes = new_figure(size * 1.15, size)
    ax = axes[0, 0]
    top = float(vmax) if vmax is not None else float(d.max()) or 1.0
    image = ax.imshow(d, cmap=DISTANCE_CMAP, vmin=0.0, vmax=top, interpolation="nearest", origin="upper")
    fig.colorbar(image, ax=ax, shrink=0.85, label="L2 distance between memory states")
    _mark_state_axes(ax, n, list(fact_segments), question_segment)
    ax.set_xlabel("memory state after segment")
    ax.set_ylabel("memory state after segment")
    ax.set_title(title or f"Distances between memory states ({n - 1} segments)")
    return fig


def plot_memory_change(
    change: np.ndarray,
    *,
    fact_segments: Sequence[int] = (),
    question_segment: int | None = None,
    current: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """‖m_t − m_{t−1}‖ per segment as bars: facts red, question black, the rest grey.

    `current` (a segment index) is outlined, for the scrubbers. With `ax` it draws into that axes
    (of a figure the caller made) and returns its figure.
    """
    c = np.asarray(change, dtype=np.float64).ravel()  # (S,)
    S = len(c)
    check_segments(fact_segments, question_segment, S)
    if ax is None:
        _, axes = new_figure(max(5.0, min(12.0, 0.05 * S + 4.0)), 2.8)
        ax = axes[0, 0]
    fig = ax.get_figure()
    colours = [OTHER_COLOUR] * S
    for s in fact_segments:
        colours[s] = FACT_COLOUR
    if question_segment is not None:
        colours[question_segment] = QUESTION_COLOUR
    ax.bar(np.arange(S), c, color=colours, width=0.85 if S < 100 else 1.0)
    if current is not None:
        ax.bar([current], [c[current]], fill=False, edgecolor=CURRENT_COLOUR, linewidth=2.0, width=1.0)
    ax.set_xlim(-0.5, S - 0.5)
    ax.set_xlabel("segment")
    ax.set_ylabel("memory change ‖m_t − m_{t−1}‖")
    handles = [Rectangle((0, 0), 1, 1, color=FACT_COLOUR, label="fact segment"),
               Rectangle((0, 0), 1, 1, color=QUESTION_COLOUR, label="question segment"),
               Rectangle((0, 0), 1, 1, color=OTHER_COLOUR, label="other")]
    ax.legend(handles=handles, fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_change_distributions(
    fact_values: np.ndarray,
    distractor_values: np.ndarray,
    *,
    question_values: np.ndarray | None = None,
    first_values: np.ndarray | None = None,
    title: str | None = None,
    bins: int = 40,
) -> Figure:
    """Histograms (fraction per log-spaced bin) of memory change at fact vs. distractor segments."""
    groups = [("distractor segments", np.asarray(distractor_values, float).ravel(), OTHER_COLOUR),
              ("fact segments", np.asarray(fact_values, float).ravel(), FACT_COLOUR)]
    if question_values is not None:
        groups.append(("question segments", np.asarray(question_values, float).ravel(), QUESTION_COLOUR))
    if first_values is not None:  # segment 0: its change is measured from the initial memory
        groups.append(("first segments", np.asarray(first_values, float).ravel(), FIRST_COLOUR))
    groups = [g for g in groups[:2]] + [g for g in groups[2:] if len(g[1])]
    everything = np.concatenate([g[1] for g in groups])
    if len(groups[0][1]) == 0 or len(groups[1][1]) == 0:
        raise ValueError("need at least one fact and one distractor value")
    positive = everything[everything > 0]
    lo, hi = (positive.min(), positive.max()) if len(positive) else (1e-3, 1.0)
    edges = np.geomspace(lo, hi * 1.0001 if hi > lo else lo * 10, bins + 1)
    fig, axes = new_figure(6.0, 3.2)
    ax = axes[0, 0]
    for name, values, colour in groups:
        # Each group sums to one (a fraction per bin): densities over log bins would shrink wide bins.
        ax.hist(np.clip(values, lo, None), bins=edges, weights=np.full(len(values), 1.0 / len(values)),
                alpha=0.55, color=colour, label=f"{name} (n={len(values)})")
    ax.set_xscale("log")
    ax.set_xlabel("memory change ‖m_t − m_{t−1}‖")
    ax.set_ylabel("fraction of segments")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or "Memory change: fact vs. distractor segments")
    return fig


# ----------------------------------------------------------------------------------------------
# Many samples at once: every probe entry is drawn, none is chosen
# ----------------------------------------------------------------------------------------------


def _changes(entries: Sequence[Mapping]) -> np.ndarray:
    if not entries:
        raise ValueError("no probe entries to plot")
    lengths = {len(e["memory_change"]) for e in entries}
    if len(lengths) != 1:
        raise ValueError(f"all samples must have the same number of segments; got {sorted(lengths)}")
    return np.stack([np.asarray(e["memory_change"], dtype=np.float64) for e in entries])  # (n, S)


def plot_change_raster(entries: Sequence[Mapping], *, title: str | None = None) -> Figure:
    """Every sample's memory change per segment as one row of an image (log colour scale), rows sorted
    by the first fact's segment; fact segments circled in red, the question segment boxed in blue.

    Nothing is selected: every entry is a row. Bright columns on the circles = the memory moves at facts.
    """
    change = _changes(entries)  # (n, S)
    order = sorted(range(len(entries)), key=lambda i: (min(entries[i]["fact_segments"]), i))
    change = change[order]
    n, S = change.shape
    positive = change[change > 0]
    lo, hi = (positive.min(), positive.max()) if len(positive) else (1e-6, 1.0)
    fig, axes = new_figure(8.0, min(7.0, max(3.8, 2.2 + 0.018 * n)))
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
    # Blue, not QUESTION_COLOUR: black squares would vanish on the image's dark (small-change) cells.
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
    fig, axes = new_figure(3.0 * ncols, 2.9 * nrows, nrows=nrows, ncols=ncols)
    for ax in axes.ravel()[len(shown):]:
        ax.set_axis_off()
    for k, (ax, e) in enumerate(zip(axes.ravel(), shown)):
        d = np.asarray(e["distance_matrix"], dtype=np.float64)  # (S+1, S+1)
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


def plot_drift(records: Sequence[Mapping], *, threshold: float | None = None, title: str | None = None) -> Figure:
    """Drift against jump, one point per sample (`rmt_lib.probes.probe_drift` records): left, the memory's
    distance across the distractor stretch (x) and the next fact's jump (y), right or wrong answers in
    their colours; right, the ratio drift / jump per sample, with `threshold` as a dashed line."""
    if not records:
        raise ValueError("no drift records to draw")
    fig, axes = new_figure(9.0, 3.6, ncols=2)
    drift = np.array([r["drift"] for r in records], dtype=np.float64)  # (n,)
    jump = np.array([r["jump"] for r in records], dtype=np.float64)  # (n,)
    correct = np.array([bool(r.get("correct", True)) for r in records])
    ax = axes[0, 0]
    for keep, name, colour in ((correct, "right answer", RIGHT_COLOUR), (~correct, "wrong answer", WRONG_COLOUR)):
        ax.scatter(drift[keep], jump[keep], s=14, color=colour, label=name, alpha=0.8)
    top = float(max(drift.max(), jump.max())) * 1.05
    ax.plot([0, top], [0, top], color=OTHER_COLOUR, linewidth=0.8, linestyle=":")
    ax.text(top, top, "drift = jump ", fontsize=7, color=OTHER_COLOUR, ha="right", va="bottom")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("drift: distance across the distractor stretch")
    ax.set_ylabel("jump of the fact after it")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax = axes[0, 1]
    ratio = drift / jump
    ax.hist(ratio, bins=min(30, max(5, len(ratio) // 3)), color=FIRST_COLOUR, alpha=0.85)
    ax.axvline(float(np.median(ratio)), color=QUESTION_COLOUR, linewidth=1.2)
    ax.text(float(np.median(ratio)), ax.get_ylim()[1], " median", fontsize=7, va="top")
    if threshold is not None:
        ax.axvline(threshold, color=FACT_COLOUR, linestyle="--", linewidth=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.85, " threshold", fontsize=7, color=FACT_COLOUR, va="top")
    ax.set_xlabel("drift / jump, per sample")
    ax.set_ylabel("samples")
    fig.suptitle(title or f"Drift through distractor text against the next fact's jump ({len(records)} samples)",
                 fontsize=10)
    return fig
