"""The decoded fact over time: overwriting (an actor moves again) and forgetting (where a fact was lost).

Both read the asked actor's location from every memory state with a trained `LinearProbe`:

- `overwrite_samples` builds stories in which the asked actor moves twice; `overwriting` measures whether
  the decoded location switches at the second fact's segment and whether the answer follows the later fact;
- `fact_retention` follows, in each sample, the probe's confidence in the asked actor's true location from
  the supporting fact to the question: where a wrong answer's fact was lost, and whether drift foretells it.
"""
from __future__ import annotations

import numpy as np

from rmt_lib.data import ACTORS, LOCATIONS, VERBS, Sample, generate_samples
from rmt_lib.data.grammar import fact_sentence, question_sentence
from rmt_lib.display.tables import interval_text
from rmt_lib.probes.decode import LinearProbe, MemoryStates
from rmt_lib.stats import DEFAULT_BOOTSTRAP_SEED, bootstrap_interval, bootstrap_mean, roc_auc


OVERWRITE_MAX_BETWEEN = 2  # facts about other actors between the asked actor's two moves: 0 to this many


def overwrite_samples(tokenizer, *, n_samples: int, n_segments: int, segment_size: int, seed: int = 0,
                      split: str = "test", background=None) -> list[Sample]:
    """Samples whose asked actor moves twice: to a first location, then (after 0 to OVERWRITE_MAX_BETWEEN
    facts about other actors) to a second one, which is the answer. Same arguments, same samples."""
    rng = np.random.default_rng(seed)
    stories = []
    for _ in range(n_samples):
        asked = ACTORS[rng.integers(len(ACTORS))]
        first, second = rng.choice(len(LOCATIONS), size=2, replace=False)
        others = [a for a in ACTORS if a != asked]
        between = [fact_sentence(others[rng.integers(len(others))], VERBS[rng.integers(len(VERBS))],
                                 LOCATIONS[rng.integers(len(LOCATIONS))]) for _ in range(rng.integers(OVERWRITE_MAX_BETWEEN + 1))]
        facts = (fact_sentence(asked, VERBS[rng.integers(len(VERBS))], LOCATIONS[first]), *between,
                 fact_sentence(asked, VERBS[rng.integers(len(VERBS))], LOCATIONS[second]))
        stories.append(Sample(input="", question=question_sentence(asked), target=LOCATIONS[second], facts=facts))
    return generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, split=split, background=background,
                            seed=seed, segment_size=segment_size, tokenizer=tokenizer, stories=stories)


def asked_trajectory(probe: LinearProbe, data: MemoryStates, i: int) -> np.ndarray:
    """(S + 1, C) the probe's class probabilities for sample i's asked actor at every state."""
    return probe.probabilities(data.states[i])[:, data.asked[i]]


def overwriting(probe: LinearProbe, data: MemoryStates, *, seed: int = DEFAULT_BOOTSTRAP_SEED) -> dict:
    """On samples whose asked actor moves twice (`overwrite_samples`): how often the answer is the later
    location (``answer_later``) or the earlier one (``answer_earlier``); how often the decoded location
    holds the first one between the facts (``holds_first``: at every state from the first fact's segment
    up to the second's) and switches at the second fact's segment (``switches_at_fact``: first decoded
    at the state after it, and not before). Pairs of facts in one segment count for the answers only."""
    if not len(data):
        raise ValueError("overwriting needs at least one sample (build them with overwrite_samples)")
    records = []
    for i in range(len(data)):
        moves = [f for f in data.facts[i] if f[1] == data.asked[i]]
        (s1, _, first), (s2, _, second) = moves[0], moves[-1]
        decoded = asked_trajectory(probe, data, i).argmax(axis=-1)  # (S + 1,)
        q = data.question_state(i)
        record = {"first_segment": s1, "second_segment": s2, "answer_later": data.predictions[i] == second,
                  "answer_earlier": data.predictions[i] == first, "decoded_at_question": int(decoded[q]),
                  "apart": s2 > s1}
        if s2 > s1 and s2 < q:
            switched = np.flatnonzero(decoded[s1 + 1:] == second)  # states after the first fact's segment
            record["holds_first"] = bool((decoded[s1 + 1:s2 + 1] == first).all())
            record["switch_segment"] = int(s1 + switched[0]) if len(switched) else None  # state k follows k - 1
            record["switches_at_fact"] = record["switch_segment"] == s2
        records.append(record)

    def rate(key, rows) -> dict:
        return bootstrap_mean(np.array([r[key] for r in rows], dtype=float), seed=seed).to_dict()

    apart = [r for r in records if "holds_first" in r]
    summary = {"n_samples": len(records), "n_apart": len(apart), "answer_later": rate("answer_later", records),
               "answer_earlier": rate("answer_earlier", records)}
    if apart:
        summary.update(holds_first=rate("holds_first", apart), switches_at_fact=rate("switches_at_fact", apart))
    return {"samples": records, "summary": summary}


def fact_retention(probe: LinearProbe, data: MemoryStates, *, seed: int = DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Per sample, the probe's confidence in the asked actor's true location (the answer) at each state from
    just after the supporting fact's segment to the state the question reads (``confidence``), where the
    fact was lost (``lost_at``: the segment after which the decoded location is wrong at every state up to
    the question; None when it is right there) and the drift between the two states (``drift``: their
    distance over the fact's jump). The summary asks what wrong answers have in common: how many kept the
    fact to the question (the failure is in the reading) and how well drift, or the confidence at the
    question, tells wrong answers from right ones (ROC-AUC)."""
    records = []
    for i in range(len(data)):
        s_f = data.supporting_fact(i)[0]
        q = data.question_state(i)
        if s_f + 1 > q:
            continue  # the fact is in the question's own segment: no state holds it before the question
        trajectory = asked_trajectory(probe, data, i)[s_f + 1:q + 1]  # (q - s_f, C)
        p = trajectory[:, data.targets[i]]
        wrong = np.flatnonzero(trajectory.argmax(axis=-1) != data.targets[i])
        tail = _wrong_tail(wrong, q - s_f)
        x = data.states[i].reshape(len(data.states[i]), -1).astype(np.float64)
        jump = np.linalg.norm(x[s_f + 1] - x[s_f])
        records.append({"fact_segment": s_f, "question_state": q, "correct": data.predictions[i] == data.targets[i],
                        "confidence": p.astype(np.float32), "lost_at": None if tail is None else s_f + tail,
                        "drift": float(np.linalg.norm(x[q] - x[s_f + 1]) / max(jump, 1e-12))})
    return {"samples": records, "summary": _retention_summary(records, seed)}


def retention_findings(summary: dict, n_segments: int) -> tuple[str, str]:
    """The chapter's paragraph on where wrong answers lost their fact, and its one-line finding, for what
    this execution measured (a `fact_retention` summary): when every sample was answered right there is
    nothing to dissect, and the prose says so instead of reporting statistics of an empty set."""
    n, n_wrong = summary["n_samples"], summary["n_wrong"]
    if not n_wrong:
        text = (f"All {n} samples of {n_segments} segments whose fact lies before the question's segment were "
                "answered right in this execution, so there is no wrong answer to dissect here: a larger budget "
                "draws more samples (`make book BUDGET=full`).")
        return text, f"At {n_segments} segments every one of the {n} samples was answered right: no fact was lost."
    kept = summary["wrong_kept_fact"]["estimate"]
    where = summary.get("lost_at_fraction") or []
    text = (f"Of {n_wrong} wrong answers (of {n}), {kept:.0%} still had the fact decoded at the question: those "
            "lost it in the reading.")
    if where:
        text += (f" The others lost it on the way; the median of them lost it {float(np.median(where)):.2f} of "
                 "the way from the fact to the question (0: at once, 1: at the question).")
    aucs = {k: summary[k] for k in ("auc_drift", "auc_low_confidence") if k in summary}
    if aucs:
        drift, confidence = (interval_text(aucs[k], 2) for k in ("auc_drift", "auc_low_confidence"))
        text += (" The memory's drift between the fact and the question (their distance over the fact's own "
                 f"jump) tells wrong answers from right ones with a ROC-AUC of {drift}, the probe's confidence at "
                 f"the question with {confidence} (0.5: no better than a coin; 1: perfectly).")
    if n_wrong < 10:
        text += f" With {n_wrong} wrong answers these are anecdotes more than rates: the intervals say how wide."
    finding = (f"Of the {n_wrong} wrong answers at {n_segments} segments, {kept:.0%} still held the fact at the "
               "question (lost in the reading); the others lost it on the way.")
    return text, finding


def _wrong_tail(wrong: np.ndarray, n: int) -> int | None:
    """The first index from which every index up to n - 1 is in `wrong` (sorted), or None."""
    if not len(wrong) or wrong[-1] != n - 1:
        return None
    gaps = np.flatnonzero(np.diff(wrong) != 1)
    return int(wrong[gaps[-1] + 1] if len(gaps) else wrong[0])


def _retention_summary(records: list[dict], seed: int) -> dict:
    wrong = [r for r in records if not r["correct"]]
    summary = {"n_samples": len(records), "n_wrong": len(wrong)}
    if not records:
        return summary  # every supporting fact was in its question's segment
    summary["accuracy"] = bootstrap_mean(np.array([r["correct"] for r in records], dtype=float), seed=seed).to_dict()
    if wrong:
        kept = np.array([r["lost_at"] is None for r in wrong], dtype=float)
        summary["wrong_kept_fact"] = bootstrap_mean(kept, seed=seed).to_dict()  # decoded right at the question
        where = [(r["lost_at"] - r["fact_segment"]) / max(1, r["question_state"] - 1 - r["fact_segment"])
                 for r in wrong if r["lost_at"] is not None]
        summary["lost_at_fraction"] = [float(w) for w in where]  # 0: just after the fact; 1: at the question
    labels = np.array([not r["correct"] for r in records])
    if 0 < labels.sum() < len(labels):
        for name, score in (("drift", lambda r: r["drift"]), ("low_confidence", lambda r: -r["confidence"][-1])):
            values = np.array([score(r) for r in records])
            summary[f"auc_{name}"] = bootstrap_interval(
                len(values), lambda idx: roc_auc(values[idx], labels[idx]), seed=seed).to_dict()
    return summary
