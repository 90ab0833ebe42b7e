"""What a training run is: its curriculum stages, its optimiser settings, and the named presets."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmt_lib.data import LOCATION_TOKEN_IDS
from rmt_lib.model import RMTConfig
from rmt_lib.model.config import TRAINING_ONLY_FIELDS


@dataclass(frozen=True)
class Stage:
    n_segments: int
    max_steps: int  # the stage's budget; it ends earlier once validation reaches the threshold
    batch_size: int = 64
    lr: float | None = None  # this stage's peak learning rate; None = TrainConfig.lr
    # Training-only settings of the model for this stage; None = the model config's own. Long stages
    # backpropagate through their last segments only (truncated BPTT): the segments before run forward
    # without gradients, so a stage of 256 segments costs about as much as a full-BPTT stage of 100.
    # Measured, appended to the earlier shipped model's curriculum (memory read after the final norm): a
    # stage of 256 segments, BPTT through the last 32, lr 1e-4, took validation at 256 to 0.30 after 50
    # steps and 0.34 after 100 (the model before it: 0.52 on test samples); 100 more steps at 96, full BPTT,
    # lr 1e-4, took validation at 96 from 0.86 to 0.81, then 0.73.
    bptt_depth: int | None = None
    memory_noise: float | None = None
    memory_change_weight: float | None = None  # RMTConfig.memory_change_weight for this stage
    # A streamed stage reads its inputs `chunk` segments per optimiser step: each step continues from the
    # memory state the previous step left (detached), so no segment runs twice and every segment trains,
    # from memory states as far into the input as the stage is long. Steps without the question train on
    # the auxiliary loss alone; one input of n_segments takes n_segments / chunk steps. max_steps counts
    # steps, and no shorter inputs are mixed in. None: the whole input in one step. Measured: 480 steps at
    # 512 segments, chunks of 32, lr 1e-4, appended to the default curriculum with the memory read after the
    # last block (10 min), left validation at 512 at 0.21 and took test accuracy at 32 segments from 99.5% to
    # 60.5% (256: 71% to 24.5%; 200 samples each): the answer at the end of 512 segments is not learnt this
    # way, and what is learnt in trying undoes the short lengths. The default curriculum has no such stage.
    chunk: int | None = None
    # Validate every this many steps; None = TrainConfig.eval_every. A long stage's validation costs many
    # steps' time (at 512 segments, one check reads as many segments as 250 of its chunk steps train).
    eval_every: int | None = None
    # Before each step's inputs, a lead-in of 0 to this many segments of prose without facts (a length drawn
    # per step) is read without gradients, and the inputs start from the memory state it leaves: the stage
    # trains writing, keeping and reading facts from memory states that have drifted through long distractor
    # stretches, as at test lengths past the curriculum (the log's tokens_per_s counts the inputs' tokens, not
    # the lead-in's). None: every input starts from the initial memory.
    # Measured, appended to the 64-wide default curriculum's model (`--from-model runs/default/model`; 100 validation
    # samples a length at 32 / 256 / 1,024 / 2,048 segments, drift over 63 two-fact samples of 256): a stage at
    # 256 (120 steps, lr 3e-5, lead-ins of up to 768 segments; 16.3 minutes on a slower CPU) gave 99 / 92 / 75
    # / 67% and drift 0.94, against that model's 99 / 94 / 82 / 73% and 0.86. Alone it was no better; it was one
    # of the three models the 64-wide model shipped before averaged.
    lead_in: int | None = None
    # Every this many steps the weights join a running mean, and the stage's model is that mean of the weights
    # it started from and of those (stochastic weight averaging, Izmailov et al., 2018), not its best
    # validation's. None: the best validation's weights. Measured late at 256 segments (a 200-step branch of the 64-wide
    # curriculum's model, lr 3e-5): the mean of its start and its weights every 50 steps scored 99 / 93 / 81 / 79%
    # at 32 / 256 / 1,024 / 2,048 segments with drift 0.94, against its best validation's 99 / 92 / 78 / 68% and
    # 0.90; better than the branch, no better than the 64-wide average of three branches then shipped (99 / 94 /
    # 83 / 83%).
    average_every: int | None = None
    # Each input of a batch row continues, with this probability, from the memory state that row's previous
    # input left (detached), and its auxiliary labels start from where that input's ended (an actor no fact of
    # the new input names is where the old one left it); otherwise it starts from the initial memory, as every
    # test input does. Inputs thus chain into one story of a geometric number of inputs (a mean of
    # 1 / (1 - carry_memory)), and the stage trains writing, keeping and reading facts from memory states that
    # have read thousands of segments, at no extra cost (a lead-in pays for every segment it reads).
    # None: every input starts from the initial memory.
    # Measured, appended to the 64-wide average then shipped (a stage at 256 segments, batch 16, lr 3e-5;
    # validation samples; an AMD EPYC of family 25, model 17): carry_memory 0.75 for 150 steps (9.0 minutes)
    # answered 100 / 94 / 82 / 76% of 100 samples a length at 32 / 256 / 1,024 / 2,048 segments, drift 0.91,
    # against the average's 100 / 96 / 75 / 64% and 0.90; but 68.7% against 70.0% of 300 other samples at
    # 2,048 (paired: 43 answered by it alone, 47 by the average alone). 0.9 for 300 steps (16.6 minutes): 69.7%
    # of those 300 (48 against 49), drift 0.97. A question asks about a fact of its own input, so this trains
    # reading after a long history (training accuracy 0.81-0.94 on such batches), not keeping a fact for longer
    # than one input, which the answers at 2,048 segments also need (the average's test evaluation there: 79%
    # where the fact lay in the last 512 segments, 58-69% further back). The shipped model trains without it.
    carry_memory: float | None = None

    def __post_init__(self) -> None:
        if self.carry_memory is not None and not (isinstance(self.carry_memory, (int, float))
                                                  and not isinstance(self.carry_memory, bool)
                                                  and 0.0 < self.carry_memory < 1.0):
            raise ValueError(f"Stage.carry_memory must be None or a probability in (0, 1), got {self.carry_memory!r}")
        if self.carry_memory is not None and (self.lead_in is not None or self.chunk is not None):
            raise ValueError("Stage.carry_memory chooses where each input's memory starts; "
                             "leave lead_in and chunk None")
        if self.average_every is not None and (not isinstance(self.average_every, int)
                                               or isinstance(self.average_every, bool) or self.average_every < 1):
            raise ValueError(f"Stage.average_every must be None or an int >= 1 (steps), got {self.average_every!r}")
        if self.lead_in is not None and (not isinstance(self.lead_in, int) or isinstance(self.lead_in, bool)
                                         or self.lead_in < 1):
            raise ValueError(f"Stage.lead_in must be None or an int >= 1 (segments), got {self.lead_in!r}")
        if self.lead_in is not None and self.chunk is not None:
            raise ValueError("a streamed stage (chunk) carries its own memory across steps; leave lead_in None")
        if self.eval_every is not None and (not isinstance(self.eval_every, int) or self.eval_every < 1):
            raise ValueError(f"Stage.eval_every must be None or an int >= 1, got {self.eval_every!r}")
        if self.chunk is not None and (not isinstance(self.chunk, int) or self.chunk < 1 or self.n_segments % self.chunk):
            raise ValueError(f"Stage.chunk must be None or an int >= 1 that divides n_segments ({self.n_segments}), "
                             f"got {self.chunk!r}")
        if self.chunk is not None and self.bptt_depth is not None:
            raise ValueError("a streamed stage (chunk) backpropagates through its chunk; leave bptt_depth None")
        if self.bptt_depth is not None and (not isinstance(self.bptt_depth, int) or self.bptt_depth < 1):
            raise ValueError(f"Stage.bptt_depth must be None (the model's setting) or an int >= 1, got {self.bptt_depth!r}")
        if self.memory_noise is not None and not 0.0 <= self.memory_noise < 1.0:
            raise ValueError(f"Stage.memory_noise must be None or lie in [0, 1), got {self.memory_noise!r}")
        if self.memory_change_weight is not None and not self.memory_change_weight >= 0:
            raise ValueError(f"Stage.memory_change_weight must be None or >= 0, got {self.memory_change_weight!r}")

    @property
    def model_overrides(self) -> dict[str, Any]:
        """The RMTConfig fields this stage sets for its training steps."""
        return {k: getattr(self, k) for k in TRAINING_ONLY_FIELDS if getattr(self, k) is not None}


# The shipped model's loss. The paper's LM loss on the answer token, read at the six locations' tokens
# (measured against a classifier: see RecurrentMemoryTransformer). The auxiliary loss at every segment's
# end gives every memory update a signal of its own (measured at 2 segments after 800 steps: validation
# 0.78 with it, 0.73 with the loss at the question only).
# The memory is read after the last block (RMTConfig.memory_path says why; memory_input says why not
# through a plain norm).
SHIPPED_MODEL = RMTConfig(answer_head="lm", answer_token_ids=LOCATION_TOKEN_IDS, aux_every_segment=True,
                          memory_path="last_block")


@dataclass(frozen=True)
class TrainConfig:
    model: RMTConfig = SHIPPED_MODEL
    # Stages with memory take a lower learning rate: each stage starts a fresh AdamW, and 1.5e-3 halved
    # validation accuracy in the first 50 steps of a stage; at 16 segments it collapsed from 0.65 to 0.23.
    # The stages past the paper's curriculum (32 segments) are for length generalisation. Measured with the
    # classifier answer head the model had then: trained to 32 segments, it answered 99% at 32 but 29% at
    # 256, failing where the fact lay more than 32 segments back; a stage at 64 took 256 to 57%, one at 96
    # (lr 5e-5) to 61%, and one at 128 sent validation at 128 towards chance both times it was tried.
    # With facts placed as BABILong places them (cut by segment boundaries), the short stages no longer
    # reach the 0.98 that ends them early (2 segments: 0.92 after 1,200 steps; 4: 0.97 after 1,000).
    # At width 64 the memory read after the last block (SHIPPED_MODEL) ended them earlier (2 segments: 0.98
    # after 900 steps; 4: after 450); at width 96 they run their full budgets, to 0.94 (RMTConfig.hidden_size).
    # A stage at 4 segments appended to the 96-wide curriculum's end (300 steps, lr 1e-4; it reached 0.98 and
    # ended in 72 s) lifted 2 and 4 segments from 98.6 / 95.8% to 99.2 / 98.4% of 500 validation samples, and
    # dropped 2,048 segments from 89.0% to 40.7% of 300: short inputs are for the start of the curriculum.
    # The stages from 16 segments on had 150, 150, 120 and 100 steps, to keep an eager run within the hour.
    # Compiled to one graph for every length, the curriculum costs half as much, and 300 steps each moved
    # every length (measured on one machine, the same seed; 200 test samples a length, at 32 / 96 / 256 /
    # 1,024 segments): 100 / 97.0 / 89.0 / 57.0% against 98.5 / 81.5 / 61.0 / 29.0%; validation at 96
    # reached 0.98 (against 0.87). The stage at 128 (lr 5e-5) added to them took the same lengths, on
    # validation samples, from 99.5 / 96.5 / 88.5 / 54.5% to 99.5 / 97.0 / 93.5 / 66.5%, and the stage at
    # 256 after it to 99.5 / 99.0 / 94.5 / 76.0% (its validation at 256: 0.84 after 100 steps, 0.96 after
    # 200). With the shorter stages, one at 128 (lr 1e-4, 200 steps) moved two runs opposite ways: the
    # model shipped before, to 100 / 95.5 / 79.5 / 42.5% from 99.5 / 92.0 / 71.0 / 32.0%; a run of the same
    # curriculum on another machine, where rounding differs, to 98.5 / 84.5 / 56.5 / 31.5%, and a stage at
    # 256 after that one (lr 1e-4, 150 steps) lowered every length.
    # At width 64, past it, measured and left out (100 validation samples at 256 / 1,024 / 2,048 segments, against 96 /
    # 70 / 71%): a stage at 512 (100 steps, batch 8, lr 5e-5), 86 / 50 / 43%; a second stage at 256 (200
    # steps, lr 3e-5), 95 / 69 / 68%. Shipped instead, at width 64: the uniform average of the weights of this
    # curriculum's model and of the two that a late memory-noise stage (Stage(256, 200, 16, lr=3e-5,
    # memory_noise=0.03)) and a lead-in stage (Stage(256, 120, 16, lr=3e-5, lead_in=768, eval_every=40)) made
    # from it (`python -m rmt_lib average`; each branch alone no better). It answered 69% of the test samples at
    # 2,048 segments against this curriculum's model's 58%, and 83% against 73% of 100 validation samples; the
    # same samples, paired: 39 answered by the average alone, 18 by the curriculum's model alone; at 256
    # segments 94.6% against 91.2% (500 test samples). This curriculum at width 96 (RMTConfig.hidden_size),
    # alone, answers more than that average at 256, 1,024 and 2,048 segments, and is the shipped model.
    # Past the average, measured and left out (the same validation budget, drift over 64 samples): one more
    # stage at 256 trained from the average's weights (150 steps, lr 2e-5, memory noise 0.03, lead-ins of up
    # to 768 segments, the mean of its weights every 50 steps; 16 minutes) gave 99 / 96 / 83 / 67% and drift
    # 0.92, against the average's 99 / 94 / 83 / 83% and 0.90; the mean of the two, 99 / 94 / 81 / 76%.
    # The whole curriculum, 96 wide: 40.8 minutes on two cores, compiled (data/model/metrics.jsonl).
    stages: tuple[Stage, ...] = (Stage(1, 1500), Stage(2, 1200, lr=1e-3), Stage(4, 1000, lr=1e-3),
                                 Stage(8, 300, lr=1e-3), Stage(16, 300, 32, lr=3e-4), Stage(32, 300, 32, lr=3e-4),
                                 Stage(64, 300, 16, lr=1e-4), Stage(96, 300, 16, lr=5e-5),
                                 Stage(128, 300, 16, lr=5e-5), Stage(256, 200, 16, lr=5e-5))
    advance_accuracy: float = 0.98  # validation accuracy that ends a stage early
    lr: float = 1.5e-3  # higher than usual: it shortens the "last location mentioned" plateau
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mix_shorter: float = 0.25  # share of batches drawn at an earlier stage's length (length generalisation)
    eval_every: int = 50
    eval_samples: int = 256
    checkpoint_every: int = 50
    seed: int = 0
    # torch.compile the memory cell for the training steps (RecurrentMemoryTransformer.compile_cell): 1.4x
    # the tokens/s at 32 segments, batch 32 (data/results/training_reference.json), after a compilation per
    # batch shape. Off by default, since eager runs repeat bit for bit; the default preset turns it on.
    # Until the cell took contiguous inputs, every input length compiled anew and, past dynamo's limit of
    # eight, the curriculum's later stages ran eager: its stages to 96 segments took 1,539 s; 715 s since (width 64).
    compile: bool = False

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("TrainConfig.stages is empty")
        if min(s.n_segments for s in self.stages) < 1:
            raise ValueError(f"curriculum lengths must be positive, got {[s.n_segments for s in self.stages]}")
        if any(s.max_steps < 1 or s.batch_size < 1 or (s.lr is not None and s.lr <= 0) for s in self.stages):
            raise ValueError("every stage needs max_steps >= 1, batch_size >= 1 and a positive lr (or None)")
        if not 0 < self.advance_accuracy <= 1 or not 0 <= self.mix_shorter < 1:
            raise ValueError("advance_accuracy must lie in (0, 1] and mix_shorter in [0, 1)")
        if self.model.encoding != RMTConfig().encoding:
            raise ValueError("training encodes inputs as this project does (segment_alignment='right', the question "
                             "after a space, no answer prompt); the reference's layout is for imported models")
        if any(s.chunk is not None for s in self.stages) and not self.model.aux_every_segment:
            raise ValueError("a streamed stage (Stage.chunk) trains its pieces without the question on the auxiliary "
                             "loss at every segment: it needs model.aux_every_segment=True")
        if min(self.eval_every, self.checkpoint_every, self.eval_samples) < 1 or self.lr <= 0:
            raise ValueError("eval_every, checkpoint_every, eval_samples and lr must be positive")

    @property
    def trained_length(self) -> int:
        """The curriculum's longest input, in segments: lengths beyond it test generalisation."""
        return max(s.n_segments for s in self.stages)

    def continues(self, saved: TrainConfig) -> bool:
        """Whether a run of this config may continue one of `saved`: the same config, or the same with stages
        appended (a finished curriculum extended). Batches are seeded by (stage, step), so either way the run
        equals one made from scratch; compiling or not changes no batch, only rounding."""
        return dataclasses.replace(self, stages=self.stages[:len(saved.stages)], compile=saved.compile) == saved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ValueError(f"a TrainConfig is a JSON object of its fields, got a {type(d).__name__}")
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(known)}")
        if "model" in d:
            if not isinstance(d["model"], dict):
                raise ValueError(f"TrainConfig.model is an object of RMTConfig fields, got {d['model']!r}")
            d["model"] = RMTConfig.from_dict(d["model"])
        if "stages" in d:
            if not isinstance(d["stages"], (list, tuple)):
                raise ValueError(f"TrainConfig.stages is a list of stage objects, got {d['stages']!r}")
            d["stages"] = tuple(_stage(i, s) for i, s in enumerate(d["stages"], start=1))
        defaults = cls()
        for name, value in d.items():  # a number where the default is one, e.g. not "lr": "fast"
            default = getattr(defaults, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"TrainConfig.{name} must be true or false, got {value!r}")
            elif isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"TrainConfig.{name} must be a number like {default!r}, got {value!r}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        """A TrainConfig from a JSON file of its fields; ValueError naming the file for anything else."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not JSON ({err}); --config takes a preset name or a JSON file") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


PRESETS: dict[str, TrainConfig] = {
    # The shipped model's curriculum (README): `python -m rmt_lib train --config default --output runs/default
    # --model-dir data/model`. Compiled: 40.8 minutes on 2 cores (its log: data/model/metrics.jsonl).
    "default": TrainConfig(compile=True),
    # Minutes on 2 cores: the book's training chapter under CI.
    "ci": TrainConfig(stages=(Stage(1, 150), Stage(2, 60)), eval_every=30, eval_samples=128, checkpoint_every=30),
    # The no-memory baseline: the shipped model's backbone and answer head reading only the last segment.
    # Cheap at any length, since it never sees more than one segment; trained on the lengths it is evaluated at.
    "baseline": TrainConfig(model=SHIPPED_MODEL.replace(recurrent=False, num_memory_tokens=0, aux_every_segment=False,
                                                        memory_path="final_norm"),
                            stages=(Stage(1, 800), Stage(32, 400)), eval_every=50),
    # Seconds: tests.
    "tiny": TrainConfig(model=RMTConfig(hidden_size=32, num_layers=2, num_heads=2, num_memory_tokens=4),
                        stages=(Stage(1, 6, 8), Stage(2, 4, 8)), eval_every=3, eval_samples=16,
                        checkpoint_every=2, warmup_steps=2),
}


def _stage(number: int, d: Any) -> Stage:
    fields = {f.name for f in dataclasses.fields(Stage)}
    if not isinstance(d, dict):
        raise ValueError(f"stage {number} must be an object with fields {sorted(fields)}, got {d!r}")
    if unknown := sorted(set(d) - fields):
        raise ValueError(f"stage {number} has unknown field(s) {unknown}; known: {sorted(fields)}")
    if missing := sorted({"n_segments", "max_steps"} - set(d)):
        raise ValueError(f"stage {number} lacks {missing}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values() if v is not None):
        raise ValueError(f"stage {number}: every field is a number, got {d!r}")
    return Stage(**d)


def lr_at(cfg: TrainConfig, step: int, max_steps: int, peak: float | None = None) -> float:
    """Linear warmup to `peak` (default cfg.lr), then cosine decay to peak * min_lr_ratio at the stage's budget."""
    peak = cfg.lr if peak is None else peak
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    return peak * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
