"""One segment through the backbone: ``[read memory | segment tokens | write memory]`` -> new memory."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.masking_utils import create_causal_mask
from transformers.models.bloom.modeling_bloom import BloomModel, _get_alibi_slopes, bloom_gelu_forward


@dataclass
class CellOutput:
    hidden: torch.Tensor  # (B, L, D) final hidden states of the segment's tokens
    memory: torch.Tensor | None  # (B, M, D) the new memory state: final hidden states at the write positions
    attentions: tuple[torch.Tensor, ...] | None  # per layer (B, H, P, P), P = 2M + L; only when asked


class MemoryCell(nn.Module):
    """Wraps any transformers causal LM that accepts ``inputs_embeds``.

    The memory enters as input embeddings at both ends of the segment, as in the paper's decoder RMT:
    the read copy at the start is visible to every token (causal attention), the write copy at the end
    sees the whole segment, and its final hidden states become the next memory state.
    """

    def __init__(self, backbone: PreTrainedModel, num_memory_tokens: int):
        super().__init__()
        self.backbone = backbone
        self.num_memory_tokens = num_memory_tokens
        hidden = backbone.config.hidden_size
        std = getattr(backbone.config, "initializer_range", 0.02)
        # Trainable initial memory, on the scale of the token embeddings it sits beside.
        self.initial_memory = nn.Parameter(torch.randn(num_memory_tokens, hidden) * std) if num_memory_tokens else None

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        memory: torch.Tensor | None,  # (B, M, D), None when num_memory_tokens == 0
        attention_mask: torch.Tensor | None = None,  # (B, L) bool, False on padding; None = no padding
        output_attentions: bool = False,
        stream: "BloomStream | None" = None,  # from `stream()`: the same numbers with less work per segment
    ) -> CellOutput:
        M, (B, L) = self.num_memory_tokens, input_ids.shape
        embeds = self.backbone.get_input_embeddings()(input_ids)  # (B, L, D)
        if M:
            embeds = torch.cat([memory, embeds, memory], dim=1)  # (B, P, D)
        attentions = None
        if stream is not None and attention_mask is None and not output_attentions:
            h = stream(embeds)  # (B, P, D)
        else:
            mask = None
            if attention_mask is not None:
                ones = attention_mask.new_ones(B, M)
                mask = torch.cat([ones, attention_mask, ones], dim=1).long()  # (B, P)
            out = self.backbone.base_model(inputs_embeds=embeds, attention_mask=mask,
                                           output_attentions=output_attentions, use_cache=False)
            h = out.last_hidden_state  # (B, P, D), after the backbone's final norm
            attentions = out.attentions if output_attentions else None
        return CellOutput(hidden=h[:, M:M + L], memory=h[:, M + L:] if M else None, attentions=attentions)

    def stream(self) -> "BloomStream | None":
        """A faster backbone call for many segments in a row, or None where it would not give the same numbers.

        For a Bloom backbone in inference (eval mode, no gradients, no hooks on the backbone), the backbone
        call of a segment without padding equals `BloomStream`: the same kernels on the same tensors, without
        rebuilding ALiBi and the causal mask, the module calls and the no-op dropouts of every segment
        (~2x fewer operations; tested bit for bit against the backbone). Ask once per input, not per segment.
        """
        base = self.backbone.base_model
        cfg = base.config
        if (torch.is_grad_enabled() or self.training or not isinstance(base, BloomModel)
                or cfg.apply_residual_connection_post_layernorm or (cfg.pretraining_tp > 1 and cfg.slow_but_exact)
                or any(m._forward_hooks or m._forward_pre_hooks for m in base.modules())):
            return None
        return BloomStream(base)


class BloomStream:
    """`BloomModel(inputs_embeds=x).last_hidden_state` for unpadded inputs in inference, op for op.

    Every tensor operation below is the one transformers' Bloom runs, on tensors of the same shape and
    layout, so the result is identical; what is left out is work that does not change it: ALiBi and the
    causal mask (built once per input shape), dropout (identity in eval mode), module and autograd calls.
    """

    def __init__(self, base: BloomModel):
        self.base = base
        self._constants: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _alibi_and_mask(self, embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (tuple(embeds.shape), embeds.dtype, embeds.device)
        if key not in self._constants:  # as BloomModel.forward builds them for attention_mask=None
            B, P, _ = embeds.shape
            slopes = _get_alibi_slopes(self.base.num_heads, embeds.device)
            alibi = (slopes[:, None, None] * torch.arange(P, device=embeds.device)).repeat(B, 1, 1).to(embeds.dtype)
            mask = create_causal_mask(config=self.base.config, inputs_embeds=embeds, attention_mask=None, cache=None)
            self._constants[key] = alibi, mask  # (B * H, 1, P), (B, 1, P, P)
        return self._constants[key]

    def __call__(self, embeds: torch.Tensor) -> torch.Tensor:  # (B, P, D) -> (B, P, D)
        base = self.base
        alibi, mask = self._alibi_and_mask(embeds)
        h = _layer_norm(base.word_embeddings_layernorm, embeds)
        for block in base.h:
            h = _attention(block.self_attention, _layer_norm(block.input_layernorm, h), h, alibi, mask)
            mlp = block.mlp
            y = bloom_gelu_forward(_linear(mlp.dense_h_to_4h, _layer_norm(block.post_attention_layernorm, h)))
            h = h + _linear(mlp.dense_4h_to_h, y)  # dropout_add in eval: residual + output
        return _layer_norm(base.ln_f, h)


def _layer_norm(ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, linear.weight, linear.bias)


def _attention(attn, x: torch.Tensor, residual: torch.Tensor, alibi: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
    """BloomAttention.forward without cache, dropout or tensor-parallel slices: x (B, P, D) -> (B, P, D)."""
    B, P, _ = x.shape
    H, hd = attn.num_heads, attn.head_dim
    q, k, v = _linear(attn.query_key_value, x).view(B, P, H, 3, hd).unbind(3)  # 3 x (B, P, H, hd)
    q = q.transpose(1, 2).reshape(B * H, P, hd)
    k = k.transpose(1, 2).reshape(B * H, P, hd).transpose(-1, -2)  # (B * H, hd, P)
    v = v.transpose(1, 2).reshape(B * H, P, hd)
    scores = alibi.baddbmm(batch1=q, batch2=k, beta=attn.beta, alpha=attn.inv_norm_factor).view(B, H, P, P)
    if mask is not None:
        scores = scores + mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype).view(B * H, P, P)
    context = torch.bmm(probs, v).view(B, H, P, hd).permute(0, 2, 1, 3).reshape(B, P, H * hd)
    return residual + _linear(attn.dense, context)
