"""bAbI task 1 ("single supporting fact") grammar: actors move between locations; "Where is X?".

Counted on the real bAbI en-10k QA1 files: 4 actors, 6 locations, 5 verbs used about 20% each, an actor never
"moves" to the place where they already are, each story asks after 2, 4, 6, 8 and 10 facts (20% each),
and the answer is the asked actor's latest location.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

ACTORS: tuple[str, ...] = ("Daniel", "John", "Mary", "Sandra")
LOCATIONS: tuple[str, ...] = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
VERBS: tuple[str, ...] = ("moved to", "went to", "went back to", "journeyed to", "travelled to")
QA1_FACT_COUNTS: tuple[int, ...] = (2, 4, 6, 8, 10)  # bAbI QA1 asks after this many facts, 20% each
MAX_FACTS = 10

# QA2 object sentences: recognised (so that world_state can skip them), never generated.
OBJECTS: tuple[str, ...] = ("apple", "football", "milk")
OBJECT_VERBS: tuple[str, ...] = ("got", "grabbed", "picked up", "took", "discarded", "dropped", "put down", "left")

_ALT = "|".join
FACT_RE = re.compile(rf"\b({_ALT(ACTORS)}) ({_ALT(VERBS)}) the ({_ALT(LOCATIONS)})\.")
QUESTION_RE = re.compile(rf"Where is ({_ALT(ACTORS)})\?")
_OBJECT_RE = re.compile(rf"({_ALT(ACTORS)}) ({_ALT(OBJECT_VERBS)}) the ({_ALT(OBJECTS)})(?: there)?\.")


def fact_sentence(actor: str, verb: str, location: str) -> str:
    """'Mary moved to the bathroom.'"""
    return f"{actor} {verb} the {location}."


def question_sentence(actor: str) -> str:
    """'Where is Mary?'"""
    return f"Where is {actor}?"


def all_fact_sentences() -> list[str]:
    """Every QA1 fact sentence (4 actors x 5 verbs x 6 locations = 120), in a fixed order."""
    return [fact_sentence(a, v, loc) for a in ACTORS for v in VERBS for loc in LOCATIONS]


def parse_fact(sentence: str) -> tuple[str, str, str]:
    """(actor, verb, location) of a QA1 fact sentence; ValueError when it is not one."""
    m = FACT_RE.fullmatch(sentence.strip())
    if m is None:
        raise ValueError(f"not a bAbI QA1 fact sentence: {sentence!r} (expected e.g. 'Mary moved to the bathroom.')")
    return m.group(1), m.group(2), m.group(3)


def parse_question(question: str) -> str:
    """The actor asked about in 'Where is X?'; ValueError when the question is not a QA1 question."""
    m = QUESTION_RE.fullmatch(question.strip())
    if m is None:
        raise ValueError(f"not a bAbI QA1 question: {question!r} (expected 'Where is <actor>?' with actor in {ACTORS})")
    return m.group(1)


def find_facts(text: str) -> list[tuple[int, int]]:
    """[start, end) character spans of every QA1 fact sentence in `text`, in order of appearance."""
    return [m.span() for m in FACT_RE.finditer(text)]


def world_state(facts: Iterable[str]) -> dict[str, str]:
    """actor -> latest location after the facts, in order. QA2 object sentences are skipped; other text raises."""
    state: dict[str, str] = {}
    for fact in facts:
        m = FACT_RE.fullmatch(fact.strip())
        if m is not None:
            state[m.group(1)] = m.group(3)
        elif _OBJECT_RE.fullmatch(fact.strip()) is None:
            raise ValueError(f"world_state: {fact!r} is not a bAbI fact sentence")
    return state


def sample_n_facts(rng: np.random.Generator) -> int:
    """Number of facts before a question, drawn as bAbI QA1 does: 2, 4, 6, 8 or 10 with equal odds."""
    return int(QA1_FACT_COUNTS[rng.integers(len(QA1_FACT_COUNTS))])


def qa1_story(rng: np.random.Generator, n_facts: int) -> tuple[list[tuple[str, str, str]], str, str]:
    """`n_facts` (actor, verb, location) facts, then the asked actor and the answer.

    Actors and verbs are uniform; a move always goes somewhere new (as in bAbI); the question asks after an
    actor mentioned in the story, uniformly among them, so the supporting fact is not always the last one.
    """
    if not isinstance(n_facts, int) or not 1 <= n_facts:
        raise ValueError(f"n_facts must be a positive int, got {n_facts!r}")
    where: dict[str, str] = {}
    facts = []
    for _ in range(n_facts):
        actor = ACTORS[rng.integers(len(ACTORS))]
        choices = [loc for loc in LOCATIONS if loc != where.get(actor)]
        location = choices[rng.integers(len(choices))]
        verb = VERBS[rng.integers(len(VERBS))]
        where[actor] = location
        facts.append((actor, verb, location))
    mentioned = sorted(where, key=ACTORS.index)
    asked = mentioned[rng.integers(len(mentioned))]
    return facts, asked, where[asked]


def verb_frequencies(facts: Sequence[str]) -> dict[str, float]:
    """Share of each verb among QA1 fact sentences (conformance checks against real bAbI)."""
    counts = dict.fromkeys(VERBS, 0)
    for fact in facts:
        counts[parse_fact(fact)[1]] += 1
    total = max(1, sum(counts.values()))
    return {verb: count / total for verb, count in counts.items()}
