"""`RMTConfig`: every knob of the Recurrent Memory Transformer, validated when it is built."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import AutoConfig, PretrainedConfig

BackboneName = Literal["gpt2", "llama", "bloom"]
AnswerHead = Literal["classifier", "lm"]
SegmentAlignment = Literal["right", "left"]
MemoryPath = Literal["final_norm", "last_block"]
MemoryInput = Literal["embedding_norm", "plain_norm"]
# The fields a curriculum stage may set for its training steps alone (Stage, training_overrides).
TRAINING_ONLY_FIELDS = ("bptt_depth", "memory_noise", "memory_change_weight")


@dataclass(frozen=True)
class RMTConfig:
    """The paper's RMT at laptop scale.

    A segment is laid out ``[read memory | segment tokens | write memory]`` so the backbone sees
    ``2 * num_memory_tokens + segment_size`` positions per call. Defaults are the shipped model's shape;
    its training preset (``rmt_lib.train.PRESETS["default"]``) also picks the LM answer head, with the
    locations' tokens, and the auxiliary loss at every segment.
    """

    # The positional scheme matters at this size. Measured (scripts/compare_backbones.py, one seed each,
    # data/results/backbones.json; memory read after the final norm, as the reference reads it, since the
    # shipped "last_block" path is Bloom's alone): steps to 90% validation at 1 segment were 350 for bloom
    # (ALiBi), 425 for llama (RoPE), and gpt2 (learned absolute positions) was still at 82% after 1,000 steps
    # (at width 64: 400, 550 and 74%).
    backbone: BackboneName = "bloom"
    vocab_size: int = 2048  # the project's byte-level BPE (data/tokenizer.json)
    # Measured, the default curriculum at width 64 and at 96 (the same seed and stages; validation samples, the
    # same ones for both models): 64 wide, then averaged with two branches (the model shipped before), answered
    # 70.0% of 300 samples at 2,048 segments; 96 wide, alone, 89.0% (paired: 76 answered by it alone, 19 by the
    # average alone), and 98.3% against 92.0% of 300 at 256. It is 1.4x slower a step (25,500 against 35,200
    # tokens/s at 64 segments, batch 16, compiled, on an AMD EPYC of family 25, model 17), but reaches each
    # stage's 0.98 sooner from 16 segments on (64: 50 steps against 300; 256: 150 against 200 without reaching
    # it): its curriculum took 39.8 and 40.8 minutes there, the 64-wide one 37.6 on an AMD EPYC of family 26, which
    # trains the 64-wide model about as fast. Its short stages learn more slowly (0.94 at 2 and 4 segments after
    # their full budgets, against 0.98). 128 wide trains 2.7x slower a step than 64: past the hour.
    hidden_size: int = 96
    num_layers: int = 4
    num_heads: int = 4
    segment_size: int = 32  # tokens per segment (the paper: 512)
    # The paper has 16. Measured, 16 with the default curriculum of the time (the same seed): validation
    # 0.86 at 2 segments after 1,200 steps and 0.79 at 4 after 1,000, where 8 tokens reached 0.98 and 0.98;
    # stopped there.
    num_memory_tokens: int = 8
    recurrent: bool = True  # False: the no-memory baseline, which reads only the last segment
    # Where the next memory state is read. "final_norm", as the reference RMT code does: the write tokens'
    # hidden states after the backbone's final norm. "last_block": their hidden states after the last block,
    # before the final norm (which the answer and auxiliary heads still read for the segment's tokens).
    # Either way the memory enters as input embeddings, through the embedding norm as every token does,
    # which keeps the state bounded. Measured on the earlier shipped model's norms, iterated with no block
    # between them: through both norms two different memory states come within 1.5% of each other in 32
    # segments, so every layer must work against a contraction to keep a fact; through Bloom's embedding
    # norm alone they are still 103% apart after 2,048.
    memory_path: MemoryPath = "final_norm"
    # How the memory enters the backbone: "embedding_norm", through the embedding norm as every token does;
    # "plain_norm", through a layer norm without learned scale or shift (Bloom's, with its epsilon), which
    # maps a normalised state to itself, so a block that adds nothing to the write tokens leaves the memory
    # where it was. Measured on a model trained with "last_block": its embedding norm alone, iterated, left
    # two memory states at 16% of their distance after 256 segments and 0.1% after 1,024, as its accuracy
    # fell (71% at 256, 32% at 1,024). Needs memory_path="last_block". Measured, the default curriculum
    # with "plain_norm" against "embedding_norm" (the same seed and budget, compiled; 200 test samples a
    # length): 100 / 86.5 / 57.0 / 24.5% at 32 / 96 / 256 / 1,024 segments against 99.5 / 92.0 / 71.0 / 32.0%,
    # in 28.6 minutes against 25.8. The shipped model keeps "embedding_norm".
    memory_input: MemoryInput = "embedding_norm"
    bptt_depth: int | None = None  # backpropagate through the last K segments; None = all of them
    # "right": the input is left-padded to whole segments, so the question ends the last one (ours).
    # "left": segments are cut from the input's start and the last one may be shorter, as the reference
    # RMT code cuts them (`RecurrentWrapper.split_tensor`); models imported from it (`import-rmt`) use it.
    segment_alignment: SegmentAlignment = "right"
    # How the question is put after the input: `question_prefix` goes before its text (ours: a space; the
    # reference tokenizes the question on its own: ""), and `answer_prompt_ids` after its tokens (the
    # reference's `GEN` token); the answer is read at the last of them.
    question_prefix: str = " "
    answer_prompt_ids: tuple[int, ...] = ()
    # Training only: Gaussian noise added to every memory state, with this standard deviation relative to
    # the state's own RMS, so that the memory must pull itself back to the states that encode the facts
    # instead of drifting through distractor text. 0 turns it off. Measured at a fixed budget (the default
    # curriculum's first three stages, 24 minutes, trained to 4 segments; 200 test samples a length):
    # 0.05 gave 97.5 / 53.5 / 25.5% at 4 / 16 / 64 segments, none 98.5 / 62.0 / 28.5%. Late instead, in a
    # stage at 256 segments appended to the 64-wide default curriculum's model (200 steps, lr 3e-5, noise 0.03; 100
    # validation samples a length): 99 / 92 / 84 / 73% at 32 / 256 / 1,024 / 2,048 segments and drift 0.86,
    # against that model's 99 / 94 / 82 / 73% and 0.86, within the samples' noise. The default curriculum
    # trains without it; that stage was one of the three models the 64-wide model shipped before averaged.
    # At width 96, appended to the shipped model (Stage(256, 120, 16, lr=3e-5, memory_noise=0.03); it ended
    # after 40 steps, validation 0.99, 4.6 minutes): 87.7% of 300 validation samples at 2,048 segments against
    # the shipped model's 89.0% (paired: 13 answered by it alone, 17 by the shipped model alone); the average
    # of the two, 89.3% (10 against 9). No gain; not adopted.
    memory_noise: float = 0.0
    # Training only: this weight times the mean squared change of the memory state over a quiet segment
    # (one after which no actor moves, nor after the next: the auxiliary labels say so), relative to the
    # state's own squared norm, joins the loss, so that the memory learns to stay put through distractor
    # text instead of drifting. 0 turns it off. Measured by fine-tuning the model then shipped for 100 steps at 64
    # segments (lr 1e-4; 200 test samples a length, drift over 30 two-fact samples): without it 94.5% at 64
    # segments, 54.5% at 256, drift ratio 1.84; with 100, 96.0%, 54.0%, 1.83 (the quiet change fell by a
    # quarter). The same penalty over every segment, weight 10: 93.0%, 52.0%, 2.22. Late, in a stage at 256
    # segments appended to the 64-wide default curriculum's model (Stage.memory_change_weight 200, 150 steps, lr
    # 3e-5; 100 validation samples a length, drift over 63 two-fact samples): the quiet change fell by a fifth
    # (2.7e-3 to 2.0e-3), and the model answered 99 / 89 / 77 / 61% at 32 / 256 / 1,024 / 2,048 segments with
    # drift 0.89, against that model's 99 / 94 / 82 / 73% and 0.86; added as a fourth model to the 64-wide
    # average then shipped, 99 / 94 / 84 / 75% against the three's 99 / 94 / 83 / 83%. Weight 1000 (lr 5e-5) took
    # validation at 256 to 0.78 in 50 steps. The shipped model trains without it.
    memory_change_weight: float = 0.0
    answer_head: AnswerHead = "classifier"
    num_answers: int = 6  # candidate answers (QA1's six locations)
    answer_token_ids: tuple[int, ...] = ()  # answer_head="lm": the token id of each candidate answer
    num_aux_actors: int = 4  # auxiliary head: every actor's location at the question; 0 turns it off
    aux_loss_weight: float = 0.5
    aux_every_segment: bool = False  # the auxiliary loss at the end of every segment, not only at the question
    dropout: float = 0.0
    max_positions: int | None = None  # the backbone's position budget; None = exactly one segment's layout
    pad_token_id: int = 0
    eos_token_id: int = 1
    extra_backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the transformers config

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "segment_size", "num_answers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"RMTConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.num_memory_tokens < 0:
            raise ValueError(f"RMTConfig.num_memory_tokens must be >= 0, got {self.num_memory_tokens}")
        if self.recurrent and self.num_memory_tokens == 0:
            raise ValueError("a recurrent RMT needs num_memory_tokens > 0 (zero memory carries nothing "
                             "across segments); for the no-memory baseline set recurrent=False")
        if not self.recurrent and self.num_memory_tokens != 0:
            raise ValueError("the no-memory baseline (recurrent=False) takes num_memory_tokens=0")
        if self.bptt_depth is not None and (not isinstance(self.bptt_depth, int) or self.bptt_depth < 1):
            raise ValueError(f"RMTConfig.bptt_depth must be None (full BPTT) or an int >= 1, got {self.bptt_depth!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.memory_path not in ("final_norm", "last_block"):
            raise ValueError(f"memory_path must be 'final_norm' or 'last_block', got {self.memory_path!r}")
        if self.memory_path == "last_block" and self.backbone != "bloom":
            raise ValueError("memory_path='last_block' needs the bloom backbone: its embedding norm is what keeps the "
                             "memory bounded (GPT-2 and Llama have none, and GPT-2 adds position embeddings to it)")
        if self.memory_input not in ("embedding_norm", "plain_norm"):
            raise ValueError(f"memory_input must be 'embedding_norm' or 'plain_norm', got {self.memory_input!r}")
        if self.memory_input == "plain_norm" and self.memory_path != "last_block":
            raise ValueError("memory_input='plain_norm' needs memory_path='last_block' (after the final norm the state "
                             "is not a normalised one to keep)")
        if self.segment_alignment not in ("right", "left"):
            raise ValueError(f"segment_alignment must be 'right' or 'left', got {self.segment_alignment!r}")
        if self.backbone not in ("gpt2", "llama", "bloom"):
            raise ValueError(f"unknown backbone {self.backbone!r}; choose gpt2, llama or bloom "
                             "(or pass any transformers causal LM to RecurrentMemoryTransformer(backbone=...))")
        if self.answer_head not in ("classifier", "lm"):
            raise ValueError(f"answer_head must be 'classifier' or 'lm', got {self.answer_head!r}")
        if self.answer_head == "lm" and len(self.answer_token_ids) != self.num_answers:
            raise ValueError(f"answer_head='lm' needs one answer_token_id per answer ({self.num_answers}), "
                             f"got {len(self.answer_token_ids)}; `tokenizer.word_ids(LOCATIONS)` gives them")
        if any(not 0 <= i < self.vocab_size for i in self.answer_token_ids):
            raise ValueError(f"answer_token_ids {tuple(self.answer_token_ids)} must be token ids below vocab_size "
                             f"{self.vocab_size}")
        if self.max_positions is not None and self.max_positions < self.positions_per_call:
            raise ValueError(f"a segment's layout needs {self.positions_per_call} positions "
                             f"(segment_size {self.segment_size} + 2 x {self.num_memory_tokens} memory tokens) "
                             f"but max_positions is {self.max_positions}")
        if self.aux_every_segment and not (self.recurrent and self.num_aux_actors):
            raise ValueError("aux_every_segment needs recurrent=True and num_aux_actors > 0 (the baseline reads "
                             "only the last segment; num_aux_actors=0 has no auxiliary head)")
        if not 0.0 <= self.dropout < 1.0 or self.aux_loss_weight < 0:
            raise ValueError("dropout must lie in [0, 1) and aux_loss_weight be >= 0")
        if not (isinstance(self.memory_change_weight, (int, float)) and self.memory_change_weight >= 0):
            raise ValueError(f"memory_change_weight must be a number >= 0, got {self.memory_change_weight!r}")
        if not 0.0 <= self.memory_noise < 1.0:
            raise ValueError(f"memory_noise must lie in [0, 1) (a share of the memory's RMS), got {self.memory_noise!r}")
        if any(not 0 <= i < self.vocab_size for i in self.answer_prompt_ids):
            raise ValueError(f"answer_prompt_ids {tuple(self.answer_prompt_ids)} must be token ids below vocab_size "
                             f"{self.vocab_size}")
        object.__setattr__(self, "answer_token_ids", tuple(self.answer_token_ids))
        object.__setattr__(self, "answer_prompt_ids", tuple(self.answer_prompt_ids))

    @property
    def positions_per_call(self) -> int:
        """Positions in one backbone call: read memory + segment + write memory."""
        return self.segment_size + 2 * self.num_memory_tokens

    @property
    def encoding(self) -> dict[str, Any]:
        """How this model's inputs are encoded: the keyword arguments of `rmt_lib.data.encode_sample`."""
        return {"alignment": self.segment_alignment, "question_prefix": self.question_prefix,
                "answer_prompt_ids": self.answer_prompt_ids}

    def replace(self, **changes: Any) -> "RMTConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["answer_token_ids"] = list(self.answer_token_ids)
        d["answer_prompt_ids"] = list(self.answer_prompt_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RMTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown RMTConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def backbone_config(self) -> PretrainedConfig:
        """The transformers config of the backbone this RMT wraps (eager-capable, sdpa by default)."""
        positions = self.max_positions or self.positions_per_call
        common = dict(vocab_size=self.vocab_size, bos_token_id=self.eos_token_id, eos_token_id=self.eos_token_id,
                      pad_token_id=self.pad_token_id, tie_word_embeddings=True)
        if self.backbone == "gpt2":
            kw = dict(n_embd=self.hidden_size, n_layer=self.num_layers, n_head=self.num_heads,
                      n_positions=positions, resid_pdrop=self.dropout, embd_pdrop=self.dropout,
                      attn_pdrop=self.dropout)
        elif self.backbone == "llama":
            kw = dict(hidden_size=self.hidden_size, intermediate_size=4 * self.hidden_size,
                      num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
                      num_key_value_heads=self.num_heads, max_position_embeddings=positions,
                      attention_dropout=self.dropout)
        else:  # bloom: ALiBi relative positions
            kw = dict(hidden_size=self.hidden_size, n_layer=self.num_layers, n_head=self.num_heads,
                      hidden_dropout=self.dropout, attention_dropout=self.dropout)
        return AutoConfig.for_model(self.backbone, **common, **kw, **self.extra_backbone_kwargs)
