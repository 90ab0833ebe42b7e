#!/usr/bin/env python
"""Reproduce every committed result, in order, and time each part: the README's training and evaluation
commands, then `make book BUDGET=full`.

    make reproduce                                        # setup, then this script: about two hours on 2 cores
    python scripts/reproduce.py --list                    # the steps and their commands, nothing run
    python scripts/reproduce.py --output data/results/reproduction.json
    python scripts/reproduce.py --only train book --output .cache/reproduction.json
    python scripts/reproduce.py --skip backbones backbones_lm_head --output .cache/reproduction.json

Each step is one of the README's commands, run as a subprocess from the repository root with this
interpreter as `python`; its output goes to the terminal, progress bars included. The results file (each
step's command, wall time and exit status, the total, the machine) is rewritten after every step, so an
interrupted reproduction keeps the times of what it finished. A failing step stops the reproduction: the
file records it, and the script exits with status 1. `make book BUDGET=full` comes after the training
command and reads its finished run (runs/default) instead of training again.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BABI_QA1_TEST = "../shared/babi/qa1_single-supporting-fact_test.txt"


@dataclass(frozen=True)
class Step:
    name: str
    command: str  # as the README gives it: `python` is this interpreter
    writes: str  # what it leaves behind

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.command)
        return [sys.executable, *words[1:]] if words[0] == "python" else words


_EVALUATE = "python -m rmt_lib evaluate"
STEPS: tuple[Step, ...] = (
    Step("train", "python -m rmt_lib train --config default --output runs/default --model-dir data/model",
         "data/model (and the run in runs/default)"),
    Step("baseline", "python -m rmt_lib train --config baseline --output runs/baseline --model-dir data/baseline",
         "data/baseline"),
    Step("evaluation", f"{_EVALUATE} --segments 1 2 4 8 16 32 64 128 256 --samples 500 "
                       "--output data/results/evaluation.json", "data/results/evaluation.json"),
    Step("evaluation_long", f"{_EVALUATE} --segments 1024 2048 --samples 100 --seed 100 "
                            "--output data/results/evaluation_long.json", "data/results/evaluation_long.json"),
    Step("evaluation_babi", f"{_EVALUATE} --babi {BABI_QA1_TEST} --segments 4 8 16 32 64 128 256 --samples 500 "
                            "--output data/results/evaluation_babi.json", "data/results/evaluation_babi.json"),
    Step("evaluation_babi_long", f"{_EVALUATE} --babi {BABI_QA1_TEST} --segments 1024 2048 --samples 100 --seed 100 "
                                 "--output data/results/evaluation_babi_long.json",
         "data/results/evaluation_babi_long.json"),
    Step("evaluation_baseline", f"{_EVALUATE} --checkpoint data/baseline --segments 1 2 4 8 16 32 64 128 256 "
                                "--samples 500 --output data/results/evaluation_baseline.json",
         "data/results/evaluation_baseline.json"),
    Step("claims", "python -m rmt_lib figures --output runs/figures --claims data/results/figure8_claims.json",
         "data/results/figure8_claims.json (and Figure 8 in runs/figures)"),
    Step("cost", "python benchmarks/cost.py --output data/results/cost.json", "data/results/cost.json"),
    Step("book", "make book BUDGET=full", "every chapter of book/, executed with the full budgets, and its HTML"),
    Step("backbones", "python scripts/compare_backbones.py", "data/results/backbones.json"),
    Step("backbones_lm_head", "python scripts/compare_backbones.py --backbones bloom --answer-head lm "
                              "--output data/results/backbones_lm_head.json", "data/results/backbones_lm_head.json"),
)
NAMES = tuple(step.name for step in STEPS)


def select(only: list[str] | None, skip: list[str] | None) -> tuple[Step, ...]:
    """The steps to run, in the README's order; ValueError naming the steps for an unknown name."""
    for name in (only or []) + (skip or []):
        if name not in NAMES:
            raise ValueError(f"no step {name!r}; the steps are {', '.join(NAMES)}")
    return tuple(s for s in STEPS if (not only or s.name in only) and s.name not in (skip or []))


def run(steps: tuple[Step, ...], output: Path) -> int:
    """Run `steps` in order, writing `output` after each; 0, or 1 at the first step that fails."""
    from rmt_lib.jsonio import write_json
    from rmt_lib.runtime import DEFAULT_THREADS, describe_machine

    record = {"machine": describe_machine("cpu", DEFAULT_THREADS),  # the threads each step's torch takes "started": datetime.now().isoformat(timespec="seconds"),
              "steps": [], "total_s": 0.0, "complete": False}
    for step in steps:
        print(f"\n== {step.name}: {step.command}", flush=True)
        t0 = time.perf_counter()
        returncode = subprocess.run(step.argv, cwd=REPO_ROOT).returncode
        seconds = round(time.perf_counter() - t0, 1)
        record["steps"].append({"name": step.name, "command": step.command, "writes": step.writes,
                                "seconds": seconds, "returncode": returncode})
        record["total_s"] = round(sum(s["seconds"] for s in record["steps"]), 1)
        record["complete"] = returncode == 0 and len(record["steps"]) == len(steps)
        write_json(output, record)
        print(f"== {step.name}: {seconds:,.0f} s, exit status {returncode}", flush=True)
        if returncode != 0:
            print(f"error: step {step.name!r} failed (exit status {returncode}); {output} records the steps "
                  "run so far", file=sys.stderr)
            return 1
    print(f"\n{len(steps)} steps in {record['total_s'] / 60:,.1f} min -> {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default=None, help="results JSON (each step's time; required unless --list)")
    p.add_argument("--only", nargs="+", metavar="STEP", help=f"run only these steps ({', '.join(NAMES)})")
    p.add_argument("--skip", nargs="+", metavar="STEP", help="run every step but these")
    p.add_argument("--list", action="store_true", help="print the steps and their commands, run nothing")
    args = p.parse_args(argv)
    try:
        steps = select(args.only, args.skip)
        if not steps:
            raise ValueError("--only and --skip leave no step to run")
        if args.list:
            for step in steps:
                print(f"{step.name:>20}  {step.command}")
            return 0
        if args.output is None:
            raise ValueError("--output is required: the results JSON that records each step's time")
        from rmt_lib.jsonio import check_output_path

        output = check_output_path(Path(args.output).resolve())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run(steps, output)


if __name__ == "__main__":
    sys.exit(main())
