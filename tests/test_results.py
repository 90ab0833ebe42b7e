"""Readers and tables behind the book (data statistics, model inspection, training logs, evaluation results): the book's tables from logs, result files, models and samples.

Fast: tiny hand-written logs and result files, the tiny preset's model, samples from a synthetic prose folder.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmt_lib import budgets, evaluate, paths
from rmt_lib.data import stats as data_stats
from rmt_lib.display import html
from rmt_lib.model import inspect
from rmt_lib.train import log as train_log
from rmt_lib.data import Sample, encode_sample, generate_samples, load_tokenizer
from rmt_lib.evaluate import accuracy_by_length
from rmt_lib.stats import wilson_interval
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained
from rmt_lib.train import PRESETS, Stage, TrainConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROSE = " ".join(f"Sentence number {i} is about the weather and the garden walk." for i in range(400))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def prose_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prose")
    (folder / "book.txt").write_text(PROSE + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny_model():
    return RecurrentMemoryTransformer(PRESETS["tiny"].model).eval()


def _write_log(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _train(stage, n, step, loss, elapsed, val=None):
    r = dict(kind="train", stage=stage, n_segments=n, step=step, loss=loss, accuracy=0.5, lr=1e-3,
             tokens_per_s=100, elapsed=elapsed)
    if val is not None:
        r["val_accuracy"] = val
    return r


# ------------------------------------------------------------------------------------ training log


def test_training_log_groups_stages_and_times_each_stage(tmp_path):
    log = train_log.read_training_log(_write_log(tmp_path / "metrics.jsonl", [
        _train(0, 1, 1, 1.8, 1.0), _train(0, 1, 2, 1.2, 2.0, val=0.6),
        dict(kind="stage", stage=0, n_segments=1, steps=2, best_val_accuracy=0.6, elapsed=2.5),
        _train(1, 2, 1, 0.9, 4.0), _train(1, 2, 2, 0.7, 6.5, val=0.7),
        dict(kind="stage", stage=1, n_segments=2, steps=2, best_val_accuracy=0.7, elapsed=7.0),
    ]))
    assert [s.n_segments for s in log.stages] == [1, 2]
    assert [s.seconds for s in log.stages] == [2.5, 4.5]  # the second stage's time excludes the first's
    assert log.total_seconds == 7.0 and log.total_steps == 4 and log.finished
    np.testing.assert_array_equal(log.stages[1].loss, [0.9, 0.7])
    np.testing.assert_array_equal(log.stages[0].val_steps, [2])
    assert "| 2 | 2 | 2 | 0.700 |" in log._repr_markdown_()
    assert "4 training steps" in log.summary() and "1 → 2 segments" in log.summary()


def test_a_stage_without_its_closing_record_is_kept_as_unfinished(tmp_path):
    log = train_log.read_training_log(_write_log(tmp_path / "metrics.jsonl", [
        _train(0, 1, 1, 1.8, 1.0, val=0.5),
        dict(kind="stage", stage=0, n_segments=1, steps=1, best_val_accuracy=0.5, elapsed=1.5),
        _train(1, 4, 1, 0.9, 3.0, val=0.4), _train(1, 4, 2, 0.8, 4.0, val=0.45),
    ]))
    last = log.stages[-1]
    assert not last.finished and not log.finished
    assert last.best_val_accuracy == 0.45 and last.seconds == 2.5
    assert "had not finished" in log.summary()


def test_a_malformed_log_line_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_train(0, 1, 1, 1.0, 1.0)) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        train_log.read_training_log(path)
    path.write_text(json.dumps({"kind": "train", "stage": 0}) + "\n")
    with pytest.raises(ValueError, match=r":1: not a training-log record"):
        train_log.read_training_log(path)
    path.write_text(json.dumps({"kind": "note", "text": "resumed"}) + "\n" + json.dumps(_train(0, 1, 1, 1.0, 1.0)) + "\n")
    assert train_log.read_training_log(path).total_steps == 1  # other kinds of record are skipped


def test_an_absent_training_log_is_a_missing_note_not_a_crash(tmp_path):
    missing = train_log.committed_training_log(tmp_path)
    assert isinstance(missing, paths.Missing) and not missing.available
    assert "metrics.jsonl" in missing._repr_markdown_() and "rmt_lib train --config default" in missing._repr_markdown_()
    with pytest.raises(FileNotFoundError):
        train_log.read_training_log(tmp_path / "metrics.jsonl")


def test_training_folder_is_temporary_for_ci(tmp_path):
    with train_log.training_folder("ci", PRESETS["ci"]) as folder:
        (folder / "x").write_text("scratch")
        assert not str(folder).startswith(str(paths.DATA_DIR))
    assert not folder.exists()
    with pytest.raises(ValueError, match="budget"):
        with train_log.training_folder("huge", PRESETS["ci"]):
            pass


def test_curriculum_table_lists_every_stage():
    table = train_log.curriculum_table(PRESETS["default"], "default")._repr_markdown_()
    assert table.count("\n") == 1 + len(PRESETS["default"].stages)
    assert "| 6 | 32 | 1,024 |" in table
    cfg = PRESETS["default"]
    for stage in cfg.stages:  # each stage's own peak learning rate, or the config's
        assert f"{stage.lr if stage.lr is not None else cfg.lr:.1e}" in table


def test_the_answer_head_is_named_in_prose():
    assert "language-model head" in train_log.answer_head_prose(PRESETS["default"].model)
    assert "classifier over the 6" in train_log.answer_head_prose(PRESETS["default"].model.replace(answer_head="classifier"))


def test_the_curriculum_past_the_papers_is_named_in_prose():
    def stages(*lengths):
        return TrainConfig(stages=tuple(Stage(n, 1) for n in lengths))

    assert train_log.beyond_paper(stages(1, 32, 64, 96)) == "64 and 96"
    assert train_log.beyond_paper(stages(1, 64, 96, 128)) == "64, 96 and 128"
    assert train_log.beyond_paper(stages(1, 48)) == "48"
    assert train_log.beyond_paper(stages(1, 2, 32)) == "no length past 32"
    assert stages(1, 96, 64).trained_length == 96


# ---------------------------------------------------------------------------------------- evaluation


def _evaluation(lengths_correct: dict[int, tuple[int, int]]) -> dict:
    rows = [dict(prediction="garden", target="garden" if i < k else "office", n_segments=n, correct=i < k)
            for n, (k, total) in lengths_correct.items() for i in range(total)]
    return dict(accuracy=sum(r["correct"] for r in rows) / len(rows), by_length=accuracy_by_length(rows), samples=rows)


def test_sample_counts_are_described_by_runs_of_lengths():
    curve = evaluate.accuracy_curve(_evaluation({1: (5, 5), 2: (5, 5), 4: (5, 5), 1024: (2, 3), 2048: (1, 3)}),
                                    label="RMT", source="test")
    assert evaluate.describe_sample_counts(curve) == ("5 samples per length from 1 to 4 segments, "
                                                      "and 3 samples at 1,024 and 2,048 segments")
    one = evaluate.accuracy_curve(_evaluation({1: (1, 2)}), label="RMT", source="test")
    assert evaluate.describe_sample_counts(one) == "2 samples at 1 segment"
    assert evaluate.describe_sample_counts(evaluate.committed_evaluation("rmt", "/nonexistent")).startswith(
        "not measured yet")


def test_accuracy_curve_reads_the_evaluate_contract():
    curve = evaluate.accuracy_curve(_evaluation({32: (9, 10), 1: (10, 10)}), label="RMT", source="test")
    assert curve.lengths == (1, 32)  # sorted by length, whatever the file's order
    r = curve.at(32)
    assert (r.correct, r.total, r.accuracy) == (9, 10, 0.9)
    assert (r.low, r.high) == pytest.approx(wilson_interval(9, 10))
    assert "0.900 [" in evaluate.describe_at(curve, 32)
    assert evaluate.describe_at(curve, 256) == "not measured at 256 segments"
    with pytest.raises(ValueError, match="256"):
        curve.at(256)
    assert evaluate.against_paper(curve, "16k") == "below"  # 9/10: the Wilson interval ends below the paper's 100%
    assert evaluate.against_paper(curve, "128k") == "not measured against"
    low = evaluate.accuracy_curve(_evaluation({2048: (50, 100)}), label="RMT", source="test")
    assert evaluate.against_paper(low, "1M") == "below"


def test_accuracy_curve_refuses_a_result_without_by_length():
    with pytest.raises(ValueError, match="by_length"):
        evaluate.accuracy_curve({"accuracy": 1.0}, label="RMT", source="x.json")
    with pytest.raises(ValueError, match=r"by_length\['1'\]"):
        evaluate.accuracy_curve({"by_length": {"1": {"accuracy": 1.0}}}, label="RMT", source="x.json")


def test_committed_evaluation_merges_the_long_file_and_notes_absence(tmp_path):
    missing = evaluate.committed_evaluation("rmt", tmp_path)
    assert isinstance(missing, paths.Missing)
    assert "evaluation.json" in str(missing) and "python -m rmt_lib evaluate" in str(missing)
    (tmp_path / "evaluation.json").write_text(json.dumps(_evaluation({1: (5, 5), 32: (4, 5)})))
    assert evaluate.committed_evaluation("rmt", tmp_path).lengths == (1, 32)
    (tmp_path / "evaluation_long.json").write_text(json.dumps(_evaluation({4096: (1, 2)})))
    curve = evaluate.committed_evaluation("rmt", tmp_path)
    assert curve.lengths == (1, 32, 4096) and "evaluation_long.json" in curve.source
    assert isinstance(evaluate.committed_evaluation("baseline", tmp_path), paths.Missing)
    with pytest.raises(ValueError, match="model must be"):
        evaluate.committed_evaluation("gpt", tmp_path)


def test_the_same_length_in_two_files_is_an_error(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(_evaluation({32: (1, 2)})))
    with pytest.raises(ValueError, match=r"repeats lengths \[32\]"):
        evaluate.read_evaluation([tmp_path / "a.json", tmp_path / "b.json"], label="RMT")


def test_comparison_table_has_a_column_per_curve_and_notes_for_missing():
    rmt = evaluate.accuracy_curve(_evaluation({1: (5, 5), 32: (4, 5)}), label="RMT", source="live")
    base = evaluate.accuracy_curve(_evaluation({32: (1, 5)}), label="no-memory baseline", source="live")
    note = paths.Missing("the baseline", "data/baseline", "train it")
    table = evaluate.accuracy_comparison([rmt, base, note])._repr_markdown_()
    assert "| 1 | 32 | 1.000 [" in table and "| — |" in table  # the baseline has no 1-segment result
    assert "> **Note.**" in table and "data/baseline" in table
    assert evaluate.accuracy_comparison([note])._repr_markdown_().startswith("> **Note.**")


@pytest.mark.parametrize("budget", budgets.BUDGETS)
def test_eval_budgets_are_valid_and_ci_stays_small(budget):
    plan = budgets.EVAL_BUDGETS[budget]
    assert 32 in plan.lengths and 256 in plan.lengths
    if budget == "ci":
        assert plan.segment_reads <= 25_000  # about a minute on 2 cores
    else:
        assert all(k >= 500 for n, k in zip(plan.lengths, plan.samples) if n <= 256)
        assert {1024, 2048} <= set(plan.lengths)  # the paper's "512k" and "1M"


def test_eval_budget_rejects_bad_plans():
    with pytest.raises(ValueError, match="one sample count per length"):
        budgets.EvalBudget((1, 2), (10,))
    with pytest.raises(ValueError, match="increasing"):
        budgets.EvalBudget((2, 1), (10, 10))


def test_live_accuracy_evaluates_a_model_and_passes_a_missing_one_through(tiny_model, tokenizer, prose_dir):
    samples = generate_samples("qa1", n_samples=6, n_segments=2, n_facts=2, background=prose_dir, seed=0,
                               tokenizer=tokenizer, segment_size=tiny_model.config.segment_size)
    curve = evaluate.live_accuracy(tiny_model, tokenizer, samples, label="RMT", source="live")
    assert curve.lengths == (2,) and curve.at(2).total == 6
    note = paths.Missing("the baseline", "data/baseline", "train it")
    assert evaluate.live_accuracy(note, tokenizer, samples, label="x", source="y") is note


def test_load_model_or_missing(tmp_path, tiny_model):
    absent = evaluate.load_model_or_missing(tmp_path / "nowhere", what="the baseline", how="train it")
    assert isinstance(absent, paths.Missing) and "train it" in evaluate.describe_model(absent, tmp_path)
    folder = save_pretrained(tiny_model, tmp_path / "model", tokenizer_path=None)
    loaded = evaluate.load_model_or_missing(folder, what="m", how="h")
    assert loaded.num_parameters() == tiny_model.num_parameters()
    assert "memory tokens" in evaluate.describe_model(loaded, folder)
    (folder / "model.safetensors").write_bytes(b"corrupt")  # present but broken: loud, not a note
    with pytest.raises(ValueError, match="checksum"):
        evaluate.load_model_or_missing(folder, what="m", how="h")


# -------------------------------------------------------------------------------------------- model


def test_parameter_groups_add_up_and_count_tied_embeddings_once(tiny_model):
    table = inspect.parameter_table(tiny_model)
    cfg = tiny_model.config
    assert table.total == tiny_model.num_parameters()
    assert table.count("token embeddings") == cfg.vocab_size * cfg.hidden_size
    assert table.count("initial memory") == cfg.num_memory_tokens * cfg.hidden_size
    assert table.count("answer head") == cfg.hidden_size * cfg.num_answers + cfg.num_answers
    with pytest.raises(ValueError, match="no parameter group"):
        table.count("LM head")  # tied: no group of its own


@pytest.mark.parametrize("backbone", ["gpt2", "llama"])
def test_parameter_table_covers_other_backbones(backbone):
    model = RecurrentMemoryTransformer(RMTConfig(backbone=backbone, hidden_size=32, num_layers=2, num_heads=2,
                                                 num_memory_tokens=2))
    table = inspect.parameter_table(model)
    assert table.total == model.num_parameters()
    assert table.count("transformer blocks") > 0


def test_baseline_differs_only_by_the_initial_memory():
    rmt = inspect.parameter_table(RecurrentMemoryTransformer(PRESETS["default"].model))
    base = inspect.parameter_table(RecurrentMemoryTransformer(PRESETS["baseline"].model))
    assert rmt.total - base.total == rmt.count("initial memory")


def test_forward_trace_records_the_shapes_of_a_real_pass(tiny_model, tokenizer, prose_dir):
    cfg = tiny_model.config
    sample = generate_samples("qa1", n_samples=1, n_segments=3, n_facts=2, background=prose_dir, seed=1,
                              tokenizer=tokenizer, segment_size=cfg.segment_size)[0]
    enc = encode_sample(sample, tokenizer, cfg.segment_size)
    trace = inspect.forward_trace(tiny_model, enc)
    M, L, D = cfg.num_memory_tokens, cfg.segment_size, cfg.hidden_size
    assert trace.shape("input_ids") == (1, 3 * L)
    assert trace.shape("backbone input") == (1, 2 * M + L, D)
    assert trace.shape("new memory state") == (1, M, D)
    assert trace.shape("memory_states") == (1, 4, M, D)
    assert trace.shape("attentions[2]") == (1, cfg.num_layers, cfg.num_heads, 2 * M + L, 2 * M + L)
    assert trace.memory_states.shape == (4, M, D) and trace.target == sample.target
    assert "\\|" in trace._repr_markdown_()  # the layout's bars are escaped inside the table
    assert not tiny_model.training


# --------------------------------------------------------------------------------------------- data


def test_sample_view_highlights_every_fact_and_ends_with_the_question(tokenizer, prose_dir):
    sample = generate_samples("qa1", n_samples=1, n_segments=4, n_facts=3, background=prose_dir, seed=2,
                              tokenizer=tokenizer)[0]
    page = html.sample_view(sample, encode_sample(sample, tokenizer, 32))._repr_html_()
    assert page.count('<mark class="rmt-fact"') >= len(sample.facts)  # a fact cut by a segment border: 2 marks
    assert page.count("segment ") >= 4 and "rmt-question" in page and sample.target in page
    other = generate_samples("qa1", n_samples=1, n_segments=8, n_facts=3, background=prose_dir, seed=3,
                             tokenizer=tokenizer)[0]
    with pytest.raises(ValueError, match="another sample"):
        html.sample_view(sample, encode_sample(other, tokenizer, 32))


def test_sample_view_escapes_user_text(tokenizer):
    sample = Sample(input="<b>bold</b> Mary went to the garden. & more", question="Where is Mary?", target="garden")
    page = html.sample_view(sample, encode_sample(sample, tokenizer, 32))._repr_html_()
    assert "<b>bold</b>" not in page and "&lt;b&gt;" in page and "rmt-fact" in page


def test_fact_segment_counts(tokenizer, prose_dir):
    samples = generate_samples("qa1", n_samples=20, n_segments=8, n_facts=2, background=prose_dir, seed=0,
                               tokenizer=tokenizer)
    counts = data_stats.fact_segment_counts(samples, 8)
    assert counts.sum() == 40 and counts.shape == (8,)
    with pytest.raises(ValueError, match="beyond 2 segments"):
        data_stats.fact_segment_counts(samples, 2)
    with pytest.raises(ValueError, match="fact_segments"):
        data_stats.fact_segment_counts([Sample(input="x", question="Where is Mary?", target="garden")], 8)


def test_length_table_counts_tokens_and_the_paper_equivalent(tokenizer):
    if not (paths.BACKGROUND_DIR / "austen" / ".complete").is_file():
        pytest.skip("Austen texts absent: run `make setup`")
    table = data_stats.length_table([1, 32], tokenizer=tokenizer)
    assert table.row(32).tokens == 1024 and table.row(32).paper_tokens == 16 * 1024
    assert table.row(1).fact_counts == (2,) and 0 < table.row(32).fact_token_share < table.row(1).fact_token_share
    with pytest.raises(ValueError, match="no row"):
        table.row(7)


@given(st.lists(st.sampled_from(["sense", "and", "the", "of", "pride", "emma"]), min_size=1, max_size=5))
def test_book_titles_capitalise_all_but_small_inner_words(words):
    title = data_stats.book_title("_".join(words)).split(" ")
    assert title[0][0].isupper()
    assert all(w[0].isupper() or (i and w in ("and", "of", "the")) for i, w in enumerate(title))


def test_grammar_stats_of_a_known_story():
    text = "Mary went to the garden. John moved to the office. Mary travelled to the kitchen. Prose."
    stats = data_stats.grammar_stats([Sample(input=text, question="Where is Mary?", target="kitchen"),
                                   Sample(input=text, question="Where is John?", target="office")], "hand")
    assert stats.facts_per_question[3] == 1.0
    assert stats.facts_back == {"0": 0.5, "1": 0.5, "2": 0.0, "3": 0.0, "4+": 0.0}
    assert stats.verbs["went to"] == pytest.approx(1 / 3) and stats.answers["kitchen"] == 0.5
    assert all(math.isclose(sum(v.values()), 1.0) for v in stats.categories().values())
    with pytest.raises(ValueError, match="no fact mentions Sandra"):
        data_stats.grammar_stats([Sample(input=text, question="Where is Sandra?", target="garden")], "bad")


def test_grammar_comparison_without_babi_is_a_note_with_our_side_only(tmp_path, tokenizer, prose_dir):
    ours = data_stats.grammar_stats(generate_samples("qa1", n_samples=50, n_segments=4, background=prose_dir, seed=0,
                                                  tokenizer=tokenizer), "ours")
    theirs = data_stats.babi_stats(tmp_path)
    assert isinstance(theirs, paths.Missing)
    comparison = data_stats.grammar_comparison(ours, theirs)
    assert comparison.largest_difference() is None and "not on this machine" in comparison.summary()
    assert "bAbI (files absent)" in comparison._repr_markdown_()
    same = data_stats.grammar_comparison(ours, ours)
    assert same.largest_difference()[2] == 0.0 and "within 0.0 percentage points" in same.summary()


def test_babi_stats_reads_the_real_files_where_present():
    if not all((paths.BABI_DIR / f).is_file() for f in data_stats.BABI_QA1_FILES):
        pytest.skip(f"real bAbI files absent from {paths.BABI_DIR}")
    stats = data_stats.babi_stats()
    assert stats.n_questions == 11_000
    assert stats.facts_per_question == {2: 0.2, 4: 0.2, 6: 0.2, 8: 0.2, 10: 0.2}


def test_missing_note_carries_no_absolute_path(tmp_path):
    note = data_stats.babi_stats(tmp_path)
    assert str(tmp_path) not in note._repr_markdown_()


def test_evaluation_summary_quotes_each_length_or_says_what_is_missing():
    rmt = evaluate.accuracy_curve(_evaluation({32: (9, 10), 256: (7, 10)}), label="RMT", source="x")
    note = paths.Missing("the baseline's evaluation", "data/results/evaluation_baseline.json", "evaluate")
    text = evaluate.evaluation_summary(rmt, note, lengths=(32, 256, 4096))
    assert "32 segments is 0.900 [" in text and "256 segments it is 0.700 [" in text
    assert "not measured at 4,096 segments" in text and "the baseline's: not measured" in text
    assert "not there yet" in evaluate.evaluation_summary(note, rmt)


def test_the_readme_lists_the_evaluation_commands_the_book_names():
    readme = (paths.REPO_ROOT / "README.md").read_text()
    for commands in evaluate.EVALUATION_COMMANDS.values():
        for command in commands:
            assert command in readme, command


def test_accuracy_breakdown_by_cut_and_distance():
    rows = [dict(correct=True, supporting_fact_cut=False, segments_from_fact=0),
            dict(correct=False, supporting_fact_cut=True, segments_from_fact=40),
            dict(correct=True, supporting_fact_cut=True, segments_from_fact=600),
            dict(correct=True, supporting_fact_cut=None, segments_from_fact=None)]  # no fact about the asked actor
    table = evaluate.accuracy_breakdown([{"samples": rows}], title="t")
    assert table.accuracy("inside one segment") == (1.0, 1)
    assert table.accuracy("cut by a segment boundary") == (0.5, 2)
    assert table.accuracy("32-127 segments before the question") == (0.0, 1)
    assert table.accuracy("512+ segments before the question") == (1.0, 1)
    assert "1-31" not in table._repr_markdown_()  # groups without samples are left out
    with pytest.raises(ValueError, match="regenerate them"):
        evaluate.accuracy_breakdown([{"samples": [dict(correct=True)]}], title="old")


def test_the_full_budget_continues_only_a_run_of_its_own_configuration(tmp_path, monkeypatch):
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from rmt_lib.train import CHECKPOINT

    monkeypatch.setattr(train_log, "FULL_TRAINING_DIR", tmp_path / "default")
    (tmp_path / "default").mkdir()
    tiny = PRESETS["tiny"]
    save_file({"x": torch.zeros(1)}, tmp_path / "default" / CHECKPOINT,
              metadata=dict(train_config=json.dumps(tiny.to_dict()), run_state="{}", param_groups="[]"))
    with pytest.raises(ValueError, match=r"default holds a run of another configuration \(2 stages to 2 segments\)"):
        with train_log.training_folder("full", PRESETS["default"]):
            pass
    longer = dataclasses.replace(tiny, stages=(*tiny.stages, Stage(4, 2, 8)))
    for config in (tiny, longer, dataclasses.replace(tiny, compile=True)):
        with train_log.training_folder("full", config) as folder:
            assert folder == tmp_path / "default"
