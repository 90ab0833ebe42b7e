"""rmt_lib.display.scrubbers: the data checks, the live ipywidgets scrubber and the static all-frames scrubber."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from rmt_lib import probes
from rmt_lib.display.scrubbers import (ScrubberData, SegmentAttention, default_frames, live_scrubber, segment_html,
                                       static_scrubber, static_scrubber_html)

TEXT = "Some prose here. Mary went to the garden. More prose <b>x</b> & so on. John moved to the office. End"
SEGMENTS = ((0, 17), (17, 42), (42, 71), (71, 96), (96, len(TEXT)))


def _data(**overrides) -> ScrubberData:
    rng = np.random.default_rng(0)
    states = np.cumsum(rng.normal(size=(len(SEGMENTS) + 1, 2, 3)), axis=0)
    facts = [m.span() for m in re.finditer(r"(Mary|John) \w+ to the \w+\.", TEXT)]
    kw = dict(text=TEXT, segment_char_spans=SEGMENTS, fact_char_spans=facts,
              distance_matrix=probes.distance_matrix(states), memory_change=probes.memory_change(states),
              fact_segments=(1, 3), question_segment=4, question="Where is Mary?")
    kw.update(overrides)
    return ScrubberData(**kw)


def test_segment_html_highlights_facts_and_escapes():
    data = _data()
    one = segment_html(data, 1)
    assert '<mark class="rmt-fact"' in one and "Mary went to the garden.</mark>" in one
    two = segment_html(data, 2)
    assert "&lt;b&gt;x&lt;/b&gt; &amp;" in two and "<mark" not in two  # user text never becomes markup
    assert "Where is Mary?" in segment_html(data, 4) and "Where is Mary?" not in one


def test_fact_straddling_a_segment_boundary_is_highlighted_in_both():
    data = _data(segment_char_spans=((0, 30), (30, len(TEXT))), distance_matrix=np.zeros((3, 3)),
                 memory_change=np.zeros(2), fact_segments=(0,), question_segment=1)
    assert "Mary went to </mark>" in segment_html(data, 0)
    assert '">the garden.</mark>' in segment_html(data, 1)


@pytest.mark.parametrize("overrides, match", [
    (dict(distance_matrix=np.zeros((3, 3))), "distance matrix"),
    (dict(memory_change=np.zeros(2)), "memory changes"),
    (dict(fact_char_spans=((0, 1000),)), "outside the text"),
    (dict(fact_segments=(9,)), "outside"),
    (dict(segment_char_spans=()), "at least one segment"),
])
def test_scrubber_data_is_validated(overrides, match):
    with pytest.raises(ValueError, match=match):
        _data(**overrides)


def test_segment_attention_is_validated():
    SegmentAttention(np.ones((2, 3)), ("a", "b", "c"), [0, 1, 0])
    with pytest.raises(ValueError, match="SegmentAttention"):
        SegmentAttention(np.ones((2, 3)), ("a", "b"), [0, 1, 0])


def test_from_probe_reads_a_probe_sample():
    data = _data()
    sample = {"n_segments": 5, "segment_char_spans": [list(s) for s in SEGMENTS],
              "fact_char_spans": [list(s) for s in data.fact_char_spans], "fact_segments": [1, 3],
              "question_segment": 4, "memory_change": data.memory_change.tolist(),
              "distance_matrix": data.distance_matrix.tolist()}
    again = ScrubberData.from_probe(sample, TEXT)
    assert again.fact_segments == (1, 3) and again.question_segment == 4
    np.testing.assert_array_equal(again.distance_matrix, data.distance_matrix)
    with pytest.raises(ValueError, match="lacks 'memory_change'"):
        ScrubberData.from_probe({k: v for k, v in sample.items() if k != "memory_change"}, TEXT)


def test_live_scrubber_redraws_when_the_slider_moves():
    attention = {1: SegmentAttention(np.random.default_rng(1).random((2, 4)), ("a", "b", "c", "d"), [0, 1, 1, 0])}
    box = live_scrubber(_data(attention=attention))
    assert repr(box) == "SegmentScrubber(n_segments=5, segment=1)"  # it opens on the first fact segment
    assert "rmt-fact" in box.text.value and "fact segment" in box.caption.value
    first_text, first_image = box.text.value, box.image.value
    assert first_image[:4] == b"\x89PNG"
    box.slider.value = 0
    assert box.text.value != first_text and "rmt-fact" not in box.text.value
    assert box.image.value != first_image
    assert repr(box) == "SegmentScrubber(n_segments=5, segment=0)"
    assert repr(live_scrubber(_data(fact_segments=()))) == "SegmentScrubber(n_segments=5, segment=0)"
    with pytest.raises(ValueError):
        live_scrubber(_data(), segment=5)


def test_static_scrubber_carries_every_frame_and_is_deterministic():
    data = _data()
    page = static_scrubber_html(data)
    assert page == static_scrubber_html(data)  # same data, same bytes (content-hash id, no PNG metadata)
    frames = re.findall(r'<div class="rmt-scrubber-frame" data-segment="(\d+)"( hidden)?>', page)
    assert [int(s) for s, _ in frames] == [0, 1, 2, 3, 4]
    assert [h for _, h in frames] == [" hidden", "", " hidden", " hidden", " hidden"]  # opens on fact segment 1
    assert page.count("data:image/png;base64,") == 5
    assert 'class="rmt-scrubber-slider" min="0" max="4" value="1"' in page
    assert 'value="0"' in static_scrubber_html(data, segments=[0, 2])  # no fact frame carried: the first
    assert "http" not in page.lower()  # nothing fetched: works offline
    html_obj = static_scrubber(data, segments=[1, 3])
    assert html_obj.data.count('class="rmt-scrubber-frame"') == 2
    with pytest.raises(ValueError):
        static_scrubber_html(data, segments=[7])


def test_default_frames_keep_facts_and_neighbours_for_long_samples():
    n = 256
    data = ScrubberData(text="x" * n, segment_char_spans=[(i, i + 1) for i in range(n)], fact_char_spans=(),
                        distance_matrix=np.zeros((n + 1, n + 1)), memory_change=np.zeros(n),
                        fact_segments=(40, 200), question_segment=255)
    frames = default_frames(data, max_frames=30)
    assert len(frames) == 30 and frames == sorted(set(frames))
    assert {0, 39, 40, 41, 199, 200, 201, 254, 255} <= set(frames)
    assert default_frames(_data()) == [0, 1, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless chromium not installed (make test installs it)")
def test_static_scrubber_moves_in_a_headless_browser(tmp_path):
    page = static_scrubber_html(_data())
    probe = """
<script>
  var root = document.querySelector(".rmt-scrubber");
  var slider = root.querySelector(".rmt-scrubber-slider");
  var opening = Array.from(root.querySelectorAll(".rmt-scrubber-frame")).filter(f => !f.hasAttribute("hidden"));
  slider.value = 3;
  slider.dispatchEvent(new Event("input"));
  root.querySelector(".rmt-scrubber-next").click();
  var shown = Array.from(root.querySelectorAll(".rmt-scrubber-frame")).filter(f => !f.hasAttribute("hidden"));
  document.body.setAttribute("data-result", opening.map(f => f.dataset.segment).join(",") + "|" +
                             shown.map(f => f.dataset.segment).join(",") + "|" +
                             root.querySelector(".rmt-scrubber-label").textContent);
</script>"""
    path = tmp_path / "scrubber.html"
    path.write_text(f"<!doctype html><html><body>{page}{probe}</body></html>")
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'data-result="([^"]*)"', result.stdout)
    assert found, result.stderr[-2000:]
    # It opens on the first fact segment (1) alone; slider to frame 3, then "next": frame 4 alone is shown.
    assert found.group(1) == "1|4|segment 4 of 5"


def test_from_capture_builds_frames_with_the_fact_segments_attention(tmp_path):
    import torch

    from rmt_lib.data import Sample, load_tokenizer
    from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    model = RecurrentMemoryTransformer(RMTConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_layers=1,
                                                 num_heads=2, segment_size=8, num_memory_tokens=2)).eval()
    text = "It rained all day long and nobody went out. Mary went to the garden. Then it was quiet again for hours."
    sample = Sample(input=text, question="Where is Mary?", target="garden")
    capture = probes.capture_sample(model, tokenizer, sample)
    data = ScrubberData.from_capture(capture, sample, layer=0, head=1)
    (s,) = capture.entry["fact_segments"]
    assert set(data.attention) == {s} and data.attention[s].fact_mask.any()
    assert data.n_segments == capture.entry["n_segments"]
    assert "Where is Mary?" in segment_html(data, data.n_segments - 1)
    page = static_scrubber_html(data)
    assert page.count('class="rmt-scrubber-frame"') == data.n_segments


def test_no_frame_text_is_smaller_than_8_points():
    from matplotlib.text import Text

    from rmt_lib.display.scrubbers import frame_renderer

    attention = {1: SegmentAttention(np.random.default_rng(1).random((2, 4)), ("a", "b", "c", "d"), [0, 1, 1, 0])}
    frames = frame_renderer(_data(attention=attention))
    for segment in (0, 1):
        fig = frames.draw(segment)
        sizes = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()}
        assert sizes and min(sizes.values()) >= 8, {k: v for k, v in sizes.items() if v < 8}
