"""How long the book took to execute: one bar per chapter, from the records `scripts/run_book.py` writes."""
from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from rmt_lib.plots.style import FIRST_COLOUR, WRONG_COLOUR, new_figure


def plot_execution_times(timings: Mapping) -> Figure:
    """Seconds per chapter (`_build/execution_times.json`: budget, chapters[] with chapter, seconds,
    status), failed chapters in red."""
    chapters = timings["chapters"]
    if not chapters:
        raise ValueError("no chapter timings to draw")
    names = [e["chapter"].removesuffix(".ipynb") for e in chapters]
    fig, axes = new_figure(7.0, 0.45 * len(names) + 1.2)
    ax = axes[0, 0]
    ax.barh(names, [e["seconds"] for e in chapters],
            color=[FIRST_COLOUR if e["status"] == "ok" else WRONG_COLOUR for e in chapters])
    ax.invert_yaxis()
    ax.set_xlabel("execution time (s)")
    ax.set_title(f"Chapter execution times, budget {timings['budget']!r}", fontsize=10)
    return fig
