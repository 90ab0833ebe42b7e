"""Our QA1 against the real bAbI files in ../shared/babi (read there, never copied; skipped where absent)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rmt_lib.data import ACTORS, LOCATIONS, VERBS, generate_samples, read_babi, world_state
from rmt_lib.data.grammar import FACT_RE, QUESTION_RE, parse_fact, parse_question, verb_frequencies

from .conftest import BABI_DIR

QA1_FILES = ["qa1_single-supporting-fact_train.txt", "qa1_single-supporting-fact_test.txt"]
pytestmark = pytest.mark.skipif(
    not (BABI_DIR / QA1_FILES[0]).is_file(), reason=f"real bAbI files absent from {BABI_DIR} (set RMT_BABI_DIR)"
)


@pytest.fixture(scope="module")
def babi():
    return [s for name in QA1_FILES for s in read_babi(BABI_DIR / name)]


@pytest.fixture(scope="module")
def ours(prose_dir, tokenizer):
    return generate_samples("qa1", 2000, n_segments=8, background=prose_dir, seed=11, tokenizer=tokenizer)


def stories(samples):
    """Every fact once: the last question of each bAbI story sees the whole story."""
    out, previous = [], None
    for sample in samples:
        if previous is not None and sample.facts[: len(previous.facts)] != previous.facts:
            out.append(previous.facts)
        previous = sample
    return out + [previous.facts]


def test_babi_answers_are_latest_locations(babi):
    assert len(babi) == 11_000
    assert all(world_state(s.facts)[parse_question(s.question)] == s.target for s in babi)


def test_same_vocabulary(babi, ours):
    def vocabulary(samples):
        facts = {parse_fact(f) for s in samples for f in s.facts}
        return {a for a, _, _ in facts}, {v for _, v, _ in facts}, {loc for _, _, loc in facts}, {s.target for s in samples}

    assert vocabulary(babi) == vocabulary(ours) == (set(ACTORS), set(VERBS), set(LOCATIONS), set(LOCATIONS))
    assert all(QUESTION_RE.fullmatch(s.question) for s in babi + ours)
    assert all(FACT_RE.fullmatch(f) for s in babi for f in s.facts)


def test_verb_frequencies_within_a_few_percent(babi, ours):
    theirs = verb_frequencies([f for story in stories(babi) for f in story])
    mine = verb_frequencies([f for s in ours for f in s.facts])
    for verb in VERBS:
        assert abs(theirs[verb] - mine[verb]) < 0.02, (verb, theirs[verb], mine[verb])


def test_facts_per_question_as_in_babi(babi, ours):
    def shares(samples):
        counts = Counter(len(s.facts) for s in samples)
        return {k: counts[k] / len(samples) for k in sorted(counts)}

    theirs, mine = shares(babi), shares(ours)
    assert set(theirs) == set(mine) == {2, 4, 6, 8, 10}
    assert all(abs(theirs[k] - mine[k]) < 0.03 for k in theirs)


def test_moves_always_change_place_as_in_babi(babi, ours):
    for samples in (stories(babi), [s.facts for s in ours]):
        where: dict[str, str] = {}
        for facts in samples:
            where.clear()
            for fact in facts:
                actor, _, location = parse_fact(fact)
                assert where.get(actor) != location
                where[actor] = location


def test_actor_shares_match(babi, ours):
    def shares(samples):
        actors = Counter(parse_fact(f)[0] for facts in samples for f in facts)
        total = sum(actors.values())
        return np.array([actors[a] / total for a in ACTORS])

    assert np.abs(shares(stories(babi)) - shares([s.facts for s in ours])).max() < 0.03


def test_real_test_stories_hidden_as_babilong_hides_them(prose_dir, tokenizer):
    from rmt_lib.data import read_babi_qa1

    stories = read_babi_qa1(BABI_DIR / QA1_FILES[1])
    assert len(stories) == 1000
    samples = generate_samples("qa1", 50, n_segments=16, background=prose_dir, seed=3, tokenizer=tokenizer,
                               stories=stories)
    for sample, story in zip(samples, stories):
        assert (sample.facts, sample.question, sample.target) == (story.facts, story.question, story.target)
        assert [sample.input[a:b] for a, b in sample.fact_char_spans] == list(story.facts)
    with pytest.raises(ValueError, match="not a bAbI QA1 file"):
        read_babi_qa1(BABI_DIR / "qa2_two-supporting-facts_test.txt")
