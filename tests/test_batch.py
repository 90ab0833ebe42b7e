"""Batches: one length per batch, fact counts mixed within it, auxiliary labels at every segment's end."""
from __future__ import annotations

import numpy as np
import pytest

from rmt_lib.data.batching import NOT_SEEN, aux_labels, collate
from rmt_lib.data import ACTORS, LOCATIONS, Sample, encode_sample, load_tokenizer, world_state
from rmt_lib.data.grammar import FACT_RE
from rmt_lib.train import TrainConfig, make_batch
from tests.data.conftest import HAVE_AUSTEN

SEGMENT = 8
FILLER = "It was a fine morning and nobody spoke of anything at all until the rain began."


def _sample(parts: list[str], question: str, target: str) -> Sample:
    """A sample from text pieces joined by spaces; the pieces that are facts get their character spans."""
    text, facts, spans = "", [], []
    for part in parts:
        start = len(text) + (1 if text else 0)
        text = f"{text} {part}" if text else part
        if FACT_RE.fullmatch(part):
            facts.append(part)
            spans.append((start, start + len(part)))
    return Sample(input=text, question=question, target=target, facts=tuple(facts), fact_char_spans=tuple(spans))


def _state_row(facts: list[str]) -> list[int]:
    state = world_state(facts)
    return [LOCATIONS.index(state[a]) if a in state else NOT_SEEN for a in ACTORS]


def test_aux_labels_follow_the_facts_segment_by_segment():
    tok = load_tokenizer()
    facts = ["Mary went to the kitchen.", "John moved to the garden.", "Mary journeyed to the office."]
    sample = _sample([FILLER, facts[0], FILLER, facts[1], FILLER, facts[2], FILLER], "Where is Mary?", "office")
    encoded = encode_sample(sample, tok, SEGMENT)
    labels = aux_labels(sample, encoded)  # (S, A)
    assert labels.shape == (encoded.n_segments, len(ACTORS))
    for s in range(encoded.n_segments):
        complete = [f for f, (_, end) in zip(facts, encoded.fact_token_spans) if end <= (s + 1) * SEGMENT]
        assert labels[s].tolist() == _state_row(complete)
    assert labels[-1].tolist() == _state_row(facts)  # the question sees every fact
    assert labels[0].tolist() == [NOT_SEEN] * len(ACTORS)  # the first segment is prose only


def test_a_fact_cut_by_a_segment_boundary_counts_from_its_second_segment():
    tok = load_tokenizer()
    fact = "Daniel travelled to the bathroom."
    for n_filler_words in range(1, 12):  # slide the fact across a boundary
        sample = _sample([" ".join(FILLER.split()[:n_filler_words]), fact, FILLER], "Where is Daniel?", "bathroom")
        encoded = encode_sample(sample, tok, SEGMENT)
        (start, end), = encoded.fact_token_spans
        labels = aux_labels(sample, encoded)[:, ACTORS.index("Daniel")]  # (S,)
        first_known = int(np.argmax(labels != NOT_SEEN))
        assert first_known == (end - 1) // SEGMENT
        assert (labels[first_known:] == LOCATIONS.index("bathroom")).all()


def test_collate_stacks_aux_labels_per_segment():
    tok = load_tokenizer()
    facts = ["Sandra went back to the hallway.", "John went to the bedroom."]
    samples = [_sample([FILLER, facts[0], FILLER, facts[1]], "Where is John?", "bedroom"),
               _sample([FILLER, facts[1], FILLER, facts[0]], "Where is Sandra?", "hallway")]
    batch = collate(samples, [encode_sample(s, tok, SEGMENT) for s in samples])
    assert batch.aux_labels.shape == (2, batch.input_ids.shape[1] // SEGMENT, len(ACTORS))
    assert batch.labels.tolist() == [LOCATIONS.index("bedroom"), LOCATIONS.index("hallway")]


def test_user_samples_without_fact_spans_still_get_the_final_state():
    tok = load_tokenizer()
    sample = Sample(input=f"{FILLER} Mary went to the garden. {FILLER}", question="Where is Mary?", target="garden",
                    facts=("Mary went to the garden.",))
    encoded = encode_sample(sample, tok, SEGMENT)
    labels = aux_labels(sample, encoded)
    assert labels[-1, ACTORS.index("Mary")] == LOCATIONS.index("garden")


def test_make_batch_mixes_fact_counts_within_a_batch():
    if not HAVE_AUSTEN:
        pytest.skip("Austen texts absent: run `make setup`")
    cfg, tok = TrainConfig(), load_tokenizer()
    batch = make_batch(cfg, tok, n_segments=8, batch_size=32, seed=3, split="train")
    assert len(batch) == 32 and batch.aux_labels.shape == (32, 8, len(ACTORS))
    mentioned = (batch.aux_labels[:, -1] != NOT_SEEN).sum(dim=1)  # (B,) actors each story names
    assert len(set(mentioned.tolist())) > 1  # two-fact and ten-fact stories share the batch
    again = make_batch(cfg, tok, n_segments=8, batch_size=32, seed=3, split="train")
    assert (again.input_ids == batch.input_ids).all()  # seeded
