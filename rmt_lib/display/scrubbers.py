"""Scrub through the segments of one sample: live (ipywidgets, needs a kernel) and static (all frames in the page).

Both show, for the chosen segment: its text with the facts highlighted, its row of the distance
matrix, the memory change per segment with this one outlined, and its write-attention map where one
was captured. Inputs are plain data gathered in a `ScrubberData` (build it with
`ScrubberData.from_probe` from one sample of `rmt_lib.probes.probe_samples`).

The static scrubber's HTML (for the offline book and for browser tests)::

    div.rmt-scrubber#rmt-scrubber-<hash>
      div.rmt-scrubber-controls
        button.rmt-scrubber-prev   input[type=range].rmt-scrubber-slider   button.rmt-scrubber-next
        span.rmt-scrubber-label    ("segment 5 of 32")
      div.rmt-scrubber-frame[data-segment="0"]                 (shown)
      div.rmt-scrubber-frame[data-segment="1"][hidden]         (every other frame has `hidden`)
      ...

The slider's value is a frame number (0 .. n_frames - 1); each frame carries its segment index in
``data-segment``. An ``input`` event on the slider (or a click on a button) shows that frame and hides
the others. No kernel, no network: the frames are inline HTML with base64 PNG images.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np

from rmt_lib.display.html import FACT_HIGHLIGHT, highlight_facts
from rmt_lib.plots import SegmentFrames

__all__ = ["FACT_HIGHLIGHT", "ScrubberData", "SegmentAttention", "SegmentScrubber", "StaticFrame", "default_frames",
           "frame_png", "opening_segment", "spread_frames", "static_frames_html",
           "frame_renderer", "live_scrubber", "segment_caption", "segment_html", "static_scrubber",
           "static_scrubber_html"]


@dataclass(frozen=True, eq=False)
class SegmentAttention:
    """A write-attention map of one segment for the frames: (M, L) weights and the L token strings."""

    weights: np.ndarray  # (M, L)
    tokens: tuple[str, ...]
    fact_mask: np.ndarray  # (L,) bool

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        mask = np.asarray(self.fact_mask, dtype=bool)
        if w.ndim != 2 or len(self.tokens) != w.shape[1] or mask.shape != (w.shape[1],):
            raise ValueError(f"SegmentAttention: weights (M, L) with L tokens and L fact flags; got weights "
                             f"{w.shape}, {len(self.tokens)} tokens, fact_mask {mask.shape}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "fact_mask", mask)
        object.__setattr__(self, "tokens", tuple(self.tokens))


@dataclass(frozen=True, eq=False)
class ScrubberData:
    """Everything a scrubber shows about one sample, validated.

    `segment_char_spans` are [start, end) ranges of `text` (they tile it); `fact_char_spans` index
    `text` too. `distance_matrix` is (S+1, S+1) with index 0 the initial memory; `memory_change` (S,).
    `question` (optional) is shown after the last segment's text. `attention` maps a segment index to
    its write-attention map.
    """

    text: str
    segment_char_spans: tuple[tuple[int, int], ...]
    fact_char_spans: tuple[tuple[int, int], ...]
    distance_matrix: np.ndarray
    memory_change: np.ndarray
    fact_segments: tuple[int, ...] = ()
    question_segment: int | None = None
    question: str | None = None
    attention: Mapping[int, SegmentAttention] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spans = tuple((int(a), int(b)) for a, b in self.segment_char_spans)
        facts = tuple((int(a), int(b)) for a, b in self.fact_char_spans)
        d = np.asarray(self.distance_matrix, dtype=np.float64)
        c = np.asarray(self.memory_change, dtype=np.float64).ravel()
        S = len(spans)
        if S == 0:
            raise ValueError("ScrubberData needs at least one segment")
        if d.shape != (S + 1, S + 1) or c.shape != (S,):
            raise ValueError(f"{S} segments need a ({S + 1}, {S + 1}) distance matrix (index 0 = initial memory) and "
                             f"{S} memory changes; got {d.shape} and {c.shape}")
        for a, b in (*spans, *facts):
            if not 0 <= a <= b <= len(self.text):
                raise ValueError(f"character span [{a}, {b}) lies outside the text (length {len(self.text)})")
        for s in (*self.fact_segments, *(() if self.question_segment is None else (self.question_segment,)), *self.attention):
            if not 0 <= s < S:
                raise ValueError(f"segment index {s} is outside 0..{S - 1}")
        object.__setattr__(self, "segment_char_spans", spans)
        object.__setattr__(self, "fact_char_spans", facts)
        object.__setattr__(self, "distance_matrix", d)
        object.__setattr__(self, "memory_change", c)
        object.__setattr__(self, "fact_segments", tuple(int(s) for s in self.fact_segments))
        object.__setattr__(self, "attention", dict(self.attention))

    @property
    def n_segments(self) -> int:
        return len(self.segment_char_spans)

    @classmethod
    def from_probe(cls, sample: Mapping, text: str, *, question: str | None = None,
                   attention: Mapping[int, SegmentAttention] | None = None) -> "ScrubberData":
        """From one entry of the probe result's ``samples`` (and the sample's `input` text)."""
        try:
            return cls(text=text, segment_char_spans=sample["segment_char_spans"],
                       fact_char_spans=sample.get("fact_char_spans", ()),
                       distance_matrix=sample["distance_matrix"], memory_change=sample["memory_change"],
                       fact_segments=tuple(sample.get("fact_segments", ())),
                       question_segment=sample.get("question_segment"), question=question,
                       attention=attention or {})
        except KeyError as missing:
            raise ValueError(f"the probe sample lacks {missing}; pass one entry of probe_samples(...)['samples']") from None

    @classmethod
    def from_capture(cls, capture, sample, *, layer: int | None = None, head: int | None = None) -> "ScrubberData":
        """From `rmt_lib.probes.capture_sample(model, tokenizer, sample)` and that `sample`: adds the
        write-attention map of every fact segment (one (layer, head), or the mean where None)."""
        attention = {}
        for k, s in enumerate(capture.entry["fact_segments"]):
            if s not in attention:
                weights, tokens, _ = capture.write_map(k, layer=layer, head=head)
                mask = np.zeros(len(tokens), dtype=bool)
                for j, t in enumerate(capture.entry["fact_segments"]):
                    if t == s:
                        mask |= capture.fact_mask(j)[1]
                attention[s] = SegmentAttention(weights, tuple(tokens), mask)
        return cls.from_probe(capture.entry, sample.input, question=sample.question, attention=attention)


# ----------------------------------------------------------------------------------------------
# Frame pieces shared by both scrubbers
# ----------------------------------------------------------------------------------------------


def segment_html(data: ScrubberData, segment: int) -> str:
    """The segment's text, HTML-escaped, with fact sentences highlighted (``<mark class="rmt-fact">``)."""
    start, end = data.segment_char_spans[segment]
    body = highlight_facts(data.text, start, end, data.fact_char_spans)  # as in the sample views
    if data.question is not None and segment == data.n_segments - 1:
        body += f' <b class="rmt-question">{html.escape(data.question)}</b>'
    return f'<div class="rmt-segment-text" style="white-space:pre-wrap;font-family:serif;line-height:1.4">{body}</div>'


def segment_caption(data: ScrubberData, segment: int) -> str:
    roles = []
    if segment in data.fact_segments:
        roles.append("fact segment")
    if segment == data.question_segment:
        roles.append("question segment")
    role = f" ({', '.join(roles)})" if roles else ""
    return (f"segment {segment} of {data.n_segments}{role}: memory change {data.memory_change[segment]:.3g}, "
            f"distance from the initial memory {data.distance_matrix[0, segment + 1]:.3g}")


def frame_renderer(data: ScrubberData, *, scale: float = 1.0) -> SegmentFrames:
    """The figure that both scrubbers redraw per segment."""
    maps = {s: (a.weights, a.tokens, a.fact_mask) for s, a in data.attention.items()}
    return SegmentFrames(data.distance_matrix, data.memory_change, fact_segments=data.fact_segments,
                         question_segment=data.question_segment, attention=maps, scale=scale)


def frame_png(frames: SegmentFrames, segment: int, *, dpi: int = 60) -> bytes:
    """Frame `segment` (distance row, memory change, attention map if any) as PNG bytes."""
    buf = io.BytesIO()
    frames.draw(segment).savefig(buf, format="png", dpi=dpi, metadata={"Software": None})  # same bytes every run
    return buf.getvalue()


def default_frames(data: ScrubberData, max_frames: int = 48) -> list[int]:
    """Every segment when there are at most `max_frames`; otherwise the fact and question segments,
    their neighbours, and evenly spaced others, up to `max_frames` in all (so a 256-segment sample
    does not put 256 images in a page)."""
    marked = (*data.fact_segments, *(() if data.question_segment is None else (data.question_segment,)))
    return spread_frames(data.n_segments, marked, max_frames)


def spread_frames(n_segments: int, marked, max_frames: int) -> list[int]:
    """Segments 0..n_segments - 1 when at most `max_frames`; else the first, the last, the `marked` ones and
    their neighbours, and evenly spaced others up to `max_frames` (exceeded only when marks need more)."""
    S = n_segments
    if S <= max_frames:
        return list(range(S))
    keep = {0, S - 1}
    for s in marked:
        keep.update(x for x in (s - 1, s, s + 1) if 0 <= x < S)
    room = max(0, max_frames - len(keep))
    keep.update(int(x) for x in np.linspace(0, S - 1, room + 2)[1:-1])
    return sorted(keep)


# ----------------------------------------------------------------------------------------------
# Live (ipywidgets)
# ----------------------------------------------------------------------------------------------


class SegmentScrubber(widgets.VBox):
    """The live scrubber's box; `slider`, `caption`, `text` and `image` are its parts."""

    def __repr__(self) -> str:  # the default repr would carry the PNG bytes into the notebook
        return f"SegmentScrubber(n_segments={self.slider.max + 1}, segment={self.slider.value})"


def opening_segment(data: ScrubberData) -> int:
    """Where a scrubber opens: the first fact segment, whose panels have something to show (segment 0 of
    a sample usually holds only prose), else segment 0."""
    return min(data.fact_segments, default=0)


def live_scrubber(data: ScrubberData, *, segment: int | None = None, dpi: int = 70) -> SegmentScrubber:
    """An ipywidgets box: a slider over segments, the caption, the segment's text and its frame plots.
    It opens on `segment` (default: `opening_segment`, the first fact segment).

    Needs a kernel to redraw. Its text repr is short and deterministic (nbval compares it).
    """
    segment = opening_segment(data) if segment is None else segment
    if not 0 <= segment < data.n_segments:
        raise ValueError(f"segment {segment} is outside 0..{data.n_segments - 1}")
    slider = widgets.IntSlider(value=segment, min=0, max=data.n_segments - 1, step=1, description="segment",
                               continuous_update=False, layout=widgets.Layout(width="95%"))
    caption = widgets.HTML()
    text = widgets.HTML(layout=widgets.Layout(max_height="12em", overflow="auto"))
    image = widgets.Image(format="png")
    frames = frame_renderer(data)

    def show(s: int) -> None:
        caption.value = f"<b>{html.escape(segment_caption(data, s))}</b>"
        text.value = segment_html(data, s)
        image.value = frame_png(frames, s, dpi=dpi)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(segment)
    box = SegmentScrubber([slider, caption, text, image])
    box.slider, box.caption, box.text, box.image = slider, caption, text, image
    return box


# ----------------------------------------------------------------------------------------------
# Static (every frame in the page)
# ----------------------------------------------------------------------------------------------

_SCRIPT = """
<script>
(function () {
  var root = document.getElementById("%(id)s");
  if (!root) { return; }
  var frames = root.querySelectorAll(".rmt-scrubber-frame");
  var slider = root.querySelector(".rmt-scrubber-slider");
  var label = root.querySelector(".rmt-scrubber-label");
  function show(i) {
    i = Math.max(0, Math.min(frames.length - 1, i));
    slider.value = i;
    for (var k = 0; k < frames.length; k++) {
      if (k === i) { frames[k].removeAttribute("hidden"); } else { frames[k].setAttribute("hidden", ""); }
    }
    label.textContent = "segment " + frames[i].getAttribute("data-segment") + " of %(n_segments)d";
  }
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  slider.addEventListener("change", function () { show(parseInt(slider.value, 10)); });
  root.querySelector(".rmt-scrubber-prev").addEventListener("click", function () { show(parseInt(slider.value, 10) - 1); });
  root.querySelector(".rmt-scrubber-next").addEventListener("click", function () { show(parseInt(slider.value, 10) + 1); });
  show(parseInt(slider.value, 10));
})();
</script>
"""


def static_scrubber_html(data: ScrubberData, *, segments: Sequence[int] | None = None, dpi: int = 72) -> str:
    """The static scrubber as an HTML string (layout in the module docstring).

    `segments`: which frames to carry (default: `default_frames`). The element id is a hash of the
    content, so the same data gives the same bytes.
    """
    chosen = default_frames(data) if segments is None else [int(s) for s in segments]
    if not chosen:
        raise ValueError("static_scrubber needs at least one segment to show")
    for s in chosen:
        if not 0 <= s < data.n_segments:
            raise ValueError(f"segment {s} is outside 0..{data.n_segments - 1}")
    # The frame shown first: the first fact segment's where it is carried (`opening_segment`), else the first.
    first = chosen.index(opening_segment(data)) if opening_segment(data) in chosen else 0
    renderer = frame_renderer(data)
    frames = [StaticFrame(s, segment_caption(data, s), segment_html(data, s), frame_png(renderer, s, dpi=dpi))
              for s in chosen]
    return static_frames_html(frames, n_segments=data.n_segments, first=first)


@dataclass(frozen=True)
class StaticFrame:
    """One frame of a static scrubber: its segment, caption, HTML text (may be empty) and PNG image."""

    segment: int
    caption: str
    text_html: str
    png: bytes


def static_frames_html(frames: Sequence[StaticFrame], *, n_segments: int, first: int = 0) -> str:
    """Frames in a slider (layout in the module docstring), frame `first` shown. The element id is a hash
    of the content, so the same frames give the same bytes."""
    if not frames:
        raise ValueError("a static scrubber needs at least one frame")
    if not 0 <= first < len(frames):
        raise ValueError(f"first must be a frame number in 0..{len(frames) - 1}, got {first}")
    parts = []
    for i, f in enumerate(frames):
        hidden = "" if i == first else " hidden"
        png = base64.b64encode(f.png).decode("ascii")
        text = (f'<div style="max-height:12em;overflow:auto;border:1px solid #ddd;padding:4px">{f.text_html}</div>'
                if f.text_html else "")
        parts.append(
            f'<div class="rmt-scrubber-frame" data-segment="{f.segment}"{hidden}>'
            f'<p class="rmt-scrubber-caption"><b>{html.escape(f.caption)}</b></p>{text}'
            f'<img alt="segment {f.segment}" style="max-width:100%" src="data:image/png;base64,{png}"/></div>')
    body = "".join(parts)
    uid = "rmt-scrubber-" + hashlib.sha256(body.encode()).hexdigest()[:16]
    controls = (
        '<div class="rmt-scrubber-controls" style="display:flex;gap:8px;align-items:center">'
        '<button type="button" class="rmt-scrubber-prev">&#9664;</button>'
        f'<input type="range" class="rmt-scrubber-slider" min="0" max="{len(frames) - 1}" value="{first}" step="1" '
        'style="flex:1" aria-label="segment"/>'
        '<button type="button" class="rmt-scrubber-next">&#9654;</button>'
        f'<span class="rmt-scrubber-label">segment {frames[first].segment} of {n_segments}</span></div>')
    script = _SCRIPT % {"id": uid, "n_segments": n_segments}
    return f'<div class="rmt-scrubber" id="{uid}">{controls}{body}</div>{script}'


def static_scrubber(data: ScrubberData, *, segments: Sequence[int] | None = None, dpi: int = 72):
    """The static scrubber as an `IPython.display.HTML` object: displays in a notebook and keeps
    working in the offline HTML book (all frames inline, a few lines of plain JavaScript)."""
    from IPython.display import HTML

    return HTML(static_scrubber_html(data, segments=segments, dpi=dpi))
