"""One way to look inside the RMT: `run_with_cache` runs it in inference and returns the output and a typed
`Trace` of what was asked for (memory states, attention maps of chosen segments).

    out, trace = run_with_cache(model, ids, attention_segments=[3, -1])
    trace.memory_states[0]     # (n_segments + 1, M, D): the initial memory, then the memory after each segment
    trace.attentions[3][0]     # (n_layers, H, P, P) for segment 3 of sample 0, P = 2M + L

Nothing is captured by hooks that the model does not know of: the recurrent loop hands its memory states
and the backbone's attention maps out itself. When nothing is asked for, the fast bit-exact stream path
(`BloomStream`) runs as in `evaluate`; attention maps need the eager backbone call.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from rmt_lib.model.recurrent import RecurrentMemoryTransformer, RMTOutput


@dataclass(frozen=True)
class Trace:
    """What one batch left behind, as numpy arrays on the CPU."""

    memory_states: np.ndarray | None  # (B, n_segments + 1, M, D) float32; [:, 0] is the initial memory
    attentions: dict[int, np.ndarray] = field(default_factory=dict)  # segment -> (B, n_layers, H, P, P)

    def sample(self, row: int) -> "Trace":
        """The trace of one sample of the batch (its arrays without the batch axis)."""
        return Trace(None if self.memory_states is None else self.memory_states[row],
                     {s: a[row] for s, a in self.attentions.items()})


@contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside the block; the model's own training flag is restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def run_with_cache(model: RecurrentMemoryTransformer, input_ids: torch.Tensor | np.ndarray,
                   attention_mask: torch.Tensor | np.ndarray | None = None, *, memory: bool = True,
                   attention_segments: Sequence[int] = (),
                   start_memory: torch.Tensor | np.ndarray | None = None) -> tuple[RMTOutput, Trace]:
    """The model's output on `input_ids` (B, T) and a `Trace` of its memory states (when `memory`) and of
    the attention maps of `attention_segments` (indices; negative ones count from the end). With
    `start_memory` (B, M, D), the input continues from that memory state instead of the initial one.

    A mask without padding is dropped, so that unpadded samples take the same path as in `evaluate`.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(input_ids).to(device)  # (B, T)
    mask = None if attention_mask is None else torch.as_tensor(attention_mask)
    if mask is not None:
        mask = None if bool(mask.all()) else mask.to(device)  # (B, T) bool
    with inference(model):
        start = None if start_memory is None else torch.as_tensor(start_memory)
        out = model(ids, attention_mask=mask, capture_memory=memory,
                    capture_attention=list(attention_segments) or None, memory=start)
    states = None if out.memory_states is None else out.memory_states.numpy()
    trace = Trace(states, {s: a.numpy() for s, a in out.attentions.items()})
    return out, trace
