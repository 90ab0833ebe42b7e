"""`BloomStream`: Bloom's forward pass for inference, op for op, without its per-call overhead.

The memory cell calls the backbone once per segment; for a million-token input that is tens of thousands
of calls whose module dispatch, mask building and no-op dropouts cost more than the arithmetic. This is the
same arithmetic on the same tensors (tested bit for bit against transformers), used whenever nothing is
captured and no gradient is needed.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class BloomStream:
    """`BloomModel(inputs_embeds=x).last_hidden_state` for unpadded inputs in inference, op for op.

    Every arithmetic operation below is the one transformers' Bloom runs, on tensors of the same shape and
    layout, so the result is identical; what is left out is work that does not change it: ALiBi and the
    causal mask (built once per input shape, and added together, see `_bias`), dropout (identity in eval
    mode), module and autograd calls, two of the three copies that split the heads, and ~100 nn.Module
    attribute lookups per segment (weights are read once, into `_Layer`s). One exception, checked at run
    time: with `rows`, the last layer runs on fewer rows than Bloom's (see `__call__`).
    """

    def __init__(self, base, rows_exact: dict[tuple, bool] | None = None, plain_memory_rows: int = 0):  # a BloomModel
        self.base = base
        self.plain_memory_rows = plain_memory_rows  # memory_input="plain_norm": the first and last rows, normalised plainly
        self.embeddings = base.word_embeddings.weight  # (V, D)
        self.embed_norm, self.final_norm = _norm(base.word_embeddings_layernorm), _norm(base.ln_f)
        self.layers = [_Layer.of(block) for block in base.h]
        self._constants: dict[tuple, torch.Tensor] = {}
        # (input shape, rows) -> the last layer on those rows alone gives the same bits; shared by the streams
        # of one MemoryCell, so that each shape is checked once per model, not once per forward call.
        self._rows_exact = {} if rows_exact is None else rows_exact

    def _bias(self, embeds: torch.Tensor) -> torch.Tensor:
        """ALiBi plus the causal mask, (B * H, P, P), as BloomModel.forward builds them for attention_mask=None.

        Bloom adds ALiBi inside `baddbmm` and the mask after it. Added beforehand instead, every score a token
        may attend to is the same float (the mask is 0.0 there), and every masked score is still the float32
        minimum to within rounding, whose exp is exactly 0.0 beside any real score: the softmax is unchanged,
        bit for bit, and one addition per layer is saved."""
        key = (tuple(embeds.shape), embeds.dtype, embeds.device)
        if key not in self._constants:
            from transformers.masking_utils import create_causal_mask
            from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

            B, P, _ = embeds.shape
            H = self.base.num_heads
            slopes = _get_alibi_slopes(H, embeds.device)
            alibi = (slopes[:, None, None] * torch.arange(P, device=embeds.device)).repeat(B, 1, 1).to(embeds.dtype)
            mask = create_causal_mask(config=self.base.config, inputs_embeds=embeds, attention_mask=None, cache=None)
            bias = alibi.expand(B * H, P, P) if mask is None else alibi.view(B, H, 1, P) + mask  # mask: (B, 1, P, P)
            self._constants[key] = bias.reshape(B * H, P, P).contiguous()
        return self._constants[key]

    def embed(self, input_ids: torch.Tensor, memory: torch.Tensor | None) -> torch.Tensor:
        """[memory | token embeddings | memory]: (B, L) ids, (B, M, D) memory -> (B, P, D); the lookup that
        nn.Embedding makes, without the module call and the backbone's get_input_embeddings()."""
        embeds = torch.embedding(self.embeddings, input_ids)  # (B, L, D)
        return embeds if memory is None else torch.cat([memory, embeds, memory], dim=1)

    def final(self, h: torch.Tensor) -> torch.Tensor:
        """The final norm, (..., D) -> (..., D)."""
        return torch.layer_norm(h, *self.final_norm)

    def __call__(self, embeds: torch.Tensor, rows: slice | None = None, final_norm: bool = True) -> torch.Tensor:
        """(B, P, D) -> the final hidden states (B, P, D), or only those at positions `rows`: (B, R, D); with
        `final_norm=False` the last block's output, before the final norm.

        Every layer but the last needs all positions (they are the next layer's keys and values); the last
        needs them only as keys and values, so with `rows` only its q/k/v projection runs on every position
        and the rest (attention, MLP, final norm) on those rows alone: for the write memory, 8 of 48
        positions; measured, 12-14% less time per segment. That gives the same bits only if the matmul
        kernels give a row the same result whatever the number of rows, which the BLAS does not promise:
        it is checked on the first input of each shape, by computing both, and where it does not hold the
        whole last layer runs, as without `rows`."""
        bias = self._bias(embeds)
        M = self.plain_memory_rows
        if M:  # the memory rows normalised without scale and shift, the token rows by the embedding norm
            plain = plain_norm(embeds[:, :M], self.embed_norm[-1])
            h = torch.cat([plain, torch.layer_norm(embeds[:, M:-M], *self.embed_norm), plain], dim=1)
        else:
            h = torch.layer_norm(embeds, *self.embed_norm)
        for layer in self.layers[:-1]:
            h = layer(h, bias)
        last = self.layers[-1]
        end = self.final if final_norm else (lambda x: x)
        if rows is None:
            return end(last(h, bias))
        key = (tuple(h.shape), rows.start, rows.stop)
        if self._rows_exact.get(key):
            return end(last(h, bias, rows))
        full = end(last(h, bias))[:, rows]
        if key not in self._rows_exact:  # the first input of this shape: try the rows alone, and compare
            self._rows_exact[key] = torch.equal(full, end(last(h, bias, rows)))
        return full


def plain_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """A layer norm over the last dimension without learned scale or shift: idempotent, up to `eps`."""
    return torch.layer_norm(x, x.shape[-1:], None, None, eps)


# bloom_gelu_forward's constants as float32 0-dim tensors: the same values its Python floats become in a float32
# product, without wrapping each float into a tensor (and casting it) on every call.
_GELU_CONSTANTS = tuple(torch.tensor(c, dtype=torch.float32) for c in (0.044715, 0.79788456, 0.5, 1.0))


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """bloom_gelu_forward, x * 0.5 * (1.0 + tanh(0.79788456 * x * (1 + 0.044715 * x * x))): its nine float32
    operations in its order (so the same bits), in place where they can be. 61 vs 78 us at (1, 48, 256)."""
    a, b, half, one = _GELU_CONSTANTS
    inner = torch.mul(x, a).mul_(x).add_(one)  # 1 + 0.044715 * x * x
    inner = torch.mul(x, b).mul_(inner).tanh_().add_(one)  # 1.0 + tanh(0.79788456 * x * inner)
    return torch.mul(x, half).mul_(inner)


def _norm(ln: nn.LayerNorm) -> tuple:
    return ln.normalized_shape, ln.weight, ln.bias, ln.eps  # torch.layer_norm's arguments after the input


class _Layer(NamedTuple):
    """One BloomBlock's weights and constants: (weight, bias) of each linear, layer norm arguments."""

    norm1: tuple
    qkv: tuple[torch.Tensor, torch.Tensor]
    dense: tuple[torch.Tensor, torch.Tensor]
    norm2: tuple
    up: tuple[torch.Tensor, torch.Tensor]  # dense_h_to_4h
    down: tuple[torch.Tensor, torch.Tensor]  # dense_4h_to_h
    heads: int
    head_dim: int
    beta: float
    scale: float  # inv_norm_factor

    @classmethod
    def of(cls, block) -> "_Layer":
        attn, mlp = block.self_attention, block.mlp
        return cls(_norm(block.input_layernorm), (attn.query_key_value.weight, attn.query_key_value.bias),
                   (attn.dense.weight, attn.dense.bias), _norm(block.post_attention_layernorm),
                   (mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias), (mlp.dense_4h_to_h.weight, mlp.dense_4h_to_h.bias),
                   attn.num_heads, attn.head_dim, attn.beta, attn.inv_norm_factor)

    def __call__(self, h: torch.Tensor, bias: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """BloomBlock (dropout_add in eval mode is residual + output): h (B, P, D) -> (B, P, D), or (B, R, D)
        at positions `rows` only (all positions still serve as keys and values)."""
        context = self.attention(torch.layer_norm(h, *self.norm1), bias, rows)  # (B, R, D)
        h = (h if rows is None else h[:, rows]) + F.linear(context, *self.dense)
        y = _gelu(F.linear(torch.layer_norm(h, *self.norm2), *self.up))
        return h + F.linear(y, *self.down)

    def attention(self, x: torch.Tensor, bias: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """BloomAttention.forward up to its output projection (no cache, dropout or tensor-parallel slices):
        x (B, P, D), bias (B * H, P, P) from `BloomStream._bias` -> the heads' merged context (B, P, D), or
        (B, R, D) for the queries at positions `rows`."""
        B, P, _ = x.shape
        H, hd = self.heads, self.head_dim
        # One copy splits q, k and v into heads; each is then laid out as Bloom's own three copies are.
        qkv = F.linear(x, *self.qkv).view(B, P, H, 3, hd).permute(3, 0, 2, 1, 4).reshape(3, B * H, P, hd)
        q, k, v = qkv[0], qkv[1].transpose(-1, -2), qkv[2]  # (B * H, P, hd), (B * H, hd, P), (B * H, P, hd)
        if rows is not None:
            q, bias = q[:, rows], bias[:, rows]  # (B * H, R, hd), (B * H, R, P)
        R = q.shape[1]
        scores = bias.baddbmm(batch1=q, batch2=k, beta=self.beta, alpha=self.scale)  # (B * H, R, P)
        probs = scores.softmax(dim=-1, dtype=torch.float32)  # F.softmax's call; float32 in, float32 out
        return torch.bmm(probs, v).view(B, H, R, hd).permute(0, 2, 1, 3).reshape(B, R, H * hd)
