"""rmt_lib.plots.memory and .segment_frames: distance matrices and memory change, of one sample or many,
in the paper's colours, with every fact marked; bad input refused."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from rmt_lib import plots, probes
from rmt_lib.plots import SegmentFrames

from .conftest import FACTS, QUESTION, S, tick_colours


def test_distance_matrix_colours_marks_and_colourbar(trajectory):
    d, _ = trajectory
    fig = plots.plot_distance_matrix(d, fact_segments=FACTS, question_segment=QUESTION)
    assert isinstance(fig, Figure)
    ax, cax = fig.axes
    image = ax.images[0]
    assert image.get_cmap().name == "RdBu"
    low, high = image.cmap(image.norm(0.0)), image.cmap(image.norm(d.max()))
    assert low[0] > low[2], "small distances must be red"
    assert high[2] > high[0], "large distances must be blue"
    assert image.norm.vmin == 0.0 and image.norm.vmax == pytest.approx(d.max())
    assert "distance" in cax.get_ylabel()
    for axis in (ax.xaxis, ax.yaxis):  # marked on both axes, in colour
        labels = tick_colours(axis)
        assert labels["F1 (2)"] == plots.FACT_COLOUR and labels["F2 (7)"] == plots.FACT_COLOUR
        assert labels["Q (11)"] == plots.QUESTION_COLOUR
        assert "init" in labels
    np.testing.assert_array_equal(image.get_array(), d)


def test_distance_matrix_fact_in_question_segment_and_shared_segment(trajectory):
    d, _ = trajectory
    fig = plots.plot_distance_matrix(d, fact_segments=(4, 4, 11), question_segment=11)
    labels = tick_colours(fig.axes[0].xaxis)
    assert "F1,F2 (4)" in labels and "F3+Q (11)" in labels


def test_distance_matrix_rejects_bad_input(trajectory):
    d, _ = trajectory
    with pytest.raises(ValueError, match="square"):
        plots.plot_distance_matrix(d[:3])
    with pytest.raises(ValueError, match="outside"):
        plots.plot_distance_matrix(d, fact_segments=(S,))


def test_memory_change_bars_coloured_by_role(trajectory):
    _, change = trajectory
    fig = plots.plot_memory_change(change, fact_segments=FACTS, question_segment=QUESTION, current=3)
    bars = fig.axes[0].patches[:S]
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars]
    assert colours[2] == colours[7] == plots.FACT_COLOUR
    assert colours[11] == plots.QUESTION_COLOUR and colours[0] == plots.OTHER_COLOUR
    np.testing.assert_allclose([b.get_height() for b in bars], change)


def test_change_distributions_one_histogram_per_group(trajectory):
    _, change = trajectory
    is_fact = np.isin(np.arange(S), FACTS)
    fig = plots.plot_change_distributions(change[is_fact], change[~is_fact], question_values=change[[QUESTION]],
                                          first_values=change[:1])
    assert isinstance(fig, Figure)
    names = [t.get_text().split(" (")[0] for t in fig.axes[0].get_legend().get_texts()]
    assert names == ["distractor segments", "fact segments", "question segments", "first segments"]
    with pytest.raises(ValueError):
        plots.plot_change_distributions([], [1.0])


# --- many samples ----------------------------------------------------------------------------------


def _entries(n=5, S=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        facts = sorted(rng.choice(np.arange(1, S - 1), size=2, replace=False).tolist())
        steps = rng.normal(0, 0.1, size=(S + 1, 3))
        steps[[f + 1 for f in facts]] += 3.0  # the memory jumps at the facts
        states = np.cumsum(steps, axis=0)
        out.append({"n_segments": S, "memory_change": probes.memory_change(states),
                    "distance_matrix": probes.distance_matrix(states), "fact_segments": facts,
                    "question_segment": S - 1, "correct": i % 2 == 0})
    return out


def test_change_raster_has_one_row_per_sample_and_marks_every_fact():
    entries = _entries(n=5, S=8)
    fig = plots.plot_change_raster(entries)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (5, 8)
    facts, questions = ax.collections[:2]
    assert len(facts.get_offsets()) == 10 and len(questions.get_offsets()) == 5
    # rows are sorted by the first fact: the marked first facts never decrease down the image
    first = {}
    for x, y in facts.get_offsets():
        first[y] = min(first.get(y, x), x)
    assert [first[y] for y in sorted(first)] == sorted(first.values())
    fig.canvas.draw()  # lays out without error


def test_change_raster_refuses_mixed_lengths_and_nothing():
    with pytest.raises(ValueError, match="same number of segments"):
        plots.plot_change_raster(_entries(S=8)[:2] + _entries(S=9)[:1])
    with pytest.raises(ValueError, match="no probe entries"):
        plots.plot_change_raster([])


def test_distance_gallery_shows_the_first_n_in_order():
    entries = _entries(n=5)
    fig = plots.plot_distance_gallery(entries, n=4, ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4 and [ax.get_title().split(":")[0] for ax in shown] == [f"sample {k}" for k in range(4)]
    assert [int(t) for t in shown[0].get_xticks()] == sorted(s + 1 for s in entries[0]["fact_segments"])
    np.testing.assert_array_equal(shown[1].images[0].get_array(), entries[1]["distance_matrix"])
    with pytest.raises(ValueError, match="n must be"):
        plots.plot_distance_gallery(entries, n=0)


# --- the scrubbers' frames -------------------------------------------------------------------------


def test_segment_frames_redraw_one_figure_per_segment(trajectory):
    d, change = trajectory
    plain = SegmentFrames(d, change, fact_segments=FACTS, question_segment=QUESTION)
    fig = plain.draw(3)
    assert len(fig.axes) == 2 and plain.draw(4) is fig  # the same figure, redrawn
    row, bars = fig.axes
    np.testing.assert_allclose([b.get_height() for b in row.patches], d[4 + 1])  # the memory after segment 4
    assert "segment 4" in row.get_title()
    assert bars.patches[S].get_x() == pytest.approx(3.5)  # the outline moved to segment 4

    attention = {2: (np.ones((2, 5)), list("abcde"), [0, 1, 1, 0, 0])}
    frames = SegmentFrames(d, change, fact_segments=FACTS, attention=attention)
    map_ax = frames.draw(2).axes[2]
    assert map_ax.images and len(map_ax.patches) == 1  # the fact's two tokens framed once
    assert "no attention map" in frames.draw(5).axes[2].get_title()
    with pytest.raises(ValueError):
        plain.draw(S)
    with pytest.raises(ValueError, match="distance matrix"):
        SegmentFrames(d[:-1, :-1], change)


def test_drift_plot_shows_every_sample_and_the_threshold():
    records = [dict(drift=0.5, jump=2.0, correct=True), dict(drift=3.0, jump=1.0, correct=False),
               dict(drift=1.0, jump=4.0, correct=True)]
    fig = plots.plot_drift(records, threshold=0.5)
    scatter, hist = fig.axes
    assert sum(len(c.get_offsets()) for c in scatter.collections) == 3
    assert any(line.get_xdata()[0] == 0.5 for line in hist.get_lines())  # the threshold line
    with pytest.raises(ValueError, match="no drift records"):
        plots.plot_drift([])
