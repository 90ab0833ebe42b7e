"""A sample as the model reads it: token ids left-padded to whole segments, with where each segment, fact
and the question lie."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from collections.abc import Sequence

from rmt_lib.data.grammar import LOCATIONS, find_facts, parse_question
from rmt_lib.data.samples import Sample
from rmt_lib.data.tokenizer import Tokenizer, default_tokenizer


@dataclass(frozen=True)
class EncodedSample:
    """A sample as the model sees it: T = n_segments * segment_size token ids, left-padded (alignment
    "right"), or its T tokens unpadded in ceil(T / segment_size) segments (alignment "left")."""

    input_ids: np.ndarray  # (T,) int64
    attention_mask: np.ndarray  # (T,) bool, False on padding
    n_segments: int
    segment_char_spans: tuple[tuple[int, int], ...]  # per segment, [start, end) of `input`; they tile `input`
    fact_token_spans: tuple[tuple[int, int], ...]  # [start, end) indices into input_ids
    fact_segments: tuple[int, ...]  # segment holding each fact's last token (a cut fact is read there)
    question_token_span: tuple[int, int]  # indices into input_ids: the question (and answer prompt) ends the input
    target_index: int  # LOCATIONS.index(target)



def encode_sample(sample: Sample, tokenizer: Tokenizer | None = None, segment_size: int = 32,
                  alignment: str = "right", *, question_prefix: str = " ",
                  answer_prompt_ids: tuple[int, ...] = ()) -> EncodedSample:
    """Tokens of `input` then of `question_prefix` + question (and `answer_prompt_ids`), left-padded to whole
    segments; facts located by the sample's fact_char_spans, or by the bAbI grammar (find_facts) when it
    carries none. `alignment="left"` (the reference RMT's cut, `RMTConfig.segment_alignment`) pads nothing:
    the last segment may be shorter. A model's own settings: ``encode_sample(s, tok, L, **config.encoding)``."""
    if alignment not in ("right", "left"):
        raise ValueError(f"alignment must be 'right' or 'left', got {alignment!r}")
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    if not isinstance(segment_size, int) or segment_size < 1:
        raise ValueError(f"segment_size must be a positive int, got {segment_size!r}")
    if sample.target not in LOCATIONS:
        raise ValueError(f"target {sample.target!r} is not a QA1 location; expected one of {LOCATIONS}")
    cache = sample._tokens
    if (
        cache is not None
        and cache.fingerprint == tokenizer.fingerprint
        and cache.question == sample.question
        and cache.input_hash == hash(sample.input)
    ):
        input_ids, char_starts = cache.input_ids, cache.char_starts
    else:
        input_ids, char_starts = tokenizer.encode_with_starts(sample.input)  # token ends are not needed
    q_ids = np.asarray([*tokenizer.encode(question_prefix + sample.question), *answer_prompt_ids], dtype=np.int64)
    n, total = len(input_ids), len(input_ids) + len(q_ids)
    n_segments = max(1, math.ceil(total / segment_size))
    pad = n_segments * segment_size - total if alignment == "right" else 0

    # Segment k holds input tokens [k*S - pad, (k+1)*S - pad); its text starts where its first token does.
    first = np.clip(np.arange(n_segments + 1) * segment_size - pad, 0, n)  # (n_segments + 1,)
    bounds = np.full(n_segments + 1, len(sample.input), dtype=np.int64)
    inside = first < n
    bounds[inside] = char_starts[first[inside]]
    bounds[0] = 0
    bounds = bounds.tolist()
    segment_char_spans = tuple(zip(bounds[:-1], bounds[1:]))

    spans = sample.fact_char_spans or tuple(find_facts(sample.input))
    fact_token_spans = []
    for c0, c1 in spans:
        t0 = max(int(np.searchsorted(char_starts, c0, side="right")) - 1, 0)
        t1 = int(np.searchsorted(char_starts, c1, side="left"))
        fact_token_spans.append((pad + t0, pad + t1))
    del char_starts  # spans first, then the (T,) arrays: a long input's starts are gone before its ids are widened

    ids = np.full(pad + total, tokenizer.pad_id, dtype=np.int64)  # (T,)
    ids[pad : pad + n] = input_ids
    ids[pad + n :] = q_ids
    mask = np.zeros(pad + total, dtype=bool)  # (T,)
    mask[pad:] = True
    return EncodedSample(
        input_ids=ids,
        attention_mask=mask,
        n_segments=n_segments,
        segment_char_spans=segment_char_spans,
        fact_token_spans=tuple(fact_token_spans),
        fact_segments=tuple((b - 1) // segment_size for _, b in fact_token_spans),
        question_token_span=(pad + n, pad + total),
        target_index=LOCATIONS.index(sample.target),
    )


def encode_qa1(samples: Sequence[Sample], tokenizer: Tokenizer, segment_size: int,
               **encoding) -> list[EncodedSample]:
    """`encode_sample` of every sample, first refusing (ValueError naming it) one that a QA1 model cannot
    answer: a question other than 'Where is <actor>?', or an answer that is not one of the locations."""
    encoded = []
    for i, s in enumerate(samples):
        try:
            parse_question(s.question)
            encoded.append(encode_sample(s, tokenizer, segment_size, **encoding))
        except ValueError as err:
            raise ValueError(f"sample {i + 1} cannot be answered by a QA1 model: {err}") from err
    return encoded
