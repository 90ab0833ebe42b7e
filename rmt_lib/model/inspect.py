"""The model opened up for the book: its parameters by part, and the shape of every tensor one sample meets."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from rmt_lib.data import LOCATIONS, EncodedSample
from rmt_lib.display.tables import markdown_table
from rmt_lib.model.capture import inference
from rmt_lib.model.memory_cell import CellOutput


@dataclass(frozen=True)
class ParameterGroup:
    name: str
    count: int
    what: str


@dataclass(frozen=True)
class ParameterTable:
    groups: tuple[ParameterGroup, ...]
    total: int

    def count(self, name: str) -> int:
        for g in self.groups:
            if g.name == name:
                return g.count
        raise ValueError(f"no parameter group {name!r}; groups: {[g.name for g in self.groups]}")

    def __repr__(self) -> str:
        return f"ParameterTable(total={self.total:,})"

    def _repr_markdown_(self) -> str:
        rows = [(g.name, f"{g.count:,}", f"{100 * g.count / self.total:.1f}%", g.what) for g in self.groups]
        rows.append(("**total**", f"**{self.total:,}**", "100%", "each tensor counted once (tied ones too)"))
        return markdown_table(["part", "parameters", "share", "what it is"], rows)


def parameter_table(model) -> ParameterTable:
    """The model's parameters by part: token embeddings, transformer blocks, the rest of the backbone,
    the initial memory, the answer and auxiliary heads. Tied tensors (input embeddings = LM head) count once."""
    cfg = model.config
    backbone = model.backbone
    base = backbone.base_model
    named = dict(model.named_parameters())  # deduplicated: a tied tensor appears once
    owner: dict[int, str] = {}

    def claim(group: str, params) -> None:
        for p in params:
            owner.setdefault(id(p), group)

    embeddings = backbone.get_input_embeddings()
    output = backbone.get_output_embeddings()
    tied = output is not None and output.weight is embeddings.weight
    blocks = next((m for m in base.children() if hasattr(m, "__len__") and len(m) == cfg.num_layers), None)
    if model.cell.initial_memory is not None:
        claim("initial memory", [model.cell.initial_memory])
    claim("token embeddings", embeddings.parameters())
    if blocks is not None:
        claim("transformer blocks", blocks.parameters())
    if model.answer_head is not None:
        claim("answer head", model.answer_head.parameters())
    if model.aux_head is not None:
        claim("auxiliary head", model.aux_head.parameters())
    if output is not None and not tied:
        claim("LM head", output.parameters())
    claim("other backbone", backbone.parameters())  # norms, position embeddings: whatever is left
    counts: Counter[str] = Counter()
    for p in named.values():
        counts[owner[id(p)]] += p.numel()
    per_block = counts["transformer blocks"] // max(cfg.num_layers, 1)
    what = {
        "token embeddings": f"{cfg.vocab_size:,} tokens x {cfg.hidden_size}"
                            + (" (shared with the LM head)" if tied else ""),
        "transformer blocks": f"{cfg.num_layers} blocks of {per_block:,} (attention, MLP, norms)",
        "other backbone": "norms (and position embeddings, where the backbone has them)",
        "initial memory": f"{cfg.num_memory_tokens} memory vectors x {cfg.hidden_size}: the memory state before segment 0",
        "answer head": f"{cfg.hidden_size} -> {cfg.num_answers} answers (QA1's locations)",
        "auxiliary head": f"{cfg.hidden_size} -> {cfg.num_aux_actors} actors x {cfg.num_answers + 1} (training aid)",
        "LM head": "its own output projection (not tied)",
    }
    order = ["token embeddings", "transformer blocks", "other backbone", "initial memory", "answer head",
             "auxiliary head", "LM head"]
    groups = tuple(ParameterGroup(name, counts[name], what[name]) for name in order if counts[name])
    total = sum(counts.values())
    if total != model.num_parameters():
        raise AssertionError(f"parameter groups sum to {total:,}, the model has {model.num_parameters():,}")
    return ParameterTable(groups, total)


@dataclass(frozen=True)
class TensorShape:
    name: str
    shape: tuple[int, ...]
    meaning: str


@dataclass(frozen=True, eq=False)
class ForwardTrace:
    """The shapes of one real forward pass, its answer, and the memory states it went through."""

    rows: tuple[TensorShape, ...]
    prediction: str
    target: str
    memory_states: np.ndarray  # (n_segments + 1, M, D); [0] is the initial memory
    n_segments: int

    def shape(self, name: str) -> tuple[int, ...]:
        for r in self.rows:
            if r.name == name:
                return r.shape
        raise ValueError(f"no tensor {name!r}; tensors: {[r.name for r in self.rows]}")

    def __repr__(self) -> str:
        return f"ForwardTrace(n_segments={self.n_segments}, prediction={self.prediction!r}, target={self.target!r})"

    def _repr_markdown_(self) -> str:
        return markdown_table(["tensor", "shape", "what it is"],
                         [(f"`{r.name}`", "(" + ", ".join(map(str, r.shape)) + ")", r.meaning) for r in self.rows])


def forward_trace(model, encoded: EncodedSample) -> ForwardTrace:
    """Run `model` on one encoded sample (batch of one) and record the shape of every tensor on the way:
    the whole input, one segment, the backbone's [read memory | segment | write memory] input, the new
    memory state, the answer scores, the stacked memory states and one attention map."""
    cfg = model.config
    L, M, D = cfg.segment_size, cfg.num_memory_tokens, cfg.hidden_size
    seen: dict[str, tuple[int, ...]] = {}

    def before_backbone(_module, _args, kwargs):  # the first segment's backbone input
        seen.setdefault("backbone_in", tuple(kwargs["inputs_embeds"].shape))

    def after_cell(_module, args, out: CellOutput):
        # The first segment's cell has its hidden states: the pre-hook above turns the stream off (a hooked
        # module must run), and without the stream a cell never skips them (memory_only).
        if "cell_ids" not in seen:
            seen["cell_ids"] = tuple(args[0].shape)
            seen["cell_hidden"] = tuple(out.hidden.shape)
            if out.memory is not None:
                seen["cell_memory"] = tuple(out.memory.shape)

    ids = torch.from_numpy(encoded.input_ids[None])  # (1, T)
    mask = None if encoded.attention_mask.all() else torch.from_numpy(encoded.attention_mask[None])  # (1, T)
    hooks = [model.backbone.base_model.register_forward_pre_hook(before_backbone, with_kwargs=True),
             model.cell.register_forward_hook(after_cell)]
    try:
        with inference(model):
            out = model(ids, attention_mask=mask, capture_memory=cfg.recurrent, capture_attention=[-1])
    finally:
        for h in hooks:
            h.remove()
    S = encoded.n_segments
    last = S - 1
    rows = [
        TensorShape("input_ids", tuple(ids.shape), f"the whole sample: {S} segments x {L} tokens, left-padded"),
        TensorShape("segment ids", seen["cell_ids"], "one segment's tokens, the slice one backbone call reads"),
    ]
    if cfg.recurrent:
        rows.append(TensorShape("read memory", (1, M, D), "the memory state the segment starts from "
                                "(segment 0: the trained initial memory)"))
    rows += [
        TensorShape("backbone input", seen["backbone_in"],
                    f"[read memory | segment | write memory] embeddings: {M} + {L} + {M} positions"
                    if cfg.recurrent else f"the segment's {L} token embeddings (no memory)"),
        TensorShape("segment hidden states", seen["cell_hidden"], "the backbone's outputs at the segment's tokens"),
    ]
    if cfg.recurrent:
        rows.append(TensorShape("new memory state", seen["cell_memory"],
                                "outputs at the write-memory positions: the next segment's read memory"))
        rows.append(TensorShape("memory_states", tuple(out.memory_states.shape),
                                f"the initial memory and the memory after each of the {S} segments"))
    rows.append(TensorShape(f"attentions[{last}]", tuple(out.attentions[last].shape),
                            "the last segment's attention: (batch, layers, heads, query position, key position)"))
    rows.append(TensorShape("logits", tuple(out.logits.shape), f"scores of the {cfg.num_answers} candidate answers, "
                            "read at the question's last token"))
    if out.aux_logits is not None:
        rows.append(TensorShape("aux_logits", tuple(out.aux_logits.shape),
                                "every actor's location (or 'not seen'): the training aid"))
    states = out.memory_states[0].numpy() if out.memory_states is not None else np.zeros((0, M, D), np.float32)
    return ForwardTrace(tuple(rows), LOCATIONS[int(out.logits[0].argmax())], LOCATIONS[encoded.target_index],
                        states, S)


@torch.no_grad()
def norm_contraction(model, steps: int, *, final_norm: bool, seed: int = 0) -> float:
    """How far apart two memory states stay when only a Bloom backbone's norms act on them, `steps` times:
    the embedding norm (every input passes it) and, with `final_norm`, the final norm after it, as the
    memory would meet them if no block added anything. Returns the distance after, over the distance
    before; 1 keeps a fact's trace, near 0 erases it whatever the blocks do. Starts from the initial memory
    plus two independent Gaussian perturbations of half its unit scale."""
    base = model.backbone.base_model
    embed, last = base.word_embeddings_layernorm, base.ln_f
    g = torch.Generator().manual_seed(seed)
    m = model.cell.initial_memory.detach().float()  # (M, D)
    a, b = (embed(m + 0.5 * torch.randn(m.shape, generator=g)) for _ in range(2))
    start = (a - b).norm()
    for _ in range(steps):
        a, b = embed(a), embed(b)
        if final_norm:
            a, b = last(a), last(b)
    return float((a - b).norm() / start)


def memory_path_prose(config) -> str:
    """Where an RMTConfig's next memory state is read, in words (for the book)."""
    if config.memory_path == "last_block":
        return ("the backbone's hidden states at the write-memory positions after its last block, before the final "
                "norm (which only the segment's tokens pass on to the answer)")
    return "the backbone's final hidden states at the write-memory positions, after its final norm"


def memory_path_reason(model, short: int = 32, long: int = 256) -> str:
    """Why the memory path matters, measured on this model's norms (prose for the book)."""
    both = norm_contraction(model, short, final_norm=True)
    alone, alone_long = (norm_contraction(model, n, final_norm=False) for n in (short, long))
    return (f"the memory passes a layer norm as it enters each "
            f"segment (the embedding norm every input token passes), and read after the final norm it would pass "
            f"a second one as it leaves. Applied again and again, norms pull two different memory states together. "
            f"Through both norms, two states come to {100 * both:.1f}% of their distance within {short} segments; "
            f"through the embedding norm alone, to {100 * alone:.0f}% ({100 * alone_long:.0f}% after {long}). Read "
            f"after the final norm, every block would have to work against the stronger pull to keep a fact.")
