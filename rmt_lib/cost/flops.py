"""The FLOP model behind the benchmark's throughput and MFU numbers.

FLOPs are counted per backbone position (read memory + segment + write memory), PaLM-style: a forward pass
costs 2 x N + 4 x n_layers x hidden x P per position, where N counts the weights of the backbone's matmuls
(its transformer blocks; not the embedding lookup, nor the tied LM head, which the answer reads at one
position per sample) and P is the number of positions attended over (the whole P x P score matrix is computed; causal
masking saves the eager kernel nothing). Training costs 3 x forward (the backward pass is twice the
forward) on the segments that get gradients.
"""
from __future__ import annotations

import torch

# Stored with the training results (`training.flops_counting`), so a results file says how its MFU was counted.
FLOPS_COUNTING = ("per backbone position (read memory + segment + write memory): forward 2N + 4 x n_layers x hidden x P, "
                  "N = weights of the backbone's nn.Linear layers, P = positions per call; training = 3 x forward on "
                  "segments with gradients; tokens/s counts segment tokens only (memory positions excluded)")


def matmul_parameters(model) -> int:
    """Weights of the backbone's transformer blocks that enter a matmul per position (nn.Linear weights).

    Left out: embeddings (a lookup), norms and biases (no matmul), and the answer heads (the LM head or
    the classifier, and the auxiliary head: applied at one position per sample or segment).
    """
    blocks = [m for name, m in model.backbone.base_model.named_modules() if isinstance(m, torch.nn.Linear)]
    return sum(m.weight.numel() for m in blocks)


def forward_flops(n_matmul: int, n_layers: int, hidden: int, positions: int, calls: int, batch: int) -> float:
    """FLOPs of `calls` backbone calls over `positions` positions each: (2N + 4 L D P) per position."""
    return float(batch * calls * positions * (2 * n_matmul + 4 * n_layers * hidden * positions))


def rmt_flops(config, n_matmul: int, n_segments: int, batch: int, *, training: bool = False) -> float:
    """Streamed RMT: one call of positions_per_call positions per segment; training adds 2x forward on the
    segments that get gradients (the last bptt_depth of them, or all). An upper bound for inference, where
    the last layer of a segment before the question runs its attention and MLP at the write memory alone
    (BloomStream's `rows`): about a tenth fewer FLOPs than counted here at the default config."""
    fwd = forward_flops(n_matmul, config.num_layers, config.hidden_size, config.positions_per_call, n_segments, batch)
    if not training:
        return fwd
    with_grad = n_segments if config.bptt_depth is None else min(config.bptt_depth, n_segments)
    return fwd * (1 + 2 * with_grad / n_segments)


def full_attention_flops(config, n_matmul: int, n_tokens: int, batch: int) -> float:
    """The bare backbone over all n_tokens at once: one call, quadratic attention."""
    return forward_flops(n_matmul, config.num_layers, config.hidden_size, n_tokens, 1, batch)
