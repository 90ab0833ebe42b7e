"""One sample in full: its probe entry and the attention maps of its fact and question segments, kept for
the single-sample panels (c), (d) and the scrubbers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmt_lib.data import LOCATIONS, encode_sample, token_strings
from rmt_lib.model.capture import run_with_cache
from rmt_lib.probes.attention import AttentionLayout, attention_map, fact_mask
from rmt_lib.probes.run import needed_segments, probe_one


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
        s = segments[fact]
        return s, fact_mask(spans[fact], s, self.layout.segment_size)[:len(self.segment_tokens(s))]

    def layout_of(self, segment: int) -> AttentionLayout:
        return self.layout.sized(len(self.segment_tokens(segment)))

    def write_map(self, fact: int = 0, layer: int | None = None, head: int | None = None):
        """Panel (c): (weights (M, L), token strings (L,), fact mask (L,)) in the fact's segment, for
        one (layer, head) or averaged where layer/head is None."""
        s, mask = self.fact_mask(fact)
        here = self.layout_of(s)
        w = attention_map(self.attentions[s], here.write, here.segment, layer, head)
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


def capture_sample(model, tokenizer, sample) -> SampleCapture:
    """Probe one sample and keep its fact and question segments' attention maps."""
    cfg = model.config
    layout = AttentionLayout(cfg.num_memory_tokens, cfg.segment_size)
    enc = encode_sample(sample, tokenizer, cfg.segment_size, **cfg.encoding)
    out, trace = run_with_cache(model, enc.input_ids[None], enc.attention_mask[None],
                                attention_segments=sorted(needed_segments(enc, "facts_and_question")))
    one = trace.sample(0)
    entry = probe_one(sample, enc, one.memory_states, one.attentions, layout, LOCATIONS[int(out.logits[0].argmax())])
    return SampleCapture(entry, one.attentions, tuple(token_strings(tokenizer, enc.input_ids)), layout)
