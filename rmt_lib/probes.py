"""Probes for Figure 8: captured memory states and attention maps in, numbers out. No plotting.

Two layers:

* Pure functions on arrays (this top half): distances between memory states, the change each segment
  makes, ROC-AUC, ratios, bootstrap intervals, attention shares and the automatic head choice. They
  know nothing of models and are tested on hand-built data.
* `probe_samples` (bottom half): runs a model over samples in batches, keeps only what the statistics
  need, and returns the public probe contract (README, "probe JSON"); `summarize` turns its samples
  into means with bootstrap intervals; `write_probe_json` writes it atomically. `capture_sample` keeps
  one sample's attention maps for the single-sample panels, and `figure8_inputs` gathers everything
  the four panels of Figure 8 show (`rmt_lib.plots.figure8_panels` draws them).

    result = probe_samples(model, tokenizer, samples)        # {"samples": [...], "summary": {...}}
    result["summary"]["memory_change"]["auc"]                # {"estimate", "low", "high", ...}

Conventions (shared with rmt_lib.model):

* ``memory_states`` has ``n_segments + 1`` entries: index 0 is the initial memory, index ``s + 1`` the
  memory after segment ``s``. So ``memory_change[s] = ||m_{s+1} - m_s||`` is the change *made by*
  segment ``s`` and the first change is measured from the initial memory.
* An attention map of one segment is ``(n_layers, n_heads, P, P)`` with ``P = 2M + L``: positions
  ``[0, M)`` are the read memory, ``[M, M + L)`` the segment's tokens, ``[M + L, 2M + L)`` the write
  memory; rows are queries, columns keys.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from rmt_lib.files import to_plain

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


def pooled_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """`roc_auc` with a non-negative weight (multiplicity) per element.

    With unit weights it equals `roc_auc`; the bootstrap uses it with each sample's draw count as the
    weight of its segments, which avoids rebuilding and re-sorting the pooled segments per resample.
    """
    order, groups = _tie_groups(np.asarray(scores, dtype=np.float64).ravel())
    return _weighted_auc_sorted(order, groups, np.asarray(labels, dtype=bool).ravel(),
                                np.ones(len(order)) if weights is None else np.asarray(weights, np.float64).ravel())


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sort order of `scores` and, in that order, the index of each element's run of equal values."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    return order, np.cumsum(np.r_[False, s[1:] != s[:-1]])


def _weighted_auc_sorted(order: np.ndarray, groups: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    y, w = labels[order], weights[order]
    n_groups = int(groups[-1]) + 1 if len(groups) else 0
    pos = np.bincount(groups, w * y, minlength=n_groups)  # weighted positives per tie group
    neg = np.bincount(groups, w * ~y, minlength=n_groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        raise ValueError("ROC-AUC needs both classes")
    below = np.cumsum(neg) - neg  # weighted negatives strictly below each group
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


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


# ----------------------------------------------------------------------------------------------
# Probing a model over samples
# ----------------------------------------------------------------------------------------------

AttentionSegments = Literal["facts_and_question", "none"]
ATTENTION_BUDGET_BYTES = 64 * 2**20  # captured attention maps held at once (float32), whatever the input length
JSON_SIGNIFICANT_DIGITS = 6  # memory_change and distance_matrix in the JSON: float32 states carry ~7 digits


def probe_samples(
    model,
    tokenizer,
    samples: Sequence,
    *,
    batch_size: int = 32,
    attention_segments: AttentionSegments = "facts_and_question",
    progress: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    attention_budget_bytes: int = ATTENTION_BUDGET_BYTES,
) -> dict:
    """Run `model` over `samples` (rmt_lib.data.Sample) and measure every Figure 8 claim.

    Returns ``{"samples": [...], "summary": {...}}``, the probe contract (README). Each sample entry,
    in input order, holds ``n_segments``, ``segment_char_spans``, ``memory_change`` (S,) and
    ``distance_matrix`` (S+1, S+1) as float32 numpy arrays (`to_json` writes them as lists), and the
    extras ``fact_segments``, ``fact_char_spans``, ``fact_token_spans``, ``question_segment``,
    ``question_token_span``, ``prediction``, ``target``, ``correct``, ``write_attention`` (one entry per
    fact whose segment was captured: ``segment``, ``token_share``, ``share`` per (layer, head)) and
    ``read_attention`` (``segment``, ``memory_baseline``, ``memory_share`` per (layer, head)).
    The summary is `summarize` of the samples.

    Facts come from the samples' spans, or from the bAbI grammar where a sample has none
    (`rmt_lib.data.encode_sample`). Samples of one token length are batched together; attention maps
    are captured only for the segments that hold a fact and the last (question) segment, in
    sub-batches small enough that the maps held at once stay under `attention_budget_bytes`, and are
    reduced to numbers at once. So memory does not grow with the number of samples beyond the
    returned arrays, nor with input length beyond one batch's memory states.
    """
    import torch

    from rmt_lib.data import LOCATIONS, encode_sample

    cfg = model.config
    if not getattr(cfg, "recurrent", True):
        raise ValueError("this model has no memory (recurrent=False, the no-memory baseline); probe an RMT")
    if attention_segments not in ("facts_and_question", "none"):
        raise ValueError(f"attention_segments must be 'facts_and_question' or 'none', got {attention_segments!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    layout = AttentionLayout(cfg.num_memory_tokens, cfg.segment_size)
    encoded = [encode_sample(s, tokenizer, cfg.segment_size) for s in samples]
    map_bytes = 4 * cfg.num_layers * cfg.num_heads * layout.size**2  # one sample's map of one segment
    device = next(model.parameters()).device
    results: list[dict | None] = [None] * len(samples)

    chunks = list(_batches(encoded, batch_size, attention_segments, max(1, attention_budget_bytes // map_bytes)))
    bar = _progress(progress, total=len(samples))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for idx, wanted in chunks:
                ids = torch.from_numpy(np.stack([encoded[i].input_ids for i in idx])).to(device)  # (B, T)
                mask = np.stack([encoded[i].attention_mask for i in idx])  # (B, T)
                out = model(ids, attention_mask=None if mask.all() else torch.from_numpy(mask).to(device),
                            capture_memory=True, capture_attention=sorted(wanted) or None)
                predictions = out.logits.argmax(-1).tolist()
                for row, i in enumerate(idx):
                    attn = {s: a[row].numpy() for s, a in out.attentions.items()}  # s -> (layers, heads, P, P)
                    results[i] = _probe_one(samples[i], encoded[i], out.memory_states[row].numpy(), attn, layout,
                                            LOCATIONS[predictions[row]])
                del out
                bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return {"samples": results, "summary": summarize(results, n_resamples=n_resamples, seed=seed)}


def probe_generated(model, tokenizer, *, n_segments: int, n_samples: int = 200, n_facts: int = 2, seed: int = 0,
                    split: str = "test", background=None, **probe_kwargs) -> dict:
    """`probe_samples` on freshly generated held-out samples (two facts each, as in Figure 8): the one
    call behind each "measured over many samples" result. The same arguments give the same numbers."""
    from rmt_lib.data import generate_samples

    samples = generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, n_facts=n_facts, split=split,
                               background=background, seed=seed, segment_size=model.config.segment_size,
                               tokenizer=tokenizer)
    return probe_samples(model, tokenizer, samples, **probe_kwargs)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int):
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="probe", unit="sample")


def _needed_segments(enc, attention_segments: str) -> set[int]:
    if attention_segments == "none":
        return set()
    return set(enc.fact_segments) | {enc.n_segments - 1}


def _batches(encoded, batch_size: int, attention_segments: str, max_maps: int):
    """(indices, segments to capture) per forward pass: one token length per batch, and no more than
    `max_maps` (sample, segment) attention maps per pass (a pass captures its segments for every row)."""
    groups: dict[int, list[int]] = {}
    for i, enc in enumerate(encoded):
        groups.setdefault(len(enc.input_ids), []).append(i)
    for length in sorted(groups):
        current: list[int] = []
        wanted: set[int] = set()
        for i in groups[length]:
            need = wanted | _needed_segments(encoded[i], attention_segments)
            if current and (len(current) >= batch_size or (len(current) + 1) * len(need) > max_maps):
                yield current, wanted
                current, need = [], _needed_segments(encoded[i], attention_segments)
            current.append(i)
            wanted = need
        if current:
            yield current, wanted


def _probe_one(sample, enc, memory_states: np.ndarray, attentions: dict[int, np.ndarray],
               layout: AttentionLayout, prediction: str) -> dict:
    """Everything the probe keeps about one sample (attention maps are reduced here and dropped)."""
    L = layout.segment_size
    change = memory_change(memory_states)  # (S,) float64
    distance = distance_matrix(memory_states).astype(np.float32)  # (S+1, S+1); its superdiagonal is `change`
    q0, q1 = enc.question_token_span
    question_segments = sorted({t // L for t in range(q0, q1)})
    entry = {
        "n_segments": enc.n_segments,
        "segment_char_spans": [list(span) for span in enc.segment_char_spans],
        "memory_change": change.astype(np.float32),
        "distance_matrix": distance,
        "fact_segments": list(enc.fact_segments),
        "fact_char_spans": [list(span) for span in (sample.fact_char_spans or _find_facts(sample.input))],
        "fact_token_spans": [list(span) for span in enc.fact_token_spans],
        "question_segment": enc.n_segments - 1,
        "question_segments": question_segments,
        "question_token_span": list(enc.question_token_span),
        "prediction": prediction,
        "target": sample.target,
        "correct": prediction == sample.target,
        "write_attention": [],
        "read_attention": None,
    }
    for k, ((t0, t1), s) in enumerate(zip(enc.fact_token_spans, enc.fact_segments)):
        if s not in attentions:
            continue
        valid = enc.attention_mask[s * L:(s + 1) * L]  # (L,)
        fact = np.zeros(L, dtype=bool)
        fact[max(t0 - s * L, 0):max(min(t1 - s * L, L), 0)] = True  # the fact's tokens inside its segment
        if not (fact & valid).any():
            continue
        entry["write_attention"].append({
            "fact": k, "segment": s, "token_share": token_share(fact, valid),
            "share": write_attention_share(attentions[s], layout, fact, valid)})
    last = enc.n_segments - 1
    if last in attentions:
        queries = [t - last * L for t in range(q0, q1) if t >= last * L]  # question tokens; the last one is
        valid = enc.attention_mask[last * L:]  # where the model reads its answer
        entry["read_attention"] = {
            "segment": last, "query_positions": queries,
            "memory_baseline": read_memory_baseline(layout, queries, valid),
            "memory_share": read_attention_share(attentions[last], layout, queries, valid)}
    return entry


def _find_facts(text: str) -> list[tuple[int, int]]:
    from rmt_lib.data import find_facts

    return find_facts(text)


# ----------------------------------------------------------------------------------------------
# Summary statistics over probed samples
# ----------------------------------------------------------------------------------------------


ROLES = ("fact", "distractor", "first", "question")


def segment_roles(entry: Mapping) -> dict[str, np.ndarray]:
    """Boolean masks over a sample's segments, one role each: {"fact", "distractor", "first", "question"}.

    fact = holds (the first token of) a fact; question = holds a question token; first = segment 0,
    whose change is measured from the learned initial memory (a jump of another kind: the first write
    always replaces the initial memory, whatever the segment holds); distractor = none of these.
    Priority when two apply: fact, then question, then first.
    """
    S = int(entry["n_segments"])
    fact = np.zeros(S, dtype=bool)
    fact[list(entry["fact_segments"])] = True
    question = np.zeros(S, dtype=bool)
    question[list(entry.get("question_segments", [entry["question_segment"]]))] = True
    question &= ~fact
    first = np.zeros(S, dtype=bool)
    first[0] = True
    first &= ~fact & ~question
    return {"fact": fact, "distractor": ~(fact | question | first), "first": first, "question": question}


def change_by_role(entries: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """All segments' memory changes pooled by role (`segment_roles`) -> (n,) arrays
    (for `rmt_lib.plots.plot_change_distributions`)."""
    pooled: dict[str, list[np.ndarray]] = {role: [] for role in ROLES}
    for e in entries:
        change = np.asarray(e["memory_change"], dtype=np.float64)
        for role, mask in segment_roles(e).items():
            pooled[role].append(change[mask])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in pooled.items()}


def summarize(entries: Sequence[Mapping], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_BOOTSTRAP_SEED,
              selection_fraction: float = 0.5) -> dict:
    """Every claim as a mean with a 95% percentile-bootstrap interval, resampling whole samples.

    memory_change     (segment roles: `segment_roles`)
      auc             ROC-AUC of the per-segment memory change for fact segments vs. distractor
                      segments (no fact, no question token, not segment 0), pooled over all segments
                      of all samples.
      auc_all_other   fact segments vs. every other segment (the first and question segments too).
      auc_per_sample  the mean of each sample's own `auc`.
      ratio           mean change at fact segments / mean change at distractor segments (ratio of
                      pooled means); fact_mean, distractor_mean, first_mean, question_mean alongside.
    write_attention   (panel c; one unit per fact whose segment was captured)
      token_share     the fact's share of its segment's real tokens (the uniform-attention baseline).
      mean_over_heads share = `write_attention_share` averaged over all layers and heads; lift =
                      mean share / mean token_share.
      chosen_head     the (layer, head) with the largest mean share on a *selection* subset of the
                      samples (`selection_fraction`, drawn with `seed`), measured on the others only.
      per_head_share  mean share of every (layer, head) over all facts (for the heatmap).
    read_attention    (panel d; the question tokens of the last segment, the last of them being where
                      the answer is read)
      memory_baseline the memory share under uniform causal attention.
      mean_over_heads memory_share averaged over layers and heads; lift = share / baseline.
      chosen_head     chosen and measured as for write attention, by largest mean memory share.
    """
    if len(entries) == 0:
        raise ValueError("summarize needs at least one probed sample")
    n = len(entries)
    boot = dict(n_resamples=n_resamples, seed=seed)
    summary: dict = {
        "n_samples": n,
        "n_segments": sorted({int(e["n_segments"]) for e in entries}),
        "accuracy": bootstrap_mean([float(e["correct"]) for e in entries], **boot).to_dict(),
        "memory_change": _change_summary(entries, boot),
        "bootstrap": {"n_resamples": n_resamples, "confidence": 0.95, "seed": seed, "unit": "sample",
                      "method": "percentile"},
    }
    selection = _selection_mask(n, selection_fraction, seed)
    summary["write_attention"] = _write_summary(entries, selection, boot)
    summary["read_attention"] = _read_summary(entries, selection, boot)
    summary["head_selection"] = {"rule": "largest mean share over the selection samples; ties to the lowest "
                                         "layer then head; measured on the remaining samples",
                                 "selection_fraction": selection_fraction, "seed": seed,
                                 "n_selection": int(selection.sum()), "n_measured": int((~selection).sum())}
    return summary


def _selection_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"selection_fraction must lie in (0, 1), got {fraction}")
    mask = np.zeros(n, dtype=bool)
    if n >= 2:
        chosen = np.random.default_rng(seed).permutation(n)[:max(1, min(n - 1, round(fraction * n)))]
        mask[chosen] = True
    return mask


def _change_summary(entries: Sequence[Mapping], boot: dict) -> dict:
    changes = [np.asarray(e["memory_change"], dtype=np.float64) for e in entries]
    roles = [segment_roles(e) for e in entries]
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(changes)])  # sample of each segment
    scores = np.concatenate(changes)
    mask = {role: np.concatenate([r[role] for r in roles]) for role in ROLES}
    fact, distractor = mask["fact"], mask["distractor"]
    n = len(entries)
    order, groups = _tie_groups(scores)

    def auc(idx: np.ndarray, all_other: bool) -> float:
        w = np.bincount(idx, minlength=n)[owner].astype(np.float64)  # each sample's draw count
        return _weighted_auc_sorted(order, groups, fact, w if all_other else w * (fact | distractor))

    sums = {role: np.bincount(owner, scores * m, minlength=n) for role, m in mask.items()}
    counts = {role: np.bincount(owner, m.astype(float), minlength=n) for role, m in mask.items()}

    def mean_of(role: str) -> Callable[[np.ndarray], float]:
        def stat(idx: np.ndarray) -> float:
            c = counts[role][idx].sum()
            if c == 0:
                raise ValueError(f"no {role} segments")
            return sums[role][idx].sum() / c
        return stat

    def ratio(idx: np.ndarray) -> float:
        return mean_of("fact")(idx) / mean_of("distractor")(idx)

    per_sample_auc = [roc_auc(c[r["fact"] | r["distractor"]], r["fact"][r["fact"] | r["distractor"]])
                      for c, r in zip(changes, roles) if r["fact"].any() and r["distractor"].any()]
    out: dict = {f"n_{role}_segments": int(m.sum()) for role, m in mask.items()}
    if fact.any() and distractor.any():
        out["auc"] = bootstrap_interval(n, lambda idx: auc(idx, False), **boot).to_dict()
        out["auc_all_other"] = bootstrap_interval(n, lambda idx: auc(idx, True), **boot).to_dict()
        out["auc_per_sample"] = bootstrap_mean(per_sample_auc, **boot).to_dict()
        out["ratio"] = bootstrap_interval(n, ratio, **boot).to_dict()
    for role in ROLES:
        if counts[role].sum() > 0:
            out[f"{role}_mean"] = bootstrap_interval(n, mean_of(role), **boot).to_dict()
    return out


def _grouped(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Per-sample sums of `values` (units, ...) -> (n, ...)."""
    out = np.zeros((n, *values.shape[1:]))
    np.add.at(out, owner, values)
    return out


def _head_statistics(shares: np.ndarray, owner: np.ndarray, n: int, selection: np.ndarray,
                     baseline: np.ndarray, boot: dict, name: str) -> dict:
    """Shared by write and read attention. `shares` (units, layers, heads), `baseline` (units,), each
    unit belonging to sample `owner`. Ratios are ratios of pooled means over the resampled samples."""
    count = np.bincount(owner, minlength=n).astype(np.float64)
    share_sum = _grouped(shares, owner, n)  # (n, layers, heads)
    mean_sum = share_sum.mean(axis=(1, 2))  # (n,) sum over units of the head-mean share
    base_sum = np.bincount(owner, baseline, minlength=n)

    def pooled(sum_: np.ndarray) -> Callable[[np.ndarray], float]:
        def stat(idx):
            c = count[idx].sum()
            if c == 0:
                raise ValueError("no units")
            return sum_[idx].sum() / c
        return stat

    def lift(sum_: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda idx: pooled(sum_)(idx) / pooled(base_sum)(idx)

    out = {
        "n_units": int(count.sum()),
        name: bootstrap_interval(n, pooled(base_sum), **boot).to_dict(),
        "mean_over_heads": {"share": bootstrap_interval(n, pooled(mean_sum), **boot).to_dict(),
                            "lift": bootstrap_interval(n, lift(mean_sum), **boot).to_dict()},
        "per_head_share": (share_sum.sum(0) / count.sum()).tolist(),
    }
    sel_units = selection[owner]
    if sel_units.any() and (~sel_units).any():
        layer, head = choose_head(shares[sel_units])
        measured = np.flatnonzero(~selection & (count > 0))
        head_sum = share_sum[:, layer, head]

        def on_measured(stat):
            return lambda idx: stat(measured[idx])

        out["chosen_head"] = {
            "layer": layer, "head": head,
            "share": bootstrap_interval(len(measured), on_measured(pooled(head_sum)), **boot).to_dict(),
            "lift": bootstrap_interval(len(measured), on_measured(lift(head_sum)), **boot).to_dict(),
        }
    else:
        out["chosen_head"] = None
    return out


def _write_summary(entries: Sequence[Mapping], selection: np.ndarray, boot: dict) -> dict | None:
    units = [(i, w) for i, e in enumerate(entries) for w in e.get("write_attention") or ()]
    if not units:
        return None
    owner = np.array([i for i, _ in units])
    shares = np.stack([np.asarray(w["share"], dtype=np.float64) for _, w in units])
    baseline = np.array([w["token_share"] for _, w in units], dtype=np.float64)
    return _head_statistics(shares, owner, len(entries), selection, baseline, boot, "token_share")


def _read_summary(entries: Sequence[Mapping], selection: np.ndarray, boot: dict) -> dict | None:
    units = [(i, e["read_attention"]) for i, e in enumerate(entries) if e.get("read_attention")]
    if not units:
        return None
    owner = np.array([i for i, _ in units])
    shares = np.stack([np.asarray(r["memory_share"], dtype=np.float64) for _, r in units])
    baseline = np.array([r["memory_baseline"] for _, r in units], dtype=np.float64)
    return _head_statistics(shares, owner, len(entries), selection, baseline, boot, "memory_baseline")


# ----------------------------------------------------------------------------------------------
# JSON out
# ----------------------------------------------------------------------------------------------


def _round_list(values: np.ndarray) -> list:
    """Nested lists of floats rounded to JSON_SIGNIFICANT_DIGITS (the same rounding everywhere, so the
    JSON's distance_matrix[s][s + 1] equals its memory_change[s])."""
    a = np.asarray(values, dtype=np.float64)
    fmt = f"{{:.{JSON_SIGNIFICANT_DIGITS}g}}".format
    if a.ndim == 1:
        return [float(fmt(v)) for v in a.tolist()]
    return [_round_list(row) for row in a]


_jsonable = to_plain


def to_json(result: Mapping) -> dict:
    """The probe result as plain JSON types: arrays become (rounded) lists."""
    samples = []
    for entry in result["samples"]:
        e = {k: v for k, v in entry.items() if k not in ("memory_change", "distance_matrix")}
        e = _jsonable(e)
        e["memory_change"] = _round_list(entry["memory_change"])
        e["distance_matrix"] = _round_list(entry["distance_matrix"])
        samples.append(e)
    return {"samples": samples, "summary": _jsonable(result["summary"])}


def write_probe_json(result: Mapping, path: str | Path) -> Path:
    """Write `to_json(result)` to `path` atomically (a temporary file in the same folder, then rename)."""
    from rmt_lib.files import write_json_atomic

    return write_json_atomic(path, to_json(result), indent=None)


# ----------------------------------------------------------------------------------------------
# One sample in full: the maps behind the paper's single-sample panels
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SampleCapture:
    """One sample probed with its attention maps kept (for panels c and d and the scrubbers)."""

    entry: dict  # as one entry of probe_samples(...)["samples"]
    attentions: dict  # segment -> (n_layers, n_heads, P, P) float32, fact segments and the last segment
    tokens: tuple[str, ...]  # (T,) a display string per token ("<pad>" on padding)
    layout: AttentionLayout

    def segment_tokens(self, segment: int) -> list[str]:
        L = self.layout.segment_size
        return list(self.tokens[segment * L:(segment + 1) * L])

    def fact_mask(self, fact: int) -> tuple[int, np.ndarray]:
        """(segment, (L,) bool mask of the fact's tokens in it) for fact number `fact`."""
        spans, segments = self.entry["fact_token_spans"], self.entry["fact_segments"]
        if not 0 <= fact < len(spans):
            raise ValueError(f"fact {fact} does not exist; the sample has {len(spans)} facts")
        s, L = segments[fact], self.layout.segment_size
        t0, t1 = spans[fact]
        mask = np.zeros(L, dtype=bool)
        mask[max(t0 - s * L, 0):max(min(t1 - s * L, L), 0)] = True
        return s, mask

    def write_map(self, fact: int = 0, layer: int | None = None, head: int | None = None):
        """Panel (c): (weights (M, L), token strings (L,), fact mask (L,)) in the fact's segment, for
        one (layer, head) or averaged where layer/head is None."""
        s, mask = self.fact_mask(fact)
        w = attention_map(self.attentions[s], self.layout.write, self.layout.segment, layer, head)
        return w, self.segment_tokens(s), mask

    def read_map(self, layer: int | None = None, head: int | None = None):
        """Panel (d): (weights (Q, M), row labels (Q,)): question/answer positions of the last segment
        attending to the read-memory keys. The last row is the answer position."""
        read = self.entry["read_attention"]
        last, queries = read["segment"], np.asarray(read["query_positions"])
        rows = self.layout.segment.start + queries
        w = attention_map(self.attentions[last], rows, self.layout.read, layer, head)
        labels = [self.segment_tokens(last)[q] for q in queries]
        labels[-1] = f"{labels[-1]} (answer)"
        return w, labels


def token_strings(tokenizer, input_ids: Sequence[int]) -> list[str]:
    """A short display string per token id: leading spaces dropped, padding shown as <pad>."""
    out = []
    for i in input_ids:
        i = int(i)
        if i == tokenizer.pad_id:
            out.append("<pad>")
            continue
        text = tokenizer.decode([i]).strip()
        out.append(text if text else "␣")
    return out


def capture_sample(model, tokenizer, sample) -> SampleCapture:
    """Probe one sample and keep its fact and question segments' attention maps."""
    import torch

    from rmt_lib.data import LOCATIONS, encode_sample

    cfg = model.config
    layout = AttentionLayout(cfg.num_memory_tokens, cfg.segment_size)
    enc = encode_sample(sample, tokenizer, cfg.segment_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ids = torch.from_numpy(enc.input_ids[None]).to(device)  # (1, T)
            mask = None if enc.attention_mask.all() else torch.from_numpy(enc.attention_mask[None]).to(device)
            out = model(ids, attention_mask=mask, capture_memory=True,
                        capture_attention=sorted(_needed_segments(enc, "facts_and_question")))
    finally:
        model.train(was_training)
    attentions = {s: a[0].numpy() for s, a in out.attentions.items()}
    entry = _probe_one(sample, enc, out.memory_states[0].numpy(), attentions, layout,
                       LOCATIONS[int(out.logits[0].argmax())])
    return SampleCapture(entry, attentions, tuple(token_strings(tokenizer, enc.input_ids)), layout)


# ----------------------------------------------------------------------------------------------
# Everything Figure 8's four panels need
# ----------------------------------------------------------------------------------------------

FIGURE8_SHORT, FIGURE8_LONG = 32, 256  # segments: the paper's "16k" and "128k" at our segment size


@dataclass(frozen=True, eq=False)
class Figure8Inputs:
    """The displayed samples' captures and the heads chosen on held-out samples (see `figure8_inputs`)."""

    short: SampleCapture  # panel (a), (c), (d): one two-fact sample at FIGURE8_SHORT segments
    long: SampleCapture  # panel (b): one two-fact sample at FIGURE8_LONG segments
    short_sample: object  # the rmt_lib.data.Sample behind `short` (its text, question, target)
    long_sample: object
    write_head: tuple[int, int]  # (layer, head) with the largest mean write share on fact tokens, held-out
    read_head: tuple[int, int]  # (layer, head) with the largest mean memory share of the question rows, held-out
    heldout: dict  # the held-out probe result (samples + summary)

    def describe(self) -> dict:
        """A JSON-ready record of what was shown and why."""
        def sample_info(capture: SampleCapture, sample) -> dict:
            e = capture.entry
            return {"n_segments": e["n_segments"], "fact_segments": e["fact_segments"], "facts": list(sample.facts),
                    "question": sample.question, "target": sample.target, "prediction": e["prediction"]}
        return {"short": sample_info(self.short, self.short_sample), "long": sample_info(self.long, self.long_sample),
                "write_head": list(self.write_head), "read_head": list(self.read_head),
                "head_rule": "argmax over (layer, head) of the mean share over the held-out samples "
                             "(write: on fact tokens; read: on read-memory keys); ties to the lowest layer, then head",
                "n_heldout": len(self.heldout["samples"])}


def figure8_inputs(model, tokenizer, *, seed: int = 0, n_heldout: int = 64, split: str = "test",
                   background=None, n_candidates: int = 16, progress: bool = False) -> Figure8Inputs:
    """Generate, probe and capture everything the four panels show, reproducibly from `seed`.

    The displayed samples are two-fact samples drawn with `seed` (the first of `n_candidates` whose
    facts lie in different, non-question segments). The heads for (c) and (d) are chosen on
    `n_heldout` *other* two-fact samples (seed + 1) at FIGURE8_SHORT segments, by `choose_head`.
    `split` and `background` choose the prose (rmt_lib.data.generate_samples).
    """
    from rmt_lib.data import generate_samples

    L = model.config.segment_size
    common = dict(task="qa1", n_facts=2, split=split, background=background, segment_size=L, tokenizer=tokenizer)

    def pick(n_segments: int) -> object:
        candidates = generate_samples(n_samples=n_candidates, n_segments=n_segments, seed=seed, **common)
        good = [s for s in candidates if len(set(s.fact_segments)) == 2 and max(s.fact_segments) < n_segments - 1]
        return good[0] if good else candidates[0]

    short_sample, long_sample = pick(FIGURE8_SHORT), pick(FIGURE8_LONG)
    heldout_samples = generate_samples(n_samples=n_heldout, n_segments=FIGURE8_SHORT, seed=seed + 1, **common)
    heldout = probe_samples(model, tokenizer, heldout_samples, progress=progress)
    write = [w["share"] for e in heldout["samples"] for w in e["write_attention"]]
    read = [e["read_attention"]["memory_share"] for e in heldout["samples"] if e["read_attention"]]
    return Figure8Inputs(
        short=capture_sample(model, tokenizer, short_sample), long=capture_sample(model, tokenizer, long_sample),
        short_sample=short_sample, long_sample=long_sample,
        write_head=choose_head(np.stack(write)), read_head=choose_head(np.stack(read)), heldout=heldout)
