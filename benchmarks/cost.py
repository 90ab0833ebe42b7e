"""What the RMT costs on this machine, in one run: time and memory against length (streamed RMT vs. full
attention), training throughput against the machine's matmul peak, and a million-token `evaluate`.

    python benchmarks/cost.py --output data/results/cost.json             # full run, ~10 min on 2 idle cores
    python benchmarks/cost.py --quick --output .cache/cost-quick.json     # every measurement at toy sizes

Run it on an otherwise idle machine: every other process on the cores shows up in the timings (the JSON
records the load average before and after). The measuring code is the package `rmt_lib.cost`
(`rmt_lib.cost.sweep.run_cost` runs it all); see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmt_lib.cost import LENGTHS, CostConfig, run_cost
from rmt_lib.jsonio import write_json
from rmt_lib.runtime import DEFAULT_THREADS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="where the results JSON goes (e.g. data/results/cost.json)")
    p.add_argument("--quick", action="store_true", help="toy sizes: every measurement in well under a minute")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model, data/model)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads in every measured process (default: $RMT_NUM_THREADS, else 2; now {DEFAULT_THREADS})")
    p.add_argument("--max-segments", type=int, default=None,
                   help=f"longest input in segments (default {LENGTHS[-1]}; powers of two from 1)")
    p.add_argument("--memory-cap-mb", type=float, default=None,
                   help="full attention stops before a length whose predicted peak passes this (default 8192)")
    p.add_argument("--eval-tokens", type=int, default=None, help="length of the long evaluate sample (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per inference point (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> CostConfig:
    changes: dict = dict(checkpoint=args.checkpoint, device=args.device, threads=args.threads)
    if args.max_segments is not None:
        if args.max_segments < 1:
            raise ValueError(f"--max-segments must be >= 1, got {args.max_segments}")
        lengths = tuple(2**k for k in range(args.max_segments.bit_length()))
        changes.update(rmt_segments=lengths, full_segments=lengths)
    for name, value in (("memory_cap_mb", args.memory_cap_mb), ("eval_tokens", args.eval_tokens),
                        ("repeats", args.repeats)):
        if value is not None:
            changes[name] = value
    return CostConfig.quick(**changes) if args.quick else CostConfig(**changes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
        results = run_cost(config, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results["command"] = " ".join(["python", "benchmarks/cost.py", *(argv if argv is not None else sys.argv[1:])])
    path = write_json(Path(args.output), results)  # atomic: a failed run leaves no half file
    print(f"wrote {path} ({results['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
