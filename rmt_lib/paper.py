"""The paper's constants and published numbers, quoted once, with their source. Inputs, never results.

Sources:
- BABILong: Kuratov et al., 2024, "BABILong: Testing the Limits of LLMs with Long Context
  Reasoning-in-a-Haystack", Appendix H ("Recurrent Memory Transformer analysis", Figure 8) for the
  model and the Figure 8 lengths; Table 4 for the QA1 accuracies by input length.
"""
from __future__ import annotations

from types import MappingProxyType

# The analysed RMT (Appendix H): GPT-2 small wrapped with 16 memory tokens, 512-token segments, trained
# with a curriculum up to 32 segments (16k tokens).
BACKBONE = "GPT-2"
HIDDEN_SIZE = 768
NUM_LAYERS = 12
SEGMENT_SIZE = 512
NUM_MEMORY_TOKENS = 16
TRAINED_LENGTH = 32  # segments: the curriculum ends at the "16k" input

# Figure 8's inputs, in segments: (a) "16k" and (b) "128k" tokens at 512-token segments. We keep the
# number of segments (the number of memory updates) and shrink the segment.
FIGURE8_SHORT = 16 * 1024 // SEGMENT_SIZE  # 32
FIGURE8_LONG = 128 * 1024 // SEGMENT_SIZE  # 256
LENGTH_NAMES = MappingProxyType({FIGURE8_SHORT: "16k", FIGURE8_LONG: "128k"})  # segments -> the paper's name

# BABILong Table 4, QA1 accuracy (%) by input length: RMT (GPT-2, trained to 32 segments of 512 tokens)
# and ARMT, as published. Lengths are the table's column names ("16k" = 16 x 1024 tokens, "1M" = 1024k).
TABLE4_LENGTHS = MappingProxyType({"16k": 16 * 1024, "64k": 64 * 1024, "128k": 128 * 1024, "512k": 512 * 1024,
                                   "1M": 1024**2, "10M": 10 * 1024**2})
TABLE4_QA1 = MappingProxyType({
    "RMT": MappingProxyType({"16k": 100, "64k": 96, "128k": 94, "512k": 87, "1M": 84, "10M": 66}),
    "ARMT": MappingProxyType({"16k": 100, "64k": 100, "128k": 100, "512k": 99, "1M": 99, "10M": 89}),
})


def segments_for(tokens: int) -> int:
    """The paper's number of segments for an input of `tokens` tokens (the length our samples copy)."""
    return max(1, round(tokens / SEGMENT_SIZE))
