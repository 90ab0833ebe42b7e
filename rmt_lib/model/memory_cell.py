"""One segment through the backbone: ``[read memory | segment tokens | write memory]`` -> new memory."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from rmt_lib.model.bloom_stream import BloomStream, plain_norm


@dataclass
class CellOutput:
    hidden: torch.Tensor | None  # (B, L, D) final hidden states of the segment's tokens; None with memory_only
    memory: torch.Tensor | None  # (B, M, D) the new memory state: final hidden states at the write positions
    attentions: tuple[torch.Tensor, ...] | None  # per layer (B, H, P, P), P = 2M + L; only when asked


class MemoryCell(nn.Module):
    """Wraps any transformers causal LM that accepts ``inputs_embeds``.

    The memory enters at both ends of the segment, as in the paper's decoder RMT: the read copy at the start
    is visible to every token (causal attention), the write copy at the end sees the whole segment, and its
    final hidden states become the next memory state: after the final norm (`memory_path="final_norm"`, the
    reference's), or after the last block, before it (`"last_block"`).
    """

    def __init__(self, backbone: PreTrainedModel, num_memory_tokens: int, memory_path: str = "final_norm",
                 memory_input: str = "embedding_norm"):
        super().__init__()
        self.backbone = backbone
        self.num_memory_tokens = num_memory_tokens
        self.before_final_norm = memory_path == "last_block" and num_memory_tokens > 0
        self.plain_memory = memory_input == "plain_norm" and num_memory_tokens > 0
        hidden = backbone.config.hidden_size
        std = getattr(backbone.config, "initializer_range", 0.02)
        # Trainable initial memory, on the scale of the token embeddings it sits beside.
        self.initial_memory = nn.Parameter(torch.randn(num_memory_tokens, hidden) * std) if num_memory_tokens else None
        self._rows_exact: dict[tuple, bool] = {}  # BloomStream's verdicts, kept across calls (a BLAS property)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        memory: torch.Tensor | None,  # (B, M, D), None when num_memory_tokens == 0
        attention_mask: torch.Tensor | None = None,  # (B, L) bool, False on padding; None = no padding
        output_attentions: bool = False,
        stream: BloomStream | None = None,  # from `stream()`: the same numbers with less work per segment
        memory_only: bool = False,  # the caller needs no hidden states: the stream may skip them
    ) -> CellOutput:
        M, (B, L) = self.num_memory_tokens, input_ids.shape
        attentions = None
        if stream is not None and attention_mask is None and not output_attentions:
            embeds = stream.embed(input_ids, memory)  # (B, P, D)
            if memory_only and M:
                written = stream(embeds, rows=slice(M + L, None), final_norm=not self.before_final_norm)  # (B, M, D)
                return CellOutput(hidden=None, memory=written, attentions=None)
            if self.before_final_norm:
                h = stream(embeds, final_norm=False)  # (B, P, D) the last block's output
                return CellOutput(hidden=stream.final(h[:, M:M + L]), memory=h[:, M + L:], attentions=None)
            h = stream(embeds)  # (B, P, D)
        else:
            embeds = self.backbone.get_input_embeddings()(input_ids)  # (B, L, D)
            if M:
                embeds = torch.cat([memory, embeds, memory], dim=1)  # (B, P, D)
            mask = None
            if attention_mask is not None:
                ones = attention_mask.new_ones(B, M)
                mask = torch.cat([ones, attention_mask, ones], dim=1).long()  # (B, P)
            with (self._last_block() if self.before_final_norm else nullcontext()) as last_block, \
                    (self._plain_norm(memory) if self.plain_memory else nullcontext()):
                out = self.backbone.base_model(inputs_embeds=embeds, attention_mask=mask,
                                               output_attentions=output_attentions, use_cache=False)
            h = out.last_hidden_state  # (B, P, D), after the backbone's final norm
            attentions = out.attentions if output_attentions else None
            if self.before_final_norm:
                return CellOutput(hidden=h[:, M:M + L], memory=last_block["h"][:, M + L:], attentions=attentions)
        return CellOutput(hidden=h[:, M:M + L], memory=h[:, M + L:] if M else None, attentions=attentions)

    @contextmanager
    def _last_block(self) -> Iterator[dict[str, torch.Tensor]]:
        """During one backbone call, the yielded dict receives the final norm's input: the last block's
        output (B, P, D)."""
        seen: dict[str, torch.Tensor] = {}
        last_norm = self.backbone.base_model.ln_f  # Bloom's: memory_path="last_block" is Bloom's alone (RMTConfig)
        handle = last_norm.register_forward_pre_hook(lambda module, args: seen.update(h=args[0]))
        try:
            yield seen
        finally:
            handle.remove()

    @contextmanager
    def _plain_norm(self, memory: torch.Tensor) -> Iterator[None]:
        """During one backbone call, the memory rows leave Bloom's embedding norm normalised without its learned
        scale and shift (memory_input="plain_norm")."""
        M, embed_norm = self.num_memory_tokens, self.backbone.base_model.word_embeddings_layernorm
        plain = plain_norm(memory, embed_norm.eps)  # (B, M, D)
        keep = lambda module, args, out: torch.cat([plain, out[:, M:-M], plain], dim=1)  # noqa: E731
        handle = embed_norm.register_forward_hook(keep)
        try:
            yield
        finally:
            handle.remove()

    def stream(self) -> BloomStream | None:
        """A faster backbone call for many segments in a row, or None where it would not give the same numbers.

        For a float32 Bloom backbone on the CPU in inference (eval mode, no gradients, no hooks), the backbone
        call of a segment without padding equals `BloomStream`: the same kernels on the same tensors, without
        rebuilding ALiBi and the causal mask, the module calls and the no-op dropouts of every segment
        (~2x fewer operations; tested bit for bit against the backbone). Ask once per input, not per segment.
        """
        from transformers.models.bloom.modeling_bloom import BloomModel  # here: other backbones never import it

        base = self.backbone.base_model
        if not isinstance(base, BloomModel) or torch.is_grad_enabled() or self.training or base.training:
            return None  # gradients need Bloom's own autograd functions, training its dropout
        cfg, weight = base.config, base.word_embeddings.weight
        other_layout = cfg.apply_residual_connection_post_layernorm or (cfg.pretraining_tp > 1 and cfg.slow_but_exact)
        tested = weight.dtype == torch.float32 and weight.device.type == "cpu"  # where parity is tested bit for bit
        hooked = any(m._forward_hooks or m._forward_pre_hooks for m in base.modules())  # hooks must see modules run
        if not tested or other_layout or hooked:
            return None
        return BloomStream(base, self._rows_exact, plain_memory_rows=self.num_memory_tokens if self.plain_memory else 0)
