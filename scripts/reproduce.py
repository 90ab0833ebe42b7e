#!/usr/bin/env python
"""Reproduce the committed results, in order, and time each part: the README's training and evaluation
commands, then `make book BUDGET=full` (the steps, and the two results they leave out, are in
`rmt_lib.reproduction`).

    make reproduce                                        # setup, then this script (data/results/reproduction.json)
    python scripts/reproduce.py --list                    # the steps and their commands, nothing run
    python scripts/reproduce.py --output data/results/reproduction.json
    python scripts/reproduce.py --only train book --output .cache/reproduction.json
    python scripts/reproduce.py --skip backbones backbones_lm_head --output .cache/reproduction.json
    python scripts/reproduce.py --resume --output data/results/reproduction.json   # after a failed step, fixed

Each step's output goes to the terminal, progress bars included. The results file (each step's command,
wall time and exit status, the total, the machine) is rewritten after every step, so an interrupted
reproduction keeps the times of what it finished. A failing step stops the reproduction: the file records
it, and the script exits with status 1 (130 when interrupted). Bad arguments, or what would stop a step
hours in (a run already in runs/default, the bAbI file absent, no `make`): exit status 2, nothing run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmt_lib.jsonio import check_output_path
from rmt_lib.reproduction import NAMES, check_steps, finished_steps, run_steps, select_steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default=None, help="results JSON (each step's time; required unless --list)")
    p.add_argument("--only", nargs="+", metavar="STEP", help=f"run only these steps ({', '.join(NAMES)})")
    p.add_argument("--skip", nargs="+", metavar="STEP", help="run every step but these")
    p.add_argument("--list", action="store_true", help="print the steps and their commands, run nothing")
    p.add_argument("--resume", action="store_true", help="continue the record in --output: keep the steps it "
                   "holds that succeeded, run the rest (after a failed or interrupted step was dealt with)")
    args = p.parse_args(argv)
    try:
        steps = select_steps(args.only, args.skip)
        if not steps:
            raise ValueError("--only and --skip leave no step to run")
        if args.list:
            for step in steps:
                print(f"{step.name:>20}  {step.command}")
            return 0
        if args.output is None:
            raise ValueError("--output is required: the results JSON that records each step's time")
        output = check_output_path(Path(args.output).absolute())
        done = finished_steps(output) if args.resume else set()
        check_steps(tuple(s for s in steps if s.name not in done))
        return run_steps(steps, output, resume=args.resume)
    except (ValueError, OSError) as err:  # OSError: an output folder that cannot be written, found at once
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
