"""What the model reads: where the facts lie, how our QA1 grammar compares with bAbI's, and how an
input is cut into segments around the memory tokens.

Inputs are the data statistics (`fact_segment_counts`, a `GrammarComparison`) or plain numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from rmt_lib.data.stats import GrammarComparison, GrammarStats
from rmt_lib.plots.style import (BABI_COLOUR, FACT_COLOUR, NOTE_COLOUR, OURS_COLOUR, QUESTION_COLOUR, READ_COLOUR,
                                 TOKEN_COLOUR, WRITE_COLOUR, new_figure)


def plot_fact_positions(counts: Sequence[int] | np.ndarray, *, n_samples: int | None = None,
                        title: str | None = None) -> Figure:
    """Facts per segment over many samples of one length (`fact_segment_counts`), with the count a
    uniform spread would give."""
    c = np.asarray(counts, dtype=np.float64)  # (S,)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"counts must be one count per segment; got shape {c.shape}")
    S = len(c)
    fig, axes = new_figure(max(6.0, min(11.0, 0.12 * S + 4.0)), 2.8)
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
    fig, axes = new_figure(11.0, 3.4, ncols=len(ours))
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
            ax.text(0.5, 0.95, "bAbI files absent here", ha="center", va="top", fontsize=8, color=NOTE_COLOUR,
                    transform=ax.transAxes)
        long_keys = max(len(k) for k in keys) > 3  # long names (verbs) slanted, so they do not overprint
        ax.set_xticks(x, keys, rotation=45 if long_keys else 0, ha="right" if long_keys else "center", fontsize=8)
        ax.set_title(cat, fontsize=9)
        ax.set_ylim(0, 100 * max(max(values.values()), max(theirs[cat].values()) if theirs else 0) * 1.25)
    axes[0, 0].set_ylabel("share (%)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncol=2, fontsize=8, frameon=False)
    return fig


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
    P = 2 * M + L  # positions per backbone call, one cell each
    gap, dots = 0.35 * P, 0.45 * P
    starts = [0.0, P + gap, 2 * (P + gap) + dots]
    labels = ["segment 0", "segment 1", f"segment {n_segments - 1}"]
    fig, axes = new_figure(11.0, 3.6)
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
