"""rmt_lib.plots.style: one figure factory, figures that show themselves in Jupyter, reproducible saving."""
from __future__ import annotations

import importlib
import io
import pkgutil

import pytest

from rmt_lib import plots
from rmt_lib.plots.style import NotebookFigure, new_figure

from .conftest import FACTS


def test_new_figure_gives_a_notebook_figure_with_an_unsqueezed_grid():
    fig, axes = new_figure(4.0, 3.0)
    assert isinstance(fig, NotebookFigure) and axes.shape == (1, 1)
    assert fig.get_layout_engine() is not None and tuple(fig.get_size_inches()) == (4.0, 3.0)
    fig, axes = new_figure(6.0, 3.0, nrows=2, height_ratios=[2, 1])
    assert axes.shape == (2, 1) and len(fig.axes) == 2


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_figures_save_without_pyplot(trajectory, fmt):
    d, _ = trajectory
    buf = io.BytesIO()
    plots.plot_distance_matrix(d, fact_segments=FACTS).savefig(buf, format=fmt)
    assert buf.getvalue()[:5] in (b"\x89PNG\r", b"<?xml")


def test_save_figure_is_atomic_and_reproducible(trajectory, tmp_path):
    d, _ = trajectory
    first = plots.save_figure(plots.plot_distance_matrix(d), tmp_path / "a" / "fig")
    second = plots.save_figure(plots.plot_distance_matrix(d), tmp_path / "b" / "fig")
    assert [p.name for p in first] == ["fig.png", "fig.svg"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["fig.png", "fig.svg"]  # no temporary files
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()


def test_figures_display_themselves_in_jupyter_without_pyplot(trajectory):
    from IPython.core.formatters import DisplayFormatter

    d, _ = trajectory
    fig = plots.plot_distance_matrix(d)
    data, _ = DisplayFormatter().format(fig)  # what a notebook cell returning `fig` would show
    assert data["image/png"][:4] == b"\x89PNG"
    assert data["text/plain"].startswith("<NotebookFigure size")
    assert plots.plot_distance_matrix(d)._repr_png_() == data["image/png"]  # same data, same bytes


def test_every_plot_of_every_module_is_exported_by_the_package():
    """`plots.X` keeps working for every plot, whichever module draws it."""
    for info in pkgutil.iter_modules(plots.__path__):
        module = importlib.import_module(f"rmt_lib.plots.{info.name}")
        drawn = {n for n in vars(module) if n.startswith("plot_") or n == "figure8_panels"}
        assert drawn <= set(plots.__all__), (info.name, drawn - set(plots.__all__))
    assert all(hasattr(plots, name) for name in plots.__all__)
