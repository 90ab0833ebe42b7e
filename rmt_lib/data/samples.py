"""BABILong-style samples: bAbI QA1 facts hidden at sentence boundaries of background prose.

Facts go where BABILong puts them: at sentence boundaries of the background, wherever the segment
boundaries fall, so that several facts may share a segment and a fact may be cut by a segment boundary
(`placement="sentence"`, the default). `placement="aligned"` keeps every fact inside one segment, for
comparisons only. The facts come from the bAbI QA1 grammar, or from real bAbI stories (`stories`).

Samples are built at the token level, as BABILong does, but exactly: the background is tokenized once per
(source, split, tokenizer) into flat numpy arrays, facts are spliced in between sentences, and the question
ends the last segment. Because background whitespace is single spaces and every piece is space-led,
`encode(sample.input) + encode(" " + sample.question)` reproduces the built token sequence exactly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmt_lib.data.background import load_background
from rmt_lib.data.grammar import (
    ACTORS,
    MAX_FACTS,
    all_fact_sentences,
    fact_sentence,
    qa1_story,
    question_sentence,
    sample_n_facts,
)
from rmt_lib.data.ring import Ring, tokenized_background
from rmt_lib.data.tokenizer import Tokenizer, default_tokenizer

TASKS = ("qa1",)
# "sentence": BABILong's placement (a fact may be cut by a segment boundary); "aligned": never cut.
PLACEMENTS = ("sentence", "aligned")
_PLACEMENT_TRIES = 8  # windows tried before a layout is declared too small for its facts


@dataclass(frozen=True)
class _TokenCache:
    """Token ids of a generated sample, kept so that encode_sample need not re-tokenize (an optimisation:
    used only when the tokenizer and the text are the ones the sample was built with)."""

    fingerprint: str
    input_hash: int
    question: str
    input_ids: np.ndarray  # (n,) int32, the tokens of `input`
    char_starts: np.ndarray  # (n,) int64, where each token starts in `input` (they tile it)


@dataclass(frozen=True)
class Sample:
    """One BABILong-style sample (JSONL: `input`, `question`, `target` + our extras)."""

    input: str  # background prose with the facts inside
    question: str  # "Where is Mary?"
    target: str  # "kitchen"
    facts: tuple[str, ...] = ()
    fact_char_spans: tuple[tuple[int, int], ...] = ()  # [start, end) in `input`
    fact_segments: tuple[int, ...] = ()  # segment holding each fact's last token (empty for user samples)
    _tokens: _TokenCache | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        for name in ("input", "question", "target"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Sample.{name} must be a string, got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "facts", tuple(str(f) for f in self.facts))
        object.__setattr__(self, "fact_char_spans", tuple((int(a), int(b)) for a, b in self.fact_char_spans))
        object.__setattr__(self, "fact_segments", tuple(int(k) for k in self.fact_segments))
        if self.fact_char_spans and len(self.fact_char_spans) != len(self.facts):
            raise ValueError(f"Sample has {len(self.facts)} facts but {len(self.fact_char_spans)} fact_char_spans")
        for a, b in self.fact_char_spans:
            if not 0 <= a <= b <= len(self.input):
                raise ValueError(f"fact_char_span {(a, b)} lies outside the input ({len(self.input)} characters)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "question": self.question,
            "target": self.target,
            "facts": list(self.facts),
            "fact_char_spans": [list(span) for span in self.fact_char_spans],
            "fact_segments": list(self.fact_segments),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        """BABILong layout (`input`, `question`, `target`) plus optional extras; other keys are ignored."""
        missing = [k for k in ("input", "question", "target") if k not in d]
        if missing:
            raise ValueError(f"sample lacks the field(s) {missing} (BABILong layout: input, question, target)")
        empty = [k for k in ("input", "question", "target") if not isinstance(d[k], str) or not d[k].strip()]
        if empty:
            raise ValueError(f"sample field(s) {empty} must be non-empty text (a story, its question, its answer)")
        return cls(
            input=d["input"],
            question=d["question"],
            target=d["target"],
            facts=tuple(d.get("facts") or ()),
            fact_char_spans=tuple(tuple(s) for s in d.get("fact_char_spans") or ()),
            fact_segments=tuple(d.get("fact_segments") or ()),
        )


# ---------------------------------------------------------------------------------------------------------
# Generation.


@dataclass(frozen=True)
class _Layout:
    total: int  # T: tokens of input + question
    segment_size: int
    n_segments: int
    aligned: bool = False  # every fact inside one segment (placement="aligned")

    @property
    def pad(self) -> int:  # left padding that encode_sample will add
        return self.n_segments * self.segment_size - self.total


def generate_samples(
    task: str = "qa1",
    n_samples: int = 1,
    n_segments: int | None = None,
    tokens: int | None = None,
    segment_size: int = 32,
    n_facts: int | None = None,
    split: str = "train",
    background: str | Path | None = None,
    seed: int = 0,
    tokenizer: Tokenizer | None = None,
    progress: bool = False,
    placement: str = "sentence",
    stories: Sequence[Sample] | None = None,
) -> list[Sample]:
    """`n_samples` BABILong samples whose input + question are exactly `n_segments * segment_size` tokens
    (or `tokens`). Same arguments, same samples.

    The facts are a story drawn from the bAbI QA1 grammar (`n_facts=None` draws 2, 4, 6, 8 or 10 facts as
    bAbI QA1 does), or with `stories` (e.g. `read_babi_qa1(path)`), the first `n_samples` of those real
    stories in order, each a question with the statements before it, as BABILong takes them.
    `placement` is "sentence" (BABILong's: facts at sentence boundaries, cut by segment boundaries
    wherever they fall) or "aligned" (no fact is ever cut; for comparison)."""
    layout = _validate(task, n_samples, n_segments, tokens, segment_size, n_facts, seed, placement)
    if stories is not None:
        if n_facts is not None:
            raise ValueError("give n_facts or stories, not both: a real bAbI story brings its own facts")
        if len(stories) < n_samples:
            raise ValueError(f"{n_samples} samples asked for but only {len(stories)} bAbI stories given; "
                             "ask for fewer samples or give a larger bAbI file")
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    builder = _Builder(tokenized_background(load_background(background, split), tokenizer), tokenizer, layout)
    # Fail now, for every seed alike, rather than on the unlucky sample.
    builder.check_room(n_facts if stories is None else max((len(s.facts) for s in stories[:n_samples]), default=1))
    rng = np.random.default_rng(seed)
    indices = range(n_samples)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="generate", unit="sample")
    if stories is not None:
        return [builder.build(rng, list(stories[i].facts), stories[i].question, stories[i].target) for i in indices]
    return [builder.sample(rng, n_facts if n_facts is not None else sample_n_facts(rng)) for _ in indices]


def distractor_tokens(n_samples: int, n_tokens: int, split: str = "train", background: str | Path | None = None,
                      seed: int = 0, tokenizer: Tokenizer | None = None) -> np.ndarray:
    """(n_samples, n_tokens) int64 token ids of background prose alone, each row from a random sentence start:
    distractor text with no fact in it (a training stage's lead-in, `rmt_lib.train.Stage.lead_in`)."""
    if not (_is_int(n_samples) and _is_int(n_tokens)) or n_samples < 1 or n_tokens < 0:
        raise ValueError(f"distractor_tokens takes n_samples >= 1 and n_tokens >= 0, got {n_samples!r}, {n_tokens!r}")
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    ring = tokenized_background(load_background(background, split), tokenizer)
    starts = np.random.default_rng(seed).choice(ring.sentence_starts, size=n_samples)
    return np.stack([ring.ring_ids(int(a), int(a) + n_tokens) for a in starts]).astype(np.int64)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _validate(task, n_samples, n_segments, tokens, segment_size, n_facts, seed, placement) -> _Layout:

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; supported tasks: {', '.join(TASKS)}")
    if not _is_int(n_samples) or n_samples < 0:
        raise ValueError(f"n_samples must be a non-negative int, got {n_samples!r}")
    if not _is_int(segment_size) or segment_size < 1:
        raise ValueError(f"segment_size must be a positive int, got {segment_size!r}")
    if (n_segments is None) == (tokens is None):
        raise ValueError("give exactly one of n_segments (segments of segment_size tokens) or tokens (a total length)")
    if n_segments is not None and (not _is_int(n_segments) or n_segments < 1):
        raise ValueError(f"n_segments must be a positive int, got {n_segments!r}")
    if tokens is not None and (not _is_int(tokens) or tokens < 1):
        raise ValueError(f"tokens must be a positive int, got {tokens!r}")
    if n_facts is not None and (not _is_int(n_facts) or n_facts < 1):
        raise ValueError(f"n_facts must be a positive int (or None for bAbI's 2-10), got {n_facts!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    total = int(tokens) if tokens is not None else int(n_segments) * int(segment_size)
    return _Layout(total, int(segment_size), math.ceil(total / segment_size), aligned=placement == "aligned")


# tokenizer fingerprint -> sentence -> (ids, char starts) of " " + sentence: facts and questions, tokenized once.
_PIECES: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


class _Builder:
    """Builds samples of one layout from one stream; caches the token ids of every fact and question."""

    def __init__(self, stream: Ring, tokenizer: Tokenizer, layout: _Layout):
        self.stream, self.tokenizer, self.layout = stream, tokenizer, layout
        self._pieces = _PIECES.setdefault(tokenizer.fingerprint, {})

    def piece(self, sentence: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, char starts) of " " + sentence."""
        if sentence not in self._pieces:
            ids, offsets = self.tokenizer.encode_with_offsets(" " + sentence)
            self._pieces[sentence] = (ids.astype(np.int32), offsets[:, 0])
        return self._pieces[sentence]

    def check_room(self, n_facts: int | None) -> None:
        """ValueError unless the longest facts and question that the story may draw fit in the layout."""
        lay = self.layout
        longest_fact = max(len(self.piece(f)[0]) for f in all_fact_sentences())
        longest_question = max(len(self.piece(question_sentence(a))[0]) for a in ACTORS)
        most = n_facts if n_facts is not None else MAX_FACTS
        need = most * longest_fact + longest_question
        if need > lay.total or (lay.aligned and longest_fact > lay.segment_size):
            drawn = f"{n_facts} facts" if n_facts is not None else f"n_facts=None draws up to {MAX_FACTS} facts (bAbI QA1), which"
            each = f", each fact (up to {longest_fact} tokens) inside one segment of {lay.segment_size} tokens," if lay.aligned else ""
            raise ValueError(
                f"too few tokens to hold the facts: {drawn} need up to {need} tokens with the question{each} but "
                f"the sample has {lay.total} tokens; ask for at least {math.ceil(need / lay.segment_size)} segments, "
                "fewer facts (n_facts / --facts), or a larger segment size"
            )

    def sample(self, rng: np.random.Generator, n_facts: int) -> Sample:
        """A story of `n_facts` facts from the QA1 grammar, hidden in the background."""
        story, asked, target = qa1_story(rng, n_facts)
        return self.build(rng, [fact_sentence(*f) for f in story], question_sentence(asked), target)

    def build(self, rng: np.random.Generator, facts: list[str], question: str, target: str) -> Sample:
        """These facts, in order, at sentence boundaries of a random window of the background; then the question."""
        lay = self.layout
        fact_pieces = [self.piece(f) for f in facts]
        fact_lens = np.array([len(p[0]) for p in fact_pieces])
        q_ids = self.piece(question)[0]
        n_background = lay.total - len(q_ids) - int(fact_lens.sum())
        if n_background < 0 or (lay.aligned and fact_lens.max() > lay.segment_size):
            raise ValueError(self._too_small(fact_lens, len(q_ids)))
        for _ in range(_PLACEMENT_TRIES):  # a tight layout may fit the word boundaries of another window
            start = self._window_start(rng, n_background)
            positions = self._place(rng, start, n_background, fact_lens)
            if positions is not None:
                break
        else:
            raise ValueError(self._too_small(fact_lens, len(q_ids), placed=False))

        # Splice: background, fact, background, fact, ..., background, question. Every piece is space-led.
        id_parts, text_parts, start_parts, spans = [], [], [], []
        chars, cursor = 0, 0
        for (f_ids, f_starts), fact, p in zip(fact_pieces, facts, positions):
            chars = self._add_background(start + cursor, start + p, id_parts, text_parts, start_parts, chars)
            id_parts.append(f_ids)
            text_parts.append(" " + fact)
            start_parts.append(f_starts + chars)
            spans.append((chars, chars + len(fact)))  # -1 for the leading space, +1 for the piece's own space
            chars += len(fact) + 1
            cursor = p
        self._add_background(start + cursor, start + n_background, id_parts, text_parts, start_parts, chars)
        text = "".join(text_parts)
        assert text[:1] == " ", "every piece is space-led"
        input_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
        char_starts = np.maximum(np.concatenate(start_parts) - 1, 0) if start_parts else np.zeros(0, dtype=np.int64)
        fact_tok = positions + np.concatenate([[0], np.cumsum(fact_lens)[:-1]])
        cache = _TokenCache(self.tokenizer.fingerprint, hash(text[1:]), question, input_ids, char_starts)
        return Sample(
            input=text[1:],
            question=question,
            target=target,
            facts=tuple(facts),
            fact_char_spans=tuple(spans),
            fact_segments=tuple(int(k) for k in (lay.pad + fact_tok + fact_lens - 1) // lay.segment_size),
            _tokens=cache,
        )

    def _add_background(self, a, b, id_parts, text_parts, start_parts, chars) -> int:
        if a == b:
            return chars
        id_parts.append(self.stream.ring_ids(a, b))
        text, starts = self.stream.ring_text(a, b)
        text_parts.append(text)
        start_parts.append(starts + chars)
        return chars + len(text)

    def _window_start(self, rng: np.random.Generator, n_background: int) -> int:
        """A ring position where `n_background` tokens start (a random sentence start, moved forward to the
        next space-led token while the window's end would cut a word so that re-encoding differs)."""
        st = self.stream
        start = int(st.sentence_starts[rng.integers(len(st.sentence_starts))])
        if n_background == 0:
            return start
        for _ in range(10_000):
            if self._cut_ok(start + n_background):
                return start
            start += 1
            while not st.space_led[start % st.n]:
                start += 1
        raise RuntimeError("no window of the background ends where its text re-encodes exactly")

    def _cut_ok(self, end: int) -> bool:
        """Do the tokens before ring position `end`, cut there, re-encode to themselves?"""
        st = self.stream
        if st.space_led[end % st.n]:
            return True  # a piece boundary: always safe
        piece = end - 1
        while not st.space_led[piece % st.n]:
            piece -= 1
        text, _ = st.ring_text(piece, end)
        return self.tokenizer.encode(text) == st.ring_ids(piece, end).tolist()

    def _place(self, rng, start: int, n_background: int, fact_lens: np.ndarray) -> np.ndarray | None:
        """Where (background token offsets, non-decreasing) each fact goes: near random sentence boundaries of
        the window (aligned: never straddling a segment boundary, at word boundaries only where the sentences
        cannot hold the facts, i.e. sentences longer than the segments)."""
        st = self.stream
        # Sentence starts inside the window, as offsets from `start` (wrapping around the ring).
        laps = np.arange(start // st.n, (start + n_background) // st.n + 1, dtype=np.int64)
        ring = (st.sentence_starts[None, :] + laps[:, None] * st.n).ravel()
        inside = ring[(ring > start) & (ring < start + n_background)] - start
        sentences = np.unique(np.concatenate([[0], inside, [n_background]]))
        # The window's end usually cuts a sentence: a fact goes there (just before the question) only when
        # nothing else fits. Wanted places are uniform over the tokens, so facts spread evenly over segments.
        preferred = sentences[:-1] if len(sentences) > 1 else sentences
        wanted = np.sort(rng.integers(0, n_background + 1, size=len(fact_lens)))
        placed = self._fit(sentences, preferred, wanted, fact_lens)
        if placed is None:
            ring = (start + np.arange(n_background, dtype=np.int64)) % st.n
            words = np.concatenate([np.flatnonzero(st.space_led[ring]), [n_background]])
            placed = self._fit(words, preferred, wanted, fact_lens)
        return placed

    def _fit(self, candidates, preferred, wanted, fact_lens) -> np.ndarray | None:
        """A non-decreasing choice p_i in candidates, p_i nearest wanted_i (among `preferred` first when given),
        each fact inside one segment when the layout is aligned; None when no choice exists.

        Fact i's fit depends only on p_i (the tokens of earlier facts are known), so the facts couple only
        through their order: a backward pass finds the latest feasible place of each fact, and a forward pass
        then picks freely between the previous fact and that bound, which never paints itself into a corner."""
        lay = self.layout
        before = np.concatenate([[0], np.cumsum(fact_lens)[:-1]])  # fact tokens ahead of fact i

        def fits(values: np.ndarray, i: int) -> np.ndarray:
            if not lay.aligned:
                return np.ones(values.shape, dtype=bool)
            return (lay.pad + values + before[i]) % lay.segment_size + fact_lens[i] <= lay.segment_size

        latest = np.empty(len(fact_lens), dtype=np.int64)
        bound = candidates[-1]
        for i in range(len(fact_lens) - 1, -1, -1):
            ok = candidates[(candidates <= bound) & fits(candidates, i)]
            if ok.size == 0:
                return None
            latest[i] = bound = ok[-1]
        placed = np.empty(len(fact_lens), dtype=np.int64)
        floor = 0
        for i in range(len(fact_lens)):
            for pool in (preferred, candidates):
                if pool is None:
                    continue
                ok = pool[(pool >= floor) & (pool <= latest[i]) & fits(pool, i)]
                if ok.size:
                    break
            j = int(np.searchsorted(ok, wanted[i]))  # ok[j - 1] < wanted_i <= ok[j]
            after = ok[j] if j < ok.size else None
            before_ = ok[j - 1] if j > 0 else None
            if after is None or (before_ is not None and wanted[i] - before_ < after - wanted[i]):
                after = before_  # the nearer neighbour; ties go forward
            placed[i] = floor = after
        return placed

    def _too_small(self, fact_lens: np.ndarray, question_len: int, placed: bool = True) -> str:
        lay = self.layout
        why = (
            f"{lay.total} tokens are too few for {len(fact_lens)} facts ({int(fact_lens.sum())} tokens, the longest "
            f"{int(fact_lens.max())}) and the question ({question_len} tokens)"
            if placed
            else f"{len(fact_lens)} facts ({int(fact_lens.sum())} tokens, the longest {int(fact_lens.max())}) could "
            f"not be placed at word boundaries of a {lay.total}-token sample"
        )
        each = f", each fact inside one segment of {lay.segment_size} tokens" if lay.aligned else ""
        return f"too few tokens to hold the facts: {why}{each}; ask for more segments (or fewer facts, or a larger segment size)"


