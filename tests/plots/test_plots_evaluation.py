"""rmt_lib.plots.evaluation: accuracy against length (Missing curves named, not dropped), right vs. wrong
answers, and estimates against their targets."""
from __future__ import annotations

import pytest

from rmt_lib import plots
from rmt_lib.evaluate.results import AccuracyCurve, LengthAccuracy
from rmt_lib.paths import Missing
from rmt_lib.probes import FailureReport, SampleOutcome, TargetCheck

MISSING = Missing("the committed evaluation", "data/results/evaluation.json", "python -m rmt_lib evaluate ...")


def _curve(label: str, lengths=(1, 2, 32, 256)) -> AccuracyCurve:
    rows = tuple(LengthAccuracy(n, 90 - i * 10, 100, (90 - i * 10) / 100, (85 - i * 10) / 100, (94 - i * 10) / 100)
                 for i, n in enumerate(lengths))
    return AccuracyCurve(label, rows, "test")


def test_accuracy_plot_draws_each_curve_with_intervals_and_the_paper_names():
    fig = plots.plot_accuracy_vs_length({"live": [_curve("RMT"), _curve("no-memory baseline", (1, 32))],
                                         "committed": [MISSING]}, trained_length=32, chance=1 / 6)
    live, committed = fig.axes
    assert [t.get_text() for t in live.get_legend().get_texts()] == ["RMT", "no-memory baseline"]
    labels = [t.get_text() for t in live.get_xticklabels()]
    assert "32\n(16k)" in labels and "256\n(128k)" in labels
    assert live.get_xscale() == "log" and live.get_ylim() == (0, 1.02)
    assert any("is not there yet" in t.get_text() for t in committed.texts)
    # A missing curve beside a drawn one is named in the panel, not silently dropped.
    fig = plots.plot_accuracy_vs_length({"live": [_curve("RMT"), MISSING]})
    assert any("not there yet" in t.get_text() for t in fig.axes[0].texts)


def test_accuracy_plot_needs_a_panel():
    with pytest.raises(ValueError, match="no panel"):
        plots.plot_accuracy_vs_length({})


def _report():
    outcomes = tuple(SampleOutcome(i, i % 3 != 0, "x", "x" if i % 3 else "y", "correct", (1, 2), 3, i % 2 == 0,
                                   0.8 + 0.01 * i) for i in range(12))
    return FailureReport(8, outcomes)


def test_failure_cases_plot_shows_both_groups_and_chance():
    fig = plots.plot_failure_cases(_report(), chance=1 / 6)
    left, right = fig.axes[:2]
    assert {t.get_text().split(" (")[0] for t in left.get_legend().get_texts()} == {"right answers", "wrong answers"}
    labels = [t.get_text() for t in right.get_xticklabels()]
    assert labels == ["facts detected\n(n=6)", "facts not detected\n(n=6)"]
    assert any("chance" in line.get_label() for line in right.lines)


def test_target_checks_one_panel_per_target_coloured_by_status():
    checks = [TargetCheck("a", 0.98, 0.975, 0.99, 0.97), TargetCheck("b", 0.96, 0.95, 0.97, 0.97),
              TargetCheck("c", 3.5, 3.4, 3.6, 3.0)]
    fig = plots.plot_target_checks(checks)
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == ["target ≥ 3", "target ≥ 0.97"]
    assert [t.get_text() for t in panels[1].get_yticklabels()] == ["a", "b"]
    with pytest.raises(ValueError):
        plots.plot_target_checks([])


def test_paper_comparison_draws_the_papers_published_points_beside_ours():
    from rmt_lib import paper

    fig = plots.plot_against_paper([_curve("RMT"), MISSING], trained_length=96)
    (ax,) = fig.axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["paper's RMT (BABILong Table 4)", "paper's ARMT (BABILong Table 4)"]
    rmt = ax.get_lines()[0]
    assert list(rmt.get_xdata()) == [32, 128, 256, 1024, 2048, 20480]  # "16k" ... "10M" at 512-token segments
    assert list(rmt.get_ydata()) == [v / 100 for v in paper.TABLE4_QA1["RMT"].values()]
    assert "2,048\n(1M)" in [t.get_text() for t in ax.get_xticklabels()]
    assert any("not there yet" in t.get_text() for t in ax.texts)


def test_execution_times_mark_failed_chapters():
    fig = plots.plot_execution_times({"budget": "ci", "chapters": [
        {"chapter": "intro.ipynb", "seconds": 3.0, "status": "ok"},
        {"chapter": "data.ipynb", "seconds": 9.0, "status": "failed"}]})
    bars = fig.axes[0].patches
    assert [b.get_width() for b in bars] == [3.0, 9.0] and bars[0].get_facecolor() != bars[1].get_facecolor()
