"""Accuracy results read back: the committed evaluation files as accuracy curves, compared by length, and
the live evaluation a chapter runs on its budget."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rmt_lib import paper, paths
from rmt_lib.data import Sample
from rmt_lib.display.tables import markdown_table
from rmt_lib.evaluate.run import evaluate
from rmt_lib.paths import Missing, relative
from rmt_lib.stats import relation, wilson_interval


# The committed results (README "Where results live"): evaluation JSON written by `python -m rmt_lib evaluate`.
# The *_long files are optional: the lengths too costly for 500 samples, measured with fewer.
EVALUATION_FILES: dict[str, tuple[str, str]] = {
    "rmt": ("evaluation.json", "evaluation_long.json"),
    "babi": ("evaluation_babi.json", "evaluation_babi_long.json"),  # facts from real bAbI QA1 test stories
    "baseline": ("evaluation_baseline.json", "evaluation_baseline_long.json"),
}
_BABI_TEST = "../shared/babi/qa1_single-supporting-fact_test.txt"
# The commands that write them (the README lists the same; a test keeps the two equal).
EVALUATION_COMMANDS: dict[str, tuple[str, ...]] = {
    "rmt": ("python -m rmt_lib evaluate --segments 1 2 4 8 16 32 64 128 256 --samples 500 "
            "--output data/results/evaluation.json",
            "python -m rmt_lib evaluate --segments 1024 2048 --samples 300 --seed 100 "
            "--output data/results/evaluation_long.json"),
    "babi": (f"python -m rmt_lib evaluate --babi {_BABI_TEST} --segments 4 8 16 32 64 128 256 --samples 500 "
             "--output data/results/evaluation_babi.json",
             f"python -m rmt_lib evaluate --babi {_BABI_TEST} --segments 1024 2048 --samples 300 --seed 100 "
             "--output data/results/evaluation_babi_long.json"),
    "baseline": ("python -m rmt_lib evaluate --checkpoint data/baseline --segments 1 2 4 8 16 32 64 128 256 "
                 "--samples 500 --output data/results/evaluation_baseline.json",),
}
CURVE_LABELS = {"rmt": "RMT", "babi": "RMT, real bAbI stories", "baseline": "no-memory baseline"}
# Segments from the supporting fact to the question: the bins of `accuracy_breakdown`.
DISTANCE_BINS = ((0, 0), (1, 31), (32, 127), (128, 511), (512, None))


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
            raise FileNotFoundError(f"no evaluation result at {relative(f)}")
        try:
            result = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{relative(f)} is not JSON: {err}") from None
        curve = accuracy_curve(result, label=label, source=relative(f))
        overlap = sorted(set(rows) & set(curve.lengths))
        if overlap:
            raise ValueError(f"{relative(f)} repeats lengths {overlap} already read from {', '.join(names)}; "
                             "each length must come from one file")
        rows.update({r.n_segments: r for r in curve.rows})
        names.append(relative(f))
    return AccuracyCurve(label, tuple(rows[n] for n in sorted(rows)), " + ".join(names))


def committed_evaluation(model: Literal["rmt", "babi", "baseline"],
                         results_dir: str | Path | None = None) -> AccuracyCurve | Missing:
    """The committed full evaluation (data/results/) of the RMT on generated samples ("rmt"), of the RMT on
    real bAbI stories ("babi"), or of the baseline, or a note when absent.

    Reads `EVALUATION_FILES[model]`: the main file and, when present, the matching `*_long.json` with the
    longest lengths measured on fewer samples.
    """
    if model not in EVALUATION_FILES:
        raise ValueError(f"model must be one of {sorted(EVALUATION_FILES)}, got {model!r}")
    folder = Path(results_dir) if results_dir is not None else paths.RESULTS_DIR
    main, long = (folder / name for name in EVALUATION_FILES[model])
    if not main.is_file():
        return Missing(f"the committed evaluation of the {CURVE_LABELS[model]}", relative(main),
                       EVALUATION_COMMANDS[model][0])
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
        return markdown_table(header, rows) + ("\n\n" + notes if notes else "")


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


def describe_sample_counts(curve: AccuracyCurve | Missing) -> str:
    """How many samples each length has, for the prose: '500 samples per length from 1 to 256 segments,
    and 300 at 1,024 and 2,048 segments' (runs of lengths with one count grouped); a note when absent."""
    if isinstance(curve, Missing):
        return f"not measured yet ({curve.what} is not there)"
    groups: list[tuple[int, list[int]]] = []  # (samples, the consecutive lengths that have that many)
    for r in curve.rows:
        if groups and groups[-1][0] == r.total:
            groups[-1][1].append(r.n_segments)
        else:
            groups.append((r.total, [r.n_segments]))
    parts = [f"{n:,} samples per length from {lengths[0]:,} to {lengths[-1]:,} segments" if len(lengths) > 2
             else f"{n:,} samples at {' and '.join(f'{k:,}' for k in lengths)} segment{'s' * (lengths != [1])}"
             for n, lengths in groups]
    return ", ".join(parts[:-1]) + (", and " if len(parts) > 1 else "") + parts[-1]


def against_paper(curve: AccuracyCurve | Missing, length_name: str) -> str:
    """Where our accuracy at one of Table 4's lengths ("128k", "1M", ...) lies against the paper's RMT there,
    by our 95% interval: "above", "below" or "not distinguishable from"; "not measured against" when the
    curve lacks that length. For prose that must stay true whatever the model."""
    n_segments = paper.segments_for(paper.TABLE4_LENGTHS[length_name])
    if isinstance(curve, Missing) or n_segments not in curve.lengths:
        return "not measured against"
    r = curve.at(n_segments)
    return relation({"low": r.low, "high": r.high}, paper.TABLE4_QA1["RMT"][length_name] / 100)


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
        return Missing(what, relative(directory), how)
    return from_pretrained(directory, device=device)


def describe_model(model, directory: str | Path) -> str:
    """A line of Markdown about a loaded model (its folder, size and memory), or the note of a `Missing`."""
    if isinstance(model, Missing):
        return model._repr_markdown_()
    cfg = model.config
    memory = (f"{cfg.num_memory_tokens} memory tokens" if cfg.recurrent
              else "no memory: it reads only the last segment")
    return f"`{relative(Path(directory))}`: {model.num_parameters():,} parameters, {memory}; checksums verified."


@dataclass(frozen=True)
class Breakdown:
    """Accuracy by where the supporting fact lay (cut by a segment boundary or not; segments from it to the
    question), each with a 95% Wilson interval."""

    title: str
    rows: tuple[tuple[str, int, int], ...]  # (group, correct, total)

    def _repr_markdown_(self) -> str:
        body = []
        for group, k, n in self.rows:
            low, high = wilson_interval(k, n)
            body.append((group, f"{k} / {n}", f"{k / n:.3f} [{low:.3f}, {high:.3f}]"))
        return f"**{self.title}**\n\n" + markdown_table(["supporting fact", "correct", "accuracy [95% interval]"], body)

    def __repr__(self) -> str:
        return f"Breakdown({self.title!r}, groups={[g for g, _, _ in self.rows]})"

    def accuracy(self, group: str) -> tuple[float, int]:
        """(accuracy, samples) of one group."""
        for g, k, n in self.rows:
            if g == group:
                return k / n, n
        raise ValueError(f"no group {group!r}; groups: {[g for g, _, _ in self.rows]}")


def accuracy_breakdown(results: Sequence[Mapping[str, Any]], *, title: str) -> Breakdown:
    """`Breakdown` of evaluation JSONs (`evaluate` output, whose samples carry `supporting_fact_cut` and
    `segments_from_fact`): groups with no sample are left out."""
    rows = [r for result in results for r in result["samples"]]
    if not rows or any("supporting_fact_cut" not in r for r in rows):
        raise ValueError("these evaluation results do not say where the supporting fact was; regenerate them "
                         "with `python -m rmt_lib evaluate` (README)")
    rows = [r for r in rows if r["supporting_fact_cut"] is not None]
    groups = [("inside one segment", lambda r: not r["supporting_fact_cut"]),
              ("cut by a segment boundary", lambda r: r["supporting_fact_cut"])]
    for lo, hi in DISTANCE_BINS:
        name = (f"{lo} segments before the question" if lo == hi else f"{lo:,}+ segments before the question"
                if hi is None else f"{lo:,}-{hi:,} segments before the question")
        groups.append((name, lambda r, lo=lo, hi=hi: lo <= r["segments_from_fact"] and (hi is None or r["segments_from_fact"] <= hi)))
    out = []
    for name, keep in groups:
        chosen = [r for r in rows if keep(r)]
        if chosen:
            out.append((name, sum(bool(r["correct"]) for r in chosen), len(chosen)))
    return Breakdown(title, tuple(out))


def committed_breakdown(model: Literal["rmt", "babi"] = "rmt", results_dir: str | Path | None = None) -> Breakdown | Missing:
    """`accuracy_breakdown` of the committed evaluation files of `model`, or a note when they are absent."""
    folder = Path(results_dir) if results_dir is not None else paths.RESULTS_DIR
    files = [folder / name for name in EVALUATION_FILES[model] if (folder / name).is_file()]
    if not files:
        return Missing(f"the committed evaluation of the {CURVE_LABELS[model]}", relative(folder / EVALUATION_FILES[model][0]),
                       EVALUATION_COMMANDS[model][0])
    return accuracy_breakdown([json.loads(f.read_text()) for f in files],
                              title=f"{CURVE_LABELS[model]}: accuracy by where the supporting fact lay "
                                    f"({', '.join(relative(f) for f in files)})")
