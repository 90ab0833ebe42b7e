"""The curriculum loop: stage after stage of longer inputs (the default preset: 1 -> 2 -> 4 -> ... segments,
past the paper's 32; `TrainConfig.stages` says how far), with checkpoints, resumption and DDP.

Each stage starts from the previous stage's best weights with a fresh AdamW (warmup, cosine decay,
gradient clipping), trains on freshly generated samples from the training background, validates on the
validation background, and advances once validation accuracy reaches the threshold or the step budget
runs out. Every batch is generated from a seed derived from (seed, stage, step), so a run resumed from a
checkpoint sees exactly the batches an uninterrupted run would have seen.

Multi-process data parallelism goes through torch DDP (`torchrun --nproc-per-node N -m rmt_lib train`):
every rank generates the same global batch and trains on its own slice of it.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from tqdm.auto import tqdm

from rmt_lib.data import Batch, distractor_tokens, load_tokenizer
from rmt_lib.data.batching import NOT_SEEN
from rmt_lib.jsonio import atomic_path, check_output_path, write_text_atomic
from rmt_lib.model import RecurrentMemoryTransformer, from_pretrained, save_pretrained
from rmt_lib.model.checkpoint import load_model_tensors, model_tensors
from rmt_lib.runtime import describe_machine, resolve_device, seed_everything
from rmt_lib.train.config import Stage, TrainConfig, lr_at
from rmt_lib.train.run_folder import (CHECKPOINT, METRICS, finished_stages, is_average, read_checkpoint, read_metrics,
                                     run_lock)
from rmt_lib.train.step import make_batch, make_optimizer, train_step



@dataclass
class RunState:
    """Everything besides tensors that a resumed run needs."""
    stage: int = 0
    step: int = 0  # steps done in the current stage
    best_accuracy: float = -1.0
    tokens: int = 0
    elapsed: float = 0.0  # seconds of training before this process started
    log_lines: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one summary per finished stage


_TRAIN, _MIX, _VALIDATION, _NOISE, _LEAD_IN, _CARRY = 0, 1, 2, 3, 4, 5  # independent seed streams


def _seed_for(cfg: TrainConfig, stream: int, *keys: int) -> int:
    """A seed for one batch, derived from the run's seed and the batch's place in the run."""
    return int(np.random.SeedSequence([cfg.seed, stream, *keys]).generate_state(1)[0])


class Trainer:
    def __init__(self, cfg: TrainConfig, output: str | Path, *, device: str | None = None,
                 progress: bool = True, tokenizer=None):
        self.cfg, self.output, self.progress = cfg, Path(output), progress
        self.device = resolve_device(device)
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.tokenizer = tokenizer or load_tokenizer()
        if self.tokenizer.vocab_size != cfg.model.vocab_size:
            raise ValueError(f"the tokenizer has {self.tokenizer.vocab_size} tokens but the model config "
                             f"expects vocab_size {cfg.model.vocab_size}")
        seed_everything(cfg.seed)
        self.model = RecurrentMemoryTransformer(cfg.model).to(self.device)
        if cfg.compile:
            self.model.compile_cell()
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else None)
        self.state = RunState()
        self.best: dict[str, torch.Tensor] = model_tensors(self.model)
        self.mean: dict[str, torch.Tensor] | None = None  # the running mean of Stage.average_every
        self._new_optimizer()
        self._validation: dict[int, list[Batch]] = {}
        self._stream: tuple[tuple[int, int], Batch] | None = None  # a streamed stage's inputs: ((stage, index), batch)
        self._carry: torch.Tensor | None = None  # (B, M, D) where a streamed stage's next piece starts
        # Stage.carry_memory: what each batch row's last input left, (B, M, D) memory and (B, A) auxiliary labels
        self._carried: tuple[torch.Tensor, torch.Tensor] | None = None

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> RecurrentMemoryTransformer:
        """Train through every remaining stage; returns the model holding the final stage's best weights."""
        started = time.perf_counter() - self.state.elapsed
        while self.state.stage < len(self.cfg.stages):
            self._run_stage(started)
        self.model.eval()
        return self.model

    def _run_stage(self, started: float) -> None:
        cfg, st = self.cfg, self.state
        stage = cfg.stages[st.stage]
        if (stage.chunk is not None or stage.carry_memory is not None) and self.world > 1:
            raise ValueError(f"stage {st.stage + 1} carries memory states across steps (chunk or carry_memory); such "
                             "stages train in one process (each rank's memory states would need their own checkpoint)")
        bar = tqdm(total=stage.max_steps, initial=st.step, disable=not self.progress or self.rank,
                   desc=f"stage {st.stage + 1}/{len(cfg.stages)}: {stage.n_segments} seg", unit="step",
                   dynamic_ncols=True, leave=True)
        accuracy, done = None, False
        if stage.average_every and self.mean is None:  # the weights the stage starts from count first
            self._add_to_mean(stage)
        while st.step < stage.max_steps and not done:
            t0 = time.perf_counter()
            loss, acc, tokens, n_segments, change = self._train_step(stage)
            st.step += 1
            st.tokens += tokens * self.world
            record = dict(kind="train", stage=st.stage, n_segments=stage.n_segments, batch_segments=n_segments, step=st.step,
                          loss=None if loss is None else round(loss, 5), accuracy=None if acc is None else round(acc, 4),
                          lr=self.optimizer.param_groups[0]["lr"],
                          tokens_per_s=round(tokens * self.world / (time.perf_counter() - t0)),
                          elapsed=round(time.perf_counter() - started, 1))
            if change is not None:  # a stage with memory_change_weight: the quiet change it penalises
                record["memory_change"] = float(f"{change:.4g}")
            if st.step % (stage.eval_every or cfg.eval_every) == 0 or st.step == stage.max_steps:
                accuracy = self.validate(stage.n_segments)
                if accuracy > st.best_accuracy:
                    st.best_accuracy, self.best = accuracy, model_tensors(self.model)
                record["val_accuracy"] = round(accuracy, 4)
                done = accuracy >= cfg.advance_accuracy
            if stage.average_every and st.step % stage.average_every == 0:
                self._add_to_mean(stage)
            self._log(record)
            bar.update(1)
            bar.set_postfix(loss=None if loss is None else f"{loss:.3f}", acc=None if acc is None else f"{acc:.2f}", val=None if accuracy is None else f"{accuracy:.3f}",
                            tok_s=record["tokens_per_s"])
            if st.step % cfg.checkpoint_every == 0 and not done and st.step < stage.max_steps:
                st.elapsed = time.perf_counter() - started
                self.save_checkpoint()
        bar.close()
        self._finish_stage(stage, started)

    def _train_step(self, stage: Stage) -> tuple[float | None, float | None, int, int, float | None]:
        """One optimiser step: (answer loss, answer accuracy, tokens, segments of the batch's inputs, quiet
        memory change); the loss and accuracy are None for a streamed chunk without the question, the change
        None unless the stage penalises it."""
        cfg, st = self.cfg, self.state
        local, n_segments = (self._chunk(stage), stage.n_segments) if stage.chunk is not None else self._batch(stage)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, st.step, stage.max_steps, stage.lr)
        if stage.carry_memory is not None:
            local, memory = self._continue(stage, local)
        else:
            memory = self._lead_in(stage) if stage.lead_in else self._carry
        torch.manual_seed(_seed_for(cfg, _NOISE, st.stage, st.step))  # memory noise: the same after a resume
        with self.model.training_overrides(**stage.model_overrides):
            out = train_step(self.model, self.optimizer, local, cfg.grad_clip, forward=self.ddp, memory=memory)
        if stage.chunk is not None:
            self._carry = None if local.labels is not None else out.memory.detach()  # (B, M, D)
        if stage.carry_memory is not None:
            self._carried = (out.memory.detach(), local.aux_labels[:, -1])  # (B, M, D), (B, A)
        change = None if out.memory_change is None else out.memory_change.item()
        if local.labels is None:
            return None, None, local.input_ids.numel(), n_segments, change
        acc = (out.logits.argmax(-1) == local.labels).float().mean().item()
        return out.answer_loss.item(), acc, local.input_ids.numel(), n_segments, change

    def _batch(self, stage: Stage) -> tuple[Batch, int]:
        """This step's batch and its inputs' length: the stage's, or (mix_shorter) an earlier stage's."""
        cfg, st = self.cfg, self.state
        rng = np.random.default_rng(_seed_for(cfg, _MIX, st.stage, st.step))
        n_segments = stage.n_segments
        shorter = [s.n_segments for s in cfg.stages[:st.stage] if s.n_segments < n_segments]
        if shorter and rng.random() < cfg.mix_shorter:
            n_segments = int(rng.choice(shorter))
        batch = make_batch(cfg, self.tokenizer, n_segments, stage.batch_size, _seed_for(cfg, _TRAIN, st.stage, st.step), "train")
        return _shard(batch, self.rank, self.world).to(self.device), n_segments

    @torch.no_grad()
    def _lead_in(self, stage: Stage) -> torch.Tensor | None:
        """(B, M, D) the memory state after this step's lead-in (Stage.lead_in): 0 to `stage.lead_in` segments
        of training prose without facts, read without gradients; None (the initial memory) when 0 is drawn."""
        cfg, st = self.cfg, self.state
        rng = np.random.default_rng(_seed_for(cfg, _LEAD_IN, st.stage, st.step))
        n_segments = int(rng.integers(stage.lead_in + 1))
        if n_segments == 0:
            return None
        ids = distractor_tokens(stage.batch_size, n_segments * cfg.model.segment_size, "train",
                                seed=int(rng.integers(2**63)), tokenizer=self.tokenizer)  # (B, n_segments * L)
        n = stage.batch_size // self.world  # this rank's rows, as _shard cuts the batch
        self.model.eval()
        return self.model(torch.from_numpy(ids[self.rank * n:(self.rank + 1) * n]).to(self.device)).memory

    def _continue(self, stage: Stage, batch: Batch) -> tuple[Batch, torch.Tensor | None]:
        """Stage.carry_memory: where each row's input starts, (B, M, D), and the batch with its auxiliary labels
        continued. A row continues (with probability carry_memory, drawn from the step's seed) from the memory
        state its previous input left, and an actor the new input has not named yet is where the previous input
        left it; otherwise the row starts from the initial memory, every actor not seen. None on the stage's
        first step (every row starts from the initial memory)."""
        if self._carried is None:
            return batch, None
        memory, labels = self._carried  # (B, M, D), (B, A)
        rng = np.random.default_rng(_seed_for(self.cfg, _CARRY, self.state.stage, self.state.step))
        keep = torch.from_numpy(rng.random(len(batch)) < stage.carry_memory).to(self.device)  # (B,)
        initial = self.model.cell.initial_memory.expand_as(memory)  # (B, M, D), its gradient kept for the reset rows
        start = torch.where(keep[:, None, None], memory, initial)
        before = torch.where(keep[:, None], labels, NOT_SEEN)[:, None]  # (B, 1, A) the state before the input
        aux = torch.where(batch.aux_labels == NOT_SEEN, before, batch.aux_labels)  # (B, S, A)
        return Batch(batch.input_ids, batch.attention_mask, batch.labels, aux), start

    def _chunk(self, stage: Stage) -> Batch:
        """A streamed stage's piece for this step: `stage.chunk` segments of the current inputs, their
        question only in the last piece. The inputs of step k come from the seed of k // pieces, so a
        resumed run regenerates them; the memory the previous piece left is in `self._carry`."""
        st, pieces = self.state, stage.n_segments // stage.chunk
        index, part = divmod(st.step, pieces)
        if self._stream is None or self._stream[0] != (st.stage, index):
            batch = make_batch(self.cfg, self.tokenizer, stage.n_segments, stage.batch_size,
                               _seed_for(self.cfg, _TRAIN, st.stage, index), "train")
            self._stream = ((st.stage, index), _shard(batch, self.rank, self.world).to(self.device))
        whole = self._stream[1]
        tokens = slice(part * stage.chunk * self.cfg.model.segment_size, (part + 1) * stage.chunk * self.cfg.model.segment_size)
        mask = None if whole.attention_mask is None else whole.attention_mask[:, tokens]
        return Batch(whole.input_ids[:, tokens], mask, whole.labels if part == pieces - 1 else None,
                     whole.aux_labels[:, part * stage.chunk:(part + 1) * stage.chunk])

    def _add_to_mean(self, stage: Stage) -> None:
        """The current weights join the stage's running mean (float64, so that the order of additions
        leaves no rounding of its own beyond float32's), the `_averaged`-th weights in it."""
        weights, n = model_tensors(self.model), _averaged(stage, self.state.step)
        if self.mean is None:
            self.mean = {k: v.detach().to(torch.float64).clone() for k, v in weights.items()}
        else:
            for k, v in weights.items():
                self.mean[k] += (v.detach().to(torch.float64) - self.mean[k]) / n

    def _finish_stage(self, stage: Stage, started: float) -> None:
        """Keep the stage's best weights (or, with average_every, the mean of its weights), record it, and start
        the next stage from them."""
        st = self.state
        summary = dict(kind="stage", stage=st.stage, n_segments=stage.n_segments, steps=st.step,
                       best_val_accuracy=round(st.best_accuracy, 4))
        if stage.average_every:
            load_model_tensors(self.model, {k: v.to(torch.float32) for k, v in self.mean.items()})
            summary |= dict(averaged=_averaged(stage, st.step),
                            averaged_val_accuracy=round(self.validate(stage.n_segments), 4))
        else:
            load_model_tensors(self.model, self.best)
        summary["elapsed"] = round(time.perf_counter() - started, 1)
        st.history.append(summary)
        self._log(summary)
        st.stage, st.step, st.best_accuracy, self.mean = st.stage + 1, 0, -1.0, None
        self._stream = self._carry = self._carried = None
        st.elapsed = time.perf_counter() - started
        self._new_optimizer()
        self.save_checkpoint()

    @torch.no_grad()
    def validate(self, n_segments: int) -> float:
        """Accuracy on a fixed set of validation-background samples of this length."""
        if n_segments not in self._validation:
            per = 64
            self._validation[n_segments] = [
                make_batch(self.cfg, self.tokenizer, n_segments, min(per, self.cfg.eval_samples - i),
                           _seed_for(self.cfg, _VALIDATION, n_segments, i), "validation")
                for i in range(0, self.cfg.eval_samples, per)]
        self.model.eval()
        correct = total = 0
        for batch in self._validation[n_segments]:
            b = batch.to(self.device)
            correct += (self.model(b.input_ids, b.attention_mask).logits.argmax(-1) == b.labels).sum().item()
            total += len(b)
        return correct / total

    def _new_optimizer(self) -> None:
        self.optimizer = make_optimizer(self.model, self.cfg)

    # --- files ------------------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank:
            return
        self.output.mkdir(parents=True, exist_ok=True)
        with open(self.output / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.state.log_lines += 1

    def log_machine(self) -> None:
        """A "machine" record where this run (or its resumption) starts: which CPU, instruction set, library
        versions and threads it trains on. Runs repeat bit for bit where these agree, and only there."""
        self._log(dict(kind="machine", stage=self.state.stage, step=self.state.step, world=self.world,
                       **describe_machine(self.device.type, torch.get_num_threads())))

    def save_checkpoint(self) -> None:
        """Model, best-so-far, optimizer and run state in one safetensors file, written then renamed."""
        if self.rank:
            return
        tensors = {f"model.{k}": v for k, v in model_tensors(self.model).items()}
        tensors |= {f"best.{k}": v for k, v in self.best.items()}
        tensors |= {f"mean.{k}": v for k, v in (self.mean or {}).items()}
        if self._carry is not None:  # in the middle of a streamed stage's inputs
            tensors["carry"] = self._carry.detach().cpu().contiguous()
        if self._carried is not None:  # in a stage whose inputs continue the memory their rows' last ones left
            memory, labels = (t.detach().cpu().contiguous() for t in self._carried)
            tensors |= {"carried.memory": memory, "carried.labels": labels}
        opt = self.optimizer.state_dict()
        for idx, slots in opt["state"].items():
            tensors |= {f"optim.{idx}.{k}": v.detach().cpu().contiguous() for k, v in slots.items()}
        meta = dict(train_config=json.dumps(self.cfg.to_dict()), run_state=json.dumps(dataclasses.asdict(self.state)),
                    param_groups=json.dumps([{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]))
        with atomic_path(self.output / CHECKPOINT) as tmp:
            save_file(tensors, tmp, metadata=meta)

    def load_checkpoint(self) -> bool:
        """Resume from the output folder's checkpoint; False when there is none."""
        path = self.output / CHECKPOINT
        if not path.is_file():
            return False
        meta, tensors, saved = read_checkpoint(path)
        if not self.cfg.continues(saved):
            raise ValueError(f"{path} was written by a run with another configuration; resume with the same "
                             "--config (stages may be appended), or train into a fresh --output folder")
        load_model_tensors(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self.mean = {k[5:]: v for k, v in tensors.items() if k.startswith("mean.")} or None
        self._carry = tensors["carry"].to(self.device) if "carry" in tensors else None
        self._carried = ((tensors["carried.memory"].to(self.device), tensors["carried.labels"].to(self.device))
                         if "carried.memory" in tensors else None)
        self.state = RunState(**json.loads(meta["run_state"]))
        self._new_optimizer()
        groups = json.loads(meta["param_groups"])
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, slot = key.split(".", 2)
                state.setdefault(int(idx), {})[slot] = value
        pg = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": [g | {"params": p["params"]} for g, p in zip(groups, pg)]})
        self._truncate_log()
        return True

    def start_from_model(self, folder: str | Path) -> None:
        """Continue a finished curriculum from its model folder: the run that wrote `folder` trained the
        first stages of this config (its metrics.jsonl says which), and this one trains the stages appended
        after them. A finished stage leaves nothing but its best weights (the next stage starts a fresh
        optimiser, and batches are seeded by stage and step), so this equals resuming that run's
        checkpoint with the stages appended."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"--from-model {folder} is not a folder; pass a model folder written by train")
        model = from_pretrained(folder)
        if model.config != self.cfg.model:
            changed = sorted(k for k, v in model.config.to_dict().items() if self.cfg.model.to_dict()[k] != v)
            raise ValueError(f"the model in {folder} differs from the config's model in {changed}; --from-model "
                             "continues a curriculum with the same model")
        log = folder / METRICS
        records = read_metrics(log)
        if is_average(records):
            raise ValueError(f"{folder} is an average of model folders (its {METRICS} names them), not the end of "
                             "one curriculum; continue one of the folders it was made of")
        done = finished_stages(records)
        trained = [r["n_segments"] for r in done]
        planned = [s.n_segments for s in self.cfg.stages]
        if not done or trained != planned[:len(trained)] or len(trained) >= len(planned):
            raise ValueError(f"the run that wrote {folder} trained stages of {trained} segments; --from-model "
                             f"continues it with stages appended after those, but this config's are {planned}")
        load_model_tensors(self.model, model_tensors(model))
        self.best = model_tensors(self.model)
        self.state = RunState(stage=len(done), elapsed=float(done[-1]["elapsed"]), log_lines=len(records),
                              history=done)
        self._new_optimizer()
        if self.rank == 0:
            self.output.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.output / METRICS, log.read_text(encoding="utf-8"))  # the run's log goes on

    def _truncate_log(self) -> None:
        """Drop metric lines written after the checkpoint (they will be written again)."""
        log = self.output / METRICS
        if self.rank or not log.is_file():
            return
        write_text_atomic(log, "".join(log.read_text().splitlines(keepends=True)[: self.state.log_lines]))


def _averaged(stage: Stage, step: int) -> int:
    """How many weights an averaging stage's mean holds after `step` steps: its start and every average_every-th."""
    return 1 + step // stage.average_every


def _shard(batch: Batch, rank: int, world: int) -> Batch:
    if world == 1:
        return batch
    if len(batch) % world:
        raise ValueError(f"batch size {len(batch)} does not split evenly over {world} processes")
    n = len(batch) // world
    cut = lambda t: None if t is None else t[rank * n:(rank + 1) * n]  # noqa: E731
    return Batch(cut(batch.input_ids), cut(batch.attention_mask), cut(batch.labels), cut(batch.aux_labels))


def train(cfg: TrainConfig, output: str | Path, *, resume: bool = False, device: str | None = None,
          progress: bool = True, model_dir: str | Path | None = None,
          from_model: str | Path | None = None) -> RecurrentMemoryTransformer:
    """Run (or resume) a curriculum; saves the final model to `model_dir` (default: OUTPUT/model).
    `from_model`: a model folder whose run trained the first stages of `cfg`; only the later ones are trained."""
    output = Path(output)
    if resume and from_model is not None:
        raise ValueError("--resume continues the run in --output and --from-model starts one from a model folder; "
                         "pass one of them")
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; a run needs a folder (metrics.jsonl, checkpoint, model/)")
    check_output_path(output / METRICS)  # a parent that is a file: refused before the work
    trainer = Trainer(cfg, output, device=device, progress=progress)
    with run_lock(output, trainer.rank, trainer.world):
        if not resume and (output / CHECKPOINT).exists():
            raise ValueError(f"{output} already holds a run; pass --resume to continue it or choose another --output")
        if resume:
            trainer.load_checkpoint()
        elif (output / METRICS).exists() and trainer.rank == 0:
            (output / METRICS).unlink()  # a stale log from a run that never checkpointed
        if from_model is not None:
            trainer.start_from_model(from_model)
        trainer.log_machine()
        model = trainer.run()
        if trainer.rank == 0:
            save_pretrained(model, model_dir or output / "model", tokenizer_path=Path(trainer.tokenizer.source),
                            extra_files={METRICS: output / METRICS})
    return model
