"""Probes for Figure 8: captured memory states and attention maps in, numbers out. No plotting.

Two layers:

* Pure functions on arrays (this top half): distances between memory states, the change each segment
  makes, ROC-AUC, ratios, bootstrap intervals, attention shares and the automatic head choice. They
  know nothing of models and are tested on hand-built data.
* `probe_samples` (bottom half): runs a model over samples in batches, keeps only what the statistics
  need, and returns the public probe contract (README, "probe JSON").

Conventions (shared with rmt_lib.model):

* ``memory_states`` has ``n_segments + 1`` entries: index 0 is the initial memory, index ``s + 1`` the
  memory after segment ``s``. So ``memory_change[s] = ||m_{s+1} - m_s||`` is the change *made by*
  segment ``s`` and the first change is measured from the initial memory.
* An attention map of one segment is ``(n_layers, n_heads, P, P)`` with ``P = 2M + L``: positions
  ``[0, M)`` are the read memory, ``[M, M + L)`` the segment's tokens, ``[M + L, 2M + L)`` the write
  memory; rows are queries, columns keys.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------------
# Memory states: distances and per-segment change
# ----------------------------------------------------------------------------------------------


def _flat_states(memory_states: np.ndarray) -> np.ndarray:
    """(N, M, D) or (N, F) -> (N, F) float64: one flattened vector per memory state."""
    x = np.asarray(memory_states, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"memory_states must be (N, M, D) or (N, F); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("memory_states contain NaN or inf; the model's memory diverged")
    return x.reshape(x.shape[0], -1)


def memory_change(memory_states: np.ndarray) -> np.ndarray:
    """``||m_{s+1} - m_s||_2`` for every segment ``s``: (N, M, D) -> (N - 1,) float64.

    Entry ``s`` is the change made by segment ``s``; entry 0 is measured from the initial memory.
    Computed from exact differences (not from the Gram matrix) so tiny changes keep full precision.
    """
    x = _flat_states(memory_states)
    return np.linalg.norm(np.diff(x, axis=0), axis=1)


def distance_matrix(memory_states: np.ndarray) -> np.ndarray:
    """L2 distances between all pairs of flattened memory states: (N, M, D) -> (N, N) float64.

    Exactly symmetric with an exact zero diagonal. Off the diagonal it uses the Gram matrix in
    float64 (fast for 257 states), and its first super/sub-diagonal is *replaced* by
    `memory_change`, so ``D[s, s + 1] == memory_change[s]`` holds bit for bit.
    """
    x = _flat_states(memory_states)
    sq = np.einsum("nf,nf->n", x, x)  # (N,)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)  # (N, N)
    d2 = 0.5 * (d2 + d2.T)  # BLAS need not return an exactly symmetric Gram matrix
    d = np.sqrt(np.clip(d2, 0.0, None))
    np.fill_diagonal(d, 0.0)
    if len(x) > 1:
        step = memory_change(x)
        idx = np.arange(len(step))
        d[idx, idx + 1] = step
        d[idx + 1, idx] = step
    return d


# ----------------------------------------------------------------------------------------------
# Statistics: ROC-AUC, ratio, bootstrap
# ----------------------------------------------------------------------------------------------


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (the Mann-Whitney convention)."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Start index of each run of equal values, and the run each sorted element belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    run = np.repeat(np.arange(len(starts)), ends - starts)
    avg_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = avg_rank[run]
    return ranks


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling ``labels == True`` from the rest.

    Rank-based (Mann-Whitney U / (n_pos * n_neg)): the probability that a random positive scores
    higher than a random negative, ties counting one half. 1.0 = perfect, 0.5 = chance.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be booleans (or 0/1)")
        y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC-AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def change_ratio(changes: np.ndarray, is_fact: np.ndarray, is_distractor: np.ndarray | None = None) -> float:
    """Mean change at fact segments divided by mean change at distractor segments.

    `is_distractor` defaults to ``~is_fact``. A ratio of means (not a mean of ratios), so one
    near-zero distractor change cannot blow it up.
    """
    c = np.asarray(changes, dtype=np.float64).ravel()
    f = np.asarray(is_fact, dtype=bool).ravel()
    d = ~f if is_distractor is None else np.asarray(is_distractor, dtype=bool).ravel()
    if not (len(c) == len(f) == len(d)):
        raise ValueError("changes, is_fact and is_distractor must have the same length")
    if not f.any() or not d.any():
        raise ValueError("change_ratio needs at least one fact and one distractor segment")
    denom = c[d].mean()
    if denom == 0.0:
        raise ValueError("distractor segments changed the memory by exactly zero; the ratio is undefined")
    return float(c[f].mean() / denom)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n: int = 0  # the number of resampling units (samples) behind the estimate

    def to_dict(self) -> dict[str, float | int]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "confidence": self.confidence, "n": self.n}

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.estimate:.4g} [{pct}% CI {self.low:.4g}, {self.high:.4g}]"


DEFAULT_RESAMPLES = 1000
DEFAULT_BOOTSTRAP_SEED = 0


def bootstrap_interval(
    n_units: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> Interval:
    """Percentile bootstrap over resampling *units* (here: samples, never single segments).

    ``statistic(indices)`` computes the statistic from the units at `indices` (repeats allowed);
    it is called once on ``arange(n_units)`` for the estimate and `n_resamples` times on indices
    drawn with replacement from a ``numpy`` generator seeded with `seed`. Resampling whole samples
    keeps the segments of one sample together, since they are not independent. Resamples whose
    statistic is undefined (NaN, or a ValueError such as an AUC with one class) are dropped.
    """
    if n_units < 1:
        raise ValueError("bootstrap_interval needs at least one unit")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    estimate = float(statistic(np.arange(n_units)))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(n_resamples, n_units))
    stats = []
    for idx in draws:
        try:
            stats.append(float(statistic(idx)))
        except ValueError:
            continue
    stats = np.asarray(stats)
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return Interval(estimate, float("nan"), float("nan"), confidence, n_units)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), confidence, n_units)


def bootstrap_mean(values: Sequence[float] | np.ndarray, **kwargs) -> Interval:
    """`bootstrap_interval` of the mean of one value per unit."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return bootstrap_interval(len(v), lambda idx: v[idx].mean(), **kwargs)


# ----------------------------------------------------------------------------------------------
# Attention shares (panels c and d)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionLayout:
    """Where read memory, segment tokens and write memory sit in one segment's attention map."""

    num_memory_tokens: int  # M
    segment_size: int  # L

    def __post_init__(self) -> None:
        if self.num_memory_tokens < 1 or self.segment_size < 1:
            raise ValueError("AttentionLayout needs num_memory_tokens >= 1 and segment_size >= 1")

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
