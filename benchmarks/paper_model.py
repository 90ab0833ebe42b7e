#!/usr/bin/env python
"""What the paper's RMT costs here: one forward pass of a GPT-2-sized RMT (random weights, the shape of
`booydar/rmt-gpt2-babilong-qa1`: GPT-2 small, 16 memory tokens, 512-token segments) over 32 segments.

    python benchmarks/paper_model.py --output data/results/paper_model.json      # ~1-2 minutes on 2 cores
    python benchmarks/paper_model.py --quick --output .cache/paper-model-quick.json

The weights do not change the time, so nothing is downloaded: the model is built from its shape. The pass
runs as `evaluate` runs one sample: `inference_mode`, the memory carried segment to segment. The time is the
median of `--repeats` passes after one warm-up segment; the reproducibility chapter quotes it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from rmt_lib.runtime import describe_machine
from rmt_lib.jsonio import check_output_path, write_json
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig
from rmt_lib.paper import HIDDEN_SIZE, NUM_LAYERS, NUM_MEMORY_TOKENS, SEGMENT_SIZE
from rmt_lib.runtime import seed_everything, torch_threads

GPT2_SMALL = dict(vocab_size=50257, hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS, num_heads=12)  # GPT-2 small
QUICK = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=4)


def paper_shaped_model(quick: bool) -> RecurrentMemoryTransformer:
    shape = QUICK if quick else GPT2_SMALL
    config = RMTConfig(backbone="gpt2", segment_size=SEGMENT_SIZE, num_memory_tokens=NUM_MEMORY_TOKENS,
                       segment_alignment="left", max_positions=1024, num_aux_actors=0, **shape)
    return RecurrentMemoryTransformer(config).eval()


def time_forward(model: RecurrentMemoryTransformer, n_segments: int, repeats: int) -> list[float]:
    ids = torch.randint(2, model.config.vocab_size, (1, n_segments * model.config.segment_size))
    with torch.inference_mode():
        model(ids[:, :model.config.segment_size])  # warm-up: one segment
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids)
            seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", required=True, type=Path, help="the results JSON")
    p.add_argument("--segments", type=int, default=32, help="segments per input (default 32: the paper's 16k)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (default 3; the median counts)")
    p.add_argument("--quick", action="store_true", help="a toy-sized model: checks the script, measures nothing")
    args = p.parse_args(argv)
    try:
        check_output_path(args.output)
        if min(args.segments, args.threads, args.repeats) < 1:
            raise ValueError("--segments, --threads and --repeats must be at least 1")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seed_everything(0)
    model = paper_shaped_model(args.quick)
    with torch_threads(args.threads):
        seconds = time_forward(model, args.segments, args.repeats)
    cfg = model.config
    result = {
        "model": {"backbone": cfg.backbone, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
                  "num_heads": cfg.num_heads, "vocab_size": cfg.vocab_size, "parameters": model.num_parameters(),
                  "num_memory_tokens": cfg.num_memory_tokens, "segment_size": cfg.segment_size},
        "quick": args.quick, "n_segments": args.segments, "tokens": args.segments * cfg.segment_size,
        "threads": args.threads, "seconds": [round(s, 3) for s in seconds],
        "median_seconds": round(statistics.median(seconds), 3),
        "machine": describe_machine("cpu", args.threads),
    }
    write_json(args.output, result, indent=2)
    print(f"{args.segments} segments x {cfg.segment_size} tokens, {model.num_parameters() / 1e6:.0f}M parameters, "
          f"{args.threads} threads: {result['median_seconds']:.1f} s (median of {args.repeats}) -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
