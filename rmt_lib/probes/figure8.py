"""Everything Figure 8's four panels need: the displayed samples (captured in full) and the heads for panels
(c) and (d), chosen on other, held-out samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmt_lib.data import generate_samples
from rmt_lib.paper import FIGURE8_LONG, FIGURE8_SHORT
from rmt_lib.probes.attention import choose_head
from rmt_lib.probes.capture import SampleCapture, capture_sample
from rmt_lib.probes.heldout import held_out_probe


@dataclass(frozen=True, eq=False)
class Figure8Inputs:
    """The displayed samples' captures and the heads chosen on held-out samples (see `figure8_inputs`)."""

    short: SampleCapture  # panel (a), (c), (d): one two-fact sample at FIGURE8_SHORT segments
    long: SampleCapture  # panel (b): one two-fact sample at FIGURE8_LONG segments
    short_sample: object  # the rmt_lib.data.Sample behind `short` (its text, question, target)
    long_sample: object
    write_head: tuple[int, int]  # (layer, head) with the largest mean write share on fact tokens, held-out
    read_head: tuple[int, int]  # (layer, head) with the largest mean memory share of the question rows, held-out
    heldout: dict  # the held-out probe result (samples + summary)

    def describe(self) -> dict:
        """A JSON-ready record of what was shown and why."""
        def sample_info(capture: SampleCapture, sample) -> dict:
            e = capture.entry
            return {"n_segments": e["n_segments"], "fact_segments": e["fact_segments"], "facts": list(sample.facts),
                    "question": sample.question, "target": sample.target, "prediction": e["prediction"]}
        return {"short": sample_info(self.short, self.short_sample), "long": sample_info(self.long, self.long_sample),
                "write_head": list(self.write_head), "read_head": list(self.read_head),
                "head_rule": "argmax over (layer, head) of the mean share over the held-out samples "
                             "(write: on fact tokens; read: on read-memory keys); ties to the lowest layer, then head",
                "n_heldout": len(self.heldout["samples"])}


def figure8_inputs(model, tokenizer, *, seed: int = 0, n_heldout: int = 64, split: str = "test",
                   background=None, n_candidates: int = 16, progress: bool = False,
                   cache: bool = True) -> Figure8Inputs:
    """Generate, probe and capture everything the four panels show, reproducibly from `seed`.

    The displayed samples are two-fact samples drawn with `seed` (the first of `n_candidates` whose
    facts lie in different, non-question segments). The heads for (c) and (d) are chosen on
    `n_heldout` *other* two-fact samples (seed + 1) at FIGURE8_SHORT segments, by `choose_head`.
    `split` and `background` choose the prose (rmt_lib.data.generate_samples). With `cache`, the held-out
    probe is read from (or written to) the disk cache of `held_out_probe`, which gives the same numbers.
    """
    L = model.config.segment_size
    common = dict(task="qa1", n_facts=2, split=split, background=background, segment_size=L, tokenizer=tokenizer)

    def pick(n_segments: int) -> object:
        candidates = generate_samples(n_samples=n_candidates, n_segments=n_segments, seed=seed, **common)
        good = [s for s in candidates if len(set(s.fact_segments)) == 2 and max(s.fact_segments) < n_segments - 1]
        return good[0] if good else candidates[0]

    short_sample, long_sample = pick(FIGURE8_SHORT), pick(FIGURE8_LONG)
    # Several chapters choose the same heads: their held-out probe comes from the shared disk cache.
    heldout = held_out_probe(model, tokenizer, n_segments=FIGURE8_SHORT, n_samples=n_heldout, seed=seed + 1,
                             n_facts=2, split=split, background=background, cache=cache, progress=progress).result
    write = [w["share"] for e in heldout["samples"] for w in e["write_attention"]]
    read = [e["read_attention"]["memory_share"] for e in heldout["samples"] if e["read_attention"]]
    return Figure8Inputs(
        short=capture_sample(model, tokenizer, short_sample), long=capture_sample(model, tokenizer, long_sample),
        short_sample=short_sample, long_sample=long_sample,
        write_head=choose_head(np.stack(write)), read_head=choose_head(np.stack(read)), heldout=heldout)
