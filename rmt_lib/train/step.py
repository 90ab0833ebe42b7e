"""One optimiser step on one batch, shared by the trainer and the cost benchmark, and the batches it eats."""
from __future__ import annotations

import numpy as np
import torch

from rmt_lib.data import Batch, collate, encode_sample, facts_that_fit, generate_samples
from rmt_lib.model import RecurrentMemoryTransformer, RMTOutput
from rmt_lib.train.config import TrainConfig


def make_batch(cfg: TrainConfig, tokenizer, n_segments: int, batch_size: int, seed: int, split: str) -> Batch:
    """A batch of QA1 samples of one length, each with a fact count drawn from those that fit.

    Counts are drawn per sample, not per batch: with one count a batch, the loss swung between easy
    two-fact batches and hard ten-fact ones (training accuracy 1.0 then 0.55 on consecutive steps).
    """
    rng = np.random.default_rng(seed)
    counts = rng.choice(facts_that_fit(n_segments, cfg.model.segment_size), size=batch_size)  # (batch_size,)
    samples = []
    for n_facts in np.unique(counts):
        samples += generate_samples("qa1", n_samples=int((counts == n_facts).sum()), n_segments=n_segments,
                                    n_facts=int(n_facts), segment_size=cfg.model.segment_size, split=split,
                                    seed=int(rng.integers(2**63)), tokenizer=tokenizer)
    return collate(samples, [encode_sample(s, tokenizer, cfg.model.segment_size) for s in samples])


def make_optimizer(model: RecurrentMemoryTransformer, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on biases, norms or the initial memory)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "initial_memory" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "initial_memory" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def train_step(model: RecurrentMemoryTransformer, optimizer: torch.optim.Optimizer, batch: Batch, grad_clip: float,
               forward: torch.nn.Module | None = None, memory: torch.Tensor | None = None) -> RMTOutput:
    """Forward (answer + auxiliary loss), backward, gradient clipping, optimiser step. `forward` is the
    module to call when it is not `model` itself (its DDP wrapper); `memory` (B, M, D) is where the batch's
    inputs start when they continue earlier ones (None: the learned initial memory)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    out = (forward or model)(batch.input_ids, batch.attention_mask, labels=batch.labels, aux_labels=batch.aux_labels,
                             memory=memory)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return out
