"""Per-sample probe entries in, every Figure 8 claim out as a mean with a bootstrap interval (resampling whole
samples): memory change at fact vs. distractor segments, write and read attention shares per head."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rmt_lib.probes.attention import choose_head
from rmt_lib.stats import (DEFAULT_BOOTSTRAP_SEED, DEFAULT_RESAMPLES, _tie_groups, _weighted_auc_sorted,
                           bootstrap_interval, bootstrap_mean, roc_auc)


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
      prose_control   the same for the question segment's prose positions (no question to answer):
                      question_lift and prose_lift (mean over heads, over the samples that have both)
                      and their paired difference, lift_difference; near 0, the question reads the
                      memory no more than any position does.
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
    out = _head_statistics(shares, owner, len(entries), selection, baseline, boot, "memory_baseline")
    out["prose_control"] = _prose_control([r for _, r in units], boot)
    return out


def _prose_control(units: Sequence[Mapping], boot: dict) -> dict | None:
    """Question positions against the prose positions of the same segment: lifts over uniform attention,
    mean over heads, as ratios of means over the samples that have both, and their paired difference."""
    both = [r for r in units if "prose_share" in r]
    if not both:
        return None
    question = np.array([np.mean(r["memory_share"]) for r in both])  # (n,) mean over layers and heads
    prose = np.array([np.mean(r["prose_share"]) for r in both])
    q_base = np.array([r["memory_baseline"] for r in both])
    p_base = np.array([r["prose_baseline"] for r in both])

    def lift(share, base):
        return lambda idx: share[idx].mean() / base[idx].mean()

    return {"n": len(both),
            "question_lift": bootstrap_interval(len(both), lift(question, q_base), **boot).to_dict(),
            "prose_lift": bootstrap_interval(len(both), lift(prose, p_base), **boot).to_dict(),
            "lift_difference": bootstrap_interval(
                len(both), lambda idx: lift(question, q_base)(idx) - lift(prose, p_base)(idx), **boot).to_dict()}


def write_units(entries: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """One row per measured fact: "token_share" (n,), "share_mean" (n,) over layers and heads,
    "share" (n, layers, heads)."""
    units = [w for e in entries for w in e.get("write_attention") or ()]
    if not units:
        raise ValueError("no write-attention units: probe with attention_segments='facts_and_question'")
    share = np.stack([np.asarray(w["share"], dtype=np.float64) for w in units])
    return {"token_share": np.array([w["token_share"] for w in units], dtype=np.float64),
            "share_mean": share.mean(axis=(1, 2)), "share": share}


def read_units(entries: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """One row per sample with a captured question segment: "baseline" (n,), "share_mean" (n,),
    "share" (n, layers, heads)."""
    units = [e["read_attention"] for e in entries if e.get("read_attention")]
    if not units:
        raise ValueError("no read-attention units: probe with attention_segments='facts_and_question'")
    share = np.stack([np.asarray(r["memory_share"], dtype=np.float64) for r in units])
    return {"baseline": np.array([r["memory_baseline"] for r in units], dtype=np.float64),
            "share_mean": share.mean(axis=(1, 2)), "share": share}

