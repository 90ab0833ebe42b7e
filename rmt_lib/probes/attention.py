"""Attention maps in, shares out (Figure 8 c and d): how much of the write memory's attention falls on a
fact's tokens, how much of the question's falls on the read memory, and the automatic head choice.

An attention map of one segment is ``(n_layers, n_heads, P, P)`` with ``P = 2M + L``: positions ``[0, M)``
are the read memory, ``[M, M + L)`` the segment's tokens, ``[M + L, 2M + L)`` the write memory; rows are
queries, columns keys.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AttentionLayout:
    """Where read memory, segment tokens and write memory sit in one segment's attention map."""

    num_memory_tokens: int  # M
    segment_size: int  # L

    def __post_init__(self) -> None:
        if self.num_memory_tokens < 1 or self.segment_size < 1:
            raise ValueError("AttentionLayout needs num_memory_tokens >= 1 and segment_size >= 1")

    def sized(self, n_tokens: int) -> "AttentionLayout":
        """The layout of a segment of `n_tokens` tokens (a left-aligned input's last segment is shorter)."""
        return self if n_tokens == self.segment_size else AttentionLayout(self.num_memory_tokens, n_tokens)

    @property
    def size(self) -> int:  # P = 2M + L
        return 2 * self.num_memory_tokens + self.segment_size

    @property
    def read(self) -> slice:
        return slice(0, self.num_memory_tokens)

    @property
    def segment(self) -> slice:
        return slice(self.num_memory_tokens, self.num_memory_tokens + self.segment_size)

    @property
    def write(self) -> slice:
        return slice(self.num_memory_tokens + self.segment_size, self.size)

    def check(self, attention: np.ndarray) -> np.ndarray:
        """(n_layers, n_heads, P, P) float64, or a clear error."""
        a = np.asarray(attention, dtype=np.float64)
        if a.ndim != 4 or a.shape[-1] != self.size or a.shape[-2] != self.size:
            raise ValueError(f"an attention map must be (n_layers, n_heads, {self.size}, {self.size}) for "
                             f"M={self.num_memory_tokens}, L={self.segment_size}; got {a.shape}")
        return a


def _segment_masks(layout: AttentionLayout, fact_mask, valid_mask) -> tuple[np.ndarray, np.ndarray]:
    L = layout.segment_size
    valid = np.ones(L, dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    fact = np.asarray(fact_mask, dtype=bool)
    if fact.shape != (L,) or valid.shape != (L,):
        raise ValueError(f"fact_mask and valid_mask must have one entry per segment token ({L})")
    if not (fact & valid).any():
        raise ValueError("fact_mask selects no (non-padding) token of the segment")
    return fact & valid, valid


def token_share(fact_mask, valid_mask=None) -> float:
    """The fact's share of the segment's real (non-padding) tokens: the uniform-attention baseline."""
    fact = np.asarray(fact_mask, dtype=bool)
    valid = np.ones_like(fact) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError("the segment has no real tokens")
    return float((fact & valid).sum() / n_valid)


def write_attention_share(attention: np.ndarray, layout: AttentionLayout, fact_mask, valid_mask=None) -> np.ndarray:
    """Panel (c): the share of write-memory attention on a fact's tokens, per (layer, head).

    For each write-memory query row, the attention mass on the fact's tokens divided by the mass on
    all the segment's real tokens (so memory keys and padding do not dilute it), averaged over the
    M write rows. Uniform attention over the segment gives exactly `token_share`; the claim is that
    the share is several times that. Returns (n_layers, n_heads).
    """
    a = layout.check(attention)
    fact, valid = _segment_masks(layout, fact_mask, valid_mask)
    rows = a[:, :, layout.write, layout.segment]  # (n_layers, n_heads, M, L)
    on_fact = rows[..., fact].sum(-1)  # (n_layers, n_heads, M)
    on_segment = rows[..., valid].sum(-1)
    share = np.divide(on_fact, on_segment, out=np.zeros_like(on_fact), where=on_segment > 0)
    return share.mean(-1)


def read_attention_share(attention: np.ndarray, layout: AttentionLayout, query_positions, valid_mask=None) -> np.ndarray:
    """Panel (d): the share of read-memory keys in the attention of question/answer positions.

    `query_positions` are indices into the segment (0..L-1). For each such query row, the mass on
    the read-memory keys divided by the mass on read memory plus the segment's real tokens, averaged
    over the rows. Returns (n_layers, n_heads).
    """
    a = layout.check(attention)
    q = _query_positions(layout, query_positions)
    valid = np.ones(layout.segment_size, dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    rows = a[:, :, layout.segment.start + q, :]  # (n_layers, n_heads, Q, P)
    on_memory = rows[..., layout.read].sum(-1)  # (n_layers, n_heads, Q)
    on_segment = rows[..., layout.segment][..., valid].sum(-1)
    total = on_memory + on_segment
    share = np.divide(on_memory, total, out=np.zeros_like(total), where=total > 0)
    return share.mean(-1)


def read_memory_baseline(layout: AttentionLayout, query_positions, valid_mask=None) -> float:
    """What `read_attention_share` would be under uniform causal attention.

    A query at segment position q sees the M read-memory keys and the real segment tokens at
    positions <= q (the backbones are causal LMs), so uniform attention gives M / (M + visible).
    Averaged over the query rows.
    """
    q = _query_positions(layout, query_positions)
    valid = np.ones(layout.segment_size, dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    visible = np.cumsum(valid)[q]  # real segment tokens at positions <= q
    M = layout.num_memory_tokens
    return float(np.mean(M / (M + visible)))


def _query_positions(layout: AttentionLayout, query_positions) -> np.ndarray:
    q = np.unique(np.asarray(query_positions, dtype=np.int64).ravel())
    if len(q) == 0:
        raise ValueError("no question/answer positions fall in this segment")
    if q.min() < 0 or q.max() >= layout.segment_size:
        raise ValueError(f"query positions must index the segment (0..{layout.segment_size - 1}); got {q.tolist()}")
    return q


def choose_head(scores: np.ndarray) -> tuple[int, int]:
    """The automatic head choice: the (layer, head) with the largest mean score over samples.

    `scores` is (n_samples, n_layers, n_heads), e.g. `write_attention_share` of every held-out fact.
    Ties go to the lowest layer, then the lowest head. Call it on samples *other* than those you
    show or measure, so that the choice cannot flatter them.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] == 0:
        raise ValueError(f"choose_head needs scores shaped (n_samples >= 1, n_layers, n_heads); got {s.shape}")
    mean = s.mean(0)  # (n_layers, n_heads)
    layer, head = np.unravel_index(int(np.argmax(mean)), mean.shape)  # argmax: first maximum wins
    return int(layer), int(head)


def attention_map(attention: np.ndarray, rows: slice | np.ndarray, cols: slice | np.ndarray,
                  layer: int | None = None, head: int | None = None) -> np.ndarray:
    """One (rows, cols) block of a segment's map for one head, or averaged where layer/head is None."""
    a = np.asarray(attention, dtype=np.float64)
    a = a.mean(0) if layer is None else a[layer]  # (n_heads, P, P)
    a = a.mean(0) if head is None else a[head]  # (P, P)
    return a[rows][:, cols]


def fact_mask(token_span: tuple[int, int], segment: int, segment_size: int) -> np.ndarray:
    """(L,) bool: which positions of `segment` hold the tokens [start, end) of a fact. A fact cut by a
    segment boundary has only part of its tokens in each of the two segments."""
    t0, t1 = token_span
    mask = np.zeros(segment_size, dtype=bool)
    mask[max(t0 - segment * segment_size, 0):max(min(t1 - segment * segment_size, segment_size), 0)] = True
    return mask
