"""Encoded samples -> model-ready tensors, grouped so that every batch has one length.

Samples of different lengths never share a batch: padding a short sample with whole segments would let
the memory run over empty segments and change its answer.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rmt_lib.data.grammar import ACTORS, LOCATIONS, QA1_FACT_COUNTS, parse_fact
from rmt_lib.data.encoding import EncodedSample
from rmt_lib.data.samples import Sample

NOT_SEEN = len(LOCATIONS)  # auxiliary label of an actor no fact has mentioned yet


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, n_segments * segment_size) int64
    attention_mask: torch.Tensor | None  # (B, T) bool, None when nothing is padded
    labels: torch.Tensor | None  # (B,) index into LOCATIONS; None for a piece of inputs without their question
    aux_labels: torch.Tensor  # (B, n_segments, len(ACTORS)) every actor's location at the end of each segment

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.labels), move(self.aux_labels))

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def facts_that_fit(n_segments: int, segment_size: int) -> tuple[int, ...]:
    """bAbI's fact counts (2..10) that leave most of an input of this length to background prose."""
    budget = 0.6 * n_segments * segment_size  # a fact is about 7 tokens, the question 4
    fit = tuple(k for k in QA1_FACT_COUNTS if 8 * k + 6 <= budget)
    return fit or QA1_FACT_COUNTS[:1]


def aux_labels(sample: Sample, encoded: EncodedSample) -> np.ndarray:
    """(n_segments, len(ACTORS)): every actor's location once each segment has been read, NOT_SEEN before
    any fact names the actor (the auxiliary training target; the last row is the state at the question).

    A fact counts from the segment holding its last token: a fact cut by a segment boundary is complete
    only after the second segment.
    """
    labels = np.full((encoded.n_segments, len(ACTORS)), NOT_SEEN, dtype=np.int64)
    segments = encoded.fact_segments  # found with the real segment size (a left-aligned last segment is short)
    if len(segments) != len(sample.facts):  # a user's sample that lists no facts: only the final state is known
        segments = (encoded.n_segments - 1,) * len(sample.facts)
    for fact, segment in zip(sample.facts, segments):
        actor, _, location = parse_fact(fact)
        labels[segment:, ACTORS.index(actor)] = LOCATIONS.index(location)
    return labels


def collate(samples: Sequence[Sample], encoded: Sequence[EncodedSample]) -> Batch:
    lengths = {len(e.input_ids) for e in encoded}
    if len(lengths) != 1:
        raise ValueError(f"a batch needs samples of one length, got token lengths {sorted(lengths)}")
    mask = _stack([e.attention_mask for e in encoded])  # (B, T)
    return Batch(
        input_ids=torch.from_numpy(_stack([e.input_ids for e in encoded])),
        attention_mask=None if mask.all() else torch.from_numpy(mask),
        labels=torch.tensor([e.target_index for e in encoded]),
        aux_labels=torch.from_numpy(np.stack([aux_labels(s, e) for s, e in zip(samples, encoded)])),
    )


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(B, T) from B arrays (T,); a batch of one is a view of its array, not a copy (a million-token sample's
    ids are 8 MB), as the probes pass a single sample."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def batches_by_length(samples: Sequence[Sample], encoded: Sequence[EncodedSample],
                      batch_size: int) -> Iterator[tuple[list[int], Batch]]:
    """Yield (indices into `samples`, batch), each batch holding samples of one token length.

    Lengths are visited in increasing order; the indices let callers put results back in input order.
    """
    for idx in length_groups(encoded):
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            yield chunk, collate([samples[i] for i in chunk], [encoded[i] for i in chunk])


def length_groups(encoded: Sequence[EncodedSample]) -> list[list[int]]:
    """Indices of the samples of each token length, shortest length first (a batch never mixes lengths)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, e in enumerate(encoded):
        groups[len(e.input_ids)].append(i)
    return [groups[length] for length in sorted(groups)]
