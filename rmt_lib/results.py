"""Tables for the book's chapters 2-5: data in, small frozen dataclasses out.

Each table shows itself in a notebook (Markdown, or HTML for a sample) with a short, rounded text
repr, so nbval compares stable text. Nothing here plots (`rmt_lib.plots_training` does) and nothing
writes a file.

* Data (chapter 2): `sample_view` (one sample, segment by segment, facts highlighted), `length_table`,
  `split_table`, `fact_segment_counts`, and the QA1 grammar against real bAbI (`grammar_stats`,
  `babi_stats`, `grammar_comparison`).
* Model (chapter 3): `parameter_table`, `forward_trace`.
* Training (chapter 4): `read_training_log`, `committed_training_log`, `training_folder`.
* Evaluation (chapter 5): `EVAL_BUDGETS`, `accuracy_curve`, `read_evaluation`, `committed_evaluation`,
  `accuracy_comparison`, `load_model_or_missing`.

Artefacts that another step writes later (the shipped training log, the committed evaluation results,
the baseline model) may be absent: the loaders then return a `Missing`, which displays as a note that
names the file and the command that makes it, so a chapter degrades instead of crashing.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rmt_lib import paths
from rmt_lib.batch import facts_that_fit
from rmt_lib.data import LOCATIONS, VERBS, EncodedSample, Sample
from rmt_lib.data.grammar import FACT_RE, QA1_FACT_COUNTS, find_facts, parse_question

Budget = Literal["ci", "full"]
BUDGETS: tuple[str, ...] = ("ci", "full")
BASELINE_MODEL_DIR = paths.DATA_DIR / "baseline"  # the no-memory baseline (PRESETS["baseline"])
BABI_DIR = Path(os.environ.get("RMT_BABI_DIR", paths.REPO_ROOT.parent / "shared" / "babi"))
BABI_QA1_FILES = ("qa1_single-supporting-fact_train.txt", "qa1_single-supporting-fact_test.txt")
PAPER_SEGMENT_SIZE = 512  # the paper's segments (GPT-2); ours are RMTConfig.segment_size
PAPER_TRAINED_LENGTH = 32  # the paper's curriculum ends at 32 segments (its "16k")
WORDS_PER_PAGE = 300  # a printed novel's page, for a sense of length


def check_budget(budget: str) -> Budget:
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r} (the book's parameters cell)")
    return budget  # type: ignore[return-value]


def _relative(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (outputs must not carry absolute paths)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(paths.REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return path.name if path.is_absolute() else path.as_posix()


def _percent(share: float) -> str:
    """A share as a percentage: one decimal, two below 1% (so that a small share does not read as 0.0%)."""
    return f"{100 * share:.{1 if share >= 0.01 else 2}f}%"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]  # a bare | splits a cell
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Something a later step makes, not there yet
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """An artefact that is not there (yet): what it is, where it belongs, and the command that makes it."""

    what: str  # "the shipped model's training log"
    path: str  # relative to the repository
    how: str  # the command (or step) that writes it

    available = False

    def __str__(self) -> str:
        return f"Not found here: {self.what} ({self.path}). It is made by: {self.how}"

    def __repr__(self) -> str:
        return f"Missing({self.path!r})"

    def summary(self) -> str:
        """One sentence for the prose (glued as Markdown)."""
        return f"*Not available yet:* {self.what} (`{self.path}`) is not there."

    def _repr_markdown_(self) -> str:
        return (f"> **Note.** Not found here: {self.what} (`{self.path}`), so this result is left out. "
                f"It is made by `{self.how}`; re-run this chapter afterwards.")


# ----------------------------------------------------------------------------------------------
# Chapter 2: data
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SampleView:
    """One sample as the model reads it: segment by segment, facts highlighted, the question last."""

    sample: Sample
    encoded: EncodedSample

    def __repr__(self) -> str:
        return f"SampleView(n_segments={self.encoded.n_segments}, facts={len(self.sample.facts)})"

    def _repr_html_(self) -> str:
        from rmt_lib.widgets import FACT_HIGHLIGHT  # the scrubbers' colour, so facts look the same everywhere

        s, e = self.sample, self.encoded
        spans = s.fact_char_spans or tuple(find_facts(s.input))  # user samples: by the grammar, as encode_sample
        pad = int((~e.attention_mask).sum())
        blocks = []
        for k, (a, b) in enumerate(e.segment_char_spans):
            pieces, pos = [], a
            for fa, fb in sorted(spans):
                fa, fb = max(fa, pos), min(fb, b)
                if fa < fb:
                    pieces += [html.escape(s.input[pos:fa]),
                               f'<mark class="rmt-fact" style="background:{FACT_HIGHLIGHT}">'
                               f"{html.escape(s.input[fa:fb])}</mark>"]
                    pos = fb
            pieces.append(html.escape(s.input[pos:b]))
            text = "".join(pieces)
            if k == 0 and pad:
                text = f'<span style="color:#999">[{pad} padding tokens]</span> ' + text
            roles = (["fact"] if k in e.fact_segments else []) + (["question"] if k == e.n_segments - 1 else [])
            if k == e.n_segments - 1:
                text += f' <b class="rmt-question">{html.escape(s.question)}</b>'
            colour = "#d62728" if "fact" in roles else "#111" if roles else "#7f7f7f"
            label = f"segment {k}" + (f" ({', '.join(roles)})" if roles else "")
            blocks.append(
                f'<div style="display:flex;gap:8px;border-top:1px solid #ddd;padding:2px 0">'
                f'<div style="flex:0 0 10em;color:{colour};font-size:85%">{label}</div>'
                f'<div style="font-family:serif;line-height:1.4">{text}</div></div>')
        answer = f'<p style="margin:4px 0">answer: <b>{html.escape(s.target)}</b></p>'
        return f'<div class="rmt-sample">{"".join(blocks)}{answer}</div>'


def sample_view(sample: Sample, encoded: EncodedSample) -> SampleView:
    """`sample` with its `encode_sample` result, for display (HTML)."""
    if len(encoded.segment_char_spans) != encoded.n_segments:
        raise ValueError("encoded does not belong to a whole sample: segment_char_spans and n_segments disagree")
    if encoded.segment_char_spans and encoded.segment_char_spans[-1][1] != len(sample.input):
        raise ValueError("encoded was made from another sample (its segments do not end where this input does); "
                         "pass encode_sample(sample, ...)")
    return SampleView(sample, encoded)


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
                 ", ".join(map(str, r.fact_counts)), _percent(r.fact_token_share), f"{r.paper_tokens:,}")
                for r in self.rows]
        return _md_table(["segments", "tokens", "words (one sample)", f"pages ({WORDS_PER_PAGE} words)",
                          "facts per sample", "fact tokens", "paper's tokens (512 a segment)"], rows)


def length_table(lengths: Sequence[int], *, segment_size: int = 32, split: str = "test", seed: int = 0,
                 tokenizer=None) -> LengthTable:
    """One generated sample per length (`n_facts` as the evaluation draws them): how long it is in tokens,
    words and pages, how many facts it holds, and what the same number of segments is in the paper."""
    from rmt_lib.data import encode_sample, generate_samples

    rows = []
    for n in lengths:
        fits = facts_that_fit(n, segment_size)
        sample = generate_samples("qa1", n_samples=1, n_segments=n, segment_size=segment_size, split=split,
                                  seed=seed, n_facts=max(fits), tokenizer=tokenizer)[0]
        enc = encode_sample(sample, tokenizer, segment_size)
        fact_tokens = sum(b - a for a, b in enc.fact_token_spans)
        rows.append(LengthRow(n, n * segment_size, len(sample.input), len(sample.input.split()), fits,
                              fact_tokens / (n * segment_size), n * PAPER_SEGMENT_SIZE))
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
        return _md_table(["split", "books", "sentences", "words", "tokens"],
                         [(r.split, "; ".join(f"*{b}*" for b in r.books), f"{r.sentences:,}", f"{r.words:,}",
                           f"{r.tokens:,}") for r in self.rows])


def book_title(stem: str) -> str:
    """'sense_and_sensibility' -> 'Sense and Sensibility'."""
    words = stem.split("_")
    return " ".join(w if (i and w in ("and", "of", "the")) else w.capitalize() for i, w in enumerate(words))


def split_table(tokenizer=None) -> SplitTable:
    """The Austen background by split: which books, and how many sentences, words and tokens each holds."""
    from rmt_lib.data import load_background
    from rmt_lib.data.austen import SPLITS
    from rmt_lib.data.samples import _stream  # the token ring the generator draws from (cached on disk)
    from rmt_lib.data.tokenizer import default_tokenizer

    tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
    rows = []
    for split, stems in SPLITS.items():
        background = load_background(None, split)
        rows.append(SplitRow(split, tuple(book_title(s) for s in stems), len(background.sentences),
                             sum(len(s.split()) for s in background.sentences), _stream(background, tokenizer).n))
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
    from rmt_lib.data import read_babi

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
        return _md_table(header, rows)


def grammar_comparison(ours: GrammarStats, theirs: GrammarStats | Missing) -> GrammarComparison:
    return GrammarComparison(ours, theirs)


# ----------------------------------------------------------------------------------------------
# Chapter 3: model
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterGroup:
    name: str
    count: int
    what: str


@dataclass(frozen=True)
class ParameterTable:
    groups: tuple[ParameterGroup, ...]
    total: int

    def count(self, name: str) -> int:
        for g in self.groups:
            if g.name == name:
                return g.count
        raise ValueError(f"no parameter group {name!r}; groups: {[g.name for g in self.groups]}")

    def __repr__(self) -> str:
        return f"ParameterTable(total={self.total:,})"

    def _repr_markdown_(self) -> str:
        rows = [(g.name, f"{g.count:,}", f"{100 * g.count / self.total:.1f}%", g.what) for g in self.groups]
        rows.append(("**total**", f"**{self.total:,}**", "100%", "each tensor counted once (tied ones too)"))
        return _md_table(["part", "parameters", "share", "what it is"], rows)


def parameter_table(model) -> ParameterTable:
    """The model's parameters by part: token embeddings, transformer blocks, the rest of the backbone,
    the initial memory, the answer and auxiliary heads. Tied tensors (input embeddings = LM head) count once."""
    cfg = model.config
    backbone = model.backbone
    base = backbone.base_model
    named = dict(model.named_parameters())  # deduplicated: a tied tensor appears once
    owner: dict[int, str] = {}

    def claim(group: str, params) -> None:
        for p in params:
            owner.setdefault(id(p), group)

    embeddings = backbone.get_input_embeddings()
    output = backbone.get_output_embeddings()
    tied = output is not None and output.weight is embeddings.weight
    blocks = next((m for m in base.children() if hasattr(m, "__len__") and len(m) == cfg.num_layers), None)
    if model.cell.initial_memory is not None:
        claim("initial memory", [model.cell.initial_memory])
    claim("token embeddings", embeddings.parameters())
    if blocks is not None:
        claim("transformer blocks", blocks.parameters())
    if model.answer_head is not None:
        claim("answer head", model.answer_head.parameters())
    if model.aux_head is not None:
        claim("auxiliary head", model.aux_head.parameters())
    if output is not None and not tied:
        claim("LM head", output.parameters())
    claim("other backbone", backbone.parameters())  # norms, position embeddings: whatever is left
    counts: Counter[str] = Counter()
    for p in named.values():
        counts[owner[id(p)]] += p.numel()
    per_block = counts["transformer blocks"] // max(cfg.num_layers, 1)
    what = {
        "token embeddings": f"{cfg.vocab_size:,} tokens x {cfg.hidden_size}"
                            + (" (shared with the LM head)" if tied else ""),
        "transformer blocks": f"{cfg.num_layers} blocks of {per_block:,} (attention, MLP, norms)",
        "other backbone": "norms (and position embeddings, where the backbone has them)",
        "initial memory": f"{cfg.num_memory_tokens} memory vectors x {cfg.hidden_size}: the memory state before segment 0",
        "answer head": f"{cfg.hidden_size} -> {cfg.num_answers} answers (QA1's locations)",
        "auxiliary head": f"{cfg.hidden_size} -> {cfg.num_aux_actors} actors x {cfg.num_answers + 1} (training aid)",
        "LM head": "its own output projection (not tied)",
    }
    order = ["token embeddings", "transformer blocks", "other backbone", "initial memory", "answer head",
             "auxiliary head", "LM head"]
    groups = tuple(ParameterGroup(name, counts[name], what[name]) for name in order if counts[name])
    total = sum(counts.values())
    if total != model.num_parameters():
        raise AssertionError(f"parameter groups sum to {total:,}, the model has {model.num_parameters():,}")
    return ParameterTable(groups, total)


@dataclass(frozen=True)
class TensorShape:
    name: str
    shape: tuple[int, ...]
    meaning: str


@dataclass(frozen=True, eq=False)
class ForwardTrace:
    """The shapes of one real forward pass, its answer, and the memory states it went through."""

    rows: tuple[TensorShape, ...]
    prediction: str
    target: str
    memory_states: np.ndarray  # (n_segments + 1, M, D); [0] is the initial memory
    n_segments: int

    def shape(self, name: str) -> tuple[int, ...]:
        for r in self.rows:
            if r.name == name:
                return r.shape
        raise ValueError(f"no tensor {name!r}; tensors: {[r.name for r in self.rows]}")

    def __repr__(self) -> str:
        return f"ForwardTrace(n_segments={self.n_segments}, prediction={self.prediction!r}, target={self.target!r})"

    def _repr_markdown_(self) -> str:
        return _md_table(["tensor", "shape", "what it is"],
                         [(f"`{r.name}`", "(" + ", ".join(map(str, r.shape)) + ")", r.meaning) for r in self.rows])


def forward_trace(model, encoded: EncodedSample) -> ForwardTrace:
    """Run `model` on one encoded sample (batch of one) and record the shape of every tensor on the way:
    the whole input, one segment, the backbone's [read memory | segment | write memory] input, the new
    memory state, the answer scores, the stacked memory states and one attention map."""
    import torch

    from rmt_lib.model.memory_cell import CellOutput

    cfg = model.config
    L, M, D = cfg.segment_size, cfg.num_memory_tokens, cfg.hidden_size
    seen: dict[str, tuple[int, ...]] = {}

    def before_backbone(_module, _args, kwargs):  # the first segment's backbone input
        seen.setdefault("backbone_in", tuple(kwargs["inputs_embeds"].shape))

    def after_cell(_module, args, out: CellOutput):
        # The first segment's cell has its hidden states: the pre-hook above turns the stream off (a hooked
        # module must run), and without the stream a cell never skips them (memory_only).
        if "cell_ids" not in seen:
            seen["cell_ids"] = tuple(args[0].shape)
            seen["cell_hidden"] = tuple(out.hidden.shape)
            if out.memory is not None:
                seen["cell_memory"] = tuple(out.memory.shape)

    ids = torch.from_numpy(encoded.input_ids[None])  # (1, T)
    mask = None if encoded.attention_mask.all() else torch.from_numpy(encoded.attention_mask[None])  # (1, T)
    hooks = [model.backbone.base_model.register_forward_pre_hook(before_backbone, with_kwargs=True),
             model.cell.register_forward_hook(after_cell)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(ids, attention_mask=mask, capture_memory=cfg.recurrent, capture_attention=[-1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    S = encoded.n_segments
    last = S - 1
    rows = [
        TensorShape("input_ids", tuple(ids.shape), f"the whole sample: {S} segments x {L} tokens, left-padded"),
        TensorShape("segment ids", seen["cell_ids"], "one segment's tokens, the slice one backbone call reads"),
    ]
    if cfg.recurrent:
        rows.append(TensorShape("read memory", (1, M, D), "the memory state the segment starts from "
                                "(segment 0: the trained initial memory)"))
    rows += [
        TensorShape("backbone input", seen["backbone_in"],
                    f"[read memory | segment | write memory] embeddings: {M} + {L} + {M} positions"
                    if cfg.recurrent else f"the segment's {L} token embeddings (no memory)"),
        TensorShape("segment hidden states", seen["cell_hidden"], "the backbone's outputs at the segment's tokens"),
    ]
    if cfg.recurrent:
        rows.append(TensorShape("new memory state", seen["cell_memory"],
                                "outputs at the write-memory positions: the next segment's read memory"))
        rows.append(TensorShape("memory_states", tuple(out.memory_states.shape),
                                f"the initial memory and the memory after each of the {S} segments"))
    rows.append(TensorShape(f"attentions[{last}]", tuple(out.attentions[last].shape),
                            "the last segment's attention: (batch, layers, heads, query position, key position)"))
    rows.append(TensorShape("logits", tuple(out.logits.shape), f"scores of the {cfg.num_answers} candidate answers, "
                            "read at the question's last token"))
    if out.aux_logits is not None:
        rows.append(TensorShape("aux_logits", tuple(out.aux_logits.shape),
                                "every actor's location (or 'not seen'): the training aid"))
    states = out.memory_states[0].numpy() if out.memory_states is not None else np.zeros((0, M, D), np.float32)
    return ForwardTrace(tuple(rows), LOCATIONS[int(out.logits[0].argmax())], LOCATIONS[encoded.target_index],
                        states, S)


# ----------------------------------------------------------------------------------------------
# Chapter 4: training
# ----------------------------------------------------------------------------------------------

TRAINING_PRESET: dict[str, str] = {"ci": "ci", "full": "default"}  # budget -> rmt_lib.train.PRESETS key
FULL_TRAINING_DIR = paths.REPO_ROOT / "runs" / "book-training"  # kept, so an interrupted full run resumes


@contextmanager
def training_folder(budget: str) -> Iterator[Path]:
    """Where the training chapter's run goes. ci: a temporary folder, removed afterwards (nothing under
    data/ changes); full: runs/book-training, kept so that an interrupted run resumes."""
    if check_budget(budget) == "full":
        FULL_TRAINING_DIR.mkdir(parents=True, exist_ok=True)
        yield FULL_TRAINING_DIR
        return
    with tempfile.TemporaryDirectory(prefix="rmt-book-training-") as folder:
        yield Path(folder)


@dataclass(frozen=True, eq=False)
class StageLog:
    """One curriculum stage of a training log."""

    stage: int
    n_segments: int
    steps: np.ndarray  # (n,) step within the stage, 1-based
    loss: np.ndarray  # (n,) answer loss of each training batch
    accuracy: np.ndarray  # (n,) accuracy of each training batch
    val_steps: np.ndarray  # (k,) steps at which validation ran
    val_accuracy: np.ndarray  # (k,)
    best_val_accuracy: float
    seconds: float  # wall time of the stage (training, validation, checkpoints)
    finished: bool  # the log holds the stage's closing record

    @property
    def n_steps(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else 0


@dataclass(frozen=True, eq=False)
class TrainingLog:
    stages: tuple[StageLog, ...]
    source: str

    @property
    def total_seconds(self) -> float:
        return float(sum(s.seconds for s in self.stages))

    @property
    def total_steps(self) -> int:
        return sum(s.n_steps for s in self.stages)

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.stages)

    def __repr__(self) -> str:
        return f"TrainingLog({self.source!r}, stages={[s.n_segments for s in self.stages]})"

    def summary(self) -> str:
        """One or two sentences for the prose (glued as Markdown)."""
        last = self.stages[-1]
        path = " → ".join(str(s.n_segments) for s in self.stages)
        text = (f"{self.total_steps:,} training steps in {self.total_seconds / 60:.1f} minutes of wall time, through "
                f"{len(self.stages)} stage(s) of {path} segments; the best validation accuracy of the last stage "
                f"({last.n_segments} segments) was {last.best_val_accuracy:.3f}.")
        if not last.finished:
            text += " The last stage has no closing record: the run had not finished when this log was read."
        return text

    def _repr_markdown_(self) -> str:
        rows = [(s.stage + 1, s.n_segments, f"{s.n_steps:,}", f"{s.best_val_accuracy:.3f}", f"{s.seconds / 60:.1f}",
                 "yes" if s.finished else "**no (still running or stopped)**") for s in self.stages]
        rows.append(("all", "", f"{self.total_steps:,}", "", f"{self.total_seconds / 60:.1f}", ""))
        return _md_table(["stage", "segments", "steps", "best validation accuracy", "wall time (min)", "finished"], rows)


@dataclass(frozen=True)
class CurriculumTable:
    """The stages of a `rmt_lib.train.TrainConfig`, for display."""

    config: Any  # TrainConfig
    name: str

    def __repr__(self) -> str:
        return f"CurriculumTable({self.name!r}, stages={[s.n_segments for s in self.config.stages]})"

    def _repr_markdown_(self) -> str:
        L = self.config.model.segment_size
        rows = [(k + 1, s.n_segments, f"{s.n_segments * L:,}", f"{s.max_steps:,}", s.batch_size,
                 f"{_stage_lr(self.config, s):.1e}") for k, s in enumerate(self.config.stages)]
        return _md_table(["stage", "segments", "tokens per sample", "at most steps", "batch size", "peak learning rate"],
                         rows)


def _stage_lr(config, stage) -> float:
    """A stage's peak learning rate: its own where it sets one, else the config's."""
    own = getattr(stage, "lr", None)
    return float(own if own is not None else config.lr)


def curriculum_table(config, name: str) -> CurriculumTable:
    """The curriculum of a training preset as a table (stage, segments, tokens, step budget, batch size)."""
    if not getattr(config, "stages", None):
        raise ValueError("curriculum_table needs a rmt_lib.train.TrainConfig (it has no stages)")
    return CurriculumTable(config, name)


def answer_head_prose(config) -> str:
    """How a model with this RMTConfig answers, for the prose (glued as Markdown)."""
    if config.answer_head == "lm":
        return (f"by the backbone's own language-model head, read at the tokens of the {config.num_answers} "
                "candidate locations: the paper's LM loss on a one-token answer")
    return f"by a small classifier over the {config.num_answers} candidate locations"


def beyond_paper(config) -> str:
    """The curriculum's lengths past the paper's (32 segments), for the prose (glued as Markdown): "64 and 96"."""
    lengths = [str(s.n_segments) for s in config.stages if s.n_segments > PAPER_TRAINED_LENGTH]
    if not lengths:
        return f"no length past {PAPER_TRAINED_LENGTH}"
    return lengths[0] if len(lengths) == 1 else ", ".join(lengths[:-1]) + " and " + lengths[-1]


def read_training_log(path: str | Path) -> TrainingLog:
    """A `rmt_lib.train` metrics.jsonl, grouped by curriculum stage. A stage without its closing record
    (a run still going, or stopped) is kept and marked unfinished; records of other kinds are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {_relative(path)}; `python -m rmt_lib train` writes one")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record["kind"] not in ("train", "stage"):
                continue  # a kind of record this reader does not plot (a later version's addition)
            int(record["stage"]), int(record["n_segments"]), float(record["elapsed"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{_relative(path)}:{number}: not a training-log record ({type(err).__name__}: {err})") from None
        records.append(record)
    if not records:
        raise ValueError(f"{_relative(path)} holds no records")
    stages, start = [], 0.0
    for stage in sorted({r["stage"] for r in records}):
        train = [r for r in records if r["stage"] == stage and r["kind"] == "train"]
        closing = [r for r in records if r["stage"] == stage and r["kind"] == "stage"]
        val = [r for r in train if "val_accuracy" in r]
        end = closing[-1]["elapsed"] if closing else (train[-1]["elapsed"] if train else start)
        best = closing[-1]["best_val_accuracy"] if closing else max((r["val_accuracy"] for r in val), default=float("nan"))
        n_segments = (closing or train)[0]["n_segments"]
        stages.append(StageLog(
            stage=stage, n_segments=n_segments,
            steps=np.array([r["step"] for r in train], dtype=np.int64),
            loss=np.array([r["loss"] for r in train], dtype=np.float64),
            accuracy=np.array([r["accuracy"] for r in train], dtype=np.float64),
            val_steps=np.array([r["step"] for r in val], dtype=np.int64),
            val_accuracy=np.array([r["val_accuracy"] for r in val], dtype=np.float64),
            best_val_accuracy=float(best), seconds=float(end - start), finished=bool(closing)))
        start = end
    return TrainingLog(tuple(stages), _relative(path))


def committed_training_log(model_dir: str | Path | None = None) -> TrainingLog | Missing:
    """The shipped model's training log (`data/model/metrics.jsonl`), or a note when it is absent."""
    folder = Path(model_dir) if model_dir is not None else paths.SHIPPED_MODEL_DIR
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return Missing("the shipped model's training log", _relative(path),
                       "python -m rmt_lib train --config default --output runs/default --model-dir data/model")
    return read_training_log(path)


# ----------------------------------------------------------------------------------------------
# Chapter 5: evaluation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalBudget:
    """Lengths (in segments) and samples per length of one live evaluation."""

    lengths: tuple[int, ...]
    samples: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.lengths or len(self.lengths) != len(self.samples):
            raise ValueError(f"EvalBudget needs one sample count per length; got {self.lengths} and {self.samples}")
        if min(self.lengths) < 1 or min(self.samples) < 1 or list(self.lengths) != sorted(set(self.lengths)):
            raise ValueError("EvalBudget lengths must be increasing and positive, and every count positive")

    @property
    def segment_reads(self) -> int:
        """Segments the RMT reads in all (its cost grows with this)."""
        return sum(n * k for n, k in zip(self.lengths, self.samples))


EVAL_BUDGETS: dict[str, EvalBudget] = {
    # About a minute on 2 cores: CI and nbval.
    "ci": EvalBudget(lengths=(1, 2, 4, 8, 16, 32, 256), samples=(100, 100, 100, 100, 100, 100, 50)),
    # The full measurement: >= 500 per length up to 256 segments, fewer at 1,024 and 4,096.
    "full": EvalBudget(lengths=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
                       samples=(500,) * 9 + (100, 50)),
}

# The committed results (README "Where results live"): evaluation JSON written by `python -m rmt_lib evaluate`.
# The *_long files are optional: the lengths too costly for 500 samples, measured with fewer.
EVALUATION_FILES: dict[str, tuple[str, str]] = {
    "rmt": ("evaluation.json", "evaluation_long.json"),
    "baseline": ("evaluation_baseline.json", "evaluation_baseline_long.json"),
}
EVALUATION_COMMANDS: dict[str, str] = {
    "rmt": "python -m rmt_lib evaluate --segments 1 2 4 8 16 32 64 128 256 --samples 500 "
           "--output data/results/evaluation.json",
    "baseline": "python -m rmt_lib evaluate --checkpoint data/baseline --segments 1 2 4 8 16 32 64 128 256 "
                "--samples 500 --output data/results/evaluation_baseline.json",
}
CURVE_LABELS = {"rmt": "RMT", "baseline": "no-memory baseline"}


@dataclass(frozen=True)
class LengthAccuracy:
    n_segments: int
    correct: int
    total: int
    accuracy: float
    low: float  # 95% Wilson interval
    high: float


@dataclass(frozen=True)
class AccuracyCurve:
    """Accuracy per length with 95% Wilson intervals, for one model, from one source."""

    label: str  # "RMT", "no-memory baseline"
    rows: tuple[LengthAccuracy, ...]  # increasing n_segments
    source: str  # "live, budget ci" or the result files

    available = True

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(r.n_segments for r in self.rows)

    def at(self, n_segments: int) -> LengthAccuracy:
        for r in self.rows:
            if r.n_segments == n_segments:
                return r
        raise ValueError(f"{self.label} ({self.source}) has no result at {n_segments} segments; lengths: {self.lengths}")

    def __repr__(self) -> str:
        return f"AccuracyCurve({self.label!r}, {self.source!r}, lengths={list(self.lengths)})"

    def _repr_markdown_(self) -> str:
        return accuracy_comparison([self])._repr_markdown_()


def accuracy_curve(result: Mapping[str, Any], *, label: str, source: str) -> AccuracyCurve:
    """From an evaluation result (`rmt_lib.evaluate.evaluate` output, or its JSON file): `by_length`."""
    by_length = result.get("by_length") if isinstance(result, Mapping) else None
    if not isinstance(by_length, Mapping) or not by_length:
        raise ValueError(f"{source}: an evaluation result needs a non-empty `by_length` "
                         "(written by rmt_lib.evaluate / `python -m rmt_lib evaluate`)")
    rows = []
    for key, r in by_length.items():
        try:
            lo, hi = r["ci95"]
            rows.append(LengthAccuracy(int(key), int(r["correct"]), int(r["total"]), float(r["accuracy"]),
                                       float(lo), float(hi)))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: by_length[{key!r}] lacks accuracy/correct/total/ci95 ({err})") from None
    return AccuracyCurve(label, tuple(sorted(rows, key=lambda r: r.n_segments)), source)


def read_evaluation(files: Sequence[str | Path], *, label: str) -> AccuracyCurve:
    """One curve from one or more evaluation JSON files of the same model (their lengths must not overlap)."""
    if not files:
        raise ValueError("read_evaluation needs at least one file")
    rows: dict[int, LengthAccuracy] = {}
    names = []
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise FileNotFoundError(f"no evaluation result at {_relative(f)}")
        try:
            result = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{_relative(f)} is not JSON: {err}") from None
        curve = accuracy_curve(result, label=label, source=_relative(f))
        overlap = sorted(set(rows) & set(curve.lengths))
        if overlap:
            raise ValueError(f"{_relative(f)} repeats lengths {overlap} already read from {', '.join(names)}; "
                             "each length must come from one file")
        rows.update({r.n_segments: r for r in curve.rows})
        names.append(_relative(f))
    return AccuracyCurve(label, tuple(rows[n] for n in sorted(rows)), " + ".join(names))


def committed_evaluation(model: Literal["rmt", "baseline"], results_dir: str | Path | None = None) -> AccuracyCurve | Missing:
    """The committed full evaluation of the RMT or the baseline (data/results/), or a note when absent.

    Reads `evaluation.json` (or `evaluation_baseline.json`) and, when present, the matching `*_long.json`
    with the longest lengths measured on fewer samples.
    """
    if model not in EVALUATION_FILES:
        raise ValueError(f"model must be one of {sorted(EVALUATION_FILES)}, got {model!r}")
    folder = Path(results_dir) if results_dir is not None else paths.RESULTS_DIR
    main, long = (folder / name for name in EVALUATION_FILES[model])
    if not main.is_file():
        return Missing(f"the committed evaluation of the {CURVE_LABELS[model]}", _relative(main),
                       EVALUATION_COMMANDS[model])
    return read_evaluation([main] + ([long] if long.is_file() else []), label=CURVE_LABELS[model])


@dataclass(frozen=True)
class AccuracyComparison:
    curves: tuple[AccuracyCurve, ...]
    segment_size: int = 32  # for the tokens column
    missing: tuple[Missing, ...] = ()  # shown as notes under the table

    def __repr__(self) -> str:
        return f"AccuracyComparison({[c.label for c in self.curves]})"

    def _repr_markdown_(self) -> str:
        lengths = sorted({n for c in self.curves for n in c.lengths})
        header = ["segments", "tokens"] + [f"{c.label} ({c.source})" for c in self.curves]
        rows = []
        for n in lengths:
            cells = []
            for c in self.curves:
                r = next((r for r in c.rows if r.n_segments == n), None)
                cells.append("—" if r is None else f"{r.accuracy:.3f} [{r.low:.3f}, {r.high:.3f}] (n={r.total:,})")
            rows.append((f"{n:,}", f"{n * self.segment_size:,}", *cells))
        notes = "\n\n".join(m._repr_markdown_() for m in self.missing)
        if not self.curves:
            return notes
        return _md_table(header, rows) + ("\n\n" + notes if notes else "")


def accuracy_comparison(curves: Sequence[AccuracyCurve | Missing], *, segment_size: int = 32) -> AccuracyComparison:
    """A table with one column per available curve: accuracy [95% Wilson interval] (n) per length
    (`Missing` entries are left out)."""
    return AccuracyComparison(tuple(c for c in curves if isinstance(c, AccuracyCurve)), segment_size,
                              tuple(c for c in curves if isinstance(c, Missing)))


def describe_at(curve: AccuracyCurve | Missing, n_segments: int) -> str:
    """'0.970 [0.915, 0.990] over 100 samples' at one length, for the prose; a short note when absent."""
    if isinstance(curve, Missing):
        return f"not measured ({curve.what} is not there yet)"
    if n_segments not in curve.lengths:
        return f"not measured at {n_segments:,} segments"
    r = curve.at(n_segments)
    return f"{r.accuracy:.3f} [{r.low:.3f}, {r.high:.3f}] over {r.total:,} samples"


def evaluation_summary(rmt: AccuracyCurve | Missing, baseline: AccuracyCurve | Missing,
                       lengths: Sequence[int] = (32, 256, 1024, 4096)) -> str:
    """A sentence for the prose (glued as Markdown): the RMT's accuracy at `lengths`, the baseline's at the
    first of them; or a note that the RMT's result is not there yet."""
    if isinstance(rmt, Missing):
        return (f"The committed full evaluation of the RMT (`{rmt.path}`) is not there yet, so this section shows "
                "the notes above instead of numbers.")
    first, *rest = lengths
    text = (f"In the full measurement the RMT's accuracy at {first:,} segments is {describe_at(rmt, first)} "
            f"(the baseline's: {describe_at(baseline, first)})")
    for n in rest:
        text += f"; at {n:,} segments it is {describe_at(rmt, n)}"
    return text + "."


def live_accuracy(model, tokenizer, samples: Sequence[Sample], *, label: str, source: str,
                  batch_size: int = 32) -> AccuracyCurve | Missing:
    """Evaluate `model` on `samples` now (`rmt_lib.evaluate.evaluate`) and return its accuracy curve;
    a `Missing` model (from `load_model_or_missing`) is passed through."""
    from rmt_lib.evaluate import evaluate

    if isinstance(model, Missing):
        return model
    return accuracy_curve(evaluate(model, tokenizer, samples, batch_size=batch_size, progress=False),
                          label=label, source=source)


def load_model_or_missing(directory: str | Path, *, what: str, how: str, device: str = "cpu"):
    """`rmt_lib.model.from_pretrained(directory)`, or a `Missing` note when the folder does not exist.

    A folder that exists but is corrupt still raises: only absence is expected.
    """
    from rmt_lib.model import from_pretrained

    directory = Path(directory)
    if not directory.is_dir():
        return Missing(what, _relative(directory), how)
    return from_pretrained(directory, device=device)


def describe_model(model, directory: str | Path) -> str:
    """A line of Markdown about a loaded model (its folder, size and memory), or the note of a `Missing`."""
    if isinstance(model, Missing):
        return model._repr_markdown_()
    cfg = model.config
    memory = (f"{cfg.num_memory_tokens} memory tokens" if cfg.recurrent
              else "no memory: it reads only the last segment")
    return f"`{_relative(Path(directory))}`: {model.num_parameters():,} parameters, {memory}; checksums verified."
