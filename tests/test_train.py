"""Training: the curriculum runs, resumes after SIGKILL to the same weights, and DDP matches one process."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rmt_lib.model import from_pretrained
from rmt_lib.model.checkpoint import model_tensors
from rmt_lib.train import PRESETS, Stage, TrainConfig, Trainer, lr_at, train
from rmt_lib.train.log import average_summary, read_training_log
from rmt_lib.train.run_folder import read_metrics

TINY = PRESETS["tiny"]
ENV = {**os.environ, "RMT_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _cli_train(config: Path, output: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rmt_lib", "train", "--config", str(config), "--output", str(output),
           "--no-progress", *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _config_file(tmp_path: Path, cfg: TrainConfig) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    return path


def test_train_config_validates():
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(stages=(Stage(0, 10),))
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY


def test_lr_warms_up_then_decays():
    cfg = dataclasses.replace(TINY, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(cfg, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_at(cfg, 50, 100, peak=0.5) == pytest.approx(lr_at(cfg, 50, 100) * 0.5)  # a stage's own peak


def test_curriculum_runs_every_stage_and_saves_a_loadable_model(tmp_path):
    train(TINY, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    stages = [r for r in records if r["kind"] == "stage"]
    assert [s["n_segments"] for s in stages] == [s.n_segments for s in TINY.stages]
    assert {"loss", "accuracy", "tokens_per_s", "lr"} <= set(records[1])
    # where the run trained comes first: bit-for-bit repeats hold only on the same CPU, libraries and threads
    assert records[0]["kind"] == "machine" and records[0]["stage"] == 0
    assert {"cpu", "cpu_family_model", "cpu_capability", "torch", "torch_threads"} <= set(records[0])
    model = from_pretrained(tmp_path / "run" / "model")
    assert model.config == TINY.model


def test_a_finished_run_extended_by_a_stage_equals_the_longer_run_from_scratch(tmp_path):
    longer = dataclasses.replace(TINY, stages=TINY.stages + (Stage(1, 3, 8),))
    train(TINY, tmp_path / "a", progress=False)
    train(longer, tmp_path / "a", resume=True, progress=False)
    train(longer, tmp_path / "b", progress=False)
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another configuration"):
        train(dataclasses.replace(longer, lr=1e-2), tmp_path / "a", resume=True, progress=False)


def test_a_run_continued_from_its_model_folder_equals_the_longer_run_from_scratch(tmp_path):
    longer = dataclasses.replace(TINY, stages=TINY.stages + (Stage(2, 3, 8, bptt_depth=1, memory_noise=0.1, lead_in=2,
                                                                   memory_change_weight=5.0),))
    train(TINY, tmp_path / "short", progress=False)
    train(longer, tmp_path / "a", progress=False, from_model=tmp_path / "short" / "model")
    train(longer, tmp_path / "b", progress=False)
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = lambda run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    strip = lambda records: [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")}  # noqa: E731
                             for r in records if r["kind"] != "machine"]
    assert strip(log("a")) == strip(log("b"))  # the short run's records, then the appended stage's
    # the appended stage penalises the quiet memory change and logs it; the stages before do neither
    # (a batch of one segment, drawn by mix_shorter, has no change to penalise)
    trained = [r for r in log("b") if r["kind"] == "train"]
    assert [("memory_change" in r) for r in trained] == [r["stage"] == 2 and r["batch_segments"] > 1 for r in trained]
    assert any("memory_change" in r for r in trained)
    # each run says where it trained: "a" in two runs (the short one, then its continuation), "b" in one
    assert [r["stage"] for r in log("a") if r["kind"] == "machine"] == [0, len(TINY.stages)]
    assert [r["stage"] for r in log("b") if r["kind"] == "machine"] == [0]
    assert from_pretrained(tmp_path / "a" / "model").config == TINY.model  # the stage's overrides were for training


def test_from_model_refuses_a_folder_of_another_curriculum_or_model(tmp_path):
    train(TINY, tmp_path / "short", progress=False)
    folder = tmp_path / "short" / "model"
    with pytest.raises(ValueError, match="stages of"):  # nothing appended
        train(TINY, tmp_path / "a", progress=False, from_model=folder)
    with pytest.raises(ValueError, match="stages of"):  # another curriculum before the appended stage
        train(dataclasses.replace(TINY, stages=(Stage(2, 4, 8), Stage(4, 2, 8))), tmp_path / "b", progress=False,
              from_model=folder)
    with pytest.raises(ValueError, match="num_memory_tokens"):
        train(dataclasses.replace(TINY, model=TINY.model.replace(num_memory_tokens=2),
                                  stages=TINY.stages + (Stage(2, 2, 8),)), tmp_path / "c", progress=False, from_model=folder)
    with pytest.raises(ValueError, match="not a folder"):
        train(TINY, tmp_path / "d", progress=False, from_model=tmp_path / "nowhere")
    assert not any((tmp_path / run / "metrics.jsonl").exists() for run in "abcd")


STREAMED = dataclasses.replace(TINY, model=TINY.model.replace(aux_every_segment=True),
                               stages=TINY.stages + (Stage(4, 6, 8, chunk=2, eval_every=4),), checkpoint_every=1)


def test_a_streamed_stage_reads_each_input_in_pieces_and_carries_the_memory(tmp_path):
    train(STREAMED, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    streamed = [r for r in records if r["kind"] == "train" and r["stage"] == len(TINY.stages)]
    assert [r["loss"] is None for r in streamed] == [True, False] * 3  # the question is in every second piece
    assert all(r["batch_segments"] == 4 for r in streamed)  # no shorter inputs mixed in
    log = read_training_log(tmp_path / "run" / "metrics.jsonl")
    assert np.isnan(log.stages[-1].loss).sum() == 3
    assert log.stages[-1].val_steps.tolist() == [4, 6]  # the stage's own eval_every, and its last step


def test_a_streamed_stage_resumed_in_the_middle_of_an_input_ends_with_the_same_weights(tmp_path, monkeypatch):
    train(STREAMED, tmp_path / "whole", progress=False)
    real = Trainer.save_checkpoint
    saved = []

    def crash_after_a_mid_input_checkpoint(self):
        real(self)
        saved.append(self._carry is not None)
        if self.state.stage == len(TINY.stages) and self._carry is not None:
            raise KeyboardInterrupt  # as if killed right after writing it
    monkeypatch.setattr(Trainer, "save_checkpoint", crash_after_a_mid_input_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(STREAMED, tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    assert saved[-1]  # the checkpoint holds a carried memory state
    train(STREAMED, tmp_path / "cut", resume=True, progress=False)
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


AVERAGING = dataclasses.replace(TINY, stages=TINY.stages + (Stage(2, 4, 8, average_every=2),))


def test_an_averaging_stage_ends_at_the_mean_of_the_weights_it_started_from_and_reached(tmp_path, monkeypatch):
    real, weights = Trainer._train_step, []

    def keep_weights(self, stage):
        if stage.average_every and not weights:
            weights.append(model_tensors(self.model))  # where the stage starts
        out = real(self, stage)
        if stage.average_every:
            weights.append(model_tensors(self.model))
        return out
    monkeypatch.setattr(Trainer, "_train_step", keep_weights)
    model = train(AVERAGING, tmp_path / "run", progress=False)
    got = model_tensors(model)
    for k, v in got.items():  # the start, then the weights after steps 2 and 4
        torch.testing.assert_close(v, (weights[0][k].double() + weights[2][k] + weights[4][k]).div(3).float())
    last = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "stage"][-1]
    assert last["averaged"] == 3 and 0 <= last["averaged_val_accuracy"] <= 1


def test_an_averaging_stage_resumed_in_the_middle_ends_with_the_same_weights(tmp_path, monkeypatch):
    train(AVERAGING, tmp_path / "whole", progress=False)
    real = Trainer.save_checkpoint

    def crash_after_a_mid_stage_checkpoint(self):
        real(self)
        if self.state.stage == len(TINY.stages) and self.mean is not None and self.state.step // 2 == 1:
            raise KeyboardInterrupt  # the checkpoint holds a mean of two weights
    monkeypatch.setattr(Trainer, "save_checkpoint", crash_after_a_mid_stage_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(AVERAGING, tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    train(AVERAGING, tmp_path / "cut", resume=True, progress=False)
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_lead_in_stage_starts_each_step_from_the_memory_its_prose_leaves(tmp_path, monkeypatch):
    import rmt_lib.train.loop as loop

    cfg = dataclasses.replace(TINY, stages=(Stage(2, 6, 8, lead_in=3),))
    starts, used = [], []
    real_lead_in, real_step = Trainer._lead_in, loop.train_step

    def lead_in(self, stage):
        memory = real_lead_in(self, stage)
        starts.append(memory)
        return memory

    def step(*args, memory=None, **kwargs):
        used.append(memory)
        return real_step(*args, memory=memory, **kwargs)
    monkeypatch.setattr(Trainer, "_lead_in", lead_in)
    monkeypatch.setattr(loop, "train_step", step)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    initial = trainer.model.cell.initial_memory.detach().clone()
    trainer.run()
    assert len(starts) == 6 and any(m is None for m in starts) and any(m is not None for m in starts)  # 0 to 3 segments
    assert all(u is s for u, s in zip(used, starts)) and len(used) == 6  # each step starts where its lead-in ended
    for memory in filter(lambda m: m is not None, starts):
        assert memory.shape == (8, *initial.shape) and not torch.allclose(memory[0], initial)


CARRYING = dataclasses.replace(TINY, model=TINY.model.replace(aux_every_segment=True),
                               stages=TINY.stages + (Stage(2, 6, 8, carry_memory=0.5),), checkpoint_every=1)


def test_a_carrying_stage_continues_rows_from_the_memory_and_labels_their_last_input_left(tmp_path, monkeypatch):
    import rmt_lib.train.loop as loop
    from rmt_lib.data.batching import NOT_SEEN

    steps, starts = [], []
    real_step, real_continue = loop.train_step, Trainer._continue

    def step(model, optimizer, batch, grad_clip, forward=None, memory=None):
        out = real_step(model, optimizer, batch, grad_clip, forward=forward, memory=memory)
        steps.append((batch.aux_labels.clone(), out.memory.detach().clone()))
        return out

    def continue_(self, stage, batch):
        given, start = real_continue(self, stage, batch)
        initial = self.model.cell.initial_memory.detach().clone()  # (M, D) as this step finds it
        starts.append((self._carried, batch.aux_labels, given.aux_labels, start, initial))
        return given, start
    monkeypatch.setattr(loop, "train_step", step)
    monkeypatch.setattr(Trainer, "_continue", continue_)
    trainer = Trainer(CARRYING, tmp_path / "run", progress=False)
    trainer.run()
    assert len(starts) == 6 and starts[0][0] is None and starts[0][3] is None  # the first inputs start afresh
    continued = restarted = 0
    for (labels_before, left), ((memory, labels), raw, given, start, initial) in zip(steps[-6:], starts[1:]):
        assert torch.equal(memory, left) and torch.equal(labels, labels_before[:, -1])  # what the last step left
        for row in range(len(raw)):
            if torch.equal(start[row], left[row]):  # this row's input continues the story its last one told
                continued += 1
                expected = torch.where(raw[row] == NOT_SEEN, labels[row], raw[row])  # unnamed actors stay put
            else:  # a fresh story: the initial memory, every actor unseen until named
                restarted += 1
                assert torch.equal(start[row], initial)
                expected = raw[row]
            assert torch.equal(given[row], expected)
    assert continued and restarted  # probability 0.5 over 5 x 8 rows


def test_a_carrying_stage_resumed_in_the_middle_ends_with_the_same_weights(tmp_path, monkeypatch):
    train(CARRYING, tmp_path / "whole", progress=False)
    real = Trainer.save_checkpoint

    def crash_after_a_mid_stage_checkpoint(self):
        real(self)
        if self.state.stage == len(TINY.stages) and self._carried is not None and self.state.step == 3:
            raise KeyboardInterrupt  # the checkpoint holds the rows' memory states and labels
    monkeypatch.setattr(Trainer, "save_checkpoint", crash_after_a_mid_stage_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(CARRYING, tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    assert "carried.memory" in load_file(tmp_path / "cut" / "checkpoint.safetensors")
    train(CARRYING, tmp_path / "cut", resume=True, progress=False)
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_stage_validates_its_model_overrides():
    with pytest.raises(ValueError, match="bptt_depth"):
        Stage(64, 10, bptt_depth=0)
    with pytest.raises(ValueError, match="memory_noise"):
        Stage(64, 10, memory_noise=1.5)
    with pytest.raises(ValueError, match="memory_change_weight"):
        Stage(64, 10, memory_change_weight=-1.0)
    with pytest.raises(ValueError, match="average_every"):
        Stage(64, 10, average_every=0)
    assert Stage(64, 10, bptt_depth=16).model_overrides == {"bptt_depth": 16}
    assert Stage(64, 10, memory_change_weight=50.0).model_overrides == {"memory_change_weight": 50.0}
    with pytest.raises(ValueError, match="divides"):
        Stage(64, 10, chunk=24)
    with pytest.raises(ValueError, match="leave bptt_depth"):
        Stage(64, 10, chunk=16, bptt_depth=8)
    with pytest.raises(ValueError, match="aux_every_segment"):
        dataclasses.replace(TINY, stages=(Stage(4, 6, 8, chunk=2),))
    with pytest.raises(ValueError, match="lead_in"):
        Stage(64, 10, lead_in=0)
    with pytest.raises(ValueError, match="lead_in"):
        Stage(64, 10, chunk=16, lead_in=8)
    for bad in (0.0, 1.0, 1.5, True):
        with pytest.raises(ValueError, match="carry_memory"):
            Stage(64, 10, carry_memory=bad)
    with pytest.raises(ValueError, match="leave lead_in and chunk"):
        Stage(64, 10, carry_memory=0.5, lead_in=8)


def test_config_booleans_are_booleans():
    assert TrainConfig.from_dict({"compile": True}).compile is True
    with pytest.raises(ValueError, match="compile must be true or false"):
        TrainConfig.from_dict({"compile": 1})


@pytest.mark.slow
def test_a_compiled_training_step_equals_the_eager_one_to_rounding():
    """The path that gives up bit-exactness for speed (RecurrentMemoryTransformer.compile_cell): one step of
    each from the same weights on the same batch leaves the same weights, to float32 rounding."""
    from rmt_lib.data import load_tokenizer
    from rmt_lib.model import RecurrentMemoryTransformer
    from rmt_lib.train import make_batch, make_optimizer, train_step

    cfg = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, aux_every_segment=True))
    batch = make_batch(cfg, load_tokenizer(), 3, 4, seed=0, split="train")
    torch.manual_seed(0)
    eager = RecurrentMemoryTransformer(cfg.model)
    compiled = RecurrentMemoryTransformer(cfg.model)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_cell()
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # the compiled cell is not a submodule
    with torch.no_grad():  # inference takes the eager cell: bit for bit the eager model's answer
        assert torch.equal(compiled.eval()(batch.input_ids, batch.attention_mask).logits,
                           eager.eval()(batch.input_ids, batch.attention_mask).logits)
    losses = []
    for model in (eager, compiled):
        out = train_step(model, make_optimizer(model, cfg), batch, cfg.grad_clip)
        losses.append(out.loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    # Another input length at the same batch size reuses the compiled graphs: segments are slices whose
    # strides change with the length, and each recompilation would bring dynamo nearer its limit (then eager).
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    shorter = make_batch(cfg, load_tokenizer(), 2, 4, seed=1, split="train")
    train_step(compiled, make_optimizer(compiled, cfg), shorter, cfg.grad_clip)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    train(TINY, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(TINY, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path):
    cfg = dataclasses.replace(TINY, stages=(Stage(1, 30, 8), Stage(2, 15, 8)), checkpoint_every=4, eval_every=10)
    config = _config_file(tmp_path, cfg)
    whole = _cli_train(config, tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()

    run = _cli_train(config, tmp_path / "killed")
    log = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 11):
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "model").exists()

    resumed = _cli_train(config, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if json.loads(x)["kind"] == "train"]
    assert steps == list(range(1, 31)) + list(range(1, 16)), "each step is logged exactly once"


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    cfg = dataclasses.replace(TINY, stages=(Stage(1, 6, 8), Stage(2, 4, 8)))
    config = _config_file(tmp_path, cfg)
    single = _cli_train(config, tmp_path / "single")
    assert single.wait(timeout=300) == 0, single.stderr.read()
    torchrun = Path(sys.executable).with_name("torchrun")
    ddp = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "rmt_lib", "--device", "cpu",
                          "train", "--config", str(config), "--output", str(tmp_path / "ddp"), "--no-progress"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(tmp_path / "single" / "model" / "model.safetensors")
    b = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow
def test_a_ddp_run_into_a_locked_folder_ends_on_every_rank(tmp_path):
    import fcntl

    config = _config_file(tmp_path, TINY)
    (tmp_path / "ddp").mkdir()
    torchrun = Path(sys.executable).with_name("torchrun")
    with open(tmp_path / "ddp" / ".train.lock", "a+") as held:  # what a live run holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        ddp = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "rmt_lib", "--device",
                              "cpu", "train", "--config", str(config), "--output", str(tmp_path / "ddp"),
                              "--no-progress"], env=ENV, capture_output=True, text=True, timeout=120)
    assert ddp.returncode != 0 and ddp.stderr.count("another train run is using") == 2, ddp.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [".train.lock"]


def test_an_average_of_models_is_the_mean_of_their_weights_and_names_them(tmp_path):
    from rmt_lib.train import average_models

    longer = dataclasses.replace(TINY, stages=TINY.stages + (Stage(2, 2, 8),))
    train(TINY, tmp_path / "a", progress=False)
    train(longer, tmp_path / "b", progress=False, from_model=tmp_path / "a" / "model")  # a branch of a
    folder = average_models([tmp_path / "a" / "model", tmp_path / "b" / "model"], tmp_path / "avg")
    a, b, avg = (load_file(tmp_path / p / "model.safetensors") for p in ("a/model", "b/model", "avg"))
    assert set(avg) == set(a) and all(torch.allclose(avg[k], (a[k] + b[k]) / 2, atol=1e-7) for k in a)
    assert not torch.equal(a["cell.initial_memory"], b["cell.initial_memory"])  # two models, not one twice
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert records[:-1] == [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    average = records[-1]
    assert [m["folder"] for m in average["models"]] == [str(tmp_path / "a" / "model"), str(tmp_path / "b" / "model")]
    assert average["shared_stages"] == len(TINY.stages) and average["models"][1]["last_stage"]["stage"] == len(TINY.stages)
    assert from_pretrained(folder).config == TINY.model and read_training_log(folder / "metrics.jsonl").stages
    table = average_summary(folder)
    assert f"`{tmp_path / 'a' / 'model'}` | the shared curriculum ({len(TINY.stages)} stages)" in table
    assert f"`{tmp_path / 'b' / 'model'}` | 1 stage appended to it" in table
    assert average_summary(tmp_path / "a" / "model") == ""
    with pytest.raises(ValueError, match="itself an average"):
        average_models([folder, tmp_path / "b" / "model"], tmp_path / "again")
    with pytest.raises(ValueError, match="is an average"):  # no curriculum ends in it
        train(dataclasses.replace(longer, stages=longer.stages + (Stage(2, 2, 8),)), tmp_path / "c", progress=False,
              from_model=folder)


def test_only_models_trained_from_one_start_average(tmp_path):
    from rmt_lib.train import average_models

    train(TINY, tmp_path / "a", progress=False)
    train(dataclasses.replace(TINY, seed=1), tmp_path / "b", progress=False)
    train(dataclasses.replace(TINY, model=TINY.model.replace(num_memory_tokens=2)), tmp_path / "c", progress=False)
    a, b, c = (tmp_path / run / "model" for run in "abc")
    with pytest.raises(ValueError, match="share no first stage"):  # two curricula from scratch
        average_models([a, b], tmp_path / "avg")
    with pytest.raises(ValueError, match="num_memory_tokens"):
        average_models([a, c], tmp_path / "avg")
    with pytest.raises(ValueError, match="two or more"):
        average_models([a], tmp_path / "avg")
    with pytest.raises(ValueError, match="given twice"):
        average_models([a, a], tmp_path / "avg")
    with pytest.raises(ValueError, match="is one of the folders"):
        average_models([a, b], a)
    assert not (tmp_path / "avg").exists()
