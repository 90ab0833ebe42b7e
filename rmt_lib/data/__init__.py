"""BABILong QA1 data: bAbI facts hidden in public-domain prose, the project tokenizer, sample I/O, batches.

    samples = generate_samples("qa1", n_samples=8, n_segments=4, seed=0)
    encoded = encode_sample(samples[0], load_tokenizer(), segment_size=32)
"""
from rmt_lib.data.background import Background, load_background, split_sentences
from rmt_lib.data.batching import Batch, batches_by_length, collate, facts_that_fit
from rmt_lib.data.grammar import ACTORS, LOCATIONS, VERBS, find_facts, world_state
from rmt_lib.data.io import read_babi, read_babi_qa1, read_jsonl, write_jsonl
from rmt_lib.data.encoding import EncodedSample, encode_qa1, encode_sample
from rmt_lib.data.samples import Sample, distractor_tokens, generate_samples
from rmt_lib.data.tokenizer import LOCATION_TOKEN_IDS, Tokenizer, load_tokenizer, token_strings

__all__ = [
    "ACTORS",
    "LOCATIONS",
    "LOCATION_TOKEN_IDS",
    "VERBS",
    "Background",
    "Batch",
    "EncodedSample",
    "Sample",
    "Tokenizer",
    "batches_by_length",
    "collate",
    "distractor_tokens",
    "encode_qa1",
    "encode_sample",
    "facts_that_fit",
    "find_facts",
    "generate_samples",
    "load_background",
    "load_tokenizer",
    "read_babi",
    "read_babi_qa1",
    "read_jsonl",
    "split_sentences",
    "token_strings",
    "world_state",
    "write_jsonl",
]
