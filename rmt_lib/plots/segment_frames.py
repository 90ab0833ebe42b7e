"""The scrubbers' frames: one sample's memory seen from one segment, redrawn per segment.

`rmt_lib.display.scrubbers` shows these frames beside the segment's text; this module only draws.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from rmt_lib.plots.attention import outline_columns
from rmt_lib.plots.memory import check_segments, plot_memory_change
from rmt_lib.plots.style import (ATTENTION_CMAP, CURRENT_COLOUR, FACT_COLOUR, OTHER_COLOUR, QUESTION_COLOUR,
                                 new_figure)

# The smallest font in a frame. A frame is saved at 72 dpi and shown about life size in the page, so a point
# is about a pixel there: under 8 the token labels could not be read.
MIN_FONT_PT = 8


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
        d = np.asarray(distance, dtype=np.float64)  # (S+1, S+1), index 0 = the initial memory
        c = np.asarray(change, dtype=np.float64).ravel()  # (S,)
        if d.ndim != 2 or d.shape != (len(c) + 1, len(c) + 1):
            raise ValueError(f"{len(c)} memory changes need a ({len(c) + 1}, {len(c) + 1}) distance matrix; got {d.shape}")
        self.n_segments = S = len(c)
        check_segments(list(fact_segments), question_segment, S)
        self.distance, self.attention = d, dict(attention or {})
        check_segments(list(self.attention), None, S)
        n_axes = 3 if self.attention else 2
        self.figure, grid = new_figure(9.0 * scale, 2.1 * n_axes * scale, nrows=n_axes)
        axes = grid[:, 0]
        colours = [OTHER_COLOUR] * (S + 1)
        for s in fact_segments:
            colours[s + 1] = FACT_COLOUR
        if question_segment is not None:
            colours[question_segment + 1] = QUESTION_COLOUR
        # The row is drawn on the segment axis of the change plot below: the memory after segment s sits
        # at x = s, the initial memory at x = -1.
        self._row = axes[0]
        self._row_bars = self._row.bar(np.arange(-1, S), d[0], color=colours, width=0.85 if S < 100 else 1.0)
        self._row_line = self._row.axvline(0, color=CURRENT_COLOUR, linewidth=1.5)
        self._row.set_xlim(-1.5, S - 0.5)
        self._row.set_ylim(0, float(d.max()) or 1.0)
        self._row.set_ylabel("L2 distance")
        self._row.set_xlabel("memory state after segment (-1 = initial memory)", fontsize=MIN_FONT_PT)
        plot_memory_change(c, fact_segments=fact_segments, question_segment=question_segment, current=0, ax=axes[1])
        self._current = axes[1].patches[S]  # the outline drawn for `current`
        axes[1].set_ylim(0, float(c.max()) * 1.05 or 1.0)
        axes[1].set_xlim(-1.5, S - 0.5)
        axes[1].set_ylabel("memory change")
        self._change = c
        self._map_axes = axes[2] if self.attention else None
        if self._map_axes is not None:
            weights = next(iter(self.attention.values()))[0]  # (M, L)
            self._image = self._map_axes.imshow(np.zeros_like(np.asarray(weights, float)), cmap=ATTENTION_CMAP,
                                                vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            self._map_axes.set_ylabel("write memory")
            tokens = next(iter(self.attention.values()))[1]
            self._map_axes.set_xticks(range(np.shape(weights)[1]), list(tokens), rotation=90, fontsize=MIN_FONT_PT)
            self._map_axes.set_title("write-memory attention", fontsize=9)  # reserves the title's room
        self._row.set_title("distance from the memory after segment 0 to every memory state", fontsize=9)
        # Lay out once, with real token labels in place, then freeze: frames only move artists.
        self.figure.draw_without_rendering()
        self.figure.set_layout_engine("none")

    def draw(self, segment: int) -> Figure:
        """Show `segment` and return the (same) figure."""
        check_segments([segment], None, self.n_segments)
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
        w = np.asarray(weights, dtype=np.float64)  # (M, L)
        self._image.set_data(w)
        self._image.set_clim(0.0, float(w.max()) or 1.0)
        fact = np.asarray(mask, dtype=bool)  # (L,)
        ax.set_xticklabels(list(tokens))
        for label, f in zip(ax.get_xticklabels(), fact):
            label.set_color(FACT_COLOUR if f else OTHER_COLOUR)
        outline_columns(ax, fact, w.shape[0])
        ax.set_title(f"write-memory attention in segment {segment}", fontsize=9)
