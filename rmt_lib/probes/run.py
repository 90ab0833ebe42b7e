"""`probe_samples`: run a model over samples in batches and keep, per sample, what the Figure 8 statistics
need (the probe JSON contract, README), with attention maps reduced to shares as soon as they exist.

    result = probe_samples(model, tokenizer, samples)        # {"samples": [...], "summary": {...}}
    result["summary"]["memory_change"]["auc"]                # {"estimate", "low", "high", ...}
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from rmt_lib.data import LOCATIONS, encode_qa1, find_facts, generate_samples
from rmt_lib.data.batching import length_groups
from rmt_lib.model.capture import run_with_cache
from rmt_lib.probes.attention import (AttentionLayout, fact_mask, read_attention_share, read_memory_baseline,
                                      token_share, write_attention_share)
from rmt_lib.probes.memory import distance_matrix, drift, memory_change
from rmt_lib.probes.summary import summarize
from rmt_lib.stats import DEFAULT_BOOTSTRAP_SEED, DEFAULT_RESAMPLES, bootstrap_interval


AttentionSegments = Literal["facts_and_question", "none"]
ATTENTION_BUDGET_BYTES = 64 * 2**20  # captured attention maps held at once (float32), whatever the input length


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
    cfg = model.config
    if not getattr(cfg, "recurrent", True):
        raise ValueError("this model has no memory (recurrent=False, the no-memory baseline); probe an RMT")
    if attention_segments not in ("facts_and_question", "none"):
        raise ValueError(f"attention_segments must be 'facts_and_question' or 'none', got {attention_segments!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    layout = AttentionLayout(cfg.num_memory_tokens, cfg.segment_size)
    encoded = encode_qa1(samples, tokenizer, cfg.segment_size, **cfg.encoding)  # refuses a question QA1 cannot answer
    map_bytes = 4 * cfg.num_layers * cfg.num_heads * layout.size**2  # one sample's map of one segment
    results: list[dict | None] = [None] * len(samples)

    chunks = list(_batches(encoded, batch_size, attention_segments, max(1, attention_budget_bytes // map_bytes)))
    with tqdm(total=len(samples), desc="probe", unit="sample", disable=not progress) as bar:
        for idx, wanted in chunks:
            ids = np.stack([encoded[i].input_ids for i in idx])  # (B, T)
            mask = np.stack([encoded[i].attention_mask for i in idx])  # (B, T)
            out, trace = run_with_cache(model, ids, mask, attention_segments=sorted(wanted))
            for row, i in enumerate(idx):
                one = trace.sample(row)  # memory states (S + 1, M, D); segment -> (layers, heads, P, P)
                results[i] = probe_one(samples[i], encoded[i], one.memory_states, one.attentions, layout,
                                       LOCATIONS[int(out.logits[row].argmax())])
            del out, trace
            bar.update(len(idx))
    return {"samples": results, "summary": summarize(results, n_resamples=n_resamples, seed=seed)}


def probe_generated(model, tokenizer, *, n_segments: int, n_samples: int = 200, n_facts: int = 2, seed: int = 0,
                    split: str = "test", background=None, **probe_kwargs) -> dict:
    """`probe_samples` on freshly generated held-out samples (two facts each, as in Figure 8): the one
    call behind each "measured over many samples" result. The same arguments give the same numbers."""
    samples = generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, n_facts=n_facts, split=split,
                               background=background, seed=seed, segment_size=model.config.segment_size,
                               tokenizer=tokenizer)
    return probe_samples(model, tokenizer, samples, **probe_kwargs)


def probe_drift(model, tokenizer, *, n_samples: int = 50, n_segments: int = 256, min_stretch: int = 100,
                seed: int = 3, split: str = "test", background=None, progress: bool = False) -> dict:
    """Drift across long distractor stretches (`rmt_lib.probes.memory.drift`), measured on `n_samples`
    two-fact held-out samples whose facts lie at least `min_stretch` segments apart (drawn from the
    generator's samples in order, keeping those that qualify). Returns ``{"records": [...], "ratio":
    interval, ...}``: one record per sample (stretch, drift, jump, path, ratio), the median ratio with a
    bootstrap interval (resampling samples), and as medians with intervals how the drift comes about:
    ``path_over_jump``, the length of the memory's way across the stretch in jumps, and ``straightness``,
    drift over that path (`rmt_lib.probes.memory.drift`); ``stretch`` is the median stretch. Memory only: no
    attention maps are captured."""
    kept, draw = [], 0
    while len(kept) < n_samples:
        if draw > 50:
            raise ValueError(f"{n_segments} segments leave too little room for two facts {min_stretch} segments "
                             "apart; ask for more segments or a shorter stretch")
        for sample in generate_samples("qa1", n_samples=4 * n_samples, n_segments=n_segments, n_facts=2, split=split,
                                       background=background, seed=seed + 1000 * draw,
                                       segment_size=model.config.segment_size, tokenizer=tokenizer):
            segments = sorted(sample.fact_segments)
            if segments[1] - segments[0] > min_stretch and len(kept) < n_samples:
                kept.append(sample)
        draw += 1
    result = probe_samples(model, tokenizer, kept, attention_segments="none", progress=progress)
    records = []
    for entry in result["samples"]:
        stretches = drift(entry, min_stretch)
        if stretches:
            records.append({**stretches[0], "correct": entry["correct"]})
    def median(values: np.ndarray) -> dict:
        return bootstrap_interval(len(values), lambda idx: float(np.median(values[idx]))).to_dict()

    drift_, jump, path = (np.array([r[k] for r in records]) for k in ("drift", "jump", "path"))
    return {"n_segments": n_segments, "min_stretch": min_stretch, "records": records,
            "ratio": median(drift_ / jump), "path_over_jump": median(path / jump),
            "straightness": median(drift_ / path), "stretch": float(np.median([r["stretch"] for r in records]))}


def drift_shape(drift: dict) -> str:
    """How the steps of a `probe_drift` result add up, in words, against steps in random directions (whose
    drift over the way is about 1 / sqrt(stretch)); a factor of two either side counts as a difference."""
    straight, walk = drift["straightness"], drift["stretch"] ** -0.5
    if straight["low"] > 2 * walk:
        return ("the steps keep one direction far more than steps in random directions would: the memory "
                "does not jitter about one place but travels, slowly and steadily, through the prose")
    if straight["high"] < walk / 2:
        return ("the steps largely cancel: the memory jitters about one place, and the drift is what is left")
    return "the steps add up about as steps in random directions would: the memory wanders"


def drift_conclusion(drift: dict, met: bool) -> str:
    """Whether the paper's blocks (jumps at facts, stillness between them) are reproduced, for the prose: `met`
    is the drift check's verdict (`rmt_lib.probes.claims.drift_check`), and where it fails, how the drift comes
    about (`drift_shape`) and how far a stretch moves the memory."""
    if met:
        return ("The paper's blocks are reproduced: the memory jumps at facts and, by the drift check, stays put "
                "between them.")
    step = drift["path_over_jump"]["estimate"] / drift["stretch"]
    return ("The paper's blocks are only half reproduced: the memory jumps at facts, but by the drift check it "
            f"does not stay put between them. Each distractor segment moves it about {step:.2f} of a fact's jump, "
            f"and over a stretch {drift_shape(drift)}, ending {drift['ratio']['estimate']:.2f} of a jump from where "
            "it started. So the memory can tell facts from distractors segment by segment and still drift.")


def needed_segments(enc, attention_segments: str) -> set[int]:
    if attention_segments == "none":
        return set()
    return set(enc.fact_segments) | {enc.n_segments - 1}


def _batches(encoded, batch_size: int, attention_segments: str, max_maps: int):
    """(indices, segments to capture) per forward pass: one token length per batch, and no more than
    `max_maps` (sample, segment) attention maps per pass (a pass captures its segments for every row)."""
    for idx in length_groups(encoded):
        current: list[int] = []
        wanted: set[int] = set()
        for i in idx:
            need = wanted | needed_segments(encoded[i], attention_segments)
            if current and (len(current) >= batch_size or (len(current) + 1) * len(need) > max_maps):
                yield current, wanted
                current, need = [], needed_segments(encoded[i], attention_segments)
            current.append(i)
            wanted = need
        if current:
            yield current, wanted


def probe_one(sample, enc, memory_states: np.ndarray, attentions: dict[int, np.ndarray],
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
        "fact_char_spans": [list(span) for span in (sample.fact_char_spans or find_facts(sample.input))],
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
        valid = enc.attention_mask[s * L:(s + 1) * L]  # (L,), or fewer: a left-aligned input's last segment
        fact = fact_mask((t0, t1), s, L)[:len(valid)]  # the fact's tokens inside its segment (a cut fact: its tail)
        if not (fact & valid).any():
            continue
        entry["write_attention"].append({
            "fact": k, "segment": s, "token_share": token_share(fact, valid),
            "share": write_attention_share(attentions[s], layout.sized(len(valid)), fact, valid)})
    last = enc.n_segments - 1
    if last in attentions:
        queries = [t - last * L for t in range(q0, q1) if t >= last * L]  # question tokens; the last one is
        valid = enc.attention_mask[last * L:]  # where the model reads its answer
        here = layout.sized(len(valid))
        entry["read_attention"] = {
            "segment": last, "query_positions": queries,
            "memory_baseline": read_memory_baseline(here, queries, valid),
            "memory_share": read_attention_share(attentions[last], here, queries, valid)}
        # The control: the same segment's prose positions, which have no question to answer. A memory that
        # every position attends to alike (a sink) lifts them as much as the question.
        asked = set(queries)
        prose = [t for t in range(len(valid)) if valid[t] and t not in asked]
        if prose:
            entry["read_attention"].update(
                prose_positions=prose, prose_baseline=read_memory_baseline(here, prose, valid),
                prose_share=read_attention_share(attentions[last], here, prose, valid))
    return entry

