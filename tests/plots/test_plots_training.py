"""rmt_lib.plots.training: the training log through the curriculum, and its layout when the log is Missing
(so a chapter's text output is the same with or without it)."""
from __future__ import annotations

import matplotlib
import numpy as np

from rmt_lib import plots
from rmt_lib.paths import Missing
from rmt_lib.plots.training import _rolling_mean
from rmt_lib.train.log import StageLog, TrainingLog


def _stage(k: int, n_segments: int, steps: int, finished: bool = True) -> StageLog:
    s = np.arange(1, steps + 1)
    return StageLog(stage=k, n_segments=n_segments, steps=s, loss=np.linspace(2.0, 0.5, steps),
                    accuracy=np.linspace(0.2, 0.9, steps), val_steps=s[9::10], val_accuracy=np.linspace(0.3, 0.95, len(s[9::10])),
                    best_val_accuracy=0.95, seconds=60.0 * (k + 1), finished=finished)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_training_log_plot_has_loss_accuracy_and_time_panels():
    log = TrainingLog((_stage(0, 1, 40), _stage(1, 2, 30, finished=False)), "runs/x/metrics.jsonl")
    fig = plots.plot_training_log(log, advance_accuracy=0.98)
    assert isinstance(fig, plots.NotebookFigure) and len(fig.axes) == 3
    texts = _texts(fig)
    assert "1 seg" in texts and "2 seg" in texts
    assert any("(unfinished)" in t for t in texts) and any("stage ends early at 0.98" in t for t in texts)
    loss_ax = fig.axes[0]
    assert loss_ax.get_xlim() == (0, 70)  # stages one after the other
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_training_log_plot_of_a_missing_log_keeps_the_layout():
    fig = plots.plot_training_log(Missing("the shipped model's training log", "data/model/metrics.jsonl", "train"))
    assert len(fig.axes) == 3 and any("is not there yet" in t for t in _texts(fig))


def test_rolling_mean_is_a_trailing_mean():
    np.testing.assert_allclose(_rolling_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    # steps without an answer loss (a streamed stage's pieces without the question) are left out
    np.testing.assert_allclose(_rolling_mean(np.array([1.0, np.nan, 5.0, np.nan]), 2), [1.0, 1.0, 5.0, 5.0])
    assert np.isnan(_rolling_mean(np.array([np.nan, 2.0]), 1)[0])
    assert len(_rolling_mean(np.array([]), 3)) == 0
