"""Figure 8 in the paper's style, and the statistics behind it: data in, matplotlib Figure out.

Every function takes plain arrays/strings and returns a new `matplotlib.figure.Figure` (a
`NotebookFigure`, which displays itself in Jupyter). None of them touches pyplot's global state (no
current figure, no `plt.show()`), calls a model or reads a file, so a notebook cell that returns a
figure shows it exactly once and a script can save it with `savefig` or `save_figure`.

Colour conventions:
* distances (panels a, b): diverging ``RdBu`` from 0, RED = similar (small distance), BLUE = distant,
  as in the paper; the colour bar is in L2 distance units.
* attention (panels c, d): sequential ``viridis``, 0 to the map's maximum.
* fact segments/tokens are marked in ``FACT_COLOUR``, the question segment in ``QUESTION_COLOUR``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

FACT_COLOUR = "#d62728"  # red: facts
QUESTION_COLOUR = "#111111"  # black: the question
OTHER_COLOUR = "#7f7f7f"  # grey: distractor segments
FIRST_COLOUR = "#1f77b4"  # blue: the first segment (its change is measured from the initial memory)
DISTANCE_CMAP = "RdBu"  # low (similar) = red, high (distant) = blue
ATTENTION_CMAP = "viridis"


class NotebookFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter without pyplot.

    IPython renders a bare `Figure` as text unless pyplot's inline backend has been started; this
    subclass carries its own PNG representation, so a cell whose value is a figure shows it exactly
    once, whatever the notebook imported. Everything else is a plain Figure.
    """

    repr_dpi = 100

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.repr_dpi, bbox_inches="tight", metadata={"Software": None})
        return buf.getvalue()


def _new_figure(width: float, height: float, *, nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, np.ndarray]:
    fig = NotebookFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def _state_label(index: int) -> str:
    """Memory-state index 0 is the initial memory; index s + 1 the memory after segment s."""
    return "init" if index == 0 else str(index - 1)


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
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance must be a square matrix; got shape {d.shape}")
    n = d.shape[0]
    _check_segments(fact_segments, question_segment, n - 1)
    fig, axes = _new_figure(size * 1.15, size)
    ax = axes[0, 0]
    top = float(vmax) if vmax is not None else float(d.max()) or 1.0
    image = ax.imshow(d, cmap=DISTANCE_CMAP, vmin=0.0, vmax=top, interpolation="nearest", origin="upper")
    fig.colorbar(image, ax=ax, shrink=0.85, label="L2 distance between memory states")
    _mark_state_axes(ax, n, list(fact_segments), question_segment)
    ax.set_xlabel("memory state after segment")
    ax.set_ylabel("memory state after segment")
    ax.set_title(title or f"Distances between memory states ({n - 1} segments)")
    return fig


def _check_segments(fact_segments: Sequence[int], question_segment: int | None, n_segments: int) -> None:
    for s in [*fact_segments, *([question_segment] if question_segment is not None else [])]:
        if not 0 <= s < n_segments:
            raise ValueError(f"segment index {s} is outside 0..{n_segments - 1}")


def _as_panels(weights: np.ndarray | Mapping[str, np.ndarray], default_title: str) -> list[tuple[str, np.ndarray]]:
    panels = list(weights.items()) if isinstance(weights, Mapping) else [(default_title, weights)]
    out = []
    for name, w in panels:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"attention map {name!r} must be 2-d (rows, columns); got shape {w.shape}")
        out.append((name, w))
    if not out:
        raise ValueError("no attention map to plot")
    return out


def plot_write_attention(
    weights: np.ndarray | Mapping[str, np.ndarray],
    tokens: Sequence[str],
    fact_mask: Sequence[bool] | np.ndarray,
    *,
    title: str | None = None,
    label_every_token: bool = True,
) -> Figure:
    """Panel (c): write-memory queries (rows) attending to one segment's tokens (columns).

    `weights` is (M, L), or a mapping of titles to such maps (e.g. the chosen head and the mean over
    heads), drawn one under the other. `tokens` are the L token strings; the fact's tokens
    (`fact_mask`) are labelled in bold red, the others in grey (or left blank with
    ``label_every_token=False``).
    """
    panels = _as_panels(weights, "write attention")
    fact = np.asarray(fact_mask, dtype=bool)
    L = panels[0][1].shape[1]
    if len(tokens) != L or fact.shape != (L,):
        raise ValueError(f"need one token string and one fact flag per column ({L}); got {len(tokens)} and {fact.shape}")
    M = panels[0][1].shape[0]
    fig, axes = _new_figure(max(6.0, 0.22 * L + 2.0), 0.35 * M * len(panels) + 1.6 * len(panels) + 0.4,
                            nrows=len(panels))
    for ax, (name, w) in zip(axes[:, 0], panels):
        image = ax.imshow(w, cmap=ATTENTION_CMAP, vmin=0.0, aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="attention", pad=0.01)
        ax.set_yticks(range(w.shape[0]), [f"w{i}" for i in range(w.shape[0])])
        ax.set_ylabel("write memory (query)")
        labels = [t if (label_every_token or f) else "" for t, f in zip(tokens, fact)]
        ax.set_xticks(range(L), labels, rotation=90, fontsize=7)
        for label, f in zip(ax.get_xticklabels(), fact):
            label.set_color(FACT_COLOUR if f else OTHER_COLOUR)
            if f:
                label.set_fontweight("bold")
        _outline_columns(ax, fact, w.shape[0])
        ax.set_title(name, fontsize=10)
    axes[-1, 0].set_xlabel("segment tokens (key); fact tokens in red")
    if title:
        fig.suptitle(title)
    return fig


def _outline_columns(ax: Axes, mask: np.ndarray, n_rows: int) -> None:
    """A red frame around each run of marked columns."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    for run in runs:
        ax.add_patch(Rectangle((run[0] - 0.5, -0.5), len(run), n_rows, fill=False,
                               edgecolor=FACT_COLOUR, linewidth=1.5))


def plot_read_attention(
    weights: np.ndarray | Mapping[str, np.ndarray],
    row_labels: Sequence[str],
    *,
    title: str | None = None,
) -> Figure:
    """Panel (d): question/answer positions (rows) attending to the read-memory keys (columns).

    `weights` is (Q, M) or a mapping of titles to such maps; `row_labels` the Q token strings (the
    last row is the answer position, where the model reads its answer).
    """
    panels = _as_panels(weights, "read attention")
    Q, M = panels[0][1].shape
    if len(row_labels) != Q:
        raise ValueError(f"need one row label per query row ({Q}); got {len(row_labels)}")
    fig, axes = _new_figure(3.0 * len(panels) + 1.5, 0.32 * Q + 1.8, ncols=len(panels))
    for ax, (name, w) in zip(axes[0], panels):
        image = ax.imshow(w, cmap=ATTENTION_CMAP, vmin=0.0, aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="attention", pad=0.02)
        ax.set_xticks(range(M), [f"r{i}" for i in range(M)], fontsize=8)
        ax.set_xlabel("read memory (key)")
        ax.set_yticks(range(Q), list(row_labels), fontsize=8)
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel("question / answer position (query)")
    if title:
        fig.suptitle(title)
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
    c = np.asarray(change, dtype=np.float64).ravel()
    S = len(c)
    _check_segments(fact_segments, question_segment, S)
    if ax is None:
        fig, axes = _new_figure(max(5.0, min(12.0, 0.05 * S + 4.0)), 2.8)
        ax = axes[0, 0]
    fig = ax.get_figure()
    colours = [OTHER_COLOUR] * S
    for s in fact_segments:
        colours[s] = FACT_COLOUR
    if question_segment is not None:
        colours[question_segment] = QUESTION_COLOUR
    ax.bar(np.arange(S), c, color=colours, width=0.85 if S < 100 else 1.0)
    if current is not None:
        ax.bar([current], [c[current]], fill=False, edgecolor="#1f77b4", linewidth=2.0, width=1.0)
    ax.set_xlim(-0.5, S - 0.5)
    ax.set_xlabel("segment")
    ax.set_ylabel("memory change ‖m_t − m_{t−1}‖")
    handles = [Rectangle((0, 0), 1, 1, color=FACT_COLOUR, label="fact segment"),
               Rectangle((0, 0), 1, 1, color=QUESTION_COLOUR, label="question segment"),
               Rectangle((0, 0), 1, 1, color=OTHER_COLOUR, label="other")]
    ax.legend(handles=handles, fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False)
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
    fig, axes = _new_figure(6.0, 3.2)
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


def plot_head_shares(
    shares: np.ndarray,
    *,
    chosen: tuple[int, int] | None = None,
    baseline: float | None = None,
    title: str | None = None,
    label: str = "attention share",
) -> Figure:
    """A (n_layers, n_heads) heatmap of a per-head statistic, each cell annotated.

    `chosen` (layer, head) is outlined; `baseline` (e.g. the uniform token share) is noted in the title.
    """
    s = np.asarray(shares, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"shares must be (n_layers, n_heads); got shape {s.shape}")
    n_layers, n_heads = s.shape
    fig, axes = _new_figure(1.0 * n_heads + 2.6, 0.8 * n_layers + 1.6)
    ax = axes[0, 0]
    image = ax.imshow(s, cmap=ATTENTION_CMAP, vmin=0.0, aspect="auto")
    fig.colorbar(image, ax=ax, label=label)
    middle = (np.nanmin(s) + np.nanmax(s)) / 2
    for (i, j), v in np.ndenumerate(s):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < middle else "black")
    if chosen is not None:
        ax.add_patch(Rectangle((chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, edgecolor=FACT_COLOUR, linewidth=2.5))
    ax.set_xticks(range(n_heads), [f"h{j}" for j in range(n_heads)])
    ax.set_yticks(range(n_layers), [f"L{i}" for i in range(n_layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    full = title or label
    if baseline is not None:
        full += f"\n(uniform baseline {baseline:.3f})"
    ax.set_title(full, fontsize=10)
    return fig


def plot_intervals(
    labels: Sequence[str],
    estimates: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    reference: float | None = None,
    reference_label: str = "target",
    xlabel: str = "",
    title: str | None = None,
) -> Figure:
    """Point estimates with their 95% intervals, one row each (e.g. AUC at 32 and 256 segments)."""
    est, lo, hi = (np.asarray(v, dtype=np.float64) for v in (estimates, lows, highs))
    if not (len(labels) == len(est) == len(lo) == len(hi)):
        raise ValueError("labels, estimates, lows and highs must have the same length")
    fig, axes = _new_figure(5.5, 0.45 * len(labels) + 1.3)
    ax = axes[0, 0]
    y = np.arange(len(labels))
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="#1f77b4", capsize=4)
    if reference is not None:
        ax.axvline(reference, color=FACT_COLOUR, linestyle="--", linewidth=1, label=reference_label)
        ax.legend(fontsize=8, frameon=False)
    ax.set_yticks(y, list(labels))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return fig


class SegmentFrames:
    """The scrubbers' frames: one figure, redrawn for each segment.

    A frame shows this segment's row of the distance matrix, the memory change per segment with this
    segment outlined, and, when `attention` is given, this segment's write-attention map
    (`attention` maps a segment to (weights (M, L), L token strings, (L,) fact mask); segments
    without one show an empty panel). The figure is built and laid out once and only its artists
    change per frame, which makes a frame about ten times cheaper than a new figure; its state is
    this object's own.
    """

    def __init__(self, distance: np.ndarray, change: np.ndarray, *, fact_segments: Sequence[int] = (),
                 question_segment: int | None = None, attention: Mapping[int, tuple] | None = None,
                 scale: float = 1.0):
        d = np.asarray(distance, dtype=np.float64)
        c = np.asarray(change, dtype=np.float64).ravel()
        if d.ndim != 2 or d.shape != (len(c) + 1, len(c) + 1):
            raise ValueError(f"{len(c)} memory changes need a ({len(c) + 1}, {len(c) + 1}) distance matrix; got {d.shape}")
        self.n_segments = S = len(c)
        _check_segments(list(fact_segments), question_segment, S)
        self.distance, self.attention = d, dict(attention or {})
        _check_segments(list(self.attention), None, S)
        n_axes = 3 if self.attention else 2
        self.figure = NotebookFigure(figsize=(9.0 * scale, 2.1 * n_axes * scale), layout="constrained")
        axes = self.figure.subplots(n_axes, 1, squeeze=False)[:, 0]
        colours = [OTHER_COLOUR] * (S + 1)
        for s in fact_segments:
            colours[s + 1] = FACT_COLOUR
        if question_segment is not None:
            colours[question_segment + 1] = QUESTION_COLOUR
        # The row is drawn on the segment axis of the change plot below: the memory after segment s sits
        # at x = s, the initial memory at x = -1.
        self._row = axes[0]
        self._row_bars = self._row.bar(np.arange(-1, S), d[0], color=colours, width=0.85 if S < 100 else 1.0)
        self._row_line = self._row.axvline(0, color="#1f77b4", linewidth=1.5)
        self._row.set_xlim(-1.5, S - 0.5)
        self._row.set_ylim(0, float(d.max()) or 1.0)
        self._row.set_ylabel("L2 distance")
        self._row.set_xlabel("memory state after segment (-1 = initial memory)", fontsize=8)
        plot_memory_change(c, fact_segments=fact_segments, question_segment=question_segment, current=0, ax=axes[1])
        self._current = axes[1].patches[S]  # the outline drawn for `current`
        axes[1].set_ylim(0, float(c.max()) * 1.05 or 1.0)
        axes[1].set_xlim(-1.5, S - 0.5)
        axes[1].set_ylabel("memory change")
        self._change = c
        self._map_axes = axes[2] if self.attention else None
        if self._map_axes is not None:
            weights = next(iter(self.attention.values()))[0]
            self._image = self._map_axes.imshow(np.zeros_like(np.asarray(weights, float)), cmap=ATTENTION_CMAP,
                                                vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            self._map_axes.set_ylabel("write memory")
            tokens = next(iter(self.attention.values()))[1]
            self._map_axes.set_xticks(range(np.shape(weights)[1]), list(tokens), rotation=90, fontsize=6)
            self._map_axes.set_title("write-memory attention", fontsize=9)  # reserves the title's room
        self._row.set_title("distance from the memory after segment 0 to every memory state", fontsize=9)
        # Lay out once, with real token labels in place, then freeze: frames only move artists.
        self.figure.draw_without_rendering()
        self.figure.set_layout_engine("none")

    def draw(self, segment: int) -> Figure:
        """Show `segment` and return the (same) figure."""
        _check_segments([segment], None, self.n_segments)
        for bar, h in zip(self._row_bars, self.distance[segment + 1]):
            bar.set_height(h)
        self._row_line.set_xdata([segment, segment])
        self._row.set_title(f"distance from the memory after segment {segment} to every memory state", fontsize=9)
        self._current.set_x(segment - 0.5)
        self._current.set_height(self._change[segment])
        if self._map_axes is not None:
            self._draw_map(segment)
        return self.figure

    def _draw_map(self, segment: int) -> None:
        ax = self._map_axes
        for patch in list(ax.patches):
            patch.remove()
        if segment not in self.attention:
            self._image.set_data(np.full(self._image.get_array().shape, np.nan))  # blank, not "zero attention"
            ax.set_xticklabels([""] * len(ax.get_xticks()))
            ax.set_title(f"segment {segment}: no attention map captured (only fact and question segments are)", fontsize=9)
            return
        weights, tokens, mask = self.attention[segment]
        w = np.asarray(weights, dtype=np.float64)
        self._image.set_data(w)
        self._image.set_clim(0.0, float(w.max()) or 1.0)
        fact = np.asarray(mask, dtype=bool)
        ax.set_xticklabels(list(tokens))
        for label, f in zip(ax.get_xticklabels(), fact):
            label.set_color(FACT_COLOUR if f else OTHER_COLOUR)
        _outline_columns(ax, fact, w.shape[0])
        ax.set_title(f"write-memory attention in segment {segment}", fontsize=9)


def plot_segment_frame(
    segment: int,
    distance: np.ndarray,
    change: np.ndarray,
    *,
    fact_segments: Sequence[int] = (),
    question_segment: int | None = None,
    attention: np.ndarray | None = None,
    attention_tokens: Sequence[str] | None = None,
    attention_fact_mask: Sequence[bool] | None = None,
    scale: float = 1.0,
) -> Figure:
    """One scrubber frame as a new figure (see `SegmentFrames`, which the scrubbers use)."""
    maps = {}
    if attention is not None:
        a = np.asarray(attention, dtype=np.float64)
        tokens = list(attention_tokens) if attention_tokens is not None else [""] * a.shape[1]
        mask = np.zeros(a.shape[1], bool) if attention_fact_mask is None else attention_fact_mask
        maps[segment] = (a, tokens, mask)
    return SegmentFrames(distance, change, fact_segments=fact_segments, question_segment=question_segment,
                         attention=maps, scale=scale).draw(segment)


# ----------------------------------------------------------------------------------------------
# The four panels of Figure 8, and saving
# ----------------------------------------------------------------------------------------------

PAPER_LENGTH = {32: "16k", 256: "128k"}  # the paper's input lengths that our segment counts stand for


def figure8_panels(inputs, *, fact: int = 0) -> dict[str, Figure]:
    """{"fig8a", "fig8b", "fig8c", "fig8d"} from a `rmt_lib.probes.Figure8Inputs` (captured data only).

    (c) and (d) show the automatically chosen head beside the mean over all layers and heads.
    """
    figures = {}
    for name, capture, letter in (("fig8a", inputs.short, "a"), ("fig8b", inputs.long, "b")):
        e = capture.entry
        S = e["n_segments"]
        paper = f", the paper's {PAPER_LENGTH[S]}" if S in PAPER_LENGTH else ""
        figures[name] = plot_distance_matrix(
            e["distance_matrix"], fact_segments=e["fact_segments"], question_segment=e["question_segment"],
            title=f"({letter}) memory-state distances, {S} segments{paper}\n"
                  f"answer {e['prediction']!r}, target {e['target']!r}")
    lw, hw = inputs.write_head
    n_heldout = len(inputs.heldout["samples"])
    chosen, tokens, mask = inputs.short.write_map(fact, layer=lw, head=hw)
    mean, _, _ = inputs.short.write_map(fact)
    segment = inputs.short.entry["fact_segments"][fact]
    figures["fig8c"] = plot_write_attention(
        {f"layer {lw}, head {hw} (chosen automatically on {n_heldout} held-out samples)": chosen,
         "mean over all layers and heads": mean}, tokens, mask,
        title=f"(c) writing fact {fact + 1} to memory: write-memory queries in segment {segment}")
    lr, hr = inputs.read_head
    chosen, labels = inputs.short.read_map(layer=lr, head=hr)
    mean, _ = inputs.short.read_map()
    figures["fig8d"] = plot_read_attention(
        {f"layer {lr}, head {hr} (chosen, held-out)": chosen, "mean over layers and heads": mean}, labels,
        title=f"(d) reading memory: question positions in the last segment ({inputs.short.entry['n_segments'] - 1})")
    return figures


def save_figure(fig: Figure, stem, formats: Sequence[str] = ("png", "svg"), *, dpi: int = 150) -> list:
    """Save `fig` as STEM.png, STEM.svg, ... each written to a temporary file and renamed into place.

    Reproducible bytes: no creation date in the SVG/PDF metadata, a fixed SVG hash salt.
    """
    from pathlib import Path

    import matplotlib

    from rmt_lib.files import atomic_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"Software": None} if fmt == "png" else {"Date": None}
        with atomic_path(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "rmt-lib"}):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
        written.append(path)
    return written
