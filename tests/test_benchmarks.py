"""benchmarks/cost.py and the rmt_lib.cost package: the script runs and writes its schema; the pieces it rests on
(FLOP counts, memory probes, the memory-cap bound, target verdicts, plots) say what they claim.
Nothing here asserts a timing: timings belong to the committed results, not to tests."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from rmt_lib import paths
from rmt_lib.cost import SCHEMA, CostConfig, TrainVariant, compile_breakeven, compile_sentence, load_results, targets
from rmt_lib.cost.flops import forward_flops, matmul_parameters, rmt_flops
from rmt_lib.cost.isolation import _PRELOAD, run_isolated, run_measured
from rmt_lib.cost.points import full_attention_backbone, train_point
from rmt_lib.cost.sweep import predicted_peak_mb
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained
from rmt_lib.plots.cost import plot_evaluate, plot_length_scaling, plot_training_throughput

SCRIPT = paths.REPO_ROOT / "benchmarks" / "cost.py"
TINY = RMTConfig(hidden_size=16, num_layers=1, num_heads=2, num_memory_tokens=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(RecurrentMemoryTransformer(TINY), tmp_path_factory.mktemp("ckpt") / "model")


# --- the script, end to end at toy sizes ------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_writes_every_section_of_the_schema(checkpoint, tmp_path):
    out = tmp_path / "cost.json"
    env = os.environ | {"RMT_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--checkpoint", str(checkpoint), "--output", str(out),
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inference" in proc.stdout and "target rmt_time_linear" in proc.stdout  # the readable table
    results = load_results(out)  # checks the schema tag and the sections
    quick = CostConfig.quick()
    assert results["schema"] == SCHEMA
    assert {"cpu", "logical_cpus", "torch", "torch_threads", "load_average_1_5_15"} <= set(results["machine"])
    assert results["machine"]["torch_threads"] == 1
    inference = results["inference"]
    assert [r["n_segments"] for r in inference["rmt"]] == list(quick.rmt_segments)
    measured_full = [r["n_segments"] for r in inference["full_attention"] + inference["skipped"]]
    assert sorted(measured_full) == list(quick.full_segments)
    for row in inference["rmt"] + inference["full_attention"]:
        assert row["time_s"] > 0 and row["peak_mb"] >= row["baseline_mb"] > 0 and row["flops"] > 0
        assert row["n_tokens"] == row["n_segments"] * TINY.segment_size
        assert row["memory_kind"] == "rss"  # the high-water mark could be reset on this Linux
    run = results["training"]["runs"][0]
    assert "error" not in run and run["tokens_per_s"] > 0 and 0 < run["mfu"]
    assert results["training"]["matmul_peak"]["1"]["peak_flops_per_s"] > 0
    for name in ("short", "long"):
        row = results["evaluate"][name]
        assert row["returncode"] == 0 and row["wall_s"] > 0 and row["peak_rss_mb"] > 0
        assert row["prediction"] in ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
    assert results["evaluate"]["long"]["n_tokens"] == quick.eval_tokens
    t = results["targets"]
    assert set(t) == {"rmt_memory_flat", "rmt_time_linear", "million_token_wall_s", "million_token_memory"}
    assert t["rmt_time_linear"]["sizes"] == [256, 32] and t["rmt_time_linear"]["met"] in (True, False)
    assert t["million_token_wall_s"]["met"] is None  # 2,048 tokens are not a million: no verdict
    for fig in (plot_length_scaling(results), plot_training_throughput(results), plot_evaluate(results)):
        assert isinstance(fig, Figure)


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("benchmarks_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_refuses_a_missing_model_folder(script, tmp_path, capsys):
    code = script.main(["--quick", "--checkpoint", str(tmp_path / "nope"), "--output", str(tmp_path / "c.json"),
                        "--no-progress"])
    assert code == 2 and "no model folder" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_max_segments_gives_powers_of_two_up_to_it(script):
    config = script.config_from_args(script.parse_args(["--output", "x.json", "--max-segments", "100"]))
    assert config.rmt_segments == (1, 2, 4, 8, 16, 32, 64) == config.full_segments
    assert config.eval_tokens == 1_000_000 and config.memory_cap_mb == 8192


# --- FLOPs ----------------------------------------------------------------------------------------------------


def test_matmul_parameters_count_the_blocks_linear_weights():
    model = RecurrentMemoryTransformer(RMTConfig())  # bloom: qkv 3D^2 + dense D^2 + MLP 8D^2 per layer
    D, layers = model.config.hidden_size, model.config.num_layers
    assert matmul_parameters(model) == 12 * D * D * layers


def test_forward_flops_by_hand():
    # 2 calls x 3 positions x batch 2, N = 10, 1 layer, D = 4: per position 2*10 + 4*1*4*3 = 68
    assert forward_flops(10, 1, 4, 3, 2, 2) == 2 * 2 * 3 * 68


def test_training_flops_are_three_forwards_with_full_bptt_and_fewer_when_truncated():
    cfg = RMTConfig()
    fwd = rmt_flops(cfg, 1000, 8, 2)
    assert rmt_flops(cfg, 1000, 8, 2, training=True) == pytest.approx(3 * fwd)
    # bptt_depth 2 of 8 segments: forward on all, backward (2x forward) on the last 2 only
    assert rmt_flops(cfg.replace(bptt_depth=2), 1000, 8, 2, training=True) == pytest.approx(fwd * (1 + 2 * 2 / 8))


def test_full_attention_backbone_is_the_rmt_backbone_under_alibi_and_widened_for_gpt2():
    bloom = RecurrentMemoryTransformer(TINY)
    assert full_attention_backbone(bloom, 10_000) is bloom.backbone
    gpt2 = RecurrentMemoryTransformer(TINY.replace(backbone="gpt2"))
    wide = full_attention_backbone(gpt2, 1000)
    assert wide.config.n_positions == 1000
    assert torch.equal(wide.transformer.h[0].attn.c_attn.weight, gpt2.backbone.transformer.h[0].attn.c_attn.weight)


# --- memory --------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e3), st.floats(0, 1e3), st.floats(0, 1e3), st.integers(1, 10_000), st.integers(1, 64))
def test_predicted_peak_bounds_any_memory_at_most_quadratic_in_length(a, b, c, tokens, factor):
    working = lambda t: a + b * t + c * t * t  # noqa: E731
    longer = tokens * factor
    assert predicted_peak_mb(300.0, (tokens, working(tokens)), longer) >= 300.0 + working(longer) * (1 - 1e-9)


def _allocate(spec: dict) -> dict:
    """A measured process that holds `mb` megabytes at its peak, then frees them."""
    from rmt_lib.cost.isolation import _Memory

    memory = _Memory(torch.device("cpu"))
    memory.start()
    block = np.ones(spec["mb"] * 2**20, dtype=np.uint8)  # touched: resident
    del block
    return memory.peak()


def _fail(spec: dict) -> dict:
    raise ValueError("bad spec")


@pytest.mark.slow  # a forkserver that imports torch: seconds
def test_an_isolated_process_reports_its_own_peak():
    small = run_isolated(_allocate, {"mb": 1}, timeout_s=120)
    big = run_isolated(_allocate, {"mb": 200}, timeout_s=120)
    assert big["working_mb"] == pytest.approx(200, abs=15)
    assert small["working_mb"] < 15  # a fresh process: the earlier point's 200 MB are not in it


@pytest.mark.slow
def test_an_isolated_process_that_raises_is_an_error_row():
    assert run_isolated(_fail, {}, timeout_s=120) == {"error": "ValueError: bad spec"}


def test_the_fork_server_preloads_modules_that_exist():
    import importlib

    for name in _PRELOAD:  # a stale name here only shows as a fork server that fails to start
        importlib.import_module(name)
    assert run_isolated.__module__ in _PRELOAD and train_point.__module__ in _PRELOAD


def test_run_measured_reads_the_childs_peak_rss_and_status():
    code = "import numpy as np; b = np.ones(150 * 2**20, dtype=np.uint8); raise SystemExit(3)"
    row = run_measured([sys.executable, "-c", code])
    assert row["returncode"] == 3 and row["wall_s"] > 0
    assert row["peak_rss_mb"] > 150


# --- the training point is the trainer's own step ------------------------------------------------------------


def test_train_point_times_the_trainers_step_with_the_trainers_optimizer(checkpoint, monkeypatch):
    import rmt_lib.train as train

    calls = []
    real_step = train.train_step

    def spy(model, optimizer, batch, grad_clip, forward=None):
        calls.append(dict(decay=[g["weight_decay"] for g in optimizer.param_groups], grad_clip=grad_clip,
                          batch=batch.input_ids.shape[0]))
        return real_step(model, optimizer, batch, grad_clip, forward)

    monkeypatch.setattr(train, "train_step", spy)
    spec = dict(checkpoint=str(checkpoint), device="cpu", threads=torch.get_num_threads(), seed=0, name="t",
                n_segments=1, batch_size=2, compile=False, warmup_steps=1, steps=2)
    row = train_point(spec)  # in this process: the spy is seen
    cfg = train.TrainConfig()
    assert len(calls) == 3  # one train_step per step: 1 warm-up + 2 timed
    # make_optimizer's groups: decay on the matrices, none on biases, norms and the initial memory
    assert all(c == dict(decay=[cfg.weight_decay, 0.0], grad_clip=cfg.grad_clip, batch=2) for c in calls)
    assert len(row["warmup_s"]) == 1 and len(row["steps_s"]) == 2 == len(row["cpu_s"])
    assert row["tokens_per_step"] == 2 * TINY.segment_size and row["flops_per_s"] > 0


# --- config, verdicts, reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(rmt_segments=(4, 2)), dict(full_segments=(0, 1)), dict(threads=0),
                                 dict(device="tpu"), dict(memory_cap_mb=0), dict(eval_long_threads=(0,))])
def test_cost_config_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        CostConfig(**bad)


def test_train_variant_refuses_nonsense():
    with pytest.raises(ValueError):
        TrainVariant("x", batch_size=0)


def _results(rmt_peaks: dict[int, float], rmt_times: dict[int, float], long_tokens=1_000_000, long_s=50.0,
             long_mb=390.0, short_mb=370.0) -> dict:
    def row(n, **kw):
        return dict(n_segments=n, n_tokens=32 * n, **kw)

    rmt = [row(n, peak_mb=rmt_peaks[n], working_mb=1.0, time_s=rmt_times[n]) for n in sorted(rmt_peaks)]
    evaluate = dict(short=dict(n_tokens=1024, wall_s=5.0, peak_rss_mb=short_mb, returncode=0),
                    long=dict(n_tokens=long_tokens, wall_s=long_s, peak_rss_mb=long_mb, returncode=0))
    return dict(inference=dict(rmt=rmt), evaluate=evaluate)


def test_targets_give_verdicts_at_their_sizes():
    t = targets(_results({32: 300.0, 256: 301.0, 4096: 305.0}, {32: 1.0, 256: 8.5, 4096: 130.0}))
    assert t["rmt_memory_flat"]["value"] == pytest.approx(305 / 300) and t["rmt_memory_flat"]["met"] is True
    assert t["rmt_time_linear"]["value"] == pytest.approx(8.5) and t["rmt_time_linear"]["met"] is True
    assert t["million_token_wall_s"]["met"] is True
    assert t["million_token_memory"]["value"] == pytest.approx(390 / 370) and t["million_token_memory"]["met"] is True
    slow = targets(_results({32: 300.0, 256: 301.0}, {32: 1.0, 256: 9.5}, long_s=61.0, long_mb=500.0))
    assert slow["rmt_time_linear"]["met"] is False and slow["million_token_wall_s"]["met"] is False
    assert slow["million_token_memory"]["met"] is False


def test_targets_give_no_verdict_off_their_sizes():
    t = targets(_results({1: 300.0, 32: 300.0, 64: 300.0}, {1: 0.1, 32: 1.0, 64: 2.0}, long_tokens=2048))
    assert t["rmt_memory_flat"]["sizes"] == [64, 32] and t["rmt_memory_flat"]["met"] is None
    assert t["rmt_time_linear"]["value"] == pytest.approx(2.0) and t["rmt_time_linear"]["met"] is None
    assert t["million_token_wall_s"]["met"] is None


def test_a_failed_evaluate_gives_no_value():
    results = _results({32: 300.0}, {32: 1.0})
    results["evaluate"]["long"]["returncode"] = 1
    assert targets(results)["million_token_wall_s"]["value"] is None


def test_load_results_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/cost.py"):
        load_results(tmp_path / "none.json")
    (tmp_path / "old.json").write_text(json.dumps({"schema": "rmt-cost/0"}))
    with pytest.raises(ValueError, match="schema"):
        load_results(tmp_path / "old.json")
    (tmp_path / "half.json").write_text(json.dumps({"schema": SCHEMA, "machine": {}}))
    with pytest.raises(ValueError, match="inference"):
        load_results(tmp_path / "half.json")


def test_plots_refuse_results_without_rows():
    with pytest.raises(ValueError, match="RMT inference"):
        plot_length_scaling({"inference": {"rmt": []}})
    with pytest.raises(ValueError, match="training"):
        plot_training_throughput({"training": {"runs": [{"name": "x", "error": "boom"}]}})


def test_compile_breakeven_pairs_the_compiled_run_with_its_eager_twin():
    def run(name, compile, step_s, warmup_s, batch=32):
        return dict(name=name, compile=compile, n_segments=32, batch_size=batch, threads=2, step_s=step_s,
                    warmup_s=[warmup_s])

    runs = [run("batch 8", False, 0.1, 0.2, batch=8), run("default", False, 2.0, 2.5), run("compiled", True, 1.0, 62.5)]
    got = compile_breakeven({"training": {"runs": runs}})
    assert got == pytest.approx(dict(speedup=2.0, compile_s=60.0, breakeven_steps=60.0))
    assert compile_breakeven({"training": {"runs": runs[:2]}}) is None
    assert compile_sentence({"training": {"runs": runs}}).startswith("it made the step 2.00 times faster, after 60 seconds")
    assert "no compiled variant" in compile_sentence({"training": {"runs": runs[:2]}})
    slower = runs[:2] + [run("compiled", True, 3.0, 62.5)]
    assert "never pays" in compile_sentence({"training": {"runs": slower}})


def test_an_evaluate_row_is_its_median_run_with_every_run_kept(monkeypatch):
    import types

    from rmt_lib.cost import sweep

    walls = iter([5.0, 3.0, 4.0, 9.0, 7.0, 8.0])  # short x 3, then long x 3

    def fake_measure(checkpoint, *, n_tokens=None, n_segments=None, **_):
        wall = next(walls)
        return dict(wall_s=wall, peak_rss_mb=100.0 + wall, returncode=0, n_tokens=n_tokens or n_segments * 32)

    monkeypatch.setattr(sweep, "measure_evaluate", fake_measure)
    rows = sweep._evaluate(CostConfig.quick(eval_repeats=3), Path("unused"), types.SimpleNamespace(update=lambda: None),
                          lambda _: None)
    assert (rows["short"]["wall_s"], rows["short"]["wall_s_runs"]) == (4.0, [5.0, 3.0, 4.0])
    assert rows["short"]["peak_rss_mb"] == 105.0  # the largest of the runs, not the median run's
    assert (rows["long"]["wall_s"], rows["long"]["peak_rss_mb_runs"]) == (8.0, [109.0, 107.0, 108.0])
    with pytest.raises(ValueError, match="eval_repeats"):
        CostConfig(eval_repeats=0)


@pytest.mark.slow
def test_the_paper_model_benchmark_measures_and_refuses_bad_options(tmp_path):
    script = paths.REPO_ROOT / "benchmarks" / "paper_model.py"
    out = tmp_path / "pm.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--segments", "3", "--repeats", "1",
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["n_segments"] == 3 and result["quick"] and len(result["seconds"]) == 1
    assert result["median_seconds"] > 0 and result["model"]["segment_size"] == 512
    done = subprocess.run([sys.executable, str(script), "--segments", "0", "--output", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error:") and not (tmp_path / "x.json").exists()


# --- training beside the reference RMT code ----------------------------------------------------------------

# A stand-in with the reference's interface (MemoryCell(backbone, num_mem_tokens), RecurrentWrapper(cell,
# **rmt_kwargs), forward(input_ids, labels, labels_mask) -> {"loss"}): the real file is read by path, never
# copied here, and CI does not have it.
FAKE_REFERENCE = '''
import torch
class MemoryCell(torch.nn.Module):
    def __init__(self, base_model, num_mem_tokens):
        super().__init__()
        self.model = base_model
        self.memory = torch.nn.Parameter(torch.zeros(num_mem_tokens, base_model.config.hidden_size))
class RecurrentWrapper(torch.nn.Module):
    def __init__(self, memory_cell, **rmt_kwargs):
        super().__init__()
        self.memory_cell, self.rmt_config = memory_cell, rmt_kwargs
    def forward(self, input_ids, labels=None, labels_mask=None):
        L, cell = self.rmt_config["segment_size"], self.memory_cell
        memory = cell.memory.expand(len(input_ids), -1, -1)
        for s in range(0, input_ids.shape[1], L):
            embeds = cell.model.get_input_embeddings()(input_ids[:, s:s + L])
            h = cell.model.base_model(inputs_embeds=torch.cat([memory, embeds, memory], 1)).last_hidden_state
            memory = h[:, -len(cell.memory):]
        logits = cell.model.get_output_embeddings()(h[:, len(cell.memory):-len(cell.memory)])
        target = labels[:, -L:][labels_mask[:, -L:].roll(1, dims=1)]
        return {"loss": torch.nn.functional.cross_entropy(logits[labels_mask[:, -L:]], target)}
'''


@pytest.fixture(scope="module")
def reference_script():
    spec = importlib.util.spec_from_file_location("benchmarks_training_reference",
                                                  paths.REPO_ROOT / "benchmarks" / "training_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_training_beside_a_reference_reports_both_and_their_ratio(reference_script, checkpoint, tmp_path, capsys):
    fake = tmp_path / "language_modeling.py"
    fake.write_text(FAKE_REFERENCE)
    out = tmp_path / "train_ref.json"
    args = ["--checkpoint", str(checkpoint), "--segments", "2", "--batch-size", "2", "--steps", "2", "--warmup", "0",
            "--threads", "1", "--output", str(out)]
    assert reference_script.main([*args, "--reference", str(fake)]) == 0
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"rmt_lib", "reference"}
    for row in result["results"].values():
        assert len(row["steps_s"]) == 2 and row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1
    assert result["tokens_per_step"] == 2 * 2 * TINY.segment_size and result["config"]["reference"] == fake.name
    ours, theirs = result["results"]["rmt_lib"]["steps_s"], result["results"]["reference"]["steps_s"]
    assert result["speedup_rounds"]["rmt_lib"] == pytest.approx([t / o for t, o in zip(theirs, ours)])
    assert result["speedup"]["rmt_lib"] == pytest.approx(sum(result["speedup_rounds"]["rmt_lib"]) / 2)  # 2 rounds
    assert "x the reference's throughput" in capsys.readouterr().out
    alone = tmp_path / "alone.json"
    assert reference_script.main([*args[:-1], str(alone)]) == 0
    assert set(json.loads(alone.read_text())["results"]) == {"rmt_lib"} and "speedup" not in alone.read_text()


def test_training_benchmark_refuses_a_bad_reference_and_writes_nothing(reference_script, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert reference_script.main(["--reference", str(tmp_path / "missing.py"), "--output", str(out)]) == 2
    assert "is not a file" in capsys.readouterr().err
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")
    assert reference_script.main(["--reference", str(other), "--output", str(out)]) == 2
    assert "defines no MemoryCell, RecurrentWrapper" in capsys.readouterr().err
    assert reference_script.main(["--steps", "0", "--output", str(out)]) == 2
    assert not out.exists()


def test_the_training_reference_result_is_read_or_named_missing(tmp_path):
    from rmt_lib.cost import load_training_reference, training_reference_rows, training_reference_verdict

    missing = load_training_reference(tmp_path / "none.json")
    assert not missing.available and "training_reference.py" in missing.how
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="no results.rmt_lib"):
        load_training_reference(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"results": {"rmt_lib": {"tokens_per_s": 20.0, "mfu": 0.3},
                                            "reference": {"tokens_per_s": 10.0, "mfu": 0.1}},
                                "speedup": {"rmt_lib": 2.0}}))
    rows = training_reference_rows(load_training_reference(good))
    assert [(r["name"], r["speedup"]) for r in rows] == [("rmt_lib", 2.0), ("reference", None)]
    assert [r["speedup_quartiles"] for r in rows] == [None, None]  # written before the rounds were kept
    rounds = json.loads(good.read_text()) | {"speedup_rounds": {"rmt_lib": [1.0, 2.0, 3.0, 4.0, 5.0]}}
    good.write_text(json.dumps(rounds))
    rows = training_reference_rows(load_training_reference(good))
    assert rows[0]["speedup_quartiles"] == (2.0, 4.0) and rows[1]["speedup_quartiles"] is None
    assert "(quartiles of the round-by-round ratio: 2.00, 4.00)" in training_reference_verdict(rounds)
