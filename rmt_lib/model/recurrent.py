"""The Recurrent Memory Transformer: a long input split into segments, memory carried across them."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from rmt_lib.model.config import TRAINING_ONLY_FIELDS, RMTConfig
from rmt_lib.model.memory_cell import CellOutput, MemoryCell


@dataclass
class RMTOutput:
    logits: torch.Tensor  # (B, num_answers) scores of the candidate answers
    loss: torch.Tensor | None = None  # answer loss + aux_loss_weight * aux loss, when labels are given
    answer_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    aux_logits: torch.Tensor | None = None  # (B, num_aux_actors, num_answers + 1); the last class = "not seen"
    memory_change: torch.Tensor | None = None  # mean squared relative change of the memory per segment (training)
    memory_states: torch.Tensor | None = None  # (B, n_segments + 1, M, D) float32 on CPU; [:, 0] is the initial memory
    memory: torch.Tensor | None = None  # (B, M, D) the state after the last segment, with its graph: where a
    #                                     next piece of the same input starts (`forward(memory=...)`)
    attentions: dict[int, torch.Tensor] = field(default_factory=dict)  # segment -> (B, n_layers, H, P, P) on CPU


class RecurrentMemoryTransformer(nn.Module):
    """RMT over a transformers causal LM.

    The answer is read from the final hidden state of the input's last token (the end of the
    question). ``answer_head="lm"`` uses the backbone's own LM head at the candidates' token ids, i.e.
    the paper's LM loss on a one-token answer; ``"classifier"`` scores the candidates with a linear
    layer of its own. The shipped model uses the LM head, chosen by measurement. On the curriculum's first two
    stages (one seed each, memory read after the final norm; data/results/backbones.json and
    backbones_lm_head.json) it reached 90% validation at 1 segment after 200 steps (classifier: 350) and peaked
    at 0.79 at 2 segments within 800 (classifier: 0.70); at width 64, 300 steps against 400 and 0.86 against
    0.71. Over the whole default curriculum of the time (64 wide) it trained in 26 minutes instead of 35, as
    accurate at the trained lengths and more so beyond them (test book, 500 samples per length, the same samples
    for both): 99.0% vs 99.4% at 32 segments (within each other's 95% intervals), 67.6% vs 64.2% at 256.
    An auxiliary head predicts every actor's current location at the same position; it pushes the
    memory to track all actors, which breaks the "last location mentioned" plateau. With
    ``aux_every_segment`` it also asks at the last token of every segment, so that every memory
    update gets a signal of its own instead of only through backpropagation from the question.
    """

    def __init__(self, config: RMTConfig, backbone: PreTrainedModel | None = None):
        super().__init__()
        self.config = config
        if backbone is None:
            backbone = AutoModelForCausalLM.from_config(config.backbone_config())
        if backbone.config.hidden_size != config.hidden_size:
            raise ValueError(f"backbone hidden size {backbone.config.hidden_size} != config.hidden_size {config.hidden_size}")
        self.cell = MemoryCell(backbone, config.num_memory_tokens, config.memory_path, config.memory_input)
        D = config.hidden_size
        self.answer_head = nn.Linear(D, config.num_answers) if config.answer_head == "classifier" else None
        self.aux_head = nn.Linear(D, config.num_aux_actors * (config.num_answers + 1)) if config.num_aux_actors else None
        object.__setattr__(self, "_compiled_cell", None)  # not a submodule: the state dict keeps its keys

    def compile_cell(self) -> None:
        """Run the memory cell under `torch.compile` in training (one graph per batch shape, mask and grad
        mode; measured by benchmarks/training_reference.py). Inference keeps the eager cell and its streamed
        path, which is bit-exact with transformers. Compiled training fuses operations, so its numbers
        agree with eager training to float rounding, not bit for bit (tests/test_train.py).

        Measured and left: Bloom's tanh GELU is the largest fused kernel of the compiled step (forward and
        backward, about 18% of it on an Intel Xeon with AVX-512); its sigmoid form, x * sigmoid(2z), the
        same function to 5e-7, made the step 8% faster there (36,100 against 33,300 tokens/s at 32 segments,
        batch 32) and not measurably faster on an AMD EPYC of family 25. Any change here retrains the
        shipped model differently, so it would have to be retrained with it."""
        compiled = torch.compile(self.cell, dynamic=False)

        def cell(input_ids, memory, attention_mask=None, **kwargs) -> CellOutput:
            # Dynamo guards on strides, and a segment is a slice of the whole input (its stride is the input's
            # length), the initial memory an expanded parameter (stride 0), a written one a slice of the cell's
            # output: contiguous copies (a few KB) keep one compiled graph per batch size and mask, where each
            # input length and memory kind cost a recompilation and, past dynamo's limit of 8, eager training.
            return compiled(input_ids.contiguous(), None if memory is None else memory.contiguous(),
                            None if attention_mask is None else attention_mask.contiguous(), **kwargs)

        object.__setattr__(self, "_compiled_cell", cell)

    @contextmanager
    def training_overrides(self, **fields: object) -> Iterator[None]:
        """Train with some training-only config fields changed (a curriculum stage's `bptt_depth`,
        `memory_noise` or `memory_change_weight`); the model's own config, the one saved with it, is back
        afterwards."""
        if unknown := sorted(set(fields) - set(TRAINING_ONLY_FIELDS)):
            raise ValueError(f"only {', '.join(TRAINING_ONLY_FIELDS)} may change during training, got {unknown}")
        own = self.config
        self.config = own.replace(**fields)
        try:
            yield
        finally:
            self.config = own

    @property
    def backbone(self) -> PreTrainedModel:
        return self.cell.backbone

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, n_segments * segment_size)
        attention_mask: torch.Tensor | None = None,  # (B, T) bool, False on (left) padding
        labels: torch.Tensor | None = None,  # (B,) index of the right answer
        aux_labels: torch.Tensor | None = None,  # (B, n_segments, num_aux_actors) at each segment's end;
        #                                          the label num_answers means "not seen yet"
        capture_memory: bool = False,
        capture_attention: Sequence[int] | None = None,  # segment indices; negative counts from the end
        memory: torch.Tensor | None = None,  # (B, M, D) the state to start from; None = the learned initial one
    ) -> RMTOutput:
        cfg, L = self.config, self.config.segment_size
        B, T = input_ids.shape
        if cfg.segment_alignment == "left":  # the reference's cut: from the start, the last segment shorter
            if T == 0:
                raise ValueError("the input is empty")
            if attention_mask is not None and not bool(attention_mask.all()):
                raise ValueError("segment_alignment='left' takes unpadded inputs: padding would move the "
                                 "segment boundaries; batch samples of one token length")
            attention_mask = None
        elif T == 0 or T % L:
            raise ValueError(f"input length {T} is not a positive multiple of segment_size {L}; left-pad it "
                             "(rmt_lib.data.encode_sample does)")
        n_segments = -(-T // L)  # ceil
        if aux_labels is not None and aux_labels.shape[:2] != (B, n_segments):
            raise ValueError(f"aux_labels has shape {tuple(aux_labels.shape)}; expected ({B}, {n_segments}, actors)")
        wanted = _normalise_segments(capture_attention, n_segments)
        # Segments before `cut` get no gradient: truncated BPTT through the last bptt_depth segments.
        cut = n_segments - cfg.bptt_depth if cfg.bptt_depth and self.training else 0
        segments = range(n_segments) if cfg.recurrent else range(n_segments - 1, n_segments)
        last = n_segments - 1  # the question's segment: the only one whose hidden states the answer reads

        memory = self._start_memory(B, memory)
        states = [memory.detach().float().cpu()] if capture_memory and memory is not None else []
        attentions: dict[int, torch.Tensor] = {}
        # Segments with padding, found once (not one check per segment); the others take the unmasked path.
        full = None if attention_mask is None else attention_mask.reshape(B, n_segments, L).all(dim=2).all(dim=0)
        padded = set() if full is None else set((~full).nonzero().flatten().tolist())  # segment indices
        stream = self.cell.stream()  # inference: a leaner backbone call, same numbers (None otherwise)
        cell = self._compiled_cell if self.training and self._compiled_cell is not None and not wanted else self.cell
        segment_ends = []  # (B, D) per segment: the last token, for the auxiliary loss at every segment
        track = cfg.aux_every_segment and aux_labels is not None and self.aux_head is not None
        changes = {}  # segment -> (B,) |m_s - m_{s-1}|^2 / |m_{s-1}|^2, with gradients, for memory_change_weight
        penalise = self.training and cfg.memory_change_weight > 0 and aux_labels is not None and cfg.recurrent
        with self._eager_attention(bool(wanted)):
            for s in segments:
                ids = input_ids[:, s * L:(s + 1) * L]  # (B, L)
                mask = attention_mask[:, s * L:(s + 1) * L] if s in padded else None
                with torch.no_grad() if s < cut else nullcontext():
                    out = cell(ids, memory, mask, output_attentions=s in wanted, stream=stream,
                               memory_only=not track and s != last)
                if penalise and s >= max(cut, 1):  # not from the initial memory, which is not a written state
                    changes[s] = _relative_change(memory, out.memory)
                memory = self._perturb(out.memory)
                if track:
                    segment_ends.append(out.hidden[:, -1])
                if capture_memory and memory is not None:
                    states.append(memory.detach().float().cpu())
                if out.attentions is not None:
                    attentions[s] = torch.stack(out.attentions, dim=1).detach().float().cpu()  # (B, layers, H, P, P)

        ends = torch.stack(segment_ends, dim=1) if track else None  # (B, S, D)
        result = self._answer(out.hidden[:, -1], labels, aux_labels, ends)  # the question's last token
        if changes and labels is not None:
            result.memory_change = _quiet_change(changes, aux_labels)
            result.loss = result.loss + cfg.memory_change_weight * result.memory_change
        result.memory_states = torch.stack(states, dim=1) if states else None  # (B, S + 1, M, D)
        result.memory = memory
        result.attentions = attentions
        return result

    def _perturb(self, memory: torch.Tensor | None) -> torch.Tensor | None:
        """Training with memory_noise: the memory state plus Gaussian noise scaled to its RMS (torch's global
        generator, which the trainer seeds per step, so that a resumed run draws the same noise)."""
        if memory is None or not self.training or not self.config.memory_noise:
            return memory
        rms = memory.detach().pow(2).mean(dim=-1, keepdim=True).sqrt()  # (B, M, 1)
        return memory + torch.randn_like(memory) * (self.config.memory_noise * rms)

    def _initial_memory(self, batch: int) -> torch.Tensor | None:
        m = self.cell.initial_memory
        return None if m is None else m.unsqueeze(0).expand(batch, -1, -1)  # (B, M, D)

    def _start_memory(self, batch: int, given: torch.Tensor | None) -> torch.Tensor | None:
        """The learned initial memory, or a given state: the input then continues a sample from a memory state
        of another run (the probes' patching: an RMT's past reaches a segment only through this state)."""
        initial = self._initial_memory(batch)
        if given is None:
            return initial
        if initial is None or tuple(given.shape) != tuple(initial.shape):
            raise ValueError(f"memory has shape {tuple(given.shape)}; this model's states are "
                             f"{None if initial is None else tuple(initial.shape)}")
        return given.to(device=initial.device, dtype=initial.dtype)

    def _answer(self, last: torch.Tensor, labels: torch.Tensor | None, aux_labels: torch.Tensor | None,
                segment_ends: torch.Tensor | None = None) -> RMTOutput:
        cfg = self.config
        if self.answer_head is not None:
            logits = self.answer_head(last)  # (B, num_answers)
            vocab_logits, vocab_labels = logits, labels
        else:
            vocab_logits = self.backbone.get_output_embeddings()(last)  # (B, V)
            ids = torch.tensor(cfg.answer_token_ids, device=last.device)
            logits = vocab_logits[:, ids]
            vocab_labels = None if labels is None else ids[labels]
        out = RMTOutput(logits=logits)
        if self.aux_head is not None:
            out.aux_logits = self.aux_head(last).view(-1, cfg.num_aux_actors, cfg.num_answers + 1)
        if labels is not None:
            out.answer_loss = F.cross_entropy(vocab_logits, vocab_labels)
        # The auxiliary loss needs no answer label: a piece of an input read without its question (a
        # streamed stage's chunk) trains on it alone.
        if aux_labels is not None and out.aux_logits is not None and cfg.aux_loss_weight > 0 and (
                labels is not None or segment_ends is not None):
            if segment_ends is None:  # at the question only
                aux_logits, aux_labels = out.aux_logits, aux_labels[:, -1]  # (B, A, C + 1), (B, A)
            else:  # at the end of every segment (the last segment's end is the question)
                aux_logits = self.aux_head(segment_ends)  # (B, S, A * (C + 1))
            out.aux_loss = F.cross_entropy(aux_logits.reshape(-1, cfg.num_answers + 1), aux_labels.flatten())
        out.loss = out.answer_loss
        if out.aux_loss is not None:
            weighted = cfg.aux_loss_weight * out.aux_loss
            out.loss = weighted if out.loss is None else out.loss + weighted
        return out

    @contextmanager
    def _eager_attention(self, needed: bool) -> Iterator[None]:
        """Attention maps need eager attention (sdpa returns none); switch only while capturing."""
        current = self.backbone.config._attn_implementation
        if not needed or current == "eager":
            yield
            return
        self.backbone.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.backbone.set_attn_implementation(current)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _quiet_change(changes: dict[int, torch.Tensor], aux_labels: torch.Tensor) -> torch.Tensor:
    """Mean relative memory change over the quiet segments: those after which no actor's location changes,
    nor after the next one (a fact cut by the boundary has its first part here). Zero when none is quiet."""
    steps = sorted(changes)
    moved = (aux_labels[:, 1:] != aux_labels[:, :-1]).any(dim=-1)  # (B, S - 1): the state changes at s + 1
    moved = torch.cat([moved, moved.new_zeros(len(moved), 1)], dim=1)  # (B, S): nothing after the last
    quiet = ~(moved[:, [s - 1 for s in steps]] | moved[:, steps])  # (B, K): no change at s, nor at s + 1
    values = torch.stack([changes[s] for s in steps], dim=1)  # (B, K)
    return (values * quiet).sum() / quiet.sum().clamp_min(1)


def _relative_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(B,) squared distance between two memory states (B, M, D), over the first one's squared norm."""
    return (after - before).pow(2).sum(dim=(1, 2)) / before.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)


def _normalise_segments(segments: Sequence[int] | None, n_segments: int) -> set[int]:
    result = set()
    for s in segments or ():
        if not -n_segments <= s < n_segments:
            raise ValueError(f"capture_attention asks for segment {s} but the input has {n_segments} segments")
        result.add(s % n_segments)
    return result
