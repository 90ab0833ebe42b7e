"""The look every plot shares: colours, the one figure factory, the notebook figure, saving.

Every plot in `rmt_lib.plots` makes its figure with `new_figure`, so all of them are `NotebookFigure`s
with a constrained layout and none touches pyplot's global state (no current figure, no `plt.show()`).
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# The roles of segments and tokens, the same in every figure (and, via FACT_HIGHLIGHT, the scrubbers' text).
FACT_COLOUR = "#d62728"  # red: facts
QUESTION_COLOUR = "#111111"  # black: the question
OTHER_COLOUR = "#7f7f7f"  # grey: distractor segments
FIRST_COLOUR = "#1f77b4"  # blue: the first segment (its change is measured from the initial memory)
CURRENT_COLOUR = "#1f77b4"  # blue: the segment a scrubber frame is showing
DISTANCE_CMAP = "RdBu"  # low (similar) = red, high (distant) = blue, as in the paper
ATTENTION_CMAP = "viridis"  # 0 to the map's maximum

# Right and wrong answers.
RIGHT_COLOUR = "#1b9e77"
WRONG_COLOUR = "#d95f02"

# The RMT's input layout and its training/accuracy curves.
READ_COLOUR = FIRST_COLOUR  # read memory
WRITE_COLOUR = "#ff7f0e"  # write memory
TOKEN_COLOUR = "#d9d9d9"  # ordinary segment tokens
CURVE_COLOURS = {"RMT": FIRST_COLOUR, "no-memory baseline": WRITE_COLOUR, "RMT, real bAbI stories": "#2ca02c"}
PAPER_COLOURS = {"RMT": "#9467bd", "ARMT": "#8c564b"}  # the paper's published curves, quoted
OURS_COLOUR, BABI_COLOUR = FIRST_COLOUR, OTHER_COLOUR  # our generator's statistics beside bAbI's

# What it costs.
RMT_COLOUR = "#1f77b4"  # blue: the streamed RMT
FULL_COLOUR = "#d62728"  # red: the same backbone attending over the whole input
REFERENCE_COLOUR = "#7f7f7f"  # grey: slopes, caps and targets

NOTE_COLOUR = "#555555"  # the note in a panel whose data is absent


class NotebookFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter without pyplot.

    IPython renders a bare `Figure` as text unless pyplot's inline backend has been started; this
    subclass carries its own PNG representation, so a cell whose value is a figure shows it exactly
    once, whatever the notebook imported. Everything else is a plain Figure.
    """

    repr_dpi = 100

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.repr_dpi, bbox_inches="tight", metadata={"Software": None})
        return buf.getvalue()


def new_figure(width: float, height: float, *, nrows: int = 1, ncols: int = 1,
               **subplot_kw) -> tuple[NotebookFigure, np.ndarray]:
    """A `NotebookFigure` of `width` x `height` inches, constrained layout, and its (nrows, ncols) axes.

    The axes array is never squeezed, so callers index it the same way whatever the grid;
    `subplot_kw` goes to `Figure.subplots` (e.g. ``height_ratios``).
    """
    fig = NotebookFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)  # (nrows, ncols)
    return fig, axes


def panel_note(ax: Axes, text: str) -> None:
    """A panel whose data is absent: the note in its middle, no ticks (the figure keeps its layout)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, color=NOTE_COLOUR,
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig: Figure, stem, formats: Sequence[str] = ("png", "svg"), *, dpi: int = 150) -> list:
    """Save `fig` as STEM.png, STEM.svg, ... each written to a temporary file and renamed into place.

    Reproducible bytes: no creation date in the SVG/PDF metadata, a fixed SVG hash salt.
    """
    from rmt_lib.jsonio import atomic_path

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
