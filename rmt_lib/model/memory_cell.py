"""One segment through the backbone: ``[read memory | segment tokens | write memory]`` -> new memory."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel


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
    ) -> CellOutput:
        M, (B, L) = self.num_memory_tokens, input_ids.shape
        embeds = self.backbone.get_input_embeddings()(input_ids)  # (B, L, D)
        if M:
            embeds = torch.cat([memory, embeds, memory], dim=1)  # (B, P, D)
        mask = None
        if attention_mask is not None:
            ones = attention_mask.new_ones(B, M)
            mask = torch.cat([ones, attention_mask, ones], dim=1).long()  # (B, P)
        out = self.backbone.base_model(inputs_embeds=embeds, attention_mask=mask,
                                       output_attentions=output_attentions, use_cache=False)
        h = out.last_hidden_state  # (B, P, D), after the backbone's final norm
        return CellOutput(hidden=h[:, M:M + L], memory=h[:, M + L:] if M else None,
                          attentions=out.attentions if output_attentions else None)
