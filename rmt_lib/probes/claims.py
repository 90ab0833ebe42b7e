"""The book's claims about Figure 8, each a measured statistic with its interval against a threshold the book
states: `TargetCheck` gives the verdict, `figure8_checks` all of them at each length, and `sample_numbers`
the numbers behind one displayed sample, for the prose."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rmt_lib.probes.memory import change_ratio
from rmt_lib.jsonio import lookup
from rmt_lib.probes.summary import segment_roles
from rmt_lib.stats import relation, roc_auc  # relation: re-exported for the chapters

AUC_TARGET = 0.97  # ROC-AUC of the memory change, fact vs. other segments, at 32 and 256 segments
WRITE_LIFT_TARGET = 3.0  # write attention on fact tokens >= 3x their share of the segment
DRIFT_RATIO_TARGET = 0.5  # drift across 100+ distractor segments <= half the next fact's jump (median)


@dataclass(frozen=True)
class TargetCheck:
    """A measured statistic (with its 95% interval) against the book's threshold: at least `target`, or at
    most `target` where `at_most` (a drift ratio, say)."""

    name: str
    estimate: float
    low: float
    high: float
    target: float
    at_most: bool = False

    @property
    def met_by_estimate(self) -> bool:
        return self.estimate <= self.target if self.at_most else self.estimate >= self.target

    @property
    def met_by_interval(self) -> bool:
        return self.high <= self.target if self.at_most else self.low >= self.target

    @property
    def status(self) -> Literal["met", "estimate only", "not met"]:
        """"met": the whole interval is on the threshold's good side; "estimate only": the estimate is but
        the interval reaches past it; "not met": the estimate is not."""
        return "met" if self.met_by_interval else "estimate only" if self.met_by_estimate else "not met"

    @property
    def verdict(self) -> str:
        side = "below" if self.at_most else "above"
        return {"met": f"met (the whole 95% interval is at or {side} the threshold)",
                "estimate only": "met by the estimate only (the 95% interval reaches past the threshold)",
                "not met": f"not met (the estimate is not at or {side} the threshold)"}[self.status]

    def __str__(self) -> str:
        return (f"{self.name}: {self.estimate:.3f} [95% CI {self.low:.3f}, {self.high:.3f}], "
                f"threshold {'<=' if self.at_most else '>='} {self.target:g}: {self.verdict}")


def target_check(name: str, interval: Mapping, target: float, *, at_most: bool = False) -> TargetCheck:
    """`interval` is one statistic of `rmt_lib.probes.summarize` ({"estimate", "low", "high", ...})."""
    try:
        return TargetCheck(name, float(interval["estimate"]), float(interval["low"]), float(interval["high"]),
                           float(target), at_most)
    except (KeyError, TypeError):
        raise ValueError(f"{name}: expected a summary interval with estimate/low/high, got {interval!r}") from None


def drift_check(drift: Mapping) -> TargetCheck:
    """The book's threshold for drift (`rmt_lib.probes.probe_drift`): the memory's distance across a
    distractor stretch is at most DRIFT_RATIO_TARGET times the next fact's jump (median over samples)."""
    return target_check(f"drift / jump, median over {drift['ratio']['n']} samples, stretches of "
                        f"{drift['min_stretch']}+ segments", drift["ratio"], DRIFT_RATIO_TARGET, at_most=True)


def figure8_checks(summaries: Mapping[str, Mapping],
                  which: Sequence[Literal["auc", "write"]] = ("auc", "write")) -> list[TargetCheck]:
    """The book's thresholds for Figure 8 at each length (`summaries` maps a label such as "32 segments" to a summary):
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


def prose_control_finding(read_summary: Mapping) -> str:
    """The read-attention control in words (a summary's `read_attention`): do the question positions lift
    the read memory more than the prose positions of their own segment, by the paired difference's 95%
    interval? A memory every position attends to alike is a sink, not a reading of the fact."""
    control = read_summary.get("prose_control")
    if control is None:
        return "no sample had prose beside its question, so the control could not be measured"
    q, p, d = (control[k]["estimate"] for k in ("question_lift", "prose_lift", "lift_difference"))
    where = relation(control["lift_difference"], 0.0)
    if where == "above":
        meaning = "the question attends to the memory more than the prose around it does"
    else:
        meaning = ("the prose attends to the memory even more than the question does" if where == "below" else
                   "the question attends to the memory no more than the prose around it does")
        meaning += ", so attention on memory is not, by itself, a reading of the fact"
    return (f"the segment's prose positions, which have no question to answer, lift the read memory {p:.2f} "
            f"times over uniform against the question positions' {q:.2f} (difference {d:+.2f}, "
            f"{where} zero by its 95% interval, over {control['n']} samples): {meaning}")


def estimate(summary: Mapping, *keys: str, digits: int = 3) -> float:
    """One estimate of a summary, rounded for the prose (myst_nb glue), e.g.
    ``estimate(s, "memory_change", "auc")``; a clear error when the statistic is missing."""
    value = lookup(summary, *keys)
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


# "What the memory holds": the book's thresholds for decoding and patching (32 segments).
DECODING_TARGET = 0.95  # the asked actor's location, decoded from the state the question reads
DECODING_CONTROL_CEILING = 0.40  # the same probe on an untrained RMT's states
PATCH_FOLLOW_TARGET = 0.90  # the answer follows the donor's memory patched in after the fact segment
PATCH_DISTRACTOR_CEILING = 0.05  # the answer changes when a distractor segment's memory is patched


def memory_holds_checks(decoding: Mapping, control: Mapping, patching: Mapping) -> list[TargetCheck]:
    """The decoding and patching thresholds: `decoding` and `control` are `decoding_accuracy` results (the
    shipped model's and the untrained control's), `patching` is `patch_memory`'s summary."""
    if not patching.get("n_eligible"):
        raise ValueError("no eligible patching pair: patch more samples (a fact in the first segment, or a "
                         "supporting fact in the question's, leaves nothing to patch)")
    return [target_check("decoded location of the asked actor at the question", decoding["asked_at_question"],
                         DECODING_TARGET),
            target_check("the same, untrained control", control["asked_at_question"], DECODING_CONTROL_CEILING,
                         at_most=True),
            target_check("answer follows the patch after the fact segment", patching["fact_follows"],
                         PATCH_FOLLOW_TARGET),
            target_check("answer changes with a patch after a distractor segment", patching["distractor_changes"],
                         PATCH_DISTRACTOR_CEILING, at_most=True)]
