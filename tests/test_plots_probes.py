"""rmt_lib.plots_probes: each plot draws what it is given, marks what it says, and refuses bad input."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from rmt_lib import analysis, plots_probes, probes
from rmt_lib.analysis import FailureReport, HeadComparison, SampleOutcome, TargetCheck
from rmt_lib.plots import FACT_COLOUR


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
    fig = plots_probes.plot_change_raster(entries)
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
        plots_probes.plot_change_raster(_entries(S=8)[:2] + _entries(S=9)[:1])
    with pytest.raises(ValueError, match="no probe entries"):
        plots_probes.plot_change_raster([])


def test_distance_gallery_shows_the_first_n_in_order():
    entries = _entries(n=5)
    fig = plots_probes.plot_distance_gallery(entries, n=4, ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4 and [ax.get_title().split(":")[0] for ax in shown] == [f"sample {k}" for k in range(4)]
    assert [int(t) for t in shown[0].get_xticks()] == sorted(s + 1 for s in entries[0]["fact_segments"])
    np.testing.assert_array_equal(shown[1].images[0].get_array(), entries[1]["distance_matrix"])
    with pytest.raises(ValueError, match="n must be"):
        plots_probes.plot_distance_gallery(entries, n=0)


def test_share_vs_baseline_draws_points_and_reference_lines():
    fig = plots_probes.plot_share_vs_baseline({"mean": ([0.1, 0.2], [0.5, 0.6])}, target_lift=3.0)
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 2
    assert any("target" in line.get_label() for line in ax.lines)
    with pytest.raises(ValueError, match="differ in length"):
        plots_probes.plot_share_vs_baseline({"bad": ([0.1], [0.5, 0.6])})


def test_share_histograms_sum_to_one_per_series():
    fig = plots_probes.plot_share_histograms({"a": [0.1, 0.2, 0.3], "b": [0.9]}, baseline=0.2)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(2.0)
    assert any("uniform" in line.get_label() for line in ax.lines)


def test_target_checks_one_panel_per_target_coloured_by_status():
    checks = [TargetCheck("a", 0.98, 0.975, 0.99, 0.97), TargetCheck("b", 0.96, 0.95, 0.97, 0.97),
              TargetCheck("c", 3.5, 3.4, 3.6, 3.0)]
    fig = plots_probes.plot_target_checks(checks)
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == ["target ≥ 3", "target ≥ 0.97"]
    assert [t.get_text() for t in panels[1].get_yticklabels()] == ["a", "b"]
    with pytest.raises(ValueError):
        plots_probes.plot_target_checks([])


def _report():
    outcomes = tuple(SampleOutcome(i, i % 3 != 0, "x", "x" if i % 3 else "y", "correct", (1, 2), 3, i % 2 == 0,
                                   0.8 + 0.01 * i) for i in range(12))
    return FailureReport(8, outcomes)


def test_failure_cases_plot_shows_both_groups_and_chance():
    fig = plots_probes.plot_failure_cases(_report(), chance=1 / 6)
    left, right = fig.axes[:2]
    assert {t.get_text().split(" (")[0] for t in left.get_legend().get_texts()} == {"right answers", "wrong answers"}
    labels = [t.get_text() for t in right.get_xticklabels()]
    assert labels == ["facts detected\n(n=6)", "facts not detected\n(n=6)"]
    assert any("chance" in line.get_label() for line in right.lines)


def test_heads_compared_outlines_the_chosen_heads_on_one_colour_scale():
    cmp = HeadComparison("write", {"32": np.array([[0.1, 0.9], [0.2, 0.3]]), "256": np.array([[0.5, 0.4], [0.2, 0.1]])},
                         {"32": (0, 1), "256": None}, {"32": 0.2, "256": 0.2})
    fig = plots_probes.plot_heads_compared(cmp)
    first, second = [ax for ax in fig.axes if ax.images]
    assert first.images[0].get_clim() == second.images[0].get_clim() == (0.0, 0.9)
    outlined = [p for p in first.patches if p.get_edgecolor()[:3] == pytest.approx((214 / 255, 39 / 255, 40 / 255))]
    assert len(outlined) == 1 and outlined[0].get_xy() == (0.5, -0.5)
    assert not second.patches
    assert FACT_COLOUR == "#d62728"


def test_plots_accept_what_analysis_returns():
    entries = _entries(n=4)
    for e in entries:
        e["write_attention"] = [{"share": np.full((2, 2), 0.6), "token_share": 0.2}]
    w = analysis.write_units(entries)
    fig = plots_probes.plot_share_vs_baseline({"mean over heads": (w["token_share"], w["share_mean"])}, target_lift=3)
    assert len(fig.axes[0].collections[0].get_offsets()) == 4
