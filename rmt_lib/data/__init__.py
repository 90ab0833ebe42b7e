"""BABILong QA1 data: bAbI-grammar facts hidden in public-domain prose, the project tokenizer, sample I/O.

    samples = generate_samples("qa1", n_samples=8, n_segments=4, seed=0)
    encoded = encode_sample(samples[0], load_tokenizer(), segment_size=32)
"""
from rmt_lib.data.background import Background, load_background, split_sentences
from rmt_lib.data.grammar import ACTORS, LOCATIONS, VERBS, find_facts, world_state
from rmt_lib.data.io import read_babi, read_jsonl, write_jsonl
from rmt_lib.data.samples import EncodedSample, Sample, encode_sample, generate_samples
from rmt_lib.data.tokenizer import LOCATION_TOKEN_IDS, Tokenizer, load_tokenizer

__all__ = [
    "ACTORS",
    "LOCATIONS",
    "LOCATION_TOKEN_IDS",
    "VERBS",
    "Background",
    "EncodedSample",
    "Sample",
    "Tokenizer",
    "encode_sample",
    "find_facts",
    "generate_samples",
    "load_background",
    "load_tokenizer",
    "read_babi",
    "read_jsonl",
    "split_sentences",
    "world_state",
    "write_jsonl",
]
