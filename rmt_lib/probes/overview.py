"""The book's results at a glance (its landing page): one row per claim of Appendix H and per accuracy the
paper reports, with what the paper shows, what we measure (estimate, 95% interval, sample count), the
verdict against the book's own threshold, and the chapter that measures it.

The probe measurements take minutes (held-out samples at 32 and 256 segments, and the drift samples), so
`measure_claims` runs them once, with the full budget, and `python -m rmt_lib figures --claims` commits
them as ``data/results/figure8_claims.json``; accuracy comes from the committed evaluation files. Each
row is the library call its chapter makes (`figure8_checks`, `drift_check`, `committed_evaluation`), on
the same samples, so the landing page runs in seconds and agrees with the chapters.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rmt_lib import paper, paths
from rmt_lib.budgets import ProbeBudget
from rmt_lib.display.tables import interval_text, markdown_table, percent
from rmt_lib.jsonio import lookup, write_json
from rmt_lib.paper import FIGURE8_LONG, FIGURE8_SHORT
from rmt_lib.probes.claims import TargetCheck, drift_check, figure8_checks, relation
from rmt_lib.probes.heldout import held_out_probe
from rmt_lib.probes.run import probe_drift

CLAIMS_FILE = paths.RESULTS_DIR / "figure8_claims.json"
# The book's accuracy thresholds: the paper's RMT (BABILong Table 4, QA1) at 128k and 1M, and at 16k,
# where it reports 100%, one point below (a 100% threshold would fail on one wrong answer in any count).
ACCURACY_TARGETS = {paper.segments_for(paper.TABLE4_LENGTHS["16k"]): 0.99,
                    paper.segments_for(paper.TABLE4_LENGTHS["128k"]): 0.94,
                    paper.segments_for(paper.TABLE4_LENGTHS["1M"]): 0.84}
_LENGTH_NAME = {paper.segments_for(tokens): name for name, tokens in paper.TABLE4_LENGTHS.items()}


def measure_claims(model, tokenizer, *, budget: str = "full", progress: bool = False) -> dict:
    """The held-out measurements behind the Figure 8 claims, as the chapters make them (`held_out_probe` at
    FIGURE8_SHORT and FIGURE8_LONG segments, `probe_drift` at FIGURE8_LONG), JSON-ready."""
    counts = ProbeBudget.named(budget)
    summaries = {f"{n} segments": held_out_probe(model, tokenizer, n_segments=n, n_samples=counts.n_samples(n),
                                                 progress=progress).summary
                 for n in (FIGURE8_SHORT, FIGURE8_LONG)}
    drift = probe_drift(model, tokenizer, n_samples=counts.n_samples(FIGURE8_LONG), n_segments=FIGURE8_LONG,
                        min_stretch=100)
    return {"budget": budget, "summaries": summaries,
            "drift": {k: drift[k] for k in ("n_segments", "min_stretch", "ratio", "path_over_jump", "straightness",
                                            "stretch")}}


def write_claims(claims: Mapping, path: str | Path = CLAIMS_FILE) -> Path:
    return write_json(path, claims, indent=1)


def read_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """The committed claims (`write_claims`); a clear error naming the command that writes them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no claims file at {paths.relative(path)}: measure it with `python -m rmt_lib "
                                f"figures --output figures/ --claims {paths.relative(path)}`")
    try:
        claims = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{paths.relative(path)} is not JSON ({err}); measure it again") from None
    if not isinstance(claims, dict) or not {"summaries", "drift"} <= set(claims):
        raise ValueError(f"{paths.relative(path)} is not a claims file (it needs summaries and drift)")
    return claims


@dataclass(frozen=True)
class ClaimRow:
    claim: str  # what Appendix H (or Table 4) says, in the book's words
    paper: str  # what the paper shows
    check: TargetCheck | None  # our measurement against the book's threshold; None where none is set
    measured: str  # the estimate with its interval and sample count, as shown
    verdict: str
    chapter: str  # the chapter that measures it (a document name of the book)


def claim_rows(claims: Mapping, accuracy) -> list[ClaimRow]:
    """The landing page's rows: the Figure 8 claims from `claims` (`measure_claims` output, or the committed
    file) and the accuracy at the paper's 16k, 128k and 1M from `accuracy` (an `AccuracyCurve`)."""
    summaries, rows = claims["summaries"], []
    checks = {c.name: c for c in figure8_checks(summaries)}
    for label, panel, chapter in ((f"{FIGURE8_SHORT} segments", "a", "figure8a"),
                                  (f"{FIGURE8_LONG} segments", "b", "figure8b")):
        check = checks[f"AUC fact vs. distractor, {label}"]
        n = lookup(summaries[label], "memory_change", "auc", "n")
        rows.append(_row(f"({panel}) the memory jumps at fact segments, not elsewhere ({label})",
                         f"panel ({panel}): distances jump at the fact segments", check, n, "samples", chapter))
    drift = drift_check(claims["drift"])
    rows.append(_row(f"(b) the memory stays put through {claims['drift']['min_stretch']}+ distractor segments",
                     "panel (b): blocks of near-equal states between facts", drift, claims["drift"]["ratio"]["n"],
                     "samples", "figure8b", after=" of the next fact's jump"))
    for label in summaries:
        write = summaries[label]["write_attention"]
        heads = [("mean over heads", "mean over heads", write["mean_over_heads"]["lift"])]
        if chosen := write.get("chosen_head"):
            heads.append(("the chosen head", f"chosen head L{chosen['layer']}H{chosen['head']}", chosen["lift"]))
        for name, which, stat in heads:
            rows.append(_row(f"(c) writing attends to the fact's tokens, {name} ({label})",
                             "panel (c): write memory on the fact's tokens", checks[f"write lift, {which}, {label}"],
                             stat.get("n"), "samples", "figure8c", unit="x"))  # resampled by sample
    read = lookup(summaries[f"{FIGURE8_SHORT} segments"], "read_attention", "mean_over_heads", "share")
    baseline = lookup(summaries[f"{FIGURE8_SHORT} segments"], "read_attention", "memory_baseline", "estimate")
    if read is not None and baseline is not None:
        rows.append(ClaimRow(f"(d) the question attends to the memory ({FIGURE8_SHORT} segments)",
                             "panel (d): the answer attends to the read memory", None,
                             f"{interval_text(read)} of attention, uniform {baseline:.3f} (n = {read.get('n')} samples)",
                             f"no threshold set: {relation(read, baseline)} uniform", "figure8d"))
    control = lookup(summaries[f"{FIGURE8_SHORT} segments"], "read_attention", "prose_control", "lift_difference")
    if control is not None:
        rows.append(ClaimRow(f"(d) the question attends to the memory more than the prose beside it ({FIGURE8_SHORT} "
                             "segments)", "panel (d): the answer, not every token, attends to the memory", None,
                             f"lift difference {interval_text(control)} (n = {control.get('n')} samples)",
                             f"no threshold set: {relation(control, 0.0)} zero", "figure8d"))
    for n_segments, target in ACCURACY_TARGETS.items():
        name = _LENGTH_NAME[n_segments]
        at = accuracy.at(n_segments)
        check = TargetCheck(f"accuracy at {n_segments} segments", at.accuracy, at.low, at.high, target)
        rows.append(ClaimRow(f"QA1 accuracy at the paper's {name} ({n_segments} segments)",
                             f"RMT {paper.TABLE4_QA1['RMT'][name]}%, ARMT {paper.TABLE4_QA1['ARMT'][name]}% (Table 4)",
                             check, f"{percent(at.accuracy)} [{percent(at.low)}, {percent(at.high)}] (n = {at.total})",
                             _verdict(check, as_percent=True), "evaluation"))
    return rows


def claims_markdown(rows: list[ClaimRow]) -> str:
    """The claims table in Markdown, each claim linked to the chapter that measures it."""
    return markdown_table(["claim", "the paper", "we measure (95% interval)", "verdict", "chapter"],
                          [[r.claim, r.paper, r.measured, r.verdict, f"{{doc}}`{r.chapter}`"] for r in rows])


def accuracy_targets_text() -> str:
    """The accuracy thresholds and where they come from (the paper's RMT, Table 4), for the prose."""
    rmt = paper.TABLE4_QA1["RMT"]
    listed = "; ".join(f"at least {target:.0%} at {n:,} segments" for n, target in ACCURACY_TARGETS.items())
    below = rmt["16k"] - round(100 * ACCURACY_TARGETS[paper.segments_for(paper.TABLE4_LENGTHS["16k"])])
    return (f"{listed}: the paper's {rmt['128k']}% at 128k and {rmt['1M']}% at 1M, and at 16k {below} point"
            f"{'s' if below != 1 else ''} below its {rmt['16k']}%, so that a single wrong answer leaves the estimate "
            "above the threshold")


def verdict_summary(rows: list[ClaimRow]) -> str:
    """One sentence for the prose: how many claims with a threshold are met, and which are met by the
    estimate only or not met."""
    checked = [r for r in rows if r.check is not None]
    met = sum(r.check.status == "met" for r in checked)
    if met == len(checked):
        return f"All {len(checked)} claims with a threshold are met."
    parts = [f"{met} of the {len(checked)} claims with a threshold are met"]
    for status, label in (("estimate only", "Met by the estimate only"), ("not met", "Not met")):
        claims = [r.claim for r in checked if r.check.status == status]
        if claims:
            parts.append(f"{label}: " + "; ".join(claims))
    return ". ".join(parts) + "."


def _row(claim: str, shown: str, check: TargetCheck, n, unit_name: str, chapter: str, *, unit: str = "",
         after: str = "") -> ClaimRow:
    measured = f"{check.estimate:.3f}{unit} [{check.low:.3f}, {check.high:.3f}]{after} (n = {n} {unit_name})"
    return ClaimRow(claim, shown, check, measured, _verdict(check), chapter)


def _verdict(check: TargetCheck, as_percent: bool = False) -> str:
    side = "<=" if check.at_most else ">="
    target = percent(check.target) if as_percent else f"{check.target:g}"
    return {"met": "met", "estimate only": "met by the estimate only", "not met": "not met"}[check.status] + \
        f" (threshold {side} {target})"


__all__ = ["ACCURACY_TARGETS", "CLAIMS_FILE", "ClaimRow", "claim_rows", "claims_markdown",
           "accuracy_targets_text", "measure_claims", "read_claims", "verdict_summary", "write_claims"]
