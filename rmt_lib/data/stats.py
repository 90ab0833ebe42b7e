"""What the data is like: lengths in tokens, words and pages; the splits; where facts fall; and the QA1
grammar counted on our samples beside the real bAbI files."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmt_lib import paper
from rmt_lib.data.austen import SPLITS
from rmt_lib.data.background import load_background
from rmt_lib.data.batching import facts_that_fit
from rmt_lib.data.grammar import FACT_RE, LOCATIONS, QA1_FACT_COUNTS, VERBS, parse_question
from rmt_lib.data.io import read_babi
from rmt_lib.data.encoding import encode_sample
from rmt_lib.data.ring import tokenized_background
from rmt_lib.data.samples import Sample, generate_samples
from rmt_lib.data.tokenizer import default_tokenizer
from rmt_lib.display.tables import markdown_table, percent
from rmt_lib.paths import BABI_DIR, Missing
from rmt_lib.stats import wilson_interval

BABI_QA1_FILES = ("qa1_single-supporting-fact_train.txt", "qa1_single-supporting-fact_test.txt")
WORDS_PER_PAGE = 300  # a printed novel's page, for a sense of length


def fact_segment_counts(samples: Sequence[Sample], n_segments: int) -> np.ndarray:
    """(n_segments,) how many facts of `samples` lie in each segment (samples of that length only)."""
    counts = np.zeros(n_segments, dtype=np.int64)
    for i, s in enumerate(samples):
        if not s.fact_segments:
            raise ValueError(f"sample {i} carries no fact_segments (only generated samples do)")
        if max(s.fact_segments) >= n_segments:
            raise ValueError(f"sample {i} has a fact in segment {max(s.fact_segments)}, beyond {n_segments} segments")
        np.add.at(counts, list(s.fact_segments), 1)
    return counts


@dataclass(frozen=True)
class LengthRow:
    n_segments: int
    tokens: int  # n_segments * segment_size
    characters: int  # of one generated sample's input
    words: int
    fact_counts: tuple[int, ...]  # bAbI fact counts drawn at this length (facts_that_fit)
    fact_token_share: float  # share of the tokens that are facts, in that sample
    paper_tokens: int  # the same number of segments at the paper's 512 tokens each


@dataclass(frozen=True)
class LengthTable:
    rows: tuple[LengthRow, ...]
    segment_size: int

    def row(self, n_segments: int) -> LengthRow:
        for r in self.rows:
            if r.n_segments == n_segments:
                return r
        raise ValueError(f"no row for {n_segments} segments; rows: {[r.n_segments for r in self.rows]}")

    def __repr__(self) -> str:
        return f"LengthTable(n_segments={[r.n_segments for r in self.rows]})"

    def _repr_markdown_(self) -> str:
        rows = [(f"{r.n_segments:,}", f"{r.tokens:,}", f"{r.words:,}", f"{r.words / WORDS_PER_PAGE:,.1f}",
                 ", ".join(map(str, r.fact_counts)), percent(r.fact_token_share), f"{r.paper_tokens:,}")
                for r in self.rows]
        return markdown_table(["segments", "tokens", "words (one sample)", f"pages ({WORDS_PER_PAGE} words)",
                          "facts per sample", "fact tokens", "paper's tokens (512 a segment)"], rows)


def length_table(lengths: Sequence[int], *, segment_size: int = 32, split: str = "test", seed: int = 0,
                 tokenizer=None) -> LengthTable:
    """One generated sample per length (`n_facts` as the evaluation draws them): how long it is in tokens,
    words and pages, how many facts it holds, and what the same number of segments is in the paper."""
    rows = []
    for n in lengths:
        fits = facts_that_fit(n, segment_size)
        sample = generate_samples("qa1", n_samples=1, n_segments=n, segment_size=segment_size, split=split,
                                  seed=seed, n_facts=max(fits), tokenizer=tokenizer)[0]
        enc = encode_sample(sample, tokenizer, segment_size)
        fact_tokens = sum(b - a for a, b in enc.fact_token_spans)
        rows.append(LengthRow(n, n * segment_size, len(sample.input), len(sample.input.split()), fits,
                              fact_tokens / (n * segment_size), n * paper.SEGMENT_SIZE))
    return LengthTable(tuple(rows), segment_size)


@dataclass(frozen=True)
class SplitRow:
    split: str
    books: tuple[str, ...]
    sentences: int
    words: int
    tokens: int


@dataclass(frozen=True)
class SplitTable:
    rows: tuple[SplitRow, ...]

    def row(self, split: str) -> SplitRow:
        return next(r for r in self.rows if r.split == split)

    def __repr__(self) -> str:
        return f"SplitTable(splits={[r.split for r in self.rows]})"

    def _repr_markdown_(self) -> str:
        return markdown_table(["split", "books", "sentences", "words", "tokens"],
                         [(r.split, "; ".join(f"*{b}*" for b in r.books), f"{r.sentences:,}", f"{r.words:,}",
                           f"{r.tokens:,}") for r in self.rows])


def book_title(stem: str) -> str:
    """'sense_and_sensibility' -> 'Sense and Sensibility'."""
    words = stem.split("_")
    return " ".join(w if (i and w in ("and", "of", "the")) else w.capitalize() for i, w in enumerate(words))


def split_table(tokenizer=None) -> SplitTable:
    """The Austen background by split: which books, and how many sentences, words and tokens each holds."""
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    rows = []
    for split, stems in SPLITS.items():
        background = load_background(None, split)
        rows.append(SplitRow(split, tuple(book_title(s) for s in stems), len(background.sentences),
                             sum(len(s.split()) for s in background.sentences), tokenized_background(background, tokenizer).n))
    return SplitTable(tuple(rows))


@dataclass(frozen=True)
class GrammarStats:
    """Shares over questions of a QA1 data set: what the generator (or bAbI) produces."""

    name: str
    n_questions: int
    facts_per_question: dict[int, float]  # 2, 4, ..., 10 -> share of questions
    verbs: dict[str, float]  # share of fact sentences
    answers: dict[str, float]  # share of questions
    facts_back: dict[str, float]  # "0", "1", "2", "3", "4+": the answer's fact was the last, second last, ... fact

    def __repr__(self) -> str:
        return f"GrammarStats({self.name!r}, n_questions={self.n_questions})"

    def categories(self) -> dict[str, dict[str, float]]:
        """Every statistic under a display name, keys as strings (for plots and tables)."""
        return {"facts per question": {str(k): v for k, v in self.facts_per_question.items()},
                "verb": dict(self.verbs), "answer": dict(self.answers),
                "answer's fact: how many facts back": dict(self.facts_back)}


FACTS_BACK_BINS = ("0", "1", "2", "3", "4+")


def grammar_stats(samples: Sequence[Sample], name: str) -> GrammarStats:
    """Shares of fact counts, verbs, answers and how far back the answer's fact lies, over `samples`.

    Facts are read from the text with the QA1 grammar (so bAbI stories and our prose samples are
    counted alike); the answer's fact is the last fact about the asked actor.
    """
    if not samples:
        raise ValueError(f"grammar_stats({name!r}) needs at least one sample")
    n_facts, verbs, answers, back = Counter(), Counter(), Counter(), Counter()
    for i, s in enumerate(samples):
        facts = [m.groups() for m in FACT_RE.finditer(s.input)]  # (actor, verb, location)
        actor = parse_question(s.question)
        about = [k for k, (a, _, _) in enumerate(facts) if a == actor]
        if not about:
            raise ValueError(f"{name} sample {i}: no fact mentions {actor}, so {s.question!r} has no answer")
        n_facts[len(facts)] += 1
        verbs.update(v for _, v, _ in facts)
        answers[s.target] += 1
        k = len(facts) - 1 - about[-1]
        back[str(k) if k < 4 else "4+"] += 1
    n, n_verbs = len(samples), sum(verbs.values())
    counts = sorted(set(QA1_FACT_COUNTS) | set(n_facts))
    return GrammarStats(
        name=name, n_questions=n,
        facts_per_question={k: n_facts[k] / n for k in counts},
        verbs={v: verbs[v] / n_verbs for v in VERBS},
        answers={loc: answers[loc] / n for loc in LOCATIONS},
        facts_back={b: back[b] / n for b in FACTS_BACK_BINS})


def babi_stats(babi_dir: str | Path | None = None) -> GrammarStats | Missing:
    """`grammar_stats` of the real bAbI QA1 questions (en-10k train + test) where the files exist.

    The bAbI files (CC BY 3.0) are never copied into this project; where they are absent (`../shared/babi`,
    or `$RMT_BABI_DIR`) this returns a `Missing` note.
    """
    folder = Path(babi_dir) if babi_dir is not None else BABI_DIR
    files = [folder / name for name in BABI_QA1_FILES]
    absent = [f for f in files if not f.is_file()]
    if absent:
        where = "../shared/babi" if folder == BABI_DIR and "RMT_BABI_DIR" not in os.environ else "$RMT_BABI_DIR"
        return Missing("the original bAbI QA1 files", f"{where}/{absent[0].name}",
                       "put bAbI's en-10k QA1 files in ../shared/babi (or point $RMT_BABI_DIR at them)")
    samples = [s for f in files for s in read_babi(f)]
    return grammar_stats(samples, "bAbI QA1 (en-10k)")


@dataclass(frozen=True)
class GrammarComparison:
    ours: GrammarStats
    theirs: GrammarStats | Missing

    def largest_difference(self) -> tuple[str, str, float] | None:
        """(statistic, value, difference in share, ours minus theirs) with the largest absolute difference."""
        if isinstance(self.theirs, Missing):
            return None
        best = None
        theirs = self.theirs.categories()
        for cat, values in self.ours.categories().items():
            for key, v in values.items():
                d = v - theirs[cat].get(key, 0.0)
                if best is None or abs(d) > abs(best[2]):
                    best = (cat, key, d)
        return best

    def summary(self) -> str:
        """One or two sentences for the prose (glued as Markdown): how close the two are, and where not."""
        if isinstance(self.theirs, Missing):
            return (f"The bAbI files are not on this machine (`{self.theirs.path}`), so only our own statistics "
                    f"are shown, over {self.ours.n_questions:,} generated questions.")
        theirs = self.theirs.categories()
        recency = "answer's fact: how many facts back"
        gaps = [abs(v - theirs[cat].get(k, 0.0)) for cat, values in self.ours.categories().items() if cat != recency
                for k, v in values.items()]
        back = {k: v - theirs[recency].get(k, 0.0) for k, v in self.ours.categories()[recency].items()}
        k_max = max(back, key=lambda k: abs(back[k]))
        return (f"Over {self.ours.n_questions:,} of our questions and {self.theirs.n_questions:,} of bAbI's, the "
                f"shares of fact counts, verbs and answers agree within {100 * max(gaps):.1f} percentage points. "
                f"The largest gap is in how far back the answer's fact lies: {k_max} facts back holds "
                f"{100 * self.ours.facts_back[k_max]:.1f}% of our questions and "
                f"{100 * self.theirs.facts_back[k_max]:.1f}% of bAbI's.")

    def __repr__(self) -> str:
        other = self.theirs.name if isinstance(self.theirs, GrammarStats) else "absent"
        return f"GrammarComparison(ours={self.ours.name!r}, theirs={other!r})"

    def _repr_markdown_(self) -> str:
        have = isinstance(self.theirs, GrammarStats)
        theirs = self.theirs.categories() if have else {}
        rows = []
        for cat, values in self.ours.categories().items():
            for key, v in values.items():
                t = theirs[cat].get(key, 0.0) if have else None
                rows.append((cat, key, f"{100 * v:.1f}%", "—" if t is None else f"{100 * t:.1f}%",
                             "—" if t is None else f"{100 * (v - t):+.1f}"))
        header = ["statistic", "value", f"ours (n={self.ours.n_questions:,})",
                  f"bAbI (n={self.theirs.n_questions:,})" if have else "bAbI (files absent)", "difference (points)"]
        return markdown_table(header, rows)


def grammar_comparison(ours: GrammarStats, theirs: GrammarStats | Missing) -> GrammarComparison:
    return GrammarComparison(ours, theirs)


@dataclass(frozen=True)
class CutFacts:
    """How many facts a segment boundary cuts in two, at one segment size."""

    segment_size: int
    n_facts: int
    n_cut: int

    @property
    def share(self) -> float:
        return self.n_cut / self.n_facts

    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of the share."""
        return wilson_interval(self.n_cut, self.n_facts)

    def __repr__(self) -> str:
        return f"CutFacts(segment_size={self.segment_size}, {self.n_cut} of {self.n_facts} facts cut)"


def cut_facts(samples: Sequence[Sample], segment_size: int, tokenizer=None) -> CutFacts:
    """Count the facts of `samples` whose tokens a segment boundary splits (`segment_size` tokens a segment)."""
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    n = cut = 0
    for sample in samples:
        for t0, t1 in encode_sample(sample, tokenizer, segment_size).fact_token_spans:
            n += 1
            cut += t0 // segment_size != (t1 - 1) // segment_size
    if n == 0:
        raise ValueError("cut_facts needs samples with facts")
    return CutFacts(segment_size, n, cut)
