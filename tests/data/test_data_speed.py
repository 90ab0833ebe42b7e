"""Speed and memory: the trainer generates a batch every step; 1M-token samples must not balloon."""
from __future__ import annotations

import time
import tracemalloc

import pytest

from rmt_lib.data import encode_sample, generate_samples

from .conftest import HAVE_AUSTEN


def background_kwargs(prose_dir):
    return {"split": "test"} if HAVE_AUSTEN else {"background": prose_dir}


@pytest.mark.slow
def test_thousand_samples_of_32_segments_take_seconds(prose_dir, tokenizer):
    kwargs = background_kwargs(prose_dir)
    generate_samples("qa1", 1, n_segments=4, tokenizer=tokenizer, **kwargs)  # load + tokenize the background once
    start = time.perf_counter()
    samples = generate_samples("qa1", 1000, n_segments=32, seed=1, tokenizer=tokenizer, **kwargs)
    encoded = [encode_sample(s, tokenizer) for s in samples]
    elapsed = time.perf_counter() - start
    assert len(encoded) == 1000 and all(e.input_ids.shape == (1024,) for e in encoded)
    assert elapsed < 20, f"1,000 x 32-segment samples took {elapsed:.1f}s (about 2-3 s expected on 2 cores)"


def test_a_training_batch_is_cheap(prose_dir, tokenizer):
    kwargs = background_kwargs(prose_dir)
    generate_samples("qa1", 1, n_segments=4, tokenizer=tokenizer, **kwargs)
    start = time.perf_counter()
    for s in generate_samples("qa1", 64, n_segments=32, seed=2, tokenizer=tokenizer, **kwargs):
        encode_sample(s, tokenizer)
    assert time.perf_counter() - start < 2.0


@pytest.mark.slow
def test_million_token_sample_is_fast_and_flat(prose_dir, tokenizer):
    kwargs = background_kwargs(prose_dir)
    generate_samples("qa1", 1, n_segments=4, tokenizer=tokenizer, **kwargs)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        (sample,) = generate_samples("qa1", 1, tokens=1_000_000, n_facts=2, seed=3, tokenizer=tokenizer, **kwargs)
        encoded = encode_sample(sample, tokenizer)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert encoded.input_ids.shape == (1_000_000,) and encoded.n_segments == 31_250
    assert elapsed < 30, f"one 1M-token sample took {elapsed:.1f}s (about 1 s expected)"
    # ~3.5 MB of text, 1M int64 ids and a few int64 index arrays: tens of MiB, not the GiB of Python ints.
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
