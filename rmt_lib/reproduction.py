"""The whole reproduction: the README's training and evaluation commands, then `make book BUDGET=full`, as
steps that `scripts/reproduce.py` runs and times, and its record read back for the book.

A step is one README command, run from the repository root with this interpreter as `python`. The record
(`data/results/reproduction.json`) holds each step's command, wall time and exit status, the total and the
machine; it is rewritten after every step, so an interrupted reproduction keeps what it finished.
"""
from __future__ import annotations

import json
import shlex
import shutil
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
from rmt_lib.runtime import DEFAULT_THREADS, describe_machine, resolve_device
from rmt_lib.train import CHECKPOINT

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
# In the README's order. The book comes last: its training chapter reads the training step's finished run
# (runs/default) instead of training the curriculum again (rmt_lib.train.log.FULL_TRAINING_DIR), and its
# other chapters read, and checksum, what the steps before it wrote. Not made here: data/results/paper_model.json
# (benchmarks/paper_model.py needs the paper's model, a download) and training_reference.json
# (benchmarks/training_reference.py needs the reference RMT code, read from a path the user gives).
STEPS: tuple[Step, ...] = (
    Step("train", "python -m rmt_lib train --config default --output runs/default --model-dir data/model",
         "the default curriculum's run (runs/default) and its model, the shipped one (data/model)"),
    Step("baseline", "python -m rmt_lib train --config baseline --output runs/baseline --model-dir data/baseline",
         "data/baseline"),
    Step("evaluation", f"{_EVALUATE} --segments 1 2 4 8 16 32 64 128 256 --samples 500 "
                       "--output data/results/evaluation.json", "data/results/evaluation.json"),
    Step("evaluation_long", f"{_EVALUATE} --segments 1024 2048 --samples 300 --seed 100 "
                            "--output data/results/evaluation_long.json", "data/results/evaluation_long.json"),
    Step("evaluation_babi", f"{_EVALUATE} --babi {BABI_QA1_TEST} --segments 4 8 16 32 64 128 256 --samples 500 "
                            "--output data/results/evaluation_babi.json", "data/results/evaluation_babi.json"),
    Step("evaluation_babi_long", f"{_EVALUATE} --babi {BABI_QA1_TEST} --segments 1024 2048 --samples 300 --seed 100 "
                                 "--output data/results/evaluation_babi_long.json",
         "data/results/evaluation_babi_long.json"),
    Step("evaluation_baseline", f"{_EVALUATE} --checkpoint data/baseline --segments 1 2 4 8 16 32 64 128 256 "
                                "--samples 500 --output data/results/evaluation_baseline.json",
         "data/results/evaluation_baseline.json"),
    Step("claims", "python -m rmt_lib figures --output runs/figures --claims data/results/figure8_claims.json",
         "data/results/figure8_claims.json (and Figure 8 in runs/figures)"),
    Step("cost", "python benchmarks/cost.py --output data/results/cost.json", "data/results/cost.json"),
    Step("backbones", "python scripts/compare_backbones.py", "data/results/backbones.json"),
    Step("backbones_lm_head", "python scripts/compare_backbones.py --backbones bloom --answer-head lm "
                              "--output data/results/backbones_lm_head.json", "data/results/backbones_lm_head.json"),
    Step("book", "make book BUDGET=full",
         "every chapter of book/, executed in place with the full budgets, and its HTML"),
)
NAMES = tuple(step.name for step in STEPS)


def select_steps(only: list[str] | None = None, skip: list[str] | None = None) -> tuple[Step, ...]:
    """The steps to run, in the README's order; ValueError naming the steps for an unknown name."""
    for name in (only or []) + (skip or []):
        if name not in NAMES:
            raise ValueError(f"no step {name!r}; the steps are {', '.join(NAMES)}")
    return tuple(s for s in STEPS if (not only or s.name in only) and s.name not in (skip or []))


def _option(words: list[str], name: str) -> str | None:
    """The value after option `name` in a command's words, None when it has none."""
    return words[words.index(name) + 1] if name in words[:-1] else None


def check_steps(steps: tuple[Step, ...], cwd: Path = paths.REPO_ROOT) -> None:
    """ValueError, before any step runs, for what would stop one hours in: a training run already in a
    training step's folder (each refuses to overwrite one), the bAbI test file absent, `make` not installed."""
    names = {s.name for s in steps}
    for step in steps:  # every training step refuses to overwrite a run
        words = shlex.split(step.command)
        run = _option(words, "--output")
        if words[1:4] == ["-m", "rmt_lib", "train"] and run and (cwd / run / CHECKPOINT).is_file():
            raise ValueError(f"{run} already holds a training run, which the {step.name} step refuses to overwrite: "
                             f"move it away, or finish it (`python -m rmt_lib train --config {_option(words, '--config')} "
                             f"--output {run} --resume`) and --skip {step.name}")
    if names & {"evaluation_babi", "evaluation_babi_long"} and not (cwd / BABI_QA1_TEST).is_file():
        raise ValueError(f"{BABI_QA1_TEST} is not there (the bAbI QA1 test stories, beside the repository): put it "
                         "there, or --skip evaluation_babi evaluation_babi_long")
    if any(s.argv[0] == "make" for s in steps) and shutil.which("make") is None:
        raise ValueError("`make` is not installed, and the book step runs `make book BUDGET=full`: install it, "
                         "or --skip book")


def run_steps(steps: tuple[Step, ...], output: Path, cwd: Path = paths.REPO_ROOT, resume: bool = False,
              whole: tuple[Step, ...] = STEPS) -> int:
    """Run `steps` in order from `cwd`, rewriting the record `output` before the first and after each; 0, 1
    at the first step that fails (the record ends with it, `complete` false), 130 when interrupted (Ctrl-C:
    the running step finishes its own way, and the record marks it `interrupted`). `resume`: continue the
    record in `output`, keeping the steps it holds that succeeded and running the rest. The record is
    `complete` once every step of `whole` (the reproduction, whatever this call selected) succeeded."""
    record = _resumed(output, steps, whole) if resume else _new_record()
    kept = {s["name"] for s in record["steps"]}
    write_json(output, record)  # an output that cannot be written fails now, not after the training
    for step in (s for s in steps if s.name not in kept):
        print(f"\n== {step.name}: {step.command}", flush=True)
        t0 = time.perf_counter()
        returncode, interrupted = _run(step, cwd)
        seconds = round(time.perf_counter() - t0, 1)
        done = {"name": step.name, "command": step.command, "writes": step.writes, "seconds": seconds,
                "returncode": returncode}
        record["steps"].append(done | {"interrupted": True} if interrupted else done)
        record["total_s"] = round(sum(s["seconds"] for s in record["steps"]), 1)
        record["complete"] = _complete(record, whole)
        write_json(output, record)
        print(f"== {step.name}: {seconds:,.0f} s, exit status {returncode}", flush=True)
        if interrupted or returncode != 0:
            why = "interrupted" if interrupted else f"failed (exit status {returncode})"
            print(f"error: step {step.name!r} {why}; {output} records the steps run so far (--resume continues "
                  "from the first step that did not succeed)", file=sys.stderr)
            return 130 if interrupted else 1
    print(f"\n{len(record['steps'])} steps in {record['total_s'] / 60:,.1f} min -> {output}")
    return 0


def finished_steps(output: Path, steps: tuple[Step, ...] = STEPS) -> set[str]:
    """The steps that the record in `output` holds as succeeded with the command each has in `steps` (none
    when there is no record): what `run_steps(steps, output, resume=True)` will not run again."""
    record = reproduction_record(output)
    return set() if isinstance(record, Missing) else {s["name"] for s in _kept(record["steps"], steps)}


def _kept(done: list[dict[str, Any]], steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    """The recorded steps that a resumption keeps: those that succeeded with the command they have now."""
    current = {s.name: s.command for s in steps}
    return [s for s in done if _succeeded(s) and current.get(s["name"]) == s["command"]]


def _succeeded(step: dict[str, Any]) -> bool:
    return step["returncode"] == 0 and not step.get("interrupted")


def _outcome(step: dict[str, Any]) -> str:
    return "ok" if _succeeded(step) else "interrupted" if step.get("interrupted") else f"failed ({step['returncode']})"


def _complete(record: dict[str, Any], whole: tuple[Step, ...]) -> bool:
    return all(map(_succeeded, record["steps"])) and {s["name"] for s in record["steps"]} >= {s.name for s in whole}


def _new_record() -> dict[str, Any]:
    return {"machine": describe_machine(resolve_device(None).type, DEFAULT_THREADS),  # the threads each step takes
            "started": datetime.now().isoformat(timespec="seconds"), "steps": [], "total_s": 0.0, "complete": False}


def _resumed(output: Path, steps: tuple[Step, ...], whole: tuple[Step, ...]) -> dict[str, Any]:
    """The record in `output` without its failed or interrupted steps, its resumption dated; ValueError when
    there is none, or when it was made on another machine kind (its times would not add up to one run's)."""
    record = reproduction_record(output)
    if isinstance(record, Missing):
        raise ValueError(f"--resume continues the record in {output}, and there is none: run without --resume")
    here = describe_machine(resolve_device(None).type, DEFAULT_THREADS)
    if any(record["machine"].get(k) != here[k] for k in ("cpu", "cpu_family_model", "usable_cpus", "torch")):
        raise ValueError(f"{output} was made on another machine ({record['machine']['cpu']}, "
                         f"{record['machine']['usable_cpus']} cores): start a new record instead of resuming it")
    record["steps"] = _kept(record["steps"], whole)  # in the order they ran, selected this time or not
    if {s.name for s in steps} - {s["name"] for s in record["steps"]}:  # something left to run
        record["resumed"] = [*record.get("resumed", []), datetime.now().isoformat(timespec="seconds")]
    record["total_s"] = round(sum(s["seconds"] for s in record["steps"]), 1)
    record["complete"] = _complete(record, whole)
    return record


def _run(step: Step, cwd: Path) -> tuple[int, bool]:
    """(exit status, interrupted) of one step. Ctrl-C reaches the step too (one process group), so on an
    interrupt it is left to end its own way (training saves its checkpoint) instead of being killed."""
    process = subprocess.Popen(step.argv, cwd=cwd)
    try:
        return process.wait(), False
    except KeyboardInterrupt:
        return process.wait(), True


def reproduction_record(path: str | Path = REPRODUCTION_FILE) -> dict[str, Any] | Missing:
    """The committed record of the last whole reproduction, or a Missing note that says how to make it."""
    path = Path(path)
    if not path.is_file():
        return Missing("the timed reproduction", paths.relative(path), "make reproduce")
    return json.loads(path.read_text(encoding="utf-8"))


def reproduction_table(record: dict[str, Any], steps: tuple[Step, ...] = STEPS) -> str:
    """Where and when the reproduction ran, then each step's command and wall time, and the total, as Markdown,
    and how `steps` (today's) differ from those the record ran."""
    machine = record["machine"]
    when = f"Started {record['started']}" if "started" in record else "Ran"  # the first record has none
    if record.get("resumed"):
        when = f"{when}, resumed {', '.join(record['resumed'])},"
    where = (f"{when} on {machine['cpu']} (family {machine['cpu_family_model'][0]}, model "
             f"{machine['cpu_family_model'][1]}), {machine['usable_cpus']} cores, torch {machine['torch']} with "
             f"{machine['torch_threads']} threads.\n\n")
    rows = [[f"`{s['name']}`", f"`{s['command']}`", f"{s['seconds'] / 60:,.1f}", _outcome(s)] for s in record["steps"]]
    rows.append(["**total**", "", f"**{record['total_s'] / 60:,.1f}**", "complete" if record["complete"] else
                 "incomplete"])
    return where + markdown_table(["step", "command", "minutes", ""], rows) + _since(record, steps)


def _since(record: dict[str, Any], steps: tuple[Step, ...]) -> str:
    """What the reproduction's steps have become since the record was made: steps a complete record lacks
    (an incomplete one has yet to run them), and steps it ran with another command ("" when none)."""
    ran = {s["name"]: s["command"] for s in record["steps"]}
    lacks = [f"`{s.name}`" for s in steps if s.name not in ran] if record["complete"] else []
    changed = [f"`{s.name}`" for s in steps if s.name in ran and ran[s.name] != s.command]
    notes = ([f"it lacks {', '.join(lacks)}"] if lacks else []) + \
        ([f"it ran {', '.join(changed)} with another command"] if changed else [])
    return f"\n\nSince this record, the steps have changed: {'; '.join(notes)}." if notes else ""
