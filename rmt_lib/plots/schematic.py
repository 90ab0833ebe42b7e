"""Pictures that explain rather than measure: the paper's input lengths beside ours, and a schematic of a
memory that holds still through distractor text and jumps at facts (drawn, not measured: the measured
memory is in the Figure 8 chapters)."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import animation
from matplotlib.figure import Figure

from rmt_lib.plots.style import FACT_COLOUR, FIRST_COLOUR, OTHER_COLOUR, QUESTION_COLOUR, new_figure


def plot_lengths_in_tokens(n_segments: Mapping[str, int], *, paper_segment_size: int, our_segment_size: int) -> Figure:
    """For each of the paper's named inputs ("16k": 32 segments, ...), its length in tokens at the paper's
    segment size and at ours, on a log axis: the same number of segments, fewer tokens per segment."""
    fig, axes = new_figure(7.5, 2.6)
    ax = axes[0, 0]
    names = list(n_segments)
    y = np.arange(len(names))  # (n_names,)
    for offset, size, colour, who in ((0.2, paper_segment_size, OTHER_COLOUR, "paper"),
                                      (-0.2, our_segment_size, FACT_COLOUR, "here")):
        tokens = [n_segments[n] * size for n in names]
        ax.barh(y + offset, tokens, height=0.38, color=colour, label=f"{who}: {size}-token segments")
        for yi, t in zip(y, tokens):
            ax.text(t * 1.15, yi + offset, f"{t:,} tokens", va="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(100, 2e6)
    ax.set_yticks(y, [f'"{n}" = {n_segments[n]} segments' for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("input length in tokens (log scale)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_title("Same number of segments, fewer tokens per segment", fontsize=10)
    return fig


def memory_schematic_html(n_segments: int, fact_segments: Sequence[int], *, interval_ms: int = 250) -> str:
    """A scrubbable animation (HTML, works offline): the segments read one by one, and a schematic memory
    distance that grows a little at each distractor segment and jumps at each fact segment."""
    question = n_segments - 1
    memory = np.cumsum([1.0 if s in fact_segments else 0.04 for s in range(n_segments)])  # schematic, not measured
    kind = ["fact" if s in fact_segments else "question" if s == question else "text" for s in range(n_segments)]
    colour = {"fact": FACT_COLOUR, "question": QUESTION_COLOUR, "text": "#c8ccd2"}
    fig, axes = new_figure(8.0, 2.4, nrows=2, height_ratios=[1, 1.4])
    fig.set_dpi(80)  # every frame is an image in the page: keep them small
    ax_seg, ax_mem = axes[0, 0], axes[1, 0]
    boxes = ax_seg.bar(np.arange(n_segments), np.ones(n_segments), width=0.9, color=[colour[k] for k in kind],
                       edgecolor="white")
    ax_seg.set_axis_off()
    ax_seg.set_xlim(-0.6, n_segments - 0.4)
    line, = ax_mem.plot([], [], color=FIRST_COLOUR, marker="o", markersize=3)
    ax_mem.set_xlim(-0.6, n_segments - 0.4)
    ax_mem.set_ylim(0, memory.max() * 1.1)
    ax_mem.set_xlabel("segment")
    ax_mem.set_ylabel("distance from the\nfirst memory state\n(schematic)", fontsize=7)
    reading = {"fact": "a fact", "question": "the question", "text": "distractor text"}

    def draw(k: int):
        for s, box in enumerate(boxes):
            box.set_alpha(1.0 if s == k else 0.55 if s < k else 0.2)
        line.set_data(np.arange(k + 1), memory[: k + 1])
        ax_seg.set_title(f"segment {k + 1} of {n_segments}: reading {reading[kind[k]]}", fontsize=10)
        return (*boxes, line)

    draw(0)
    scrubber = animation.FuncAnimation(fig, draw, frames=n_segments, interval=interval_ms, blit=False)
    html = scrubber.to_jshtml(default_mode="once")
    # matplotlib links Font Awesome 4 from a CDN for its buttons; the book ships its own icons offline.
    return re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>', "", html)
