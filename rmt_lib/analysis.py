"""Numbers for the book's Figure 8 chapters: held-out measurements, target checks, result tables,
failure cases and head comparisons. No plotting (`rmt_lib.plots_probes` draws these results).

    budget = ProbeBudget.named("ci")
    held = held_out_probe(model, tokenizer, n_segments=32, n_samples=budget.n_samples(32))
    held.summary["memory_change"]["auc"]                 # {"estimate", "low", "high", ...} (rmt_lib.probes)
    target_check("AUC", held.summary["memory_change"]["auc"], AUC_TARGET)   # a TargetCheck with a verdict
    change_table({"32 segments": held.summary})           # a ResultTable: Markdown in the book, text for nbval
    failure_cases(held)                                   # a FailureReport: right vs. wrong samples
    head_comparison({"32": held.summary, ...}, "write")   # per-head shares side by side, chosen heads
    head_choice_stability(held.entries, "write")          # how often two halves of the samples pick one head

Which samples: `held_out_probe` draws two-fact samples of the test split with MEASURE_SEED (2).
`rmt_lib.probes.figure8_inputs` draws the displayed samples with seed 0 and chooses its heads on seed 1,
so no measured sample is also shown or used for the single-sample head choice.

Disk cache: probing is the slow step and several chapters measure the same samples, so
`held_out_probe` keeps its result in ``.cache/probes/<key>.npz``. The key hashes everything the result
depends on: the model's weights and config, the tokenizer, the background prose, the arguments and
the source of the `rmt_lib` package (all but the modules that only draw: plots*, widgets). A new
model or a code change is a new key, so a stale result is never reused; the file holds the exact
arrays (no rounding), so a cached result equals a fresh one. Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from rmt_lib import paths
from rmt_lib.files import atomic_path, to_plain
from rmt_lib.probes import FIGURE8_LONG, FIGURE8_SHORT, bootstrap_mean, probe_samples, roc_auc, segment_roles

MEASURE_SEED = 2  # the measured samples (seed 0: displayed samples; seed 1: figure8_inputs' head choice)
AUC_TARGET = 0.97  # issue 6: ROC-AUC of the memory change, fact vs. other segments, at 32 and 256 segments
WRITE_LIFT_TARGET = 3.0  # issue 6: write attention on fact tokens >= 3x their share of the segment
CACHE_FORMAT = 1  # bump when the file layout changes
PROBE_CACHE_DIR = paths.CACHE_DIR / "probes"
# Modules that only draw (they never compute a probe result), left out of the cache key.
PRESENTATION_MODULES = ("plots", "widgets")

# ----------------------------------------------------------------------------------------------
# How many samples a chapter measures
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeBudget:
    """Held-out samples measured per length: `short_samples` at 32 segments, `long_samples` at 256."""

    name: str
    short_samples: int  # at FIGURE8_SHORT segments (the paper's "16k")
    long_samples: int  # at FIGURE8_LONG segments (the paper's "128k")

    def __post_init__(self) -> None:
        for field_name in ("short_samples", "long_samples"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ProbeBudget.{field_name} must be a positive int, got {value!r}")

    @classmethod
    def named(cls, budget: str) -> "ProbeBudget":
        """The book's budgets: "ci" (CI and nbval: fewer samples at 256 segments) and "full" (>= 200 each)."""
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose one of {sorted(BUDGETS)}")
        return BUDGETS[budget]

    def n_samples(self, n_segments: int) -> int:
        if n_segments == FIGURE8_SHORT:
            return self.short_samples
        if n_segments == FIGURE8_LONG:
            return self.long_samples
        raise ValueError(f"the budget covers {FIGURE8_SHORT} and {FIGURE8_LONG} segments, not {n_segments}")


BUDGETS = {
    # 200 samples at 32 segments take seconds; 256 segments cost 8x per sample, so CI measures fewer there.
    "ci": ProbeBudget("ci", short_samples=200, long_samples=64),
    "full": ProbeBudget("full", short_samples=200, long_samples=200),
}

# ----------------------------------------------------------------------------------------------
# Held-out measurement, cached on disk
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HeldOutProbe:
    """Held-out samples and their probe result (`rmt_lib.probes.probe_samples`), in the same order."""

    n_segments: int
    seed: int
    samples: tuple  # rmt_lib.data.Sample
    result: dict  # {"samples": [...], "summary": {...}}
    from_cache: bool = False  # varies between runs: never print it

    @property
    def entries(self) -> list[dict]:
        return self.result["samples"]

    @property
    def summary(self) -> dict:
        return self.result["summary"]


def held_out_probe(model, tokenizer, *, n_segments: int, n_samples: int, seed: int = MEASURE_SEED,
                   n_facts: int = 2, split: str = "test", cache: bool = True, cache_dir: Path | None = None,
                   background: str | Path | None = None, progress: bool = False) -> HeldOutProbe:
    """Generate `n_samples` held-out samples (`n_facts` facts, `n_segments` segments) and probe them.

    Same arguments, same samples, same numbers. With `cache`, the result is read from (or written to)
    `cache_dir` (default ``.cache/probes``) under a key of everything it depends on (module docstring).
    """
    from rmt_lib.data import generate_samples

    samples = tuple(generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, n_facts=n_facts,
                                     split=split, background=background, seed=seed,
                                     segment_size=model.config.segment_size, tokenizer=tokenizer))
    args = {"n_segments": n_segments, "n_samples": n_samples, "seed": seed, "n_facts": n_facts, "split": split}
    path = None
    if cache:
        key = probe_cache_key(model, tokenizer, args, background=background, split=split)
        path = Path(cache_dir if cache_dir is not None else PROBE_CACHE_DIR) / f"{key}.npz"
        result = _load_result(path, key)
        if result is not None:
            return HeldOutProbe(n_segments, seed, samples, result, from_cache=True)
    result = probe_samples(model, tokenizer, samples, progress=progress)
    if path is not None:
        _save_result(path, path.stem, result)
    return HeldOutProbe(n_segments, seed, samples, result)


def probe_cache_key(model, tokenizer, args: Mapping, *, background=None, split: str = "test") -> str:
    """sha256 (hex, 32 digits) of the model's weights and config, the tokenizer, the background prose,
    `args` and the source of the rmt_lib package (all of it but the drawing modules, PRESENTATION_MODULES)."""
    import rmt_lib
    from rmt_lib.data import load_background

    h = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "args": dict(args), "config": model.config.to_dict(),
            "tokenizer": tokenizer.fingerprint}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    prose = load_background(background, split)
    h.update(prose.name.encode())
    h.update(hashlib.sha256(prose.text.encode()).digest())
    package = Path(rmt_lib.__file__).parent
    for source in sorted(package.rglob("*.py")):
        if source.name.startswith(PRESENTATION_MODULES):
            continue  # figures only: editing a plot must not throw away minutes of probing
        h.update(source.relative_to(package).as_posix().encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:32]


_ARRAY_FIELDS = ("memory_change", "distance_matrix")


def _save_result(path: Path, key: str, result: Mapping) -> None:
    """One .npz: each sample's arrays exactly, and everything else as JSON (floats round-trip exactly)."""
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, entry in enumerate(result["samples"]):
        for name in _ARRAY_FIELDS:
            arrays[f"{name}_{i}"] = np.asarray(entry[name])
        entries.append(to_plain({k: v for k, v in entry.items() if k not in _ARRAY_FIELDS}))
    meta = {"key": key, "format": CACHE_FORMAT, "entries": entries, "summary": to_plain(result["summary"])}
    arrays["meta"] = np.array(json.dumps(meta, allow_nan=True))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_result(path: Path, key: str) -> dict | None:
    """The cached result, or None when there is none (or it is unreadable or of another key)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                return None
            entries = []
            for i, entry in enumerate(meta["entries"]):
                for name in _ARRAY_FIELDS:
                    entry[name] = z[f"{name}_{i}"]
                for w in entry.get("write_attention") or ():
                    w["share"] = np.asarray(w["share"], dtype=np.float64)
                if entry.get("read_attention"):
                    entry["read_attention"]["memory_share"] = np.asarray(entry["read_attention"]["memory_share"],
                                                                         dtype=np.float64)
                entries.append(entry)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a damaged cache file is recomputed, never trusted
    return {"samples": entries, "summary": meta["summary"]}


# ----------------------------------------------------------------------------------------------
# Targets and result tables
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    """A measured statistic (with its 95% interval) against the issue's target (at least `target`)."""

    name: str
    estimate: float
    low: float
    high: float
    target: float

    @property
    def met_by_estimate(self) -> bool:
        return self.estimate >= self.target

    @property
    def met_by_interval(self) -> bool:
        return self.low >= self.target

    @property
    def status(self) -> Literal["met", "estimate only", "not met"]:
        """"met": the whole interval is at or above the target; "estimate only": the estimate is but
        the interval reaches below; "not met": the estimate is below."""
        return "met" if self.met_by_interval else "estimate only" if self.met_by_estimate else "not met"

    @property
    def verdict(self) -> str:
        return {"met": "met (the whole 95% interval is at or above the target)",
                "estimate only": "met by the estimate only (the 95% interval reaches below the target)",
                "not met": "not met (the estimate is below the target)"}[self.status]

    def __str__(self) -> str:
        return (f"{self.name}: {self.estimate:.3f} [95% CI {self.low:.3f}, {self.high:.3f}], "
                f"target >= {self.target:g}: {self.verdict}")


def target_check(name: str, interval: Mapping, target: float) -> TargetCheck:
    """`interval` is one statistic of `rmt_lib.probes.summarize` ({"estimate", "low", "high", ...})."""
    try:
        return TargetCheck(name, float(interval["estimate"]), float(interval["low"]), float(interval["high"]),
                           float(target))
    except (KeyError, TypeError):
        raise ValueError(f"{name}: expected a summary interval with estimate/low/high, got {interval!r}") from None


def issue_targets(summaries: Mapping[str, Mapping],
                  which: Sequence[Literal["auc", "write"]] = ("auc", "write")) -> list[TargetCheck]:
    """Issue 6's targets at each length (`summaries` maps a label such as "32 segments" to a summary):
    "auc": both memory-change AUCs (`auc` and `auc_all_other`) >= AUC_TARGET; "write": the write lift
    on fact tokens (mean over heads, and the automatically chosen head) >= WRITE_LIFT_TARGET."""
    unknown = set(which) - {"auc", "write"}
    if unknown:
        raise ValueError(f"unknown target group(s) {sorted(unknown)}; choose from 'auc', 'write'")
    checks = []
    for label, s in summaries.items():
        if "auc" not in which:
            break
        mc = s["memory_change"]
        for stat, what in (("auc", "AUC fact vs. distractor"), ("auc_all_other", "AUC fact vs. all other")):
            if stat in mc:
                checks.append(target_check(f"{what}, {label}", mc[stat], AUC_TARGET))
    for label, s in summaries.items():
        w = s.get("write_attention")
        if "write" not in which or not w:
            continue
        checks.append(target_check(f"write lift, mean over heads, {label}", w["mean_over_heads"]["lift"],
                                   WRITE_LIFT_TARGET))
        if w.get("chosen_head"):
            c = w["chosen_head"]
            checks.append(target_check(f"write lift, chosen head L{c['layer']}H{c['head']}, {label}", c["lift"],
                                       WRITE_LIFT_TARGET))
    return checks


@dataclass(frozen=True)
class ResultTable:
    """Rows of statistics, one column per measured set (e.g. per length); each cell an estimate with
    its 95% interval, or None. Renders as Markdown in the book and as rounded text elsewhere."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Mapping | None, ...]], ...]
    digits: int = 3

    def __post_init__(self) -> None:
        for label, cells in self.rows:
            if len(cells) != len(self.columns):
                raise ValueError(f"row {label!r} has {len(cells)} cells for {len(self.columns)} columns")

    def cell(self, value: Mapping | None) -> str:
        if value is None:
            return "–"
        if value.get("count"):
            return str(int(value["estimate"]))
        d = self.digits
        est = f"{float(value['estimate']):.{d}f}"
        low, high = value.get("low"), value.get("high")
        if low is None or high is None or (float(low) == float(high) == float(value["estimate"])):
            return est
        if math.isnan(float(low)):
            return f"{est} [no interval]"
        return f"{est} [{float(low):.{d}f}, {float(high):.{d}f}]"

    def to_markdown(self) -> str:
        head = f"**{self.title}** (estimate [95% bootstrap interval])\n\n"
        lines = ["| | " + " | ".join(self.columns) + " |", "|---|" + "---|" * len(self.columns)]
        lines += [f"| {label} | " + " | ".join(self.cell(c) for c in cells) + " |" for label, cells in self.rows]
        return head + "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        table = [["", *self.columns]] + [[label, *(self.cell(c) for c in cells)] for label, cells in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        out = [self.title + " (estimate [95% bootstrap interval])"]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        return "\n".join(out)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's text/plain
        p.text(str(self))


def _get(summary: Mapping, *keys):
    value = summary
    for k in keys:
        if not isinstance(value, Mapping) or value.get(k) is None:
            return None
        value = value[k]
    return value


def _count(n: int | None) -> Mapping | None:
    """A count as a table cell (shown as an integer, without an interval)."""
    return None if n is None else {"estimate": int(n), "count": True}


def _table(title: str, summaries: Mapping[str, Mapping], spec, digits: int = 3) -> ResultTable:
    columns = tuple(summaries)
    rows = tuple((label, tuple(get(s) for s in summaries.values())) for label, get in spec)
    return ResultTable(title, columns, rows, digits)


def change_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Memory change per segment (panels a, b), one column per summary."""
    spec = [
        ("samples", lambda s: _count(s["n_samples"])),
        ("answer accuracy", lambda s: s["accuracy"]),
        ("ROC-AUC `auc`: fact vs. distractor segments (segment 0 and the question segment left out)",
         lambda s: _get(s, "memory_change", "auc")),
        ("ROC-AUC `auc_all_other`: fact vs. every other segment", lambda s: _get(s, "memory_change", "auc_all_other")),
        ("ROC-AUC within each sample, averaged", lambda s: _get(s, "memory_change", "auc_per_sample")),
        ("ratio: mean change at fact / at distractor segments", lambda s: _get(s, "memory_change", "ratio")),
        ("mean change, fact segments", lambda s: _get(s, "memory_change", "fact_mean")),
        ("mean change, distractor segments", lambda s: _get(s, "memory_change", "distractor_mean")),
        ("mean change, segment 0 (from the initial memory)", lambda s: _get(s, "memory_change", "first_mean")),
        ("mean change, question segment", lambda s: _get(s, "memory_change", "question_mean")),
    ]
    return _table("Memory change ‖m_t − m_{t−1}‖ over held-out samples", summaries, spec)


def _chosen(part: str, stat: str):
    return lambda s: _get(s, part, "chosen_head", stat)


def chosen_heads(summaries: Mapping[str, Mapping], part: Literal["write_attention", "read_attention"]) -> dict:
    """{column: "layer L, head H (chosen on N samples, measured on the other M)" or None}."""
    out = {}
    for label, s in summaries.items():
        c = _get(s, part, "chosen_head")
        sel = s.get("head_selection", {})
        out[label] = None if c is None else (f"layer {c['layer']}, head {c['head']} (chosen on "
                                             f"{sel.get('n_selection')} samples, measured on the other "
                                             f"{sel.get('n_measured')})")
    return out


def write_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Write attention on the fact's tokens (panel c), one column per summary."""
    spec = [
        ("facts measured", lambda s: _count(_get(s, "write_attention", "n_units"))),
        ("fact's share of its segment's tokens (uniform attention)", lambda s: _get(s, "write_attention", "token_share")),
        ("write attention on fact tokens, mean over heads", lambda s: _get(s, "write_attention", "mean_over_heads", "share")),
        ("lift (share / token share), mean over heads", lambda s: _get(s, "write_attention", "mean_over_heads", "lift")),
        ("write attention on fact tokens, chosen head", _chosen("write_attention", "share")),
        ("lift, chosen head (measured on held-out half)", _chosen("write_attention", "lift")),
    ]
    return _table("Write-memory attention on the fact's tokens", summaries, spec)


def _complement(interval: Mapping | None) -> Mapping | None:
    if interval is None:
        return None
    return {"estimate": 1.0 - interval["estimate"], "low": 1.0 - interval["high"], "high": 1.0 - interval["low"]}


def read_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Read attention of the question positions on read memory vs. segment tokens (panel d)."""
    spec = [
        ("samples measured", lambda s: _count(_get(s, "read_attention", "n_units"))),
        ("memory share under uniform causal attention", lambda s: _get(s, "read_attention", "memory_baseline")),
        ("attention on read memory, mean over heads", lambda s: _get(s, "read_attention", "mean_over_heads", "share")),
        ("attention on segment tokens, mean over heads",
         lambda s: _complement(_get(s, "read_attention", "mean_over_heads", "share"))),
        ("lift (memory share / uniform), mean over heads", lambda s: _get(s, "read_attention", "mean_over_heads", "lift")),
        ("attention on read memory, chosen head", _chosen("read_attention", "share")),
        ("lift, chosen head (measured on held-out half)", _chosen("read_attention", "lift")),
    ]
    return _table("Question positions' attention on read memory", summaries, spec)


def relation(interval: Mapping, reference: float) -> str:
    """"above", "below" or "not distinguishable from": where the 95% interval lies against `reference`
    (for prose that must stay true whatever the model: glue it, never type it)."""
    low, high = float(interval["low"]), float(interval["high"])
    if low > reference:
        return "above"
    if high < reference:
        return "below"
    return "not distinguishable from"


def load_shipped(folder: str | Path | None = None):
    """(model, tokenizer): the model folder (default: the shipped model, data/model), checksums
    verified, with the folder's own tokenizer when it carries one (as `python -m rmt_lib probe` does)."""
    from rmt_lib.data import load_tokenizer
    from rmt_lib.model import from_pretrained

    folder = Path(folder) if folder is not None else paths.SHIPPED_MODEL_DIR
    model = from_pretrained(folder)
    own = folder / "tokenizer.json"
    return model, load_tokenizer(own if own.is_file() else None)


def estimate(summary: Mapping, *keys: str, digits: int = 3) -> float:
    """One estimate of a summary, rounded for the prose (myst_nb glue), e.g.
    ``estimate(s, "memory_change", "auc")``; a clear error when the statistic is missing."""
    value = _get(summary, *keys)
    if value is None:
        raise ValueError(f"the summary has no {'/'.join(keys)}")
    return round(float(value["estimate"] if isinstance(value, Mapping) else value), digits)

def sample_numbers(capture, *, write_head: tuple[int, int], read_head: tuple[int, int], fact: int = 0) -> dict:
    """The numbers behind one displayed sample's panels (a `rmt_lib.probes.SampleCapture`), for the prose:

    auc, ratio              its memory change, fact vs. distractor segments (NaN where undefined)
    write_token_share       fact `fact`'s share of its segment's tokens (uniform attention)
    write_share_mean/_chosen  write-memory attention on that fact's tokens: mean over layers and heads / `write_head`
    write_top_token(_chosen), write_top_in_fact(_chosen)  the segment token with the most write attention
                            (summed over the write queries; mean over heads / `write_head`) and whether
                            it is one of the fact's tokens
    read_baseline           memory share of the question rows under uniform causal attention
    read_share_mean/_chosen   the question rows' attention on read memory: mean / `read_head`
    answer_share_mean/_chosen the answer position's (last question row's) attention on read memory
    """
    from rmt_lib.probes import change_ratio

    e = capture.entry
    change = np.asarray(e["memory_change"], dtype=np.float64)
    roles = segment_roles(e)
    scored = roles["fact"] | roles["distractor"]
    try:
        auc = roc_auc(change[scored], roles["fact"][scored])
        ratio = change_ratio(change, roles["fact"], roles["distractor"])
    except ValueError:
        auc = ratio = float("nan")
    out = {"auc": float(auc), "ratio": float(ratio)}
    writes = [w for w in e.get("write_attention") or () if w["fact"] == fact]
    if writes:
        share = np.asarray(writes[0]["share"], dtype=np.float64)
        out.update(write_token_share=float(writes[0]["token_share"]), write_share_mean=float(share.mean()),
                   write_share_chosen=float(share[write_head]))
        for suffix, head in (("", (None, None)), ("_chosen", write_head)):
            weights, tokens, mask = capture.write_map(fact, *head)  # (M, L), (L,), (L,)
            top = int(np.argmax(weights.sum(axis=0)))
            out[f"write_top_token{suffix}"] = tokens[top]
            out[f"write_top_in_fact{suffix}"] = bool(mask[top])
    if e.get("read_attention"):
        share = np.asarray(e["read_attention"]["memory_share"], dtype=np.float64)
        out.update(read_baseline=float(e["read_attention"]["memory_baseline"]), read_share_mean=float(share.mean()),
                   read_share_chosen=float(share[read_head]),
                   answer_share_mean=float(capture.read_map()[0][-1].sum()),
                   answer_share_chosen=float(capture.read_map(*read_head)[0][-1].sum()))
    return out


# ----------------------------------------------------------------------------------------------
# Per-unit values behind the attention plots
# ----------------------------------------------------------------------------------------------


def write_units(entries: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """One row per measured fact: "token_share" (n,), "share_mean" (n,) over layers and heads,
    "share" (n, layers, heads)."""
    units = [w for e in entries for w in e.get("write_attention") or ()]
    if not units:
        raise ValueError("no write-attention units: probe with attention_segments='facts_and_question'")
    share = np.stack([np.asarray(w["share"], dtype=np.float64) for w in units])
    return {"token_share": np.array([w["token_share"] for w in units], dtype=np.float64),
            "share_mean": share.mean(axis=(1, 2)), "share": share}


def read_units(entries: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """One row per sample with a captured question segment: "baseline" (n,), "share_mean" (n,),
    "share" (n, layers, heads)."""
    units = [e["read_attention"] for e in entries if e.get("read_attention")]
    if not units:
        raise ValueError("no read-attention units: probe with attention_segments='facts_and_question'")
    share = np.stack([np.asarray(r["memory_share"], dtype=np.float64) for r in units])
    return {"baseline": np.array([r["memory_baseline"] for r in units], dtype=np.float64),
            "share_mean": share.mean(axis=(1, 2)), "share": share}

# ----------------------------------------------------------------------------------------------
# Failure cases
# ----------------------------------------------------------------------------------------------

WrongKind = Literal["correct", "the other actor's location", "the asked actor's earlier location",
                    "a location in no fact"]


@dataclass(frozen=True)
class SampleOutcome:
    """What one held-out sample's answer and memory did."""

    index: int  # position in the HeldOutProbe
    correct: bool
    prediction: str
    target: str
    kind: WrongKind
    fact_segments: tuple[int, ...]
    segments_to_question: int  # from the last fact's segment to the question segment
    facts_detected: bool  # the fact segments are exactly the largest memory changes (see failure_cases)
    sample_auc: float  # fact vs. distractor segments within this sample (NaN when undefined)


@dataclass(frozen=True)
class FailureReport:
    """Right and wrong answers of held-out samples, and what the memory did in each (`failure_cases`)."""

    n_segments: int
    outcomes: tuple[SampleOutcome, ...]

    @property
    def wrong(self) -> tuple[SampleOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.correct)

    def kinds(self) -> dict[str, int]:
        """Wrong answers by kind, every kind listed (0 where none)."""
        names = ("the other actor's location", "the asked actor's earlier location", "a location in no fact")
        return {k: sum(o.kind == k for o in self.wrong) for k in names}

    def first_wrong(self) -> SampleOutcome | None:
        """The first wrong answer in sample order (no choosing), or None when every answer is right."""
        return self.wrong[0] if self.wrong else None

    def accuracy_given_detection(self) -> dict[str, Mapping | None]:
        """Answer accuracy (mean, bootstrap 95% interval) where the memory did / did not single out the
        fact segments; None for a group with no samples."""
        out: dict[str, Mapping | None] = {}
        for name, flag in (("facts detected", True), ("facts not detected", False)):
            hits = [float(o.correct) for o in self.outcomes if o.facts_detected == flag]
            out[name] = bootstrap_mean(hits).to_dict() if hits else None
        return out

    def table(self) -> ResultTable:
        """Right vs. wrong samples side by side: counts and means with bootstrap intervals."""
        groups = {"right": [o for o in self.outcomes if o.correct], "wrong": list(self.wrong)}

        def mean_of(attr):
            def get(group):
                values = [float(getattr(o, attr)) for o in group]
                values = [v for v in values if not math.isnan(v)]
                return bootstrap_mean(values).to_dict() if values else None
            return get

        spec = [("samples", lambda g: _count(len(g))),
                ("share whose memory singled out both fact segments", mean_of("facts_detected")),
                ("ROC-AUC of the memory change within the sample", mean_of("sample_auc")),
                ("segments from the last fact to the question", mean_of("segments_to_question"))]
        rows = tuple((label, tuple(get(g) for g in groups.values())) for label, get in spec)
        return ResultTable(f"Right vs. wrong answers at {self.n_segments} segments", tuple(groups), rows)


def failure_cases(held: HeldOutProbe) -> FailureReport:
    """Classify every held-out sample's answer and ask what its memory did.

    `facts_detected`: among the segments that are fact or distractor segments (`segment_roles`:
    segment 0 and the question segment left out), the k largest memory changes fall exactly on the
    k fact segments. Wrong answers are sorted into kinds by the facts' locations.
    """
    from rmt_lib.data.grammar import parse_fact, parse_question

    outcomes = []
    for i, (sample, entry) in enumerate(zip(held.samples, held.entries)):
        change = np.asarray(entry["memory_change"], dtype=np.float64)
        roles = segment_roles(entry)
        scored = roles["fact"] | roles["distractor"]
        facts = np.flatnonzero(roles["fact"])
        k = len(facts)
        candidates = np.flatnonzero(scored)
        top = candidates[np.argsort(-change[candidates], kind="stable")[:k]]
        detected = bool(k) and set(top.tolist()) == set(facts.tolist())
        try:
            auc = roc_auc(change[scored], roles["fact"][scored])
        except ValueError:
            auc = float("nan")
        prediction, target = entry["prediction"], entry["target"]
        outcomes.append(SampleOutcome(
            index=i, correct=bool(entry["correct"]), prediction=prediction, target=target,
            kind=_wrong_kind(prediction, target, sample, parse_fact, parse_question),
            fact_segments=tuple(int(s) for s in entry["fact_segments"]),
            segments_to_question=int(entry["question_segment"]) - max(int(s) for s in entry["fact_segments"]),
            facts_detected=detected, sample_auc=float(auc)))
    return FailureReport(held.n_segments, tuple(outcomes))


def describe_outcome(held: HeldOutProbe, outcome: SampleOutcome) -> str:
    """A few lines on one sample: its facts and where they were, the question, the answer, and where its
    memory changed most (segment 0 and the question segment left out)."""
    sample, entry = held.samples[outcome.index], held.entries[outcome.index]
    change = np.asarray(entry["memory_change"], dtype=np.float64)
    roles = segment_roles(entry)
    candidates = np.flatnonzero(roles["fact"] | roles["distractor"])
    top = candidates[np.argsort(-change[candidates], kind="stable")[:3]]
    lines = [f"sample {outcome.index} of {len(held.samples)} ({held.n_segments} segments)"]
    lines += [f"  fact {k} in segment {s}: {f}" for k, (f, s) in enumerate(zip(sample.facts, entry["fact_segments"]), 1)]
    lines.append(f"  question in segment {entry['question_segment']}: {sample.question}")
    lines.append(f"  target {outcome.target!r}, answer {outcome.prediction!r} "
                 f"({'right' if outcome.correct else 'wrong: ' + outcome.kind})")
    lines.append("  largest memory changes: " + ", ".join(f"segment {s} ({change[s]:.2f})" for s in top))
    lines.append(f"  memory singled out both fact segments: {'yes' if outcome.facts_detected else 'no'}; "
                 f"ROC-AUC within the sample {outcome.sample_auc:.3f}")
    return "\n".join(lines)


def _wrong_kind(prediction: str, target: str, sample, parse_fact, parse_question) -> WrongKind:
    if prediction == target:
        return "correct"
    asked = parse_question(sample.question)
    for fact in sample.facts:
        actor, _, location = parse_fact(fact)
        if location == prediction:
            return "the asked actor's earlier location" if actor == asked else "the other actor's location"
    return "a location in no fact"

# ----------------------------------------------------------------------------------------------
# Heads compared
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HeadComparison:
    """Per-head mean shares of one kind of attention across summaries (e.g. 32 vs. 256 segments)."""

    kind: Literal["write", "read"]
    per_head: dict  # column -> (n_layers, n_heads) mean share
    chosen: dict  # column -> (layer, head) or None
    baseline: dict  # column -> the uniform-attention share

    def rank_correlation(self) -> float:
        """Spearman correlation of the per-head shares between the first two columns (ties averaged)."""
        if len(self.per_head) < 2:
            raise ValueError("rank_correlation needs two summaries")
        a, b = (np.asarray(v, dtype=np.float64).ravel() for v in list(self.per_head.values())[:2])
        ra, rb = _ranks(a), _ranks(b)
        if ra.std() == 0 or rb.std() == 0:
            return float("nan")
        return float(np.corrcoef(ra, rb)[0, 1])

    def same_chosen_head(self) -> bool:
        chosen = list(self.chosen.values())
        return all(c is not None and c == chosen[0] for c in chosen)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # few heads: a loop is clear and cheap
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def head_comparison(summaries: Mapping[str, Mapping], kind: Literal["write", "read"]) -> HeadComparison:
    part, base = {"write": ("write_attention", "token_share"), "read": ("read_attention", "memory_baseline")}[kind]
    per_head, chosen, baseline = {}, {}, {}
    for label, s in summaries.items():
        p = s.get(part)
        if not p:
            raise ValueError(f"summary {label!r} has no {part}")
        per_head[label] = np.asarray(p["per_head_share"], dtype=np.float64)
        c = p.get("chosen_head")
        chosen[label] = None if c is None else (int(c["layer"]), int(c["head"]))
        baseline[label] = float(p[base]["estimate"])
    return HeadComparison(kind, per_head, chosen, baseline)


def head_choice_stability(entries: Sequence[Mapping], kind: Literal["write", "read"], *, n_splits: int = 200,
                          seed: int = 0) -> float:
    """The fraction of random half/half splits of the samples in which both halves choose the same head
    (the largest mean over the half's samples of each sample's share; a sample's write share is the
    mean over its facts). 1.0: the choice does not depend on which samples it was made on."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    per_sample = _per_sample_head_share(entries, kind)  # (n, layers, heads)
    n = len(per_sample)
    if n < 2:
        raise ValueError("head_choice_stability needs at least two samples with attention")
    rng = np.random.default_rng(seed)
    agree = 0
    for _ in range(n_splits):
        order = rng.permutation(n)
        halves = order[: n // 2], order[n // 2:]
        picks = [np.unravel_index(int(np.argmax(per_sample[h].mean(0))), per_sample.shape[1:]) for h in halves]
        agree += picks[0] == picks[1]
    return agree / n_splits


def _per_sample_head_share(entries: Sequence[Mapping], kind: str) -> np.ndarray:
    rows = []
    for e in entries:
        if kind == "write":
            shares = [np.asarray(w["share"], dtype=np.float64) for w in e.get("write_attention") or ()]
            if shares:
                rows.append(np.mean(shares, axis=0))
        elif kind == "read":
            if e.get("read_attention"):
                rows.append(np.asarray(e["read_attention"]["memory_share"], dtype=np.float64))
        else:
            raise ValueError(f"kind must be 'write' or 'read', got {kind!r}")
    if not rows:
        raise ValueError(f"no {kind}-attention values in these entries")
    return np.stack(rows)
