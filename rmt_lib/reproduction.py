"""The whole reproduction: the README's training and evaluation commands, then `make book BUDGET=full`, as
steps that `scripts/reproduce.py` runs and times, and its record read back for the book.

A step is one README command, run from the repository root with this interpreter as `python`. The record
(`data/results/reproduction.json`) holds each step's command, wall time and exit status, the total and the
machine; it is rewritten after every step, so an interrupted reproduction keeps what it finished.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rmt_lib import paths
from rmt_lib.display.tables import markdown_table
from rmt_lib.jsonio import write_json
from rmt_lib.paths import Missing
from rmt_lib.runtime import DEFAULT_THREADS, describe_machine

REPRODUCTION_FILE = paths.RESULTS_DIR / "reproduction.json"
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
# In the README's order. The book comes after the training, whose finished run (runs/default) its training
# chapter reads instead of training the curriculum again (rmt_lib.train.log.FULL_TRAINING_DIR).
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


def select_steps(only: list[str] | None = None, skip: list[str] | None = None) -> tuple[Step, ...]:
    """The steps to run, in the README's order; ValueError naming the steps for an unknown name."""
    for name in (only or []) + (skip or []):
        if name not in NAMES:
            raise ValueError(f"no step {name!r}; the steps are {', '.join(NAMES)}")
    return tuple(s for s in STEPS if (not only or s.name in only) and s.name not in (skip or []))


def run_steps(steps: tuple[Step, ...], output: Path, cwd: Path = paths.REPO_ROOT) -> int:
    """Run `steps` in order from `cwd`, rewriting the record `output` after each; 0, or 1 at the first step
    that fails (the record then ends with it, and `complete` is false)."""
    record: dict[str, Any] = {"machine": describe_machine("cpu", DEFAULT_THREADS),  # the threads each step takes
                              "started": datetime.now().isoformat(timespec="seconds"), "steps": [], "total_s": 0.0,
                              "complete": False}
    for step in steps:
        print(f"\n== {step.name}: {step.command}", flush=True)
        t0 = time.perf_counter()
        returncode = subprocess.run(step.argv, cwd=cwd).returncode
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


def reproduction_record(path: str | Path = REPRODUCTION_FILE) -> dict[str, Any] | Missing:
    """The committed record of the last whole reproduction, or a Missing note that says how to make it."""
    path = Path(path)
    if not path.is_file():
        return Missing("the timed reproduction", paths.relative(path), "make reproduce")
    return json.loads(path.read_text(encoding="utf-8"))


def reproduction_table(record: dict[str, Any]) -> str:
    """Where and when the reproduction ran, then each step's command and wall time, and the total, as Markdown."""
    machine = record["machine"]
    where = (f"Started {record['started']} on {machine['cpu']} (family {machine['cpu_family_model'][0]}, model "
             f"{machine['cpu_family_model'][1]}), {machine['usable_cpus']} cores, torch {machine['torch']} with "
             f"{machine['torch_threads']} threads.\n\n")
    rows = [[f"`{s['name']}`", f"`{s['command']}`", f"{s['seconds'] / 60:,.1f}",
             "ok" if s["returncode"] == 0 else f"failed ({s['returncode']})"] for s in record["steps"]]
    rows.append(["**total**", "", f"**{record['total_s'] / 60:,.1f}**", "complete" if record["complete"] else
                 "incomplete"])
    return where + markdown_table(["step", "command", "minutes", ""], rows)
