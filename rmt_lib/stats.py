"""Statistics with intervals: Wilson intervals for accuracies, rank-based ROC-AUC, the percentile bootstrap.

Every interval the project reports comes from here. Resampling units are whole samples, never single
segments: the segments of one sample are not independent.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sane at 0% and 100%, unlike the normal one)."""
    if total <= 0:
        raise ValueError("a Wilson interval needs at least one trial")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)




def average_ranks(values: np.ndarray) -> np.ndarray:
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
    ranks = average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


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


def relation(interval: Mapping, reference: float) -> str:
    """"above", "below" or "not distinguishable from": where a 95% interval ({"low", "high", ...}) lies
    against `reference` (for prose that must stay true whatever the model: glue it, never type it)."""
    low, high = float(interval["low"]), float(interval["high"])
    if low > reference:
        return "above"
    if high < reference:
        return "below"
    return "not distinguishable from"


def bootstrap_mean(values: Sequence[float] | np.ndarray, **kwargs) -> Interval:
    """`bootstrap_interval` of the mean of one value per unit."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return bootstrap_interval(len(v), lambda idx: v[idx].mean(), **kwargs)


def uniformity_p_value(counts: Sequence[int] | np.ndarray, *, n_draws: int = 10_000,
                       seed: int = DEFAULT_BOOTSTRAP_SEED) -> float:
    """Monte Carlo p-value of a chi-square test that `counts` (one per cell) come from a uniform spread of
    their total over the cells: the share of `n_draws` uniform multinomial draws whose chi-square statistic
    is at least the observed one (counting the observed, so never 0)."""
    c = np.asarray(counts, dtype=np.int64).ravel()
    if len(c) < 2 or c.min() < 0 or c.sum() == 0:
        raise ValueError(f"need at least two non-negative counts with a positive total, got {c.tolist()}")
    expected = c.sum() / len(c)
    draws = np.random.default_rng(seed).multinomial(int(c.sum()), np.full(len(c), 1 / len(c)), size=n_draws)
    statistic = lambda x: ((x - expected) ** 2 / expected).sum(axis=-1)  # noqa: E731
    return float((1 + (statistic(draws) >= statistic(c)).sum()) / (n_draws + 1))
