"""Training through the curriculum: loss, accuracy and wall time of each stage, from a training log.

A log that is not there yet (a `Missing`) is drawn as a note inside each panel, so the figure keeps its
layout whether or not the run exists.
"""
from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from rmt_lib.paths import Missing
from rmt_lib.plots.style import FACT_COLOUR, FIRST_COLOUR, WRITE_COLOUR, new_figure, panel_note
from rmt_lib.train.log import TrainingLog


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (shorter at the start), same length as `values`. NaN values
    (a streamed stage's steps without the question have no answer loss) are left out of the means."""
    v = np.asarray(values, dtype=np.float64)  # (n,)
    if len(v) == 0:
        return v
    known = ~np.isnan(v)
    c = np.concatenate([[0.0], np.cumsum(np.where(known, v, 0.0))])  # (n + 1,): c[i] = sum of the first i values
    k = np.concatenate([[0], np.cumsum(known)])  # (n + 1,): how many of them are known
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c[idx] - c[lo]) / (k[idx] - k[lo])  # NaN where the window holds no known value


def plot_training_log(log: TrainingLog | Missing, *, title: str | None = None,
                      advance_accuracy: float | None = None, window: int = 25) -> Figure:
    """Loss and accuracy through the curriculum, stage after stage, and the wall time of each stage.

    Top: the answer loss of every training batch (faint) and its trailing mean over `window` batches.
    Middle: validation accuracy at each check (dots) and the training accuracy's trailing mean.
    Bottom: wall time per stage. Stages are bands labelled with their number of segments; a stage the
    log does not close (a run still going) is hatched. A `Missing` log gives the same panels with a note.
    """
    fig, axes = new_figure(10.0, 7.6, nrows=3, height_ratios=[1.0, 1.0, 0.75])
    ax_loss, ax_acc, ax_time = axes[:, 0]
    if isinstance(log, Missing):
        for ax in axes[:, 0]:
            panel_note(ax, textwrap.fill(f"{log.what} ({log.path}) is not there yet", 60))
        fig.suptitle(title or "Training through the curriculum", fontsize=11)
        return fig
    if not log.stages:
        raise ValueError("the training log has no stages")
    offset = 0
    colours = [FIRST_COLOUR, WRITE_COLOUR]  # alternating, so neighbouring stages stand apart
    for k, st in enumerate(log.stages):
        x = offset + st.steps  # the stages one after the other on one step axis
        end = offset + max(st.n_steps, 1)
        for ax in (ax_loss, ax_acc):
            ax.axvspan(offset, end, facecolor="#f2f2f2" if k % 2 == 0 else "white", zorder=0,
                       hatch=None if st.finished else "//", edgecolor="#dddddd")
        c = colours[k % 2]
        ax_loss.plot(x, st.loss, ".", markersize=2, color=c, alpha=0.25)
        ax_loss.plot(x, _rolling_mean(st.loss, window), color=c, linewidth=1.4)
        ax_acc.plot(x, _rolling_mean(st.accuracy, window), color=c, linewidth=1.0, alpha=0.6)
        ax_acc.plot(offset + st.val_steps, st.val_accuracy, "o-", color=c, markersize=3.5, linewidth=1.2)
        ax_loss.text((offset + end) / 2, 1.0, f"{st.n_segments} seg", transform=ax_loss.get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=8)
        offset = end
    ax_loss.set_ylabel("answer loss")
    ax_loss.set_ylim(bottom=0)
    ax_loss.set_xlim(0, offset)
    ax_acc.set_xlim(0, offset)
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlabel("training step (all stages, one after the other)")
    handles = [ax_acc.plot([], [], "o-", color="black", markersize=3.5)[0],
               ax_acc.plot([], [], color="black", alpha=0.6)[0]]
    names = ["validation (validation book)", f"training batches (mean of {window})"]
    if advance_accuracy is not None:
        handles.append(ax_acc.axhline(advance_accuracy, color=FACT_COLOUR, linestyle="--", linewidth=1))
        names.append(f"stage ends early at {advance_accuracy:.2f}")
    ax_acc.legend(handles, names, fontsize=7, frameon=False, loc="lower right")

    labels = [f"{st.stage + 1}: {st.n_segments} seg" for st in log.stages]
    minutes = np.array([st.seconds / 60 for st in log.stages])  # (n_stages,)
    y = np.arange(len(labels))
    bars = ax_time.barh(y, minutes, color=[colours[k % 2] for k in range(len(labels))])
    for bar, st, m in zip(bars, log.stages, minutes):
        if not st.finished:
            bar.set_hatch("//")
        ax_time.text(m, bar.get_y() + bar.get_height() / 2, f" {m:.1f} min" + ("" if st.finished else " (unfinished)"),
                     va="center", fontsize=8)
    ax_time.set_yticks(y, labels, fontsize=8)
    ax_time.invert_yaxis()
    ax_time.set_xlim(0, max(float(minutes.max()), 1e-3) * 1.3)
    ax_time.set_xlabel(f"wall time per stage (minutes; {log.total_seconds / 60:.1f} in all)")
    fig.suptitle(title or f"Training through the curriculum ({log.source})", fontsize=11)
    return fig
