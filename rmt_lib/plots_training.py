"""Figures for the book's chapters 2-5 (data, model, training, evaluation): data in, Figure out.

Like `rmt_lib.plots` (whose helpers and colours this module reuses), every function returns a new
`NotebookFigure`: it shows itself exactly once in Jupyter, never touches pyplot's global state, calls no
model and reads no file. Inputs are the small tables of `rmt_lib.results`, or plain numbers.
A result that is not there yet (a `rmt_lib.results.Missing`) is drawn as a note inside its panel, so a
figure keeps its layout whether or not every artefact exists.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from rmt_lib.plots import FACT_COLOUR, FIRST_COLOUR, OTHER_COLOUR, PAPER_LENGTH, QUESTION_COLOUR, _new_figure
from rmt_lib.results import AccuracyCurve, GrammarComparison, GrammarStats, Missing, TrainingLog

READ_COLOUR = FIRST_COLOUR  # read memory
WRITE_COLOUR = "#ff7f0e"  # write memory
TOKEN_COLOUR = "#d9d9d9"  # ordinary segment tokens
CURVE_COLOURS = {"RMT": FIRST_COLOUR, "no-memory baseline": WRITE_COLOUR}
OURS_COLOUR, BABI_COLOUR = FIRST_COLOUR, OTHER_COLOUR


def _note(ax: Axes, text: str) -> None:
    """A panel whose data is absent: the note in its middle, no ticks."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, color="#555555",
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (shorter at the start), same length as `values`."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


# ----------------------------------------------------------------------------------------------
# Chapter 2: data
# ----------------------------------------------------------------------------------------------


def plot_fact_positions(counts: Sequence[int] | np.ndarray, *, n_samples: int | None = None,
                        title: str | None = None) -> Figure:
    """Facts per segment over many samples of one length (`rmt_lib.results.fact_segment_counts`), with
    the count a uniform spread would give."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"counts must be one count per segment; got shape {c.shape}")
    S = len(c)
    fig, axes = _new_figure(max(6.0, min(11.0, 0.12 * S + 4.0)), 2.8)
    ax = axes[0, 0]
    ax.bar(np.arange(S), c, color=FACT_COLOUR, width=0.85 if S < 100 else 1.0, label="facts in the segment")
    ax.axhline(c.sum() / S, color=QUESTION_COLOUR, linestyle="--", linewidth=1, label="uniform spread")
    ax.set_xlim(-0.6, S - 0.4)
    ax.set_xlabel("segment (the question ends the last one)")
    ax.set_ylabel("facts")
    ax.set_ylim(0, max(float(c.max()), 1.0) * 1.3)
    ax.legend(fontsize=8, frameon=False, loc="upper right", ncol=2)
    samples = f" in {n_samples:,} samples" if n_samples is not None else ""
    ax.set_title(title or f"Where the facts lie: {int(c.sum()):,} facts{samples} of {S} segments", fontsize=10,
                 loc="left")
    return fig


def plot_grammar_comparison(comparison: GrammarComparison) -> Figure:
    """Our generator's QA1 statistics beside real bAbI's, one panel per statistic (shares in %).

    Where the bAbI files are absent, only our bars are drawn and each panel says so; the figure's layout
    is the same either way.
    """
    ours = comparison.ours.categories()
    theirs = comparison.theirs.categories() if isinstance(comparison.theirs, GrammarStats) else None
    fig, axes = _new_figure(11.0, 3.4, ncols=len(ours))
    for ax, (cat, values) in zip(axes[0], ours.items()):
        keys = list(values)
        x = np.arange(len(keys))
        width = 0.4
        ax.bar(x - width / 2, [100 * values[k] for k in keys], width, color=OURS_COLOUR,
               label=f"ours (n={comparison.ours.n_questions:,})")
        if theirs is not None:
            ax.bar(x + width / 2, [100 * theirs[cat].get(k, 0.0) for k in keys], width, color=BABI_COLOUR,
                   label=f"bAbI (n={comparison.theirs.n_questions:,})")
        else:
            ax.text(0.5, 0.95, "bAbI files absent here", ha="center", va="top", fontsize=8, color="#555555",
                    transform=ax.transAxes)
        ax.set_xticks(x, keys, rotation=45 if max(len(k) for k in keys) > 3 else 0, ha="right" if
                      max(len(k) for k in keys) > 3 else "center", fontsize=8)
        ax.set_title(cat, fontsize=9)
        ax.set_ylim(0, 100 * max(max(values.values()), max(theirs[cat].values()) if theirs else 0) * 1.25)
    axes[0, 0].set_ylabel("share (%)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncol=2, fontsize=8, frameon=False)
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 3: model
# ----------------------------------------------------------------------------------------------


def plot_segment_layout(num_memory_tokens: int, segment_size: int, *, n_segments: int = 32,
                        fact_tokens: tuple[int, int] | None = (9, 16), question_tokens: int = 4,
                        answer: str | None = None) -> Figure:
    """The RMT's [read memory | segment | write memory] layout over consecutive backbone calls.

    Drawn: segments 0 and 1, an ellipsis, and the last segment (n_segments - 1). Each call's write-memory
    outputs become the next call's read memory (the memory state); `fact_tokens` ([start, end) within
    segment 1) are marked as a fact, the last `question_tokens` tokens of the last segment as the question,
    whose last token feeds the answer head.
    """
    M, L = int(num_memory_tokens), int(segment_size)
    if M < 1 or L < 1:
        raise ValueError(f"the layout needs num_memory_tokens >= 1 and segment_size >= 1; got {M} and {L}")
    if n_segments < 3:
        raise ValueError(f"the drawing shows segments 0, 1 and the last: n_segments must be >= 3, got {n_segments}")
    if fact_tokens is not None and not 0 <= fact_tokens[0] < fact_tokens[1] <= L:
        raise ValueError(f"fact_tokens {fact_tokens} must lie within the segment's {L} tokens")
    P = 2 * M + L
    gap, dots = 0.35 * P, 0.45 * P
    starts = [0.0, P + gap, 2 * (P + gap) + dots]
    labels = ["segment 0", "segment 1", f"segment {n_segments - 1}"]
    fig, axes = _new_figure(11.0, 3.6)
    ax = axes[0, 0]
    y, h = 0.0, 1.0

    def cells(x0: float, n: int, colour: str, edge: str = "white") -> None:
        for i in range(n):
            ax.add_patch(Rectangle((x0 + i, y), 1, h, facecolor=colour, edgecolor=edge, linewidth=0.4))

    for k, (x0, label) in enumerate(zip(starts, labels)):
        cells(x0, M, READ_COLOUR)
        cells(x0 + M, L, TOKEN_COLOUR)
        if k == 1 and fact_tokens is not None:
            cells(x0 + M + fact_tokens[0], fact_tokens[1] - fact_tokens[0], FACT_COLOUR)
            ax.text(x0 + M + (fact_tokens[0] + fact_tokens[1]) / 2, y - 0.3, "a fact", ha="center", va="top",
                    fontsize=8, color=FACT_COLOUR, fontweight="bold")
        if k == 2 and question_tokens:
            cells(x0 + M + L - question_tokens, question_tokens, QUESTION_COLOUR)
            ax.text(x0 + M + L, y - 0.3, "question", ha="right", va="top", fontsize=8, color=QUESTION_COLOUR,
                    fontweight="bold")
        cells(x0 + M + L, M, WRITE_COLOUR)
        ax.text(x0, y - 0.3, label, ha="left", va="top", fontsize=8)
        ax.text(x0 + M / 2, y + h + 0.12, "read", ha="center", va="bottom", fontsize=7, color=READ_COLOUR)
        ax.text(x0 + M + L / 2, y + h + 0.12, f"{L} segment tokens", ha="center", va="bottom", fontsize=7)
        ax.text(x0 + M + L + M / 2, y + h + 0.12, "write", ha="center", va="bottom", fontsize=7, color=WRITE_COLOUR)
    ax.text(starts[1] + P + gap / 2 + dots / 2, y + h / 2, "…", ha="center", va="center", fontsize=18)
    # Memory flow: the write outputs of one call are the read inputs of the next.
    flows = [(starts[0] + P - M / 2, starts[1] + M / 2, "memory state after segment 0"),
             (starts[1] + P - M / 2, starts[2] + M / 2, f"memory state after segment {n_segments - 2}")]
    for x_from, x_to, text in flows:
        ax.add_patch(FancyArrowPatch((x_from, y + h + 0.7), (x_to, y + h + 0.7), connectionstyle="arc3,rad=-0.25",
                                     arrowstyle="-|>", mutation_scale=12, color=WRITE_COLOUR, linewidth=1.4))
        ax.text((x_from + x_to) / 2, y + h + 1.75, text, ha="center", va="bottom", fontsize=8, color=WRITE_COLOUR)
    ax.add_patch(FancyArrowPatch((starts[0] - 6, y + h / 2), (starts[0], y + h / 2), arrowstyle="-|>",
                                 mutation_scale=10, color=READ_COLOUR))
    ax.text(starts[0] - 6.5, y + h / 2, "initial\nmemory", ha="right", va="center", fontsize=8, color=READ_COLOUR)
    x_answer = starts[2] + M + L - 0.5
    ax.add_patch(FancyArrowPatch((x_answer, y - 0.9), (x_answer, y - 1.8), arrowstyle="-|>", mutation_scale=10,
                                 color=QUESTION_COLOUR))
    answer_text = "answer head" + (f": {answer!r}" if answer else "")
    ax.text(x_answer, y - 1.9, answer_text, ha="center", va="top", fontsize=8, color=QUESTION_COLOUR,
            fontweight="bold")
    ax.set_xlim(-16, starts[2] + P + 2)
    ax.set_ylim(-2.8, y + h + 2.6)
    ax.set_aspect("auto")
    ax.set_axis_off()
    ax.set_title(f"[read memory | segment | write memory]: each backbone call reads M + L + M = {M} + {L} + {M} "
                 f"= {P} positions", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# Chapter 4: training
# ----------------------------------------------------------------------------------------------


def plot_training_log(log: TrainingLog | Missing, *, title: str | None = None,
                      advance_accuracy: float | None = None, window: int = 25) -> Figure:
    """Loss and accuracy through the curriculum, stage after stage, and the wall time of each stage.

    Top: the answer loss of every training batch (faint) and its trailing mean over `window` batches.
    Middle: validation accuracy at each check (dots) and the training accuracy's trailing mean.
    Bottom: wall time per stage. Stages are bands labelled with their number of segments; a stage the
    log does not close (a run still going) is hatched. A `Missing` log gives the same panels with a note.
    """
    fig, axes = _new_figure(10.0, 7.6, nrows=3, height_ratios=[1.0, 1.0, 0.75])
    ax_loss, ax_acc, ax_time = axes[:, 0]
    if isinstance(log, Missing):
        for ax in axes[:, 0]:
            _note(ax, textwrap.fill(f"{log.what} ({log.path}) is not there yet", 60))
        fig.suptitle(title or "Training through the curriculum", fontsize=11)
        return fig
    if not log.stages:
        raise ValueError("the training log has no stages")
    offset = 0
    colours = [FIRST_COLOUR, WRITE_COLOUR]
    for k, st in enumerate(log.stages):
        x = offset + st.steps
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
    minutes = np.array([st.seconds / 60 for st in log.stages])
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


# ----------------------------------------------------------------------------------------------
# Chapter 5: evaluation
# ----------------------------------------------------------------------------------------------


def plot_accuracy_vs_length(panels: Mapping[str, Sequence[AccuracyCurve | Missing]], *,
                            trained_length: int | None = None, chance: float | None = None) -> Figure:
    """Accuracy against input length (segments, log scale) with 95% intervals, one panel per source.

    `panels` maps a panel title to its curves (e.g. RMT and baseline); a `Missing` curve is named in the
    panel instead of drawn. The paper's names for our lengths ("16k" = 32 segments) label the axis.
    """
    if not panels:
        raise ValueError("no panel to draw")
    fig, axes = _new_figure(5.2 * len(panels), 4.0, ncols=len(panels))
    for ax, (name, curves) in zip(axes[0], panels.items()):
        drawn = [c for c in curves if isinstance(c, AccuracyCurve)]
        missing = [c for c in curves if isinstance(c, Missing)]
        if not drawn:
            _note(ax, "\n\n".join(textwrap.fill(f"{m.what} ({m.path}) is not there yet", 48) for m in missing)
                  or "nothing to show")
            ax.set_title(name, fontsize=10)
            continue
        lengths = sorted({n for c in drawn for n in c.lengths})
        for i, c in enumerate(drawn):
            x = np.array(c.lengths, dtype=np.float64)
            acc = np.array([r.accuracy for r in c.rows])
            lo = np.array([r.low for r in c.rows])
            hi = np.array([r.high for r in c.rows])
            colour = CURVE_COLOURS.get(c.label, f"C{i + 2}")
            ax.errorbar(x, acc, yerr=[acc - lo, hi - acc], fmt="o-", color=colour, capsize=3, markersize=4,
                        linewidth=1.3, label=c.label)
        if trained_length is not None:
            ax.axvline(trained_length, color="#999999", linestyle=":", linewidth=1)
            ax.text(trained_length, 1.0, "trained up to here ", rotation=90, fontsize=7, color="#777777",
                    va="top", ha="right")
        if chance is not None:
            ax.axhline(chance, color="#999999", linestyle="--", linewidth=1)
            ax.text(lengths[0], chance, "chance", fontsize=7, color="#777777", va="bottom")
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [f"{n:,}" + (f"\n({PAPER_LENGTH[n]})" if n in PAPER_LENGTH else "") for n in lengths],
                      fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("input length (segments; the paper's name)")
        ax.set_ylim(0, 1.02)
        if missing:
            ax.text(0.98, 0.98, "\n".join(textwrap.fill(f"{m.what}: not there yet", 40) for m in missing),
                    transform=ax.transAxes, fontsize=7, color="#777777", ha="right", va="top")
        ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 0.06))
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel("accuracy (95% Wilson interval)")
    return fig
