"""Memory states in, numbers out: the distance between any two states, the change each segment makes, and
drift (how far the memory wanders through distractor text compared with the jump a fact makes).

Conventions: ``memory_states`` has ``n_segments + 1`` entries: index 0 is the initial memory, index
``s + 1`` the memory after segment ``s``. So ``memory_change[s] = ||m_{s+1} - m_s||`` is the change *made
by* segment ``s``, and the first change is measured from the initial memory.
"""
from __future__ import annotations

import numpy as np


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


def drift(entry: dict, min_stretch: int = 100) -> list[dict]:
    """Drift through each distractor stretch of at least `min_stretch` segments between two facts of one
    probed sample (an entry of `probe_samples`), beside the jump that the fact after the stretch makes.

    For consecutive facts A and B (B's first token in segment b0, its last in b1; A's last in a1):
    ``drift = ||m_{b0} - m_{a1 + 1}||``, from just after A is complete to just before B starts, where every
    segment in between is distractor text; ``jump = ||m_{b1 + 1} - m_{b0}||``, what B's segments change.
    A memory that holds still through distractors and moves for facts has ``drift / jump`` well below 1.
    ``path`` is the length of the way the memory took across the stretch (the sum of its per-segment
    changes), so ``drift / path`` says how the steps add up: near 0 when they cancel (the memory jitters
    about one place), about ``1 / sqrt(stretch)`` for steps in random directions, 1 when every step heads
    the same way.
    """
    distance = np.asarray(entry["distance_matrix"], dtype=np.float64)  # (S + 1, S + 1)
    size = entry["question_token_span"][1] // entry["n_segments"]  # the question ends the last segment
    spans = sorted(entry["fact_token_spans"])
    out = []
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        after_a, start_b, end_b = (a1 - 1) // size + 1, b0 // size, (b1 - 1) // size + 1  # state indices
        stretch = start_b - after_a  # distractor segments between the two facts
        if stretch < min_stretch:
            continue
        jump = float(distance[start_b, end_b])
        steps = distance[np.arange(after_a, start_b), np.arange(after_a + 1, start_b + 1)]  # (stretch,)
        record = {"stretch": stretch, "drift": float(distance[after_a, start_b]), "jump": jump,
                  "path": float(steps.sum())}
        record["ratio"] = record["drift"] / jump if jump > 0 else float("inf")
        out.append(record)
    return out
