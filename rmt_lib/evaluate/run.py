"""Accuracy of a trained RMT on BABILong QA1 samples, overall and per length, with 95% Wilson intervals."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from tqdm.auto import tqdm

from rmt_lib.data.batching import batches_by_length, facts_that_fit
from rmt_lib.data import LOCATIONS, EncodedSample, Sample, encode_qa1, find_facts, generate_samples
from rmt_lib.data.grammar import QA1_FACT_COUNTS, parse_fact, parse_question
from rmt_lib.model import RecurrentMemoryTransformer
from rmt_lib.runtime import torch_threads
from rmt_lib.stats import wilson_interval

@torch.inference_mode()  # cheaper than no_grad: no version counters on a long stream
def evaluate(model: RecurrentMemoryTransformer, tokenizer, samples: Sequence[Sample], *, batch_size: int = 32,
             progress: bool = True) -> dict[str, Any]:
    """Predict every sample (batched by length, streamed segment by segment) and score the predictions.

    Returns the evaluation JSON: `accuracy`, `samples` in input order (`prediction`, `target`,
    `n_segments`, `correct`) and `by_length` (accuracy, counts and 95% Wilson interval per n_segments).

    A batch of one sample runs on one CPU thread (see `stream_threads`).
    """
    if not samples:
        raise ValueError("no samples to evaluate")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_qa1(samples, tokenizer, model.config.segment_size, **model.config.encoding)
    predictions: list[int] = [-1] * len(samples)
    bar = tqdm(total=len(samples), desc="evaluate", unit="sample", disable=not progress)
    for idx, batch in batches_by_length(samples, encoded, batch_size):
        b = batch.to(device)
        with stream_threads(len(idx), device):
            logits = model(b.input_ids, b.attention_mask).logits  # (B, num_answers)
        for i, p in zip(idx, logits.argmax(-1).tolist()):
            predictions[i] = p
        bar.update(len(idx))
    bar.close()
    rows = [dict(prediction=LOCATIONS[p], target=s.target, n_segments=e.n_segments, correct=LOCATIONS[p] == s.target,
                 **supporting_fact_place(s, e))
            for p, s, e in zip(predictions, samples, encoded)]
    return dict(accuracy=sum(r["correct"] for r in rows) / len(rows), n_samples=len(rows),
                by_length=accuracy_by_length(rows), samples=rows)


def supporting_fact_place(sample: Sample, encoded: EncodedSample) -> dict[str, Any]:
    """Where the answer's fact lies: `supporting_fact_cut` (a segment boundary falls inside it) and
    `segments_from_fact` (segments from the one holding its last token to the question's); None for both
    when no fact in the input names the asked actor."""
    facts = sample.facts or tuple(sample.input[a:b] for a, b in find_facts(sample.input))
    asked = parse_question(sample.question)
    about = [k for k, fact in enumerate(facts) if parse_fact(fact)[0] == asked]
    if not about or len(encoded.fact_token_spans) != len(facts):
        return dict(supporting_fact_cut=None, segments_from_fact=None)
    t0, t1 = encoded.fact_token_spans[about[-1]]
    size = len(encoded.input_ids) // encoded.n_segments
    return dict(supporting_fact_cut=t0 // size != (t1 - 1) // size,
                segments_from_fact=encoded.n_segments - 1 - encoded.fact_segments[about[-1]])


def stream_threads(batch_size: int, device: torch.device) -> AbstractContextManager:
    """The thread setting for streaming a batch: one CPU thread for a lone sample, else unchanged.

    A lone sample's per-segment operations (a few thousand floats each) are too small to share, and a
    second thread's synchronisation costs more than it saves. Measured on one 1M-token sample through the
    CLI, 2 cores: 53.5-61.9 s with one thread, 67.9-70.9 s with two. From 4 samples up, two threads are
    faster (0.58 vs 0.80 ms per sample and segment at batch 4)."""
    return torch_threads(1) if batch_size == 1 and device.type == "cpu" else nullcontext()


def accuracy_by_length(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[int, list[bool]] = defaultdict(list)
    for r in rows:
        groups[r["n_segments"]].append(bool(r["correct"]))
    out = {}
    for n in sorted(groups):
        k, total = sum(groups[n]), len(groups[n])
        lo, hi = wilson_interval(k, total)
        out[str(n)] = dict(accuracy=k / total, correct=k, total=total, ci95=[lo, hi])
    return out


def generate_eval_samples(lengths: Sequence[int], n_samples: int | Sequence[int], *, seed: int = 0,
                          segment_size: int = 32, split: str = "test", n_facts: int | None = None,
                          tokenizer=None, stories: Sequence[Sample] | None = None) -> list[Sample]:
    """Held-out samples (test background by default), `n_samples` per length (or one count per length).

    `n_facts=None` draws bAbI's 2-10 facts where they fit; short inputs, which cannot hold ten facts and
    still be mostly prose, share their samples evenly among the counts that fit (`facts_that_fit`).
    With `stories` (real bAbI QA1 questions, `read_babi_qa1`), every length takes the first `n_samples`
    of them, as BABILong does, placed anew for each length.
    """
    counts = [n_samples] * len(lengths) if isinstance(n_samples, int) else list(n_samples)
    if len(counts) != len(lengths):
        raise ValueError(f"{len(counts)} sample counts for {len(lengths)} lengths")
    samples: list[Sample] = []
    if stories is not None:
        if n_facts is not None:
            raise ValueError("n_facts and stories exclude each other: a real bAbI story brings its own facts")
        for i, (length, count) in enumerate(zip(lengths, counts)):
            samples += generate_samples("qa1", n_samples=count, n_segments=length, segment_size=segment_size,
                                        split=split, seed=seed + 1000 * i, tokenizer=tokenizer, stories=stories)
        return samples
    for i, (length, count) in enumerate(zip(lengths, counts)):
        fits = facts_that_fit(length, segment_size)
        plan = [(n_facts, count)] if n_facts is not None or fits == QA1_FACT_COUNTS else \
            [(k, count // len(fits) + (j < count % len(fits))) for j, k in enumerate(fits)]
        for j, (facts, n) in enumerate(plan):
            if n:
                samples += generate_samples("qa1", n_samples=n, n_segments=length, segment_size=segment_size,
                                            split=split, seed=seed + 1000 * i + j, n_facts=facts, tokenizer=tokenizer)
    return samples

