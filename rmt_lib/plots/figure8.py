"""The four panels of the paper's Figure 8, composed from captured data (no model runs here).

(a)/(b): distances between memory states at the paper's "16k" and "128k" lengths; (c) writing a fact
to memory; (d) reading memory at the question. Inputs: a `rmt_lib.probes.Figure8Inputs`.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rmt_lib import paper
from rmt_lib.plots.attention import plot_read_attention, plot_write_attention
from rmt_lib.plots.memory import plot_distance_matrix
from rmt_lib.plots.style import new_figure


def figure8_panels(inputs, *, fact: int = 0) -> dict[str, Figure]:
    """{"fig8a", "fig8b", "fig8c", "fig8d"} from a `rmt_lib.probes.Figure8Inputs` (captured data only).

    (c) and (d) show the automatically chosen head beside the mean over all layers and heads.
    """
    figures = {}
    for name, capture, letter in (("fig8a", inputs.short, "a"), ("fig8b", inputs.long, "b")):
        e = capture.entry
        S = e["n_segments"]
        paper_name = f", the paper's {paper.LENGTH_NAMES[S]}" if S in paper.LENGTH_NAMES else ""
        figures[name] = plot_distance_matrix(
            e["distance_matrix"], fact_segments=e["fact_segments"], question_segment=e["question_segment"],
            title=f"({letter}) memory-state distances, {S} segments{paper_name}\n"
                  f"answer {e['prediction']!r}, target {e['target']!r}")
    lw, hw = inputs.write_head
    n_heldout = len(inputs.heldout["samples"])
    chosen, tokens, mask = inputs.short.write_map(fact, layer=lw, head=hw)  # (M, L), L tokens, (L,)
    mean, _, _ = inputs.short.write_map(fact)
    segment = inputs.short.entry["fact_segments"][fact]
    figures["fig8c"] = plot_write_attention(
        {f"layer {lw}, head {hw} (chosen automatically on {n_heldout} held-out samples)": chosen,
         "mean over all layers and heads": mean}, tokens, mask,
        title=f"(c) writing fact {fact + 1} to memory: write-memory queries in segment {segment}")
    lr, hr = inputs.read_head
    chosen, labels = inputs.short.read_map(layer=lr, head=hr)  # (Q, M), Q row labels
    mean, _ = inputs.short.read_map()
    figures["fig8d"] = plot_read_attention(
        {f"layer {lr}, head {hr} (chosen, held-out)": chosen, "mean over layers and heads": mean}, labels,
        title=f"(d) reading memory: question positions in the last segment ({inputs.short.entry['n_segments'] - 1})")
    return figures


def figure8_overview(inputs, *, fact: int = 0) -> Figure:
    """All four panels of `figure8_panels` in one figure, two by two, for a page that shows the result first.

    Each panel is drawn as `figure8_panels` draws it (its own layout, colour bars and legends) and placed as
    an image, so the overview is exactly the four panels, at a glance."""
    panels = figure8_panels(inputs, fact=fact)
    images = []
    for fig in panels.values():
        canvas = FigureCanvasAgg(fig)  # a raster canvas whatever the figure's own
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba()))  # (H, W, 4)
    overview, axes = new_figure(14.0, 10.0, nrows=2, ncols=2)
    for ax, image in zip(axes.flat, images):
        ax.imshow(image, interpolation="lanczos")
        ax.set_axis_off()
    overview.suptitle("Figure 8 on our model: (a) 32 and (b) 256 segments, (c) writing and (d) reading a fact")
    return overview
