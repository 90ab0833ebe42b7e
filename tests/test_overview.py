"""rmt_lib.probes.overview: the landing page's claims table, from the committed claims and evaluation."""
from __future__ import annotations

import json

import pytest

from rmt_lib import paper
from rmt_lib.evaluate import committed_evaluation
from rmt_lib.paths import BOOK_DIR
from rmt_lib.probes import overview


def _interval(estimate, low, high, n=10):
    return {"estimate": estimate, "low": low, "high": high, "n": n}


def _claims(auc=0.99, lift=3.5, ratio=0.4):
    summary = {"memory_change": {"auc": _interval(auc, auc - 0.01, auc + 0.005),
                                 "auc_all_other": _interval(auc, auc - 0.01, auc + 0.005)},
               "write_attention": {"mean_over_heads": {"lift": _interval(lift, lift - 0.5, lift + 0.5)},
                                   "chosen_head": {"layer": 1, "head": 2, "lift": _interval(4.0, 3.5, 4.5)}},
               "read_attention": {"mean_over_heads": {"share": _interval(0.5, 0.45, 0.55)},
                                  "memory_baseline": {"estimate": 0.2},
                                  "prose_control": {"lift_difference": _interval(0.8, 0.7, 0.9)}}}
    return {"budget": "full", "summaries": {"32 segments": summary, "256 segments": summary},
            "drift": {"n_segments": 256, "min_stretch": 100, "ratio": _interval(ratio, ratio - 0.1, ratio + 0.1, 50)}}


def test_every_claim_gets_a_row_with_a_computed_verdict_and_its_chapter():
    accuracy = committed_evaluation("babi")
    rows = overview.claim_rows(_claims(), accuracy)
    chapters = {p.stem for p in BOOK_DIR.glob("*.ipynb")}
    assert {r.chapter for r in rows} <= chapters
    by_claim = {r.claim: r for r in rows}
    assert by_claim["(b) the memory stays put through 100+ distractor segments"].verdict == "met (threshold <= 0.5)"
    assert by_claim["(a) the memory jumps at fact segments, not elsewhere (32 segments)"].check.status == "met"
    assert "above uniform" in by_claim["(d) the question attends to the memory (32 segments)"].verdict
    control = by_claim["(d) the question attends to the memory more than the prose beside it (32 segments)"]
    assert control.verdict == "no threshold set: above zero" and "0.800 [0.700, 0.900]" in control.measured
    at_128k = by_claim["QA1 accuracy at the paper's 128k (256 segments)"]
    assert at_128k.paper == f"RMT {paper.TABLE4_QA1['RMT']['128k']}%, ARMT {paper.TABLE4_QA1['ARMT']['128k']}% (Table 4)"
    assert at_128k.check.estimate == accuracy.at(256).accuracy and at_128k.check.target == 0.94
    failing = {r.claim: r for r in overview.claim_rows(_claims(ratio=0.9, lift=2.0), accuracy)}
    assert failing["(b) the memory stays put through 100+ distractor segments"].check.status == "not met"
    summary = overview.verdict_summary(list(failing.values()))
    assert summary.startswith(
        f"{sum(r.check is not None and r.check.status == 'met' for r in failing.values())} of the "
        f"{sum(r.check is not None for r in failing.values())} claims with a threshold are met. ")
    assert "Not met: (b) the memory stays put" in summary
    assert overview.verdict_summary([r for r in rows if r.check is None or r.check.status == "met"]).startswith("All ")
    assert "(n = 10 samples)" in by_claim["(c) writing attends to the fact's tokens, mean over heads (32 segments)"].measured
    targets = overview.accuracy_targets_text()
    assert targets.startswith("at least 99% at 32 segments; at least 94% at 256 segments; at least 84% at 2,048")
    assert "at 16k 1 point below its 100%" in targets
    table = overview.claims_markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "{doc}`figure8b`" in table


def test_the_committed_claims_are_read_and_a_missing_file_names_its_command(tmp_path):
    claims = overview.read_claims()
    assert claims["budget"] == "full" and set(claims["summaries"]) == {"32 segments", "256 segments"}
    assert len(overview.claim_rows(claims, committed_evaluation("babi"))) >= 10
    with pytest.raises(FileNotFoundError, match="--claims"):
        overview.read_claims(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps([]))
    with pytest.raises(ValueError, match="not a claims file"):
        overview.read_claims(tmp_path / "bad.json")
