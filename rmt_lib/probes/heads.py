"""Heads compared: per-head attention shares side by side across lengths, and how stable the chosen head is."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rmt_lib.stats import average_ranks


@dataclass(frozen=True, eq=False)
class HeadComparison:
    """Per-head mean shares of one kind of attention across summaries (e.g. 32 vs. 256 segments)."""

    kind: Literal["write", "read"]
    per_head: dict  # column -> (n_layers, n_heads) mean share
    chosen: dict  # column -> (layer, head) or None
    baseline: dict  # column -> the uniform-attention share

    def rank_correlation(self) -> float:
        """Spearman correlation of the per-head shares between the first two columns (ties averaged)."""
        if len(self.per_head) < 2:
            raise ValueError("rank_correlation needs two summaries")
        a, b = (np.asarray(v, dtype=np.float64).ravel() for v in list(self.per_head.values())[:2])
        ra, rb = average_ranks(a), average_ranks(b)
        if ra.std() == 0 or rb.std() == 0:
            return float("nan")
        return float(np.corrcoef(ra, rb)[0, 1])

    def same_chosen_head(self) -> bool:
        chosen = list(self.chosen.values())
        return all(c is not None and c == chosen[0] for c in chosen)


def head_comparison(summaries: Mapping[str, Mapping], kind: Literal["write", "read"]) -> HeadComparison:
    part, base = {"write": ("write_attention", "token_share"), "read": ("read_attention", "memory_baseline")}[kind]
    per_head, chosen, baseline = {}, {}, {}
    for label, s in summaries.items():
        p = s.get(part)
        if not p:
            raise ValueError(f"summary {label!r} has no {part}")
        per_head[label] = np.asarray(p["per_head_share"], dtype=np.float64)
        c = p.get("chosen_head")
        chosen[label] = None if c is None else (int(c["layer"]), int(c["head"]))
        baseline[label] = float(p[base]["estimate"])
    return HeadComparison(kind, per_head, chosen, baseline)


def head_choice_stability(entries: Sequence[Mapping], kind: Literal["write", "read"], *, n_splits: int = 200,
                          seed: int = 0) -> float:
    """The fraction of random half/half splits of the samples in which both halves choose the same head
    (the largest mean over the half's samples of each sample's share; a sample's write share is the
    mean over its facts). 1.0: the choice does not depend on which samples it was made on."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    per_sample = _per_sample_head_share(entries, kind)  # (n, layers, heads)
    n = len(per_sample)
    if n < 2:
        raise ValueError("head_choice_stability needs at least two samples with attention")
    rng = np.random.default_rng(seed)
    agree = 0
    for _ in range(n_splits):
        order = rng.permutation(n)
        halves = order[: n // 2], order[n // 2:]
        picks = [np.unravel_index(int(np.argmax(per_sample[h].mean(0))), per_sample.shape[1:]) for h in halves]
        agree += picks[0] == picks[1]
    return agree / n_splits


def _per_sample_head_share(entries: Sequence[Mapping], kind: str) -> np.ndarray:
    rows = []
    for e in entries:
        if kind == "write":
            shares = [np.asarray(w["share"], dtype=np.float64) for w in e.get("write_attention") or ()]
            if shares:
                rows.append(np.mean(shares, axis=0))
        elif kind == "read":
            if e.get("read_attention"):
                rows.append(np.asarray(e["read_attention"]["memory_share"], dtype=np.float64))
        else:
            raise ValueError(f"kind must be 'write' or 'read', got {kind!r}")
    if not rows:
        raise ValueError(f"no {kind}-attention values in these entries")
    return np.stack(rows)
