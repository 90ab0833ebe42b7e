"""rmt_lib.plots_training: every function returns a NotebookFigure, leaves pyplot alone, and keeps its
layout when a result is Missing (so a chapter's text output is the same with or without it)."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (only to check that plots never touch pyplot's state)

from rmt_lib import plots_training as pt  # noqa: E402
from rmt_lib.plots import FACT_COLOUR, NotebookFigure  # noqa: E402
from rmt_lib.results import (AccuracyCurve, GrammarStats, LengthAccuracy, Missing, StageLog,  # noqa: E402
                             TrainingLog, grammar_comparison)

MISSING = Missing("the committed evaluation", "data/results/evaluation.json", "python -m rmt_lib evaluate ...")


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot function opened a pyplot figure (hidden global state)"


def _stage(k: int, n_segments: int, steps: int, finished: bool = True) -> StageLog:
    s = np.arange(1, steps + 1)
    return StageLog(stage=k, n_segments=n_segments, steps=s, loss=np.linspace(2.0, 0.5, steps),
                    accuracy=np.linspace(0.2, 0.9, steps), val_steps=s[9::10], val_accuracy=np.linspace(0.3, 0.95, len(s[9::10])),
                    best_val_accuracy=0.95, seconds=60.0 * (k + 1), finished=finished)


def _curve(label: str, lengths=(1, 2, 32, 256)) -> AccuracyCurve:
    rows = tuple(LengthAccuracy(n, 90 - i * 10, 100, (90 - i * 10) / 100, (85 - i * 10) / 100, (94 - i * 10) / 100)
                 for i, n in enumerate(lengths))
    return AccuracyCurve(label, rows, "test")


def _stats(name: str, tilt: float = 0.0) -> GrammarStats:
    return GrammarStats(name=name, n_questions=100, facts_per_question={k: 0.2 for k in (2, 4, 6, 8, 10)},
                        verbs={v: 0.2 for v in ("moved to", "went to", "went back to", "journeyed to", "travelled to")},
                        answers={loc: 1 / 6 for loc in ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")},
                        facts_back={"0": 0.4 + tilt, "1": 0.3, "2": 0.1, "3": 0.1, "4+": 0.1 - tilt})


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_training_log_plot_has_loss_accuracy_and_time_panels():
    log = TrainingLog((_stage(0, 1, 40), _stage(1, 2, 30, finished=False)), "runs/x/metrics.jsonl")
    fig = pt.plot_training_log(log, advance_accuracy=0.98)
    assert isinstance(fig, NotebookFigure) and len(fig.axes) == 3
    texts = _texts(fig)
    assert "1 seg" in texts and "2 seg" in texts
    assert any("(unfinished)" in t for t in texts) and any("stage ends early at 0.98" in t for t in texts)
    loss_ax = fig.axes[0]
    assert loss_ax.get_xlim() == (0, 70)  # stages one after the other
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_training_log_plot_of_a_missing_log_keeps_the_layout():
    fig = pt.plot_training_log(Missing("the shipped model's training log", "data/model/metrics.jsonl", "train"))
    assert len(fig.axes) == 3 and any("is not there yet" in t for t in _texts(fig))


def test_accuracy_plot_draws_each_curve_with_intervals_and_the_paper_names():
    fig = pt.plot_accuracy_vs_length({"live": [_curve("RMT"), _curve("no-memory baseline", (1, 32))],
                                      "committed": [MISSING]}, trained_length=32, chance=1 / 6)
    live, committed = fig.axes
    assert [t.get_text() for t in live.get_legend().get_texts()] == ["RMT", "no-memory baseline"]
    labels = [t.get_text() for t in live.get_xticklabels()]
    assert "32\n(16k)" in labels and "256\n(128k)" in labels
    assert live.get_xscale() == "log" and live.get_ylim() == (0, 1.02)
    assert any("is not there yet" in t.get_text() for t in committed.texts)
    # A missing curve beside a drawn one is named in the panel, not silently dropped.
    fig = pt.plot_accuracy_vs_length({"live": [_curve("RMT"), MISSING]})
    assert any("not there yet" in t.get_text() for t in fig.axes[0].texts)


def test_accuracy_plot_needs_a_panel():
    with pytest.raises(ValueError, match="no panel"):
        pt.plot_accuracy_vs_length({})


def test_segment_layout_draws_every_cell_and_the_memory_flow():
    M, L = 3, 10
    fig = pt.plot_segment_layout(M, L, n_segments=32, fact_tokens=(2, 5), question_tokens=2, answer="garden")
    ax = fig.axes[0]
    cells = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    # 3 calls x (M + L + M) cells, plus the fact and question cells drawn over them
    assert len(cells) == 3 * (2 * M + L) + 3 + 2
    assert sum(matplotlib.colors.to_hex(c.get_facecolor()) == FACT_COLOUR for c in cells) == 3
    texts = _texts(fig)
    assert "segment 31" in texts and "memory state after segment 30" in texts
    assert "answer head: 'garden'" in texts and any("= 16 positions" in t for t in texts)


@pytest.mark.parametrize("bad", [dict(num_memory_tokens=0, segment_size=8), dict(num_memory_tokens=2, segment_size=8, n_segments=2),
                                 dict(num_memory_tokens=2, segment_size=8, fact_tokens=(6, 12))])
def test_segment_layout_rejects_what_it_cannot_draw(bad):
    with pytest.raises(ValueError):
        pt.plot_segment_layout(**bad)


def test_fact_positions_bars_and_uniform_line():
    fig = pt.plot_fact_positions(np.array([3, 1, 2, 2]), n_samples=4)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [3, 1, 2, 2]
    assert ax.lines[0].get_ydata()[0] == 2.0
    assert "8 facts in 4 samples of 4 segments" in ax.get_title(loc="left")
    with pytest.raises(ValueError):
        pt.plot_fact_positions(np.zeros((2, 2)))


def test_grammar_plot_keeps_its_layout_with_or_without_babi():
    ours = _stats("ours")
    with_babi = pt.plot_grammar_comparison(grammar_comparison(ours, _stats("bAbI", 0.05)))
    without = pt.plot_grammar_comparison(grammar_comparison(ours, MISSING))
    assert len(with_babi.axes) == len(without.axes) == 4
    assert repr(with_babi) == repr(without)  # what nbval compares of a figure
    assert sum(len(ax.patches) for ax in with_babi.axes) == 2 * sum(len(ax.patches) for ax in without.axes)
    assert any("bAbI files absent" in t for t in _texts(without))


def test_rolling_mean_is_a_trailing_mean():
    np.testing.assert_allclose(pt._rolling_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    assert len(pt._rolling_mean(np.array([]), 3)) == 0
