"""Memory patching: does the answer come from the memory state? Interventions on it, and what they do.

Each recipient sample is paired with a donor: the same bAbI story, except that the supporting fact (the
last one about the asked actor) names another location, placed by the generator in another stretch of
the same book. The prose differs on purpose: with the same prose, the donor's state after the fact's
segment followed by the recipient's (identical) remaining segments would replay the donor exactly, and
the test would prove nothing. Four interventions replace the recipient's memory state after one segment
and run the rest of the recipient from it:

- ``fact``: after the recipient's fact segment, the donor's state after *its* fact segment. An answer that
  comes from the memory follows the donor (its location), though every later segment is the recipient's;
- ``distractor``: after a segment before any fact (in both samples), the donor's state after the same
  segment. Both states have read only prose; the answer should not move;
- ``reset``: after the fact segment, the initial memory. The fact is gone; the answer should fall to chance;
- ``noise``: after the fact segment, the recipient's own state plus Gaussian noise whose norm is
  `noise_scales` times the recipient's median distractor change (what a distractor segment typically moves
  it). A memory that is robust to its own drift keeps its answer.

    pairs = patch_pairs(model, tokenizer, samples, seed=0)
    result = patch_memory(model, tokenizer, pairs)
    result["summary"]["fact_follows"]              # {"estimate", "low", "high", ...}
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from rmt_lib.data import LOCATIONS, Sample, encode_qa1, generate_samples
from rmt_lib.data.grammar import fact_sentence, parse_fact, parse_question
from rmt_lib.model.capture import run_with_cache
from rmt_lib.probes.decode import MemoryStates, with_facts, collect_memory_states
from rmt_lib.probes.memory import memory_change
from rmt_lib.stats import DEFAULT_BOOTSTRAP_SEED, bootstrap_mean, relation

DONOR_SEED_BASE = 1_000_003  # donors' prose is drawn with seeds far from any recipient's


@dataclass(frozen=True, eq=False)
class PatchPair:
    recipient: Sample
    donor: Sample | None  # the same story but for the supporting fact's location, in other prose of equal
    #                       length; None when the recipient has no fact about the asked actor


def patch_pairs(model, tokenizer, samples: Sequence[Sample], *, seed: int = 0, split: str = "test",
                background=None) -> list[PatchPair]:
    """A donor for every sample: its story with the supporting fact moved to another location (never the
    actor's previous one: bAbI moves go somewhere new), in the same number of segments of other prose.
    Each pair's draws come from a generator of its own (seed, index), so a pair does not depend on the
    others; a sample without a fact about the asked actor gets no donor."""
    samples = [with_facts(s) for s in samples]
    segment_size = model.config.segment_size
    encoded = encode_qa1(samples, tokenizer, segment_size)  # the length the generator builds donors to
    by_length: dict[int, list[int]] = defaultdict(list)
    stories: list = []
    for i, (sample, enc) in enumerate(zip(samples, encoded)):
        stories.append(_moved_story(sample, np.random.default_rng([seed, i])))
        if stories[-1] is not None:
            by_length[enc.n_segments].append(i)
    donors: list = [None] * len(samples)
    for n_segments, idx in sorted(by_length.items()):
        made = generate_samples("qa1", n_samples=len(idx), n_segments=n_segments, split=split, background=background,
                                seed=DONOR_SEED_BASE + 1000 * seed + n_segments, segment_size=segment_size,
                                tokenizer=tokenizer, stories=[stories[i] for i in idx])
        for i, donor in zip(idx, made):
            donors[i] = donor
    return [PatchPair(r, d) for r, d in zip(samples, donors)]


def _moved_story(sample: Sample, rng: np.random.Generator) -> Sample | None:
    facts = [parse_fact(f) for f in sample.facts]
    asked = parse_question(sample.question)
    about = [k for k, (actor, _, _) in enumerate(facts) if actor == asked]
    if not about:
        return None
    k = about[-1]
    before = facts[about[-2]][2] if len(about) > 1 else None
    choices = [loc for loc in LOCATIONS if loc not in (facts[k][2], before)]
    moved = choices[rng.integers(len(choices))]
    actor, verb, _ = facts[k]
    new = [fact_sentence(*f) for f in facts]
    new[k] = fact_sentence(actor, verb, moved)
    return Sample(input="", question=sample.question, target=moved, facts=tuple(new))


@dataclass(frozen=True)
class _Edit:
    pair: int
    segment: int  # the recipient's memory after this segment is replaced
    state: np.ndarray  # (M, D) the state it is replaced with


def patch_memory(model, tokenizer, pairs: Sequence[PatchPair], *, noise_scales: Sequence[float] = (1.0,),
                 seed: int = 0, batch_size: int = 32, progress: bool = False,
                 n_resamples_seed: int = DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Every intervention (module docstring) on every eligible pair: one with a donor of the recipient's
    length, whose facts (in both samples) begin after the first segment and whose supporting facts lie
    before the question's segment (else nothing can be patched between them). Returns ``{"samples": [...],
    "summary": {...}}``: per pair, the answers with and without each intervention (an ineligible pair's
    record says why, and has no intervention keys); in the summary, the rates with 95% bootstrap intervals
    over eligible pairs."""
    if not pairs:
        raise ValueError("patch_memory needs at least one pair")
    if not noise_scales or min(noise_scales) < 0:
        raise ValueError(f"noise_scales must be non-negative numbers, got {tuple(noise_scales)}")
    rec = collect_memory_states(model, tokenizer, [p.recipient for p in pairs], batch_size=batch_size, progress=progress)
    with_donor = [i for i, p in enumerate(pairs) if p.donor is not None]
    don = collect_memory_states(model, tokenizer, [pairs[i].donor for i in with_donor], batch_size=batch_size,
                                progress=progress)
    donor_row = {i: k for k, i in enumerate(with_donor)}
    records, edits = [], defaultdict(list)
    for i in range(len(pairs)):
        record, planned = _plan(i, rec, don, donor_row.get(i), np.random.default_rng([seed, i]), noise_scales)
        records.append(record)
        for name, edit in planned.items():
            edits[name].append(edit)
    for name, planned in tqdm(edits.items(), desc="patch", disable=not progress):
        for edit, (scores, _) in zip(planned, _continue(model, rec.input_ids, planned, batch_size)):
            records[edit.pair][name] = LOCATIONS[int(scores.argmax())]
    return {"samples": records, "summary": _summary(records, noise_scales, n_resamples_seed)}


def _plan(i: int, rec: MemoryStates, don: MemoryStates, j: int | None, rng, noise_scales) -> tuple[dict, dict]:
    """The record of pair i (donor row j) and its edits (intervention name -> _Edit); none if ineligible."""
    S = rec.n_segments(i)
    record = {"n_segments": S, "target": LOCATIONS[rec.targets[i]], "prediction": LOCATIONS[rec.predictions[i]],
              "eligible": False}
    if j is None:
        return {**record, "ineligible": "no fact about the asked actor"}, {}
    record.update(donor_target=LOCATIONS[don.targets[j]], donor_prediction=LOCATIONS[don.predictions[j]])
    if don.n_segments(j) != S:
        return {**record, "ineligible": f"the donor has {don.n_segments(j)} segments"}, {}
    fact_r, fact_d = rec.supporting_fact(i)[0], don.supporting_fact(j)[0]
    first = min(*rec.fact_starts[i], *don.fact_starts[j])  # a cut fact begins a segment before its own
    record.update(fact_segment=fact_r, donor_fact_segment=fact_d)
    if first < 1 or max(fact_r, fact_d) >= S - 1:
        return {**record, "ineligible": "a fact begins in the first segment, or answers in the question's"}, {}
    record["eligible"] = True
    states = rec.states[i]  # (S + 1, M, D)
    distractor = int(rng.integers(first))  # a segment before any token of any fact of either sample
    changes = memory_change(states)  # (S,)
    fact_free = np.ones(S, dtype=bool)
    for (end, _, _), begin in zip(rec.facts[i], rec.fact_starts[i]):
        fact_free[begin:end + 1] = False
    fact_free[-1] = False  # the question's segment
    typical = float(np.median(changes[fact_free])) if fact_free.any() else float(np.median(changes))
    record.update(distractor_segment=distractor, distractor_change=typical, fact_change=float(changes[fact_r]))
    edits = {"fact": _Edit(i, fact_r, don.states[j][fact_d + 1]),
             "distractor": _Edit(i, distractor, don.states[j][distractor + 1]),
             "reset": _Edit(i, fact_r, states[0])}
    after = states[fact_r + 1].astype(np.float64)
    direction = rng.standard_normal(after.shape)
    direction /= np.linalg.norm(direction)
    for scale in noise_scales:
        edits[_noise_name(scale)] = _Edit(i, fact_r, (after + scale * typical * direction).astype(np.float32))
    return record, edits


def _noise_name(scale: float) -> str:
    return f"noise_x{scale:g}"


def _continue(model, input_ids: Sequence[np.ndarray], edits: Sequence[_Edit], batch_size: int,
              keep_states: bool = False) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per edit, (answer scores (num_answers,), the state its question reads (M, D) or None): the recipient's
    segments after `edit.segment`, run from `edit.state`. Batched by the length of what is left (no padding
    there: a sample is padded only in its first segment)."""
    L = model.config.segment_size
    results: list = [None] * len(edits)
    groups: dict[int, list[int]] = defaultdict(list)
    for k, edit in enumerate(edits):
        groups[len(input_ids[edit.pair]) - (edit.segment + 1) * L].append(k)
    for _, ks in sorted(groups.items()):
        for start in range(0, len(ks), batch_size):
            chunk = ks[start:start + batch_size]
            ids = np.stack([input_ids[edits[k].pair][(edits[k].segment + 1) * L:] for k in chunk])  # (B, T')
            memory = np.stack([edits[k].state for k in chunk])  # (B, M, D)
            out, trace = run_with_cache(model, ids, memory=keep_states, start_memory=memory)
            scores = out.logits.float().cpu().numpy()  # (B, num_answers)
            for row, k in enumerate(chunk):  # the question reads the state before the last segment: index -2
                results[k] = (scores[row], trace.memory_states[row, -2] if keep_states else None)
    return results


def _summary(records: list[dict], noise_scales: Sequence[float], seed: int) -> dict:
    kept = [r for r in records if r["eligible"]]
    if not kept:
        return {"n_pairs": len(records), "n_eligible": 0}

    def rate(test) -> dict:
        return bootstrap_mean(np.array([bool(test(r)) for r in kept], dtype=float), seed=seed).to_dict()

    return {
        "n_pairs": len(records), "n_eligible": len(kept),
        "accuracy": rate(lambda r: r["prediction"] == r["target"]),
        "donor_accuracy": rate(lambda r: r["donor_prediction"] == r["donor_target"]),
        "fact_follows": rate(lambda r: r["fact"] == r["donor_target"]),
        "fact_keeps": rate(lambda r: r["fact"] == r["target"]),
        "distractor_changes": rate(lambda r: r["distractor"] != r["prediction"]),
        "reset_right": rate(lambda r: r["reset"] == r["target"]),
        "reset_changes": rate(lambda r: r["reset"] != r["prediction"]),
        "noise_changes": {f"{s:g}": rate(lambda r, s=s: r[_noise_name(s)] != r["prediction"]) for s in noise_scales},
        "fact_change_over_distractor_change": float(np.median([r["fact_change"] / r["distractor_change"]
                                                               for r in kept])),
    }


FRAME_ACTIONS: tuple[str, ...] = ("as run", "memory reset here", "donor's memory here")


@dataclass(frozen=True, eq=False)
class InterventionFrames:
    """One pair, edited after each of `segments`: the answer and the decoded world state at the question,
    as run and under each of FRAME_ACTIONS (for the intervention scrubbers)."""

    segments: tuple[int, ...]  # (K,) the segment after which the memory is edited
    answer: np.ndarray  # (K, len(FRAME_ACTIONS), num_answers) answer probabilities
    decoded: np.ndarray  # (K, len(FRAME_ACTIONS), A, C) decoded class probabilities at the question
    truth: np.ndarray  # (A,) the recipient's true world state at the question (CLASSES indices)
    after: np.ndarray  # (K, A, C) decoded from the recipient's own memory after each segment, as run
    truth_after: np.ndarray  # (K, A) the true world state after each segment
    asked: int  # ACTORS index
    target: str  # the recipient's answer
    donor_target: str  # the donor's
    fact_segments: tuple[int, ...]  # the recipient's
    donor_fact_segments: tuple[int, ...]
    n_segments: int


def intervention_frames(model, tokenizer, probe, pair: PatchPair,
                        segments: Sequence[int] | None = None) -> InterventionFrames:
    """Reset the recipient's memory, or put the donor's in its place, after each of `segments` (default:
    all but the question's), and record the answer and what `probe` decodes at the question."""
    if pair.donor is None:
        raise ValueError("this pair has no donor (no fact about the asked actor): nothing to patch in")
    rec = collect_memory_states(model, tokenizer, [pair.recipient])
    don = collect_memory_states(model, tokenizer, [pair.donor])
    S = rec.n_segments(0)
    if S < 2:
        raise ValueError("a one-segment sample has no segment before its question to edit")
    chosen = tuple(range(S - 1)) if segments is None else tuple(int(s) for s in segments)
    if not chosen or not all(0 <= s < S - 1 for s in chosen):
        raise ValueError(f"segments must lie in 0..{S - 2} (before the question's segment), got {chosen}")
    if don.n_segments(0) != S:
        raise ValueError(f"the donor has {don.n_segments(0)} segments, the recipient {S}; build pairs with patch_pairs")
    as_run = _continue(model, rec.input_ids, [_Edit(0, 0, rec.states[0][1])], 1, keep_states=True)[0]
    edits = [e for s in chosen for e in (_Edit(0, s, rec.states[0][0]), _Edit(0, s, don.states[0][s + 1]))]
    runs = _continue(model, rec.input_ids, edits, 64, keep_states=True)
    scores = np.stack([np.stack([as_run[0], runs[2 * k][0], runs[2 * k + 1][0]]) for k in range(len(chosen))])
    states = np.stack([np.stack([as_run[1], runs[2 * k][1], runs[2 * k + 1][1]]) for k in range(len(chosen))])
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    K, n_actions = len(chosen), len(FRAME_ACTIONS)
    decoded = probe.probabilities(states.reshape(K * n_actions, *states.shape[2:]))
    own = [s + 1 for s in chosen]  # the states after the chosen segments
    return InterventionFrames(chosen, probs / probs.sum(axis=-1, keepdims=True),
                              decoded.reshape(K, n_actions, *decoded.shape[1:]), rec.world[0][S - 1],
                              probe.probabilities(rec.states[0][own]), rec.world[0][own], rec.asked[0],
                              LOCATIONS[rec.targets[0]], LOCATIONS[don.targets[0]],
                              tuple(f[0] for f in rec.facts[0]), tuple(f[0] for f in don.facts[0]), S)


def reset_finding(reset_right: Mapping, chance: float) -> tuple[str, str]:
    """Where the answer stands with the memory reset after the fact (`patch_memory`'s summary "reset_right"):
    its interval's relation to `chance` ("above", "below", "not distinguishable from") and what that says."""
    where = relation(reset_right, chance)
    if where == "above":
        return where, "the answer keeps some trace of the fact, or a prior over locations, outside the memory"
    return where, "there is no sign that the answer reaches the fact without the memory"
