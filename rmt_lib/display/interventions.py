"""Edit the memory and watch the answer: the intervention scrubbers, live (ipywidgets) and static.

For one recipient/donor pair (`rmt_lib.probes.patch_pairs`), each frame shows what happens when the memory
after a segment is reset to the initial memory, or replaced by the donor's memory after the same segment:
the decoded world state at the question and the answer's probabilities, beside the run as it was. The
static scrubber carries precomputed frames (it works in the HTML book, no kernel); the live one computes
the chosen pair and segment on demand.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets

from rmt_lib.data import encode_qa1
from rmt_lib.display.scrubbers import StaticFrame, frame_png, spread_frames, static_frames_html
from rmt_lib.probes.patch import FRAME_ACTIONS, InterventionFrames, PatchPair, intervention_frames


def frame_caption(frames: InterventionFrames, k: int) -> str:
    """'memory edited after segment 12 of 32 (the fact's segment)': where frame k edits, and what is there."""
    s = frames.segments[k]
    roles = [name for name, segments in (("a fact's segment", frames.fact_segments),
                                         ("a donor fact's segment", frames.donor_fact_segments)) if s in segments]
    role = f" ({', '.join(roles)})" if roles else ""
    return (f"memory edited after segment {s} of {frames.n_segments}{role}; answer {frames.target!r}, "
            f"donor's {frames.donor_target!r}")


class _Renderer:
    """Draws frame k as PNG bytes (matplotlib figures are closed by garbage collection, never by pyplot)."""

    def __init__(self, frames: InterventionFrames):
        self.frames = frames

    def draw(self, k: int):
        from rmt_lib.plots.decoding import plot_intervention_frame

        return plot_intervention_frame(self.frames, k, action_names=FRAME_ACTIONS)


def intervention_scrubber_segments(pair: PatchPair, n_segments: int, max_frames: int = 16) -> list[int]:
    """The segments a static intervention scrubber carries: both samples' fact segments and their
    neighbours, and evenly spaced others (never the question's segment, after which nothing is left)."""
    marked = (*pair.recipient.fact_segments, *pair.donor.fact_segments)
    return spread_frames(n_segments - 1, [s for s in marked if s < n_segments - 1], max_frames)


def static_intervention_scrubber(frames: InterventionFrames, *, dpi: int = 60):
    """Every frame in the page, behind a slider (`IPython.display.HTML`); it opens on the first fact."""
    renderer = _Renderer(frames)
    carried = [StaticFrame(s, frame_caption(frames, k), "", frame_png(renderer, k, dpi=dpi))
               for k, s in enumerate(frames.segments)]
    opening = min(frames.fact_segments, default=frames.segments[0])
    first = frames.segments.index(opening) if opening in frames.segments else 0
    from IPython.display import HTML

    return HTML(static_frames_html(carried, n_segments=frames.n_segments, first=first))


class InterventionWidget(widgets.VBox):
    """The live intervention scrubber's box; `pair`, `slider`, `caption` and `image` are its parts."""

    def __repr__(self) -> str:  # short and deterministic (nbval compares it); the default carries the PNG
        return f"InterventionWidget(pairs={len(self.pair.options)}, segment={self.slider.value})"


def live_intervention_widget(model, tokenizer, probe, pairs: Sequence[PatchPair], *,
                             dpi: int = 65) -> InterventionWidget:
    """Pick a pair and a segment; the memory after it is reset, or replaced by the donor's, and the frame
    shows the answer and the decoded world state at the question. Needs a kernel (it runs the model).
    It opens on the first pair, edited after its first fact's segment."""
    if not pairs:
        raise ValueError("live_intervention_widget needs at least one pair")
    cfg = model.config
    sizes = [e.n_segments for e in encode_qa1([p.recipient for p in pairs], tokenizer, cfg.segment_size,
                                              **cfg.encoding)]
    if min(sizes) < 2:
        raise ValueError("every pair needs two segments or more: a segment before the question to edit")
    opening = min(min(pairs[0].recipient.fact_segments, default=0), sizes[0] - 2)
    choose = widgets.Dropdown(options=[(f"sample {i}: {p.recipient.question} ({p.recipient.target})", i)
                                       for i, p in enumerate(pairs)], value=0, description="sample")
    slider = widgets.IntSlider(value=opening, min=0, max=sizes[0] - 2, description="edit after",
                               continuous_update=False, layout=widgets.Layout(width="95%"))
    caption, image = widgets.HTML(), widgets.Image(format="png")

    def show(*_) -> None:
        frames = intervention_frames(model, tokenizer, probe, pairs[choose.value], segments=[slider.value])
        caption.value = f"<b>{html.escape(frame_caption(frames, 0))}</b>"
        image.value = frame_png(_Renderer(frames), 0, dpi=dpi)

    def repick(change) -> None:
        slider.max = sizes[change["new"]] - 2  # clamps the value, which redraws when it changes
        show()

    choose.observe(repick, names="value")
    slider.observe(show, names="value")
    show()
    box = InterventionWidget([choose, slider, caption, image])
    box.pair, box.slider, box.caption, box.image = choose, slider, caption, image
    return box
