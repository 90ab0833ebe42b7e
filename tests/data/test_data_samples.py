"""generate_samples + encode_sample: properties (hypothesis) and bad input."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt_lib.data import (
    LOCATIONS,
    Sample,
    distractor_tokens,
    encode_sample,
    find_facts,
    generate_samples,
    load_background,
    world_state,
    write_jsonl,
)
from rmt_lib.data.grammar import parse_question
from rmt_lib.data.samples import PLACEMENTS

from .conftest import needs_austen

SENTENCE_END = tuple('.!?"\')]')


def check_sample(sample: Sample, tokenizer, segment_size: int, total: int, aligned: bool = False) -> None:
    """Every promise generate_samples and encode_sample make about one sample."""
    # The answer is the asked actor's latest location as the facts state it.
    assert sample.target == world_state(sample.facts)[parse_question(sample.question)]
    # Facts verbatim, in order, not overlapping.
    assert [sample.input[a:b] for a, b in sample.fact_char_spans] == list(sample.facts)
    ends = [0] + [b for _, b in sample.fact_char_spans]
    assert all(a >= e for (a, _), e in zip(sample.fact_char_spans, ends))
    # Exact length, and the text re-encodes to exactly the tokens it was built from.
    ids = tokenizer.encode(sample.input) + tokenizer.encode(" " + sample.question)
    assert len(ids) == total
    enc = encode_sample(sample, tokenizer, segment_size)  # built-token cache
    fresh = encode_sample(dataclasses.replace(sample, _tokens=None), tokenizer, segment_size)  # re-tokenized
    n_segments = math.ceil(total / segment_size)
    pad = n_segments * segment_size - total
    assert enc.n_segments == n_segments and enc.input_ids.shape == (n_segments * segment_size,)
    assert enc.input_ids[pad:].tolist() == ids and (enc.input_ids[:pad] == tokenizer.pad_id).all()
    assert enc.attention_mask.tolist() == [False] * pad + [True] * total
    for field in ("n_segments", "segment_char_spans", "fact_token_spans", "fact_segments", "question_token_span", "target_index"):
        assert getattr(enc, field) == getattr(fresh, field), field
    assert np.array_equal(enc.input_ids, fresh.input_ids)
    # Spans and segment indices point at the facts' real tokens; a fact belongs to the segment of its last
    # token, and only an aligned layout promises that no fact straddles a segment boundary.
    assert len(enc.fact_token_spans) == len(sample.facts)
    for (a, b), fact, segment in zip(enc.fact_token_spans, sample.facts, sample.fact_segments):
        assert tokenizer.decode(enc.input_ids[a:b]) == " " + fact
        assert (b - 1) // segment_size == segment
        if aligned:
            assert a // segment_size == segment
    assert enc.fact_segments == sample.fact_segments
    # The question ends the last segment; facts come before it.
    q0, q1 = enc.question_token_span
    assert q1 == n_segments * segment_size and tokenizer.decode(enc.input_ids[q0:q1]) == " " + sample.question
    assert all(b <= q0 for _, b in enc.fact_token_spans)
    # Segment char spans tile the input.
    spans = enc.segment_char_spans
    assert spans[0][0] == 0 and spans[-1][1] == len(sample.input)
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    assert enc.target_index == LOCATIONS.index(sample.target)


lengths = st.sampled_from([8, 16, 32, 64]).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(1, 10), st.integers(0, 6), st.integers(0, size - 1))
)


@given(seed=st.integers(0, 2**32 - 1), layout=lengths, use_tokens=st.booleans(), default_facts=st.booleans(),
       placement=st.sampled_from(PLACEMENTS))
@settings(max_examples=60, deadline=None)
def test_generated_samples_keep_every_promise(prose_dir, tokenizer, seed, layout, use_tokens, default_facts, placement):
    segment_size, n_facts, extra_segments, short_by = layout
    n_facts_arg = None if default_facts else n_facts
    # Facts are at most 8 tokens, the question 6; below 16 tokens a segment holds at most one fact.
    facts = 10 if default_facts else n_facts
    need = facts * (8 if segment_size >= 16 else segment_size) + 6
    n_segments = math.ceil(need / segment_size) + 1 + extra_segments
    total = n_segments * segment_size - (short_by if use_tokens else 0)
    length = {"tokens": total} if use_tokens else {"n_segments": n_segments}
    samples = generate_samples(
        "qa1", 2, **length, segment_size=segment_size, n_facts=n_facts_arg, background=prose_dir, seed=seed,
        tokenizer=tokenizer, placement=placement,
    )
    for sample in samples:
        if n_facts_arg is not None:
            assert len(sample.facts) == n_facts
        check_sample(sample, tokenizer, segment_size, total, aligned=placement == "aligned")


def test_same_seed_same_bytes_different_seed_different(prose_dir, tmp_path, tokenizer):
    def make(seed, name):
        samples = generate_samples("qa1", 20, n_segments=8, background=prose_dir, seed=seed, tokenizer=tokenizer)
        return write_jsonl(samples, tmp_path / name).read_bytes(), samples

    (a, sa), (b, _), (c, sc) = make(0, "a.jsonl"), make(0, "b.jsonl"), make(1, "c.jsonl")
    assert a == b and a != c
    assert sum(x.input != y.input for x, y in zip(sa, sc)) >= 18


def test_distractor_tokens_are_prose_from_sentence_starts_without_facts(prose_dir, tokenizer):
    ids = distractor_tokens(6, 100, background=prose_dir, seed=4, tokenizer=tokenizer)
    assert ids.shape == (6, 100) and ids.dtype == np.int64
    assert np.array_equal(ids, distractor_tokens(6, 100, background=prose_dir, seed=4, tokenizer=tokenizer))
    assert not np.array_equal(ids, distractor_tokens(6, 100, background=prose_dir, seed=5, tokenizer=tokenizer))
    sentences = set(load_background(prose_dir, "train").sentences)
    for row in ids:
        text = tokenizer.decode(row.tolist()).strip()
        assert any(text.startswith(s[:20]) for s in sentences) and not find_facts(text)
    with pytest.raises(ValueError, match="n_samples"):
        distractor_tokens(0, 10, background=prose_dir, tokenizer=tokenizer)


def test_fact_count_distribution_is_babis(prose_dir, tokenizer):
    samples = generate_samples("qa1", 1000, n_segments=8, background=prose_dir, seed=3, tokenizer=tokenizer)
    counts = np.bincount([len(s.facts) for s in samples], minlength=11)
    assert set(np.flatnonzero(counts)) == {2, 4, 6, 8, 10}
    assert all(abs(counts[k] / 1000 - 0.2) < 0.05 for k in (2, 4, 6, 8, 10))


def test_long_sample_wraps_around_a_short_background(prose_dir, tokenizer):
    total = 40_000  # the synthetic background is about 10k tokens
    (sample,) = generate_samples("qa1", 1, tokens=total, n_facts=4, background=prose_dir, seed=5, tokenizer=tokenizer)
    check_sample(sample, tokenizer, 32, total)
    assert len(set(sample.fact_segments)) > 1  # facts spread out, not bunched at the start


def _cut_share(samples, tokenizer, segment_size):
    spans = [span for s in samples for span in encode_sample(s, tokenizer, segment_size).fact_token_spans]
    return np.mean([a // segment_size != (b - 1) // segment_size for a, b in spans])


def test_sentence_placement_cuts_facts_as_babilong_does_and_aligned_never(prose_dir, tokenizer):
    common = dict(n_segments=16, n_facts=6, background=prose_dir, seed=4, tokenizer=tokenizer)
    babilong = generate_samples("qa1", 200, **common)  # the default placement
    aligned = generate_samples("qa1", 200, **common, placement="aligned")
    # A fact of ~7 tokens starts at one of 32 offsets: about one in five is cut by a segment boundary.
    assert 0.1 < _cut_share(babilong, tokenizer, 32) < 0.35
    assert _cut_share(aligned, tokenizer, 32) == 0
    # Facts sit at sentence boundaries: the text before each one ends a sentence (or is the start).
    for sample in babilong[:50]:
        for a, _ in sample.fact_char_spans:
            assert a == 0 or sample.input[:a].rstrip().endswith(SENTENCE_END)
    with pytest.raises(ValueError, match="unknown placement 'middle'"):
        generate_samples("qa1", 1, **common, placement="middle")


def test_real_babi_stories_in_any_background(prose_dir, tokenizer):
    stories = [
        Sample(input="", question="Where is Mary?", target="office",
               facts=("Mary went to the garden.", "John moved to the hallway.", "Mary journeyed to the office.")),
        Sample(input="", question="Where is John?", target="kitchen",
               facts=("John travelled to the kitchen.", "Daniel went back to the bathroom.")),
    ]
    samples = generate_samples("qa1", 2, n_segments=6, background=prose_dir, seed=1, tokenizer=tokenizer,
                               stories=stories)
    for sample, story in zip(samples, stories):
        assert (sample.facts, sample.question, sample.target) == (story.facts, story.question, story.target)
        check_sample(sample, tokenizer, 32, 6 * 32)
    with pytest.raises(ValueError, match="only 2 bAbI stories"):
        generate_samples("qa1", 3, n_segments=6, background=prose_dir, tokenizer=tokenizer, stories=stories)
    with pytest.raises(ValueError, match="n_facts or stories"):
        generate_samples("qa1", 1, n_segments=6, n_facts=2, background=prose_dir, tokenizer=tokenizer, stories=stories)


def test_encode_user_sample_finds_facts_by_grammar(tokenizer):
    sample = Sample(input="It was a fine day.\nMary went to the garden. Then\tJohn journeyed to the office.", question="Where is John?", target="office")
    enc = encode_sample(sample, tokenizer, segment_size=8)
    assert [tokenizer.decode(enc.input_ids[a:b]).strip() for a, b in enc.fact_token_spans] == ["Mary went to the garden.", "John journeyed to the office."]
    assert enc.segment_char_spans[0][0] == 0 and enc.segment_char_spans[-1][1] == len(sample.input)
    assert enc.target_index == LOCATIONS.index("office")
    with pytest.raises(ValueError, match="not a QA1 location"):
        encode_sample(dataclasses.replace(sample, target="moon"), tokenizer)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="qa9", n_segments=4), "unknown task"),
        (dict(n_segments=1, n_facts=10), "too few tokens"),
        (dict(n_segments=2), "draws up to 10 facts"),  # bAbI's default may draw 10: refused for every seed
        # Aligned, a fact must fit in one segment; BABILong's placement cuts it instead.
        (dict(n_segments=40, segment_size=4, n_facts=2, placement="aligned"), "too few tokens"),
        (dict(n_segments=4, placement="segment"), "unknown placement"),
        (dict(n_segments=4, tokens=128), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(n_segments=0), "n_segments must be"),
        (dict(n_segments=4, n_facts=0), "n_facts must be"),
        (dict(n_segments=4, seed=-1), "seed must be"),
        (dict(n_segments=4, segment_size=0), "segment_size must be"),
        (dict(n_segments=4, split="dev"), "unknown split"),
    ],
)
def test_bad_input_is_a_clear_error(prose_dir, tokenizer, kwargs, message):
    kwargs = {"task": "qa1", **kwargs}
    if "split" not in kwargs:
        kwargs["background"] = prose_dir
    with pytest.raises(ValueError, match=message):
        generate_samples(n_samples=3, tokenizer=tokenizer, **kwargs)


@needs_austen
def test_austen_samples_by_split(tokenizer):
    persuasion = load_background(split="test").text
    for split in ("train", "validation", "test"):
        for sample in generate_samples("qa1", 20, n_segments=16, split=split, seed=0, tokenizer=tokenizer):
            check_sample(sample, tokenizer, 32, 512)
    sample = generate_samples("qa1", 1, n_segments=16, n_facts=1, split="test", seed=0, tokenizer=tokenizer)[0]
    a, b = sample.fact_char_spans[0]
    prose = (sample.input[:a] + sample.input[b + 1 :]).strip()
    assert prose[:200] in persuasion


@needs_austen
def test_facts_sit_at_sentence_boundaries_when_there_is_room(tokenizer):
    samples = generate_samples("qa1", 300, n_segments=32, n_facts=2, split="validation", seed=0, tokenizer=tokenizer)
    at_boundary = [s.input[:a].rstrip().endswith(SENTENCE_END) or a == 0 for s in samples for a, _ in s.fact_char_spans]
    assert np.mean(at_boundary) > 0.97


@given(
    text=st.lists(st.sampled_from(["Mary went to the garden.", " ", "\n", "é", "word", ".", "<pad>", "  "]) | st.text(max_size=5), max_size=30).map("".join),
    segment_size=st.integers(1, 16),
)
@settings(deadline=None)
def test_encode_any_user_text(tokenizer, text, segment_size):
    sample = Sample(input=text, question="Where is Mary?", target="garden")
    enc = encode_sample(sample, tokenizer, segment_size)
    ids = tokenizer.encode(text) + tokenizer.encode(" Where is Mary?")
    pad = enc.n_segments * segment_size - len(ids)
    assert 0 <= pad < segment_size and enc.input_ids[pad:].tolist() == ids
    spans = enc.segment_char_spans
    assert len(spans) == enc.n_segments and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a <= b == c for (a, b), (c, _) in zip(spans, spans[1:]))
    assert len(enc.fact_token_spans) == len(find_facts(text)) <= text.count("Mary went to the garden.")
    for a, b in enc.fact_token_spans:
        assert "Mary went to the garden." in tokenizer.decode(enc.input_ids[a:b])
