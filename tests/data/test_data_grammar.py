"""The bAbI QA1 grammar: sentences, parsing, world state, story statistics."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt_lib.data import ACTORS, LOCATIONS, VERBS, find_facts, world_state
from rmt_lib.data.grammar import (
    QA1_FACT_COUNTS,
    all_fact_sentences,
    fact_sentence,
    parse_fact,
    parse_question,
    qa1_story,
    sample_n_facts,
)


def test_vocabulary_is_babis():
    assert ACTORS == ("Daniel", "John", "Mary", "Sandra")
    assert LOCATIONS == ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
    assert set(VERBS) == {"moved to", "went to", "went back to", "journeyed to", "travelled to"}
    assert len(all_fact_sentences()) == 4 * 5 * 6


def test_parse_roundtrip_and_errors():
    assert parse_fact("Mary moved to the bathroom.") == ("Mary", "moved to", "bathroom")
    assert parse_question("Where is Sandra?") == "Sandra"
    with pytest.raises(ValueError, match="not a bAbI QA1 fact"):
        parse_fact("Mary flew to the moon.")
    with pytest.raises(ValueError, match="not a bAbI QA1 question"):
        parse_question("Where is Elinor?")


def test_find_facts_in_prose():
    text = "It rained. Mary went back to the garden. John, who travelled to the office, waited. Daniel moved to the office."
    spans = find_facts(text)
    assert [text[a:b] for a, b in spans] == ["Mary went back to the garden.", "Daniel moved to the office."]
    assert find_facts("No facts here; Mary went to the moon.") == []


def test_world_state_keeps_latest_and_skips_object_sentences():
    facts = ["Mary moved to the bathroom.", "John went to the hallway.", "Mary picked up the apple there.", "Mary went back to the kitchen."]
    assert world_state(facts) == {"Mary": "kitchen", "John": "hallway"}
    with pytest.raises(ValueError, match="not a bAbI fact"):
        world_state(["Elinor went to the garden."])


@given(seed=st.integers(0, 2**32 - 1), n_facts=st.integers(1, 12))
@settings(deadline=None)
def test_story_answer_is_latest_location(seed, n_facts):
    facts, asked, target = qa1_story(np.random.default_rng(seed), n_facts)
    sentences = [fact_sentence(*f) for f in facts]
    assert len(facts) == n_facts
    assert asked in {a for a, _, _ in facts}
    assert world_state(sentences)[asked] == target
    where: dict[str, str] = {}
    for actor, _, location in facts:  # as in bAbI, a move always goes somewhere new
        assert where.get(actor) != location
        where[actor] = location


def test_fact_count_and_verb_distribution():
    rng = np.random.default_rng(0)
    counts = Counter(sample_n_facts(rng) for _ in range(10_000))
    assert set(counts) == set(QA1_FACT_COUNTS)
    assert all(abs(c / 10_000 - 0.2) < 0.02 for c in counts.values())
    verbs = Counter(f[1] for _ in range(2_000) for f in qa1_story(rng, 5)[0])
    assert all(abs(c / 10_000 - 0.2) < 0.02 for c in verbs.values())
