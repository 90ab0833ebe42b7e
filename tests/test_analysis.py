"""The chapters' measurements (rmt_lib.probes heldout/claims/failures/heads, rmt_lib.display.tables): budgets, the probe cache, target checks, tables, failure cases and head comparisons."""
from __future__ import annotations

import re

import numpy as np
import pytest

from rmt_lib import probes
from rmt_lib.budgets import ProbeBudget
from rmt_lib.display import tables
from rmt_lib.display.tables import ResultTable
from rmt_lib.probes import HeldOutProbe, heldout
from rmt_lib.probes.claims import target_check

torch = pytest.importorskip("torch")

from rmt_lib.data import Sample, generate_samples, load_tokenizer  # noqa: E402
from rmt_lib.model import RecurrentMemoryTransformer  # noqa: E402
from tests.helpers import tiny_rmt, word_prose

SEGMENT = 16

# --------------------------------------------------------------------------------------- budgets


def test_budgets_cover_both_lengths_and_full_measures_at_least_200():
    full, ci = ProbeBudget.named("full"), ProbeBudget.named("ci")
    assert full.n_samples(32) >= 200 and full.n_samples(256) >= 200
    assert ci.n_samples(32) >= 200 and 1 <= ci.n_samples(256) <= full.n_samples(256)
    with pytest.raises(ValueError, match="128"):
        full.n_samples(128)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_budget_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="positive int"):
        ProbeBudget("x", bad, 10)


def test_unknown_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="budget must be one of .* got 'long'"):
        ProbeBudget.named("long")

# ------------------------------------------------------------------------ held-out probe + cache


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def _model(tokenizer, seed: int = 0) -> RecurrentMemoryTransformer:
    return tiny_rmt(tokenizer, SEGMENT, seed)


@pytest.fixture(scope="module")
def model(tokenizer):
    return _model(tokenizer)


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    return word_prose(tmp_path_factory.mktemp("prose"))


def _probe(model, tokenizer, background, cache_dir, **kw):
    args = dict(n_segments=4, n_samples=6, background=background, cache_dir=cache_dir)
    args.update(kw)
    return probes.held_out_probe(model, tokenizer, **args)


def test_cached_result_equals_the_fresh_one_exactly(model, tokenizer, background, tmp_path):
    fresh = _probe(model, tokenizer, background, tmp_path)
    assert not fresh.from_cache and len(list(tmp_path.glob("*.npz"))) == 1
    cached = _probe(model, tokenizer, background, tmp_path)
    assert cached.from_cache
    assert cached.summary == fresh.summary
    assert [s.input for s in cached.samples] == [s.input for s in fresh.samples]
    for a, b in zip(fresh.entries, cached.entries):
        assert set(a) == set(b)
        for key in ("memory_change", "distance_matrix"):
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key])
        for wa, wb in zip(a["write_attention"], b["write_attention"]):
            assert isinstance(wb["share"], np.ndarray) and np.array_equal(wa["share"], wb["share"])
        assert np.array_equal(a["read_attention"]["memory_share"], b["read_attention"]["memory_share"])
        assert {k: v for k, v in a.items() if not isinstance(v, (np.ndarray, list, dict))} == \
               {k: v for k, v in b.items() if not isinstance(v, (np.ndarray, list, dict))}
    # what the book computes from a cached result equals what it computes from a fresh one
    assert probes.summarize(cached.entries) == probes.summarize(fresh.entries)


def test_another_model_or_other_arguments_never_reuse_a_cached_result(model, tokenizer, background, tmp_path):
    _probe(model, tokenizer, background, tmp_path)
    other = _model(tokenizer, seed=1)
    assert not _probe(other, tokenizer, background, tmp_path).from_cache
    assert not _probe(model, tokenizer, background, tmp_path, seed=3).from_cache
    assert not _probe(model, tokenizer, background, tmp_path, n_samples=5).from_cache
    assert len(list(tmp_path.glob("*.npz"))) == 4
    key = heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background)
    assert key == heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background)
    assert key != heldout.probe_cache_key(model, tokenizer, {"a": 2}, background=background)


def test_a_damaged_cache_file_is_recomputed_not_trusted(model, tokenizer, background, tmp_path):
    fresh = _probe(model, tokenizer, background, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an npz")
    again = _probe(model, tokenizer, background, tmp_path)
    assert not again.from_cache and again.summary == fresh.summary
    assert _probe(model, tokenizer, background, tmp_path).from_cache  # rewritten, whole


def test_cache_false_writes_nothing(model, tokenizer, background, tmp_path):
    held = _probe(model, tokenizer, background, tmp_path, cache=False)
    assert not held.from_cache and not any(tmp_path.iterdir())
    assert len(held.entries) == 6 and all(len(e["fact_segments"]) == 2 for e in held.entries)

# ------------------------------------------------------------------------------ targets, tables


@pytest.mark.parametrize("low, est, status", [(0.975, 0.98, "met"), (0.96, 0.975, "estimate only"),
                                              (0.9, 0.95, "not met")])
def test_target_check_status(low, est, status):
    check = target_check("AUC", {"estimate": est, "low": low, "high": 0.99}, 0.97)
    assert check.status == status
    assert str(check).startswith(f"AUC: {est:.3f} [95% CI {low:.3f}, 0.990], threshold >= 0.97: ")


def test_target_check_rejects_a_non_interval():
    with pytest.raises(ValueError, match="estimate/low/high"):
        target_check("AUC", {"value": 1.0}, 0.97)


def _interval(x, half=0.01):
    return {"estimate": x, "low": x - half, "high": x + half}


def _summary(auc=0.98, lift=3.5, n=10):
    head = {"layer": 1, "head": 0, "share": _interval(0.9), "lift": _interval(4.0)}
    return {"n_samples": n, "accuracy": _interval(0.9),
            "memory_change": {"auc": _interval(auc), "auc_all_other": _interval(auc - 0.005), "ratio": _interval(5.0)},
            "write_attention": {"n_units": 2 * n, "token_share": _interval(0.2),
                                "mean_over_heads": {"share": _interval(0.7), "lift": _interval(lift)},
                                "chosen_head": head, "per_head_share": [[0.1, 0.9], [0.5, 0.3]]},
            "read_attention": {"n_units": n, "memory_baseline": {"estimate": 0.2, "low": 0.2, "high": 0.2},
                               "mean_over_heads": {"share": _interval(0.3, 0.05), "lift": _interval(1.5)},
                               "chosen_head": None, "per_head_share": [[0.2, 0.1], [0.4, 0.3]]},
            "head_selection": {"n_selection": n // 2, "n_measured": n - n // 2}}


def test_issue_targets_names_both_aucs_and_both_write_lifts_per_length():
    checks = probes.figure8_checks({"32 segments": _summary(), "256 segments": _summary(auc=0.96)})
    names = [c.name for c in checks]
    assert names == ["AUC fact vs. distractor, 32 segments", "AUC fact vs. all other, 32 segments",
                     "AUC fact vs. distractor, 256 segments", "AUC fact vs. all other, 256 segments",
                     "write lift, mean over heads, 32 segments", "write lift, chosen head L1H0, 32 segments",
                     "write lift, mean over heads, 256 segments", "write lift, chosen head L1H0, 256 segments"]
    assert [c.status for c in checks[:4]] == ["met", "estimate only", "not met", "not met"]
    assert len(probes.figure8_checks({"x": _summary()}, which=("auc",))) == 2
    with pytest.raises(ValueError, match="unknown target"):
        probes.figure8_checks({"x": _summary()}, which=("read",))


def test_result_table_renders_markdown_and_rounded_text():
    table = tables.change_table({"32 segments": _summary(), "256 segments": _summary(auc=0.9)})
    md = table._repr_markdown_()
    assert "| | 32 segments | 256 segments |" in md
    assert "| samples | 10 | 10 |" in md  # counts are integers, without an interval
    assert "0.980 [0.970, 0.990]" in md and "0.900 [0.890, 0.910]" in md
    assert "–" in md  # statistics the summary lacks (e.g. question_mean) are dashes, not errors
    text = str(table)
    assert text.splitlines()[0].startswith("Memory change") and "0.980 [0.970, 0.990]" in text
    assert repr(table) == text
    with pytest.raises(ValueError, match="cells"):
        ResultTable("t", ("a", "b"), (("row", (None,)),))


def test_read_table_gives_segment_share_as_the_complement():
    text = str(tables.read_table({"x": _summary()}))
    assert re.search(r"attention on segment tokens, mean over heads +0\.700 \[0\.650, 0\.750\]\n", text)
    assert re.search(r"memory share under uniform causal attention +0\.200\n", text)  # no interval on a constant
    assert re.search(r"lift, chosen head \(measured on held-out half\) +–\n", text)
    assert re.search(r"question lift minus prose lift \(paired\) +–$", text)  # no control measured


def test_write_table_and_chosen_heads():
    assert "4.000 [3.990, 4.010]" in str(tables.write_table({"x": _summary()}))
    assert tables.chosen_heads({"x": _summary()}, "write_attention") == {
        "x": "layer 1, head 0 (chosen on 5 samples, measured on the other 5)"}
    assert tables.chosen_heads({"x": _summary()}, "read_attention") == {"x": None}


def test_relation_and_estimate():
    assert probes.relation(_interval(0.5), 0.2) == "above"
    assert probes.relation(_interval(0.1), 0.2) == "below"
    assert probes.relation(_interval(0.2), 0.2) == "not distinguishable from"
    assert probes.estimate(_summary(), "memory_change", "auc") == 0.98
    assert probes.estimate(_summary(), "n_samples") == 10
    with pytest.raises(ValueError, match="no memory_change/nothing"):
        probes.estimate(_summary(), "memory_change", "nothing")

# ------------------------------------------------------------------------------- failure cases


def _entry(change, fact_segments, prediction, target):
    S = len(change)
    return {"n_segments": S, "memory_change": np.asarray(change, dtype=np.float32), "fact_segments": fact_segments,
            "question_segment": S - 1, "question_segments": [S - 1], "prediction": prediction, "target": target,
            "correct": prediction == target}


def _sample(facts, question, target):
    return Sample(input=" ".join(facts), question=question, target=target, facts=tuple(facts))


def test_failure_cases_sort_answers_and_read_the_memory():
    facts = ("Mary went to the kitchen.", "John moved to the garden.")
    same = ("Mary went to the kitchen.", "Mary moved to the office.")
    samples = (_sample(facts, "Where is Mary?", "kitchen"), _sample(facts, "Where is Mary?", "kitchen"),
               _sample(same, "Where is Mary?", "office"), _sample(facts, "Where is John?", "garden"))
    entries = [
        _entry([9, 0.1, 5.0, 0.2, 4.0, 1], [2, 4], "kitchen", "kitchen"),  # right; facts are the top changes
        _entry([9, 0.1, 5.0, 0.2, 0.1, 1], [2, 4], "garden", "kitchen"),  # the other actor's location
        _entry([9, 3.0, 0.1, 0.2, 4.0, 1], [2, 4], "kitchen", "office"),  # the asked actor's earlier location
        _entry([9, 0.1, 5.0, 0.2, 4.0, 1], [1, 3], "bedroom", "garden"),  # a location in no fact
    ]
    report = probes.failure_cases(HeldOutProbe(6, 0, samples, {"samples": entries, "summary": {}}))
    kinds = [o.kind for o in report.outcomes]
    assert kinds == ["correct", "the other actor's location", "the asked actor's earlier location",
                     "a location in no fact"]
    assert [o.facts_detected for o in report.outcomes] == [True, False, False, False]
    assert [o.segments_to_question for o in report.outcomes] == [1, 1, 1, 2]
    assert report.outcomes[0].sample_auc == 1.0 and report.outcomes[3].sample_auc == 0.0
    assert report.kinds() == {"the other actor's location": 1, "the asked actor's earlier location": 1,
                              "a location in no fact": 1}
    acc = report.accuracy_given_detection()
    assert acc["facts detected"]["estimate"] == 1.0 and acc["facts not detected"]["estimate"] == 0.0
    md = report.table().to_markdown()
    assert "| samples | 1 | 3 |" in md and "right" in md and "wrong" in md


def test_failure_report_with_no_wrong_answers_still_tabulates():
    samples = (_sample(("Mary went to the kitchen.", "John moved to the garden."), "Where is Mary?", "kitchen"),)
    entries = [_entry([9, 0.1, 5.0, 0.2, 4.0, 1], [2, 4], "kitchen", "kitchen")]
    report = probes.failure_cases(HeldOutProbe(6, 0, samples, {"samples": entries, "summary": {}}))
    assert report.wrong == () and all(v == 0 for v in report.kinds().values())
    assert report.accuracy_given_detection()["facts not detected"] is None
    assert "| samples | 1 | 0 |" in report.table().to_markdown()

# --------------------------------------------------------------------------------- heads compared


def _attention_entry(write_shares, read_share):
    return {"write_attention": [{"share": np.asarray(w, dtype=np.float64), "token_share": 0.2} for w in write_shares],
            "read_attention": {"memory_share": np.asarray(read_share, dtype=np.float64), "memory_baseline": 0.2}}


def test_head_choice_is_stable_when_one_head_dominates_and_not_when_heads_tie():
    rng = np.random.default_rng(0)
    dominant = [_attention_entry([[[0.1, 0.9], [0.2, 0.3]] + rng.normal(0, 0.01, (2, 2))], [[0.1, 0.2], [0.3, 0.4]])
                for _ in range(20)]
    assert probes.head_choice_stability(dominant, "write", n_splits=50) == 1.0
    noisy = [_attention_entry([rng.uniform(0, 1, (2, 2))], rng.uniform(0, 1, (2, 2))) for _ in range(20)]
    assert probes.head_choice_stability(noisy, "read", n_splits=50) < 1.0
    with pytest.raises(ValueError, match="'write' or 'read'"):
        probes.head_choice_stability(noisy, "other")
    with pytest.raises(ValueError, match="at least two"):
        probes.head_choice_stability(noisy[:1], "write")


def test_head_comparison_rank_correlation_and_chosen_heads():
    a, b = _summary(), _summary()
    b["write_attention"]["per_head_share"] = [[0.2, 0.9], [0.3, 0.5]]  # two heads swap places
    cmp = probes.head_comparison({"32": a, "256": a}, "write")
    assert cmp.rank_correlation() == pytest.approx(1.0) and cmp.same_chosen_head()
    assert cmp.baseline == {"32": 0.2, "256": 0.2}
    other = probes.head_comparison({"32": a, "256": b}, "write")
    assert other.rank_correlation() == pytest.approx(0.8)  # ranks (1,4,3,2) vs (1,4,2,3)
    read = probes.head_comparison({"32": a}, "read")
    assert read.chosen == {"32": None} and not read.same_chosen_head()
    with pytest.raises(ValueError, match="two summaries"):
        read.rank_correlation()


def test_units_for_the_attention_plots():
    entries = [_attention_entry([[[0.1, 0.9], [0.2, 0.3]], [[0.5, 0.5], [0.5, 0.5]]], [[0.1, 0.2], [0.3, 0.4]])]
    w = probes.write_units(entries)
    assert w["share"].shape == (2, 2, 2) and w["share_mean"].tolist() == [0.375, 0.5]
    r = probes.read_units(entries)
    assert r["baseline"].tolist() == [0.2] and r["share_mean"].tolist() == pytest.approx([0.25])
    with pytest.raises(ValueError, match="no write-attention"):
        probes.write_units([{"write_attention": []}])


def test_generated_samples_used_by_the_cache_are_the_probe_generated_ones(model, tokenizer, background, tmp_path):
    held = _probe(model, tokenizer, background, tmp_path, cache=False)
    again = generate_samples("qa1", n_samples=6, n_segments=4, n_facts=2, split="test", background=background,
                             seed=probes.MEASURE_SEED, segment_size=SEGMENT, tokenizer=tokenizer)
    assert [s.input for s in held.samples] == [s.input for s in again]
    direct = probes.probe_generated(model, tokenizer, n_segments=4, n_samples=6, seed=probes.MEASURE_SEED,
                                    background=background, progress=False)
    assert direct["summary"] == held.summary


def test_describe_outcome_and_first_wrong():
    facts = ("Mary went to the kitchen.", "John moved to the garden.")
    samples = (_sample(facts, "Where is Mary?", "kitchen"), _sample(facts, "Where is Mary?", "kitchen"))
    entries = [_entry([9, 0.1, 5.0, 0.2, 4.0, 1], [2, 4], "kitchen", "kitchen"),
               _entry([9, 0.1, 5.0, 0.2, 0.1, 1], [2, 4], "garden", "kitchen")]
    held = HeldOutProbe(6, 0, samples, {"samples": entries, "summary": {}})
    report = probes.failure_cases(held)
    wrong = report.first_wrong()
    assert wrong.index == 1
    text = probes.describe_outcome(held, wrong)
    assert "fact 2 in segment 4: John moved to the garden." in text
    assert "answer 'garden' (wrong: the other actor's location)" in text
    assert "largest memory changes: segment 2 (5.00), segment 3 (0.20), segment 1 (0.10)" in text
    assert probes.failure_cases(HeldOutProbe(6, 0, samples[:1], {"samples": entries[:1], "summary": {}})).first_wrong() is None
    assert report.findings() == ("At 6 segments 1 of 2 answers were wrong (1 named the other actor's location); the "
                                 "memory had singled out both fact segments in 0 of them: in none of them did the "
                                 "fact segments stand out as the largest changes.")
    right = probes.failure_cases(HeldOutProbe(6, 0, samples[:1], {"samples": entries[:1], "summary": {}}))
    assert right.findings() == "At 6 segments all 1 answers were right."


def test_sample_numbers_of_a_capture(model, tokenizer, background):
    sample = generate_samples("qa1", n_samples=1, n_segments=4, n_facts=2, split="test", background=background,
                              seed=0, segment_size=SEGMENT, tokenizer=tokenizer)[0]
    capture = probes.capture_sample(model, tokenizer, sample)
    numbers = probes.sample_numbers(capture, write_head=(1, 0), read_head=(0, 1))
    w = capture.entry["write_attention"][0]
    assert numbers["write_share_chosen"] == pytest.approx(w["share"][1, 0])
    assert numbers["write_share_mean"] == pytest.approx(w["share"].mean())
    assert numbers["write_token_share"] == w["token_share"]
    r = capture.entry["read_attention"]["memory_share"]
    assert numbers["read_share_chosen"] == pytest.approx(r[0, 1])
    assert 0.0 <= numbers["answer_share_mean"] <= 1.0 and 0.0 <= numbers["answer_share_chosen"] <= 1.0
    assert set(numbers) >= {"auc", "ratio", "read_baseline"}
    weights, tokens, mask = capture.write_map(0, 1, 0)
    top = int(np.argmax(weights.sum(axis=0)))
    assert numbers["write_top_token_chosen"] == tokens[top] and numbers["write_top_in_fact_chosen"] == bool(mask[top])
    assert numbers["write_top_token"] in capture.write_map(0)[1]


def test_cache_key_follows_the_computing_code_not_the_drawing_code(model, tokenizer, background, monkeypatch, tmp_path):
    package = tmp_path / "rmt_lib"
    for name in (*heldout.RESULT_SOURCES, "plots/memory.py", "display/tables.py", "probes/claims.py"):
        path = package / name if name.endswith(".py") else package / name / "__init__.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {name}\n")
    monkeypatch.setattr(heldout, "PACKAGE", package)
    key = heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background)
    (package / "plots" / "memory.py").write_text("# a new colour\n")
    (package / "display" / "tables.py").write_text("# a new column\n")
    (package / "probes" / "claims.py").write_text("# a new threshold\n")
    assert heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background) == key
    (package / "probes" / "summary.py").write_text("# a new statistic\n")
    assert heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background) != key
    (package / "stats.py").unlink()  # a renamed module must be renamed in RESULT_SOURCES too, not dropped silently
    with pytest.raises(FileNotFoundError, match="stats.py"):
        heldout.probe_cache_key(model, tokenizer, {"a": 1}, background=background)


def test_result_sources_exist_in_the_package():
    assert all(path.is_file() for path in heldout.result_sources())
