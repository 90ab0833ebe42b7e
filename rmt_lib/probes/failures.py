"""Why answers fail: every held-out sample's answer classified, beside what its memory did."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import math

import numpy as np

from rmt_lib.data.grammar import parse_fact, parse_question
from rmt_lib.display.tables import ResultTable, count_cell
from rmt_lib.probes.heldout import HeldOutProbe
from rmt_lib.probes.summary import segment_roles
from rmt_lib.stats import bootstrap_mean, roc_auc


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

    def findings(self) -> str:
        """What the wrong answers were, in one sentence for the prose (counts, never rates of a handful)."""
        n, wrong = len(self.outcomes), self.wrong
        if not wrong:
            return f"At {self.n_segments} segments all {n} answers were right."
        kinds = ", ".join(f"{count} named {kind}" for kind, count in self.kinds().items() if count)
        singled = sum(o.facts_detected for o in wrong)
        if singled == len(wrong):
            how = "the facts stood out and were then lost or not read back"
        elif not singled:
            how = "in none of them did the fact segments stand out as the largest changes"
        else:
            how = ("where they did, the facts were lost or not read back after the writing; where not, a fact "
                   "segment did not stand out as one of the largest changes")
        return (f"At {self.n_segments} segments {len(wrong)} of {n} answers were wrong ({kinds}); the memory "
                f"had singled out both fact segments in {singled} of them: {how}.")

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

        spec = [("samples", lambda g: count_cell(len(g))),
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
            kind=_wrong_kind(prediction, target, sample),
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


def _wrong_kind(prediction: str, target: str, sample) -> WrongKind:
    if prediction == target:
        return "correct"
    asked = parse_question(sample.question)
    for fact in sample.facts:
        actor, _, location = parse_fact(fact)
        if location == prediction:
            return "the asked actor's earlier location" if actor == asked else "the other actor's location"
    return "a location in no fact"
