"""Reading a results file for the chapter "What it costs": the schema check, the issue's targets and the
tables the chapter prints.

    from rmt_lib.cost import load_results, targets
    results = load_results()  # data/results/cost.json, written by `python benchmarks/cost.py`
"""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmt_lib import paths

SCHEMA = "rmt-cost/1"  # written by `run_cost`, checked by `load_results`

TARGETS = {  # name: (what, (long, short) sizes it is defined at, limit)
    "rmt_memory_flat": ("RMT peak memory (process RSS) at 4,096 segments / at 32", (4096, 32), 1.1),
    "rmt_time_linear": ("RMT time at 256 segments / at 32", (256, 32), 9.0),
    "million_token_wall_s": ("seconds of `python -m rmt_lib evaluate --input` on a 1M-token sample", (1_000_000,), 60.0),
    "million_token_memory": ("peak RSS of that `evaluate` / of one on a short sample", (1_000_000,), 1.1),
}


def _row_at(rows: Sequence[dict], n: int) -> dict | None:
    return next((r for r in rows if r["n_segments"] == n), None)


def targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's ratios, from one run: value, limit, met.

    Where a run did not measure the sizes a target is defined at (a quick run), the value is computed at
    the sizes it did measure (`sizes` says which: the longest RMT length against 32 segments, the long
    evaluate sample against the short one) and `met` is None: not a verdict.
    """
    rmt = results.get("inference", {}).get("rmt", [])
    out: dict[str, dict[str, Any]] = {}

    def ratio(n_hi: int, n_lo: int, key: str) -> dict[str, Any]:
        hi, lo = _row_at(rmt, n_hi) or (rmt[-1] if rmt else None), _row_at(rmt, n_lo)
        if not (hi and lo and lo[key]):
            return dict(value=None, sizes=None)
        return dict(value=hi[key] / lo[key], sizes=[hi["n_segments"], lo["n_segments"]])

    out["rmt_memory_flat"] = ratio(4096, 32, "peak_mb")
    out["rmt_memory_flat"]["working_memory_ratio"] = ratio(4096, 32, "working_mb")["value"]
    out["rmt_time_linear"] = ratio(256, 32, "time_s")
    ev = results.get("evaluate", {})
    long, short = ev.get("long"), ev.get("short")
    if long and short and long["returncode"] == 0 and short["returncode"] == 0:
        out["million_token_wall_s"] = dict(value=long["wall_s"], sizes=[long["n_tokens"]])
        out["million_token_memory"] = dict(value=long["peak_rss_mb"] / short["peak_rss_mb"],
                                           sizes=[long["n_tokens"], short["n_tokens"]])
    else:
        out["million_token_wall_s"] = dict(value=None, sizes=None)
        out["million_token_memory"] = dict(value=None, sizes=None)
    for name, (what, sizes, limit) in TARGETS.items():
        t = out[name]
        at_sizes = t["sizes"] is not None and list(sizes) == t["sizes"][:len(sizes)]
        t.update(what=what, limit=limit, at_target_sizes=at_sizes,
                 met=(t["value"] <= limit) if at_sizes and t["value"] is not None else None)
    return out


def load_results(path: str | Path | None = None) -> dict[str, Any]:
    """Read a results file written by `benchmarks/cost.py` (default data/results/cost.json), checking its schema."""
    path = Path(path) if path is not None else paths.RESULTS_DIR / "cost.json"
    if not path.is_file():
        raise FileNotFoundError(f"no cost results at {path}: run `python benchmarks/cost.py --output {path}`")
    results = json.loads(path.read_text())
    if results.get("schema") != SCHEMA:
        raise ValueError(f"{path} has schema {results.get('schema')!r}, expected {SCHEMA!r}: re-run benchmarks/cost.py")
    missing = [k for k in ("machine", "inference", "training", "evaluate", "targets") if k not in results]
    if missing:
        raise ValueError(f"{path} lacks {missing}: it was not written by a complete run of benchmarks/cost.py")
    return results


def compile_breakeven(results: dict[str, Any]) -> dict[str, float] | None:
    """What `torch.compile` buys in training: speed-up over the eager variant at the same shape and threads,
    the compilation time (its warm-up steps less the eager ones) and the steps that repay it.
    None when the run has no successful compiled variant with an eager twin."""
    runs = [r for r in results["training"]["runs"] if "error" not in r]
    for c in (r for r in runs if r["compile"]):
        twin = next((r for r in runs if not r["compile"] and (r["n_segments"], r["batch_size"], r["threads"])
                     == (c["n_segments"], c["batch_size"], c["threads"])), None)
        if twin is None:
            continue
        compile_s = sum(c["warmup_s"]) - sum(twin["warmup_s"])
        saved = twin["step_s"] - c["step_s"]
        return dict(speedup=twin["step_s"] / c["step_s"], compile_s=compile_s,
                    breakeven_steps=compile_s / saved if saved > 0 else math.inf)
    return None


def compile_sentence(results: dict[str, Any]) -> str:
    """What `torch.compile` bought this run (`compile_breakeven`), as the end of a sentence for the prose."""
    compiled = compile_breakeven(results)
    if compiled is None:
        return "this run measured no compiled variant beside its eager twin."
    if compiled["speedup"] <= 1:
        return (f"here it made the step no faster ({compiled['speedup']:.2f} times the eager step's speed), so its "
                "compilation never pays.")
    return (f"it made the step {compiled['speedup']:.2f} times faster, after {compiled['compile_s']:.0f} seconds of "
            "compilation (its warm-up less the eager variant's), which the faster steps repay after "
            f"{compiled['breakeven_steps']:.0f} steps.")


def inference_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per length: RMT and full-attention time and memory side by side (None where not measured)."""
    inf = results["inference"]
    lengths = sorted({r["n_segments"] for key in ("rmt", "full_attention", "skipped") for r in inf[key]})
    rows = []
    for n in lengths:
        rmt, full = _row_at(inf["rmt"], n), _row_at(inf["full_attention"], n)
        skipped = _row_at(inf["skipped"], n)
        rows.append(dict(n_segments=n, rmt_time_s=rmt and rmt["time_s"], rmt_peak_mb=rmt and rmt["peak_mb"],
                         rmt_working_mb=rmt and rmt["working_mb"], full_time_s=full and full["time_s"],
                         full_peak_mb=full and full["peak_mb"], full_working_mb=full and full["working_mb"],
                         full_predicted_peak_mb=skipped and skipped["predicted_peak_mb"]))
    return rows


# Training throughput beside the reference RMT code (benchmarks/training_reference.py): the book's thresholds.
REFERENCE_SPEEDUP_TARGET = 4.0  # our trainer's tokens/s over the reference's, same config, 32 segments, batch 32
MFU_TARGET = 0.40  # model FLOPs utilisation of our step at that shape


def load_training_reference(path: str | Path | None = None):
    """The committed side-by-side training measurement (default data/results/training_reference.json), or a
    `paths.Missing` that names the command writing it."""
    rel = "data/results/training_reference.json"
    path = Path(path) if path is not None else paths.RESULTS_DIR / "training_reference.json"
    if not path.is_file():
        return paths.Missing("the training benchmark beside the reference RMT code", rel,
                             f"python benchmarks/training_reference.py --reference PATH/language_modeling.py "
                             f"--compile --output {rel}")
    result = json.loads(path.read_text())
    if "results" not in result or "rmt_lib" not in result["results"]:
        raise ValueError(f"{path} was not written by benchmarks/training_reference.py: it has no results.rmt_lib")
    return result


def speedup_quartiles(rounds: list[float]) -> tuple[float, float]:
    """The lower and upper quartile of the round-by-round ratios to the reference (one round: it, twice)."""
    if len(rounds) < 2:
        return rounds[0], rounds[0]
    low, _, high = statistics.quantiles(rounds, n=4, method="inclusive")
    return low, high


def training_reference_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measured trainer: tokens/s, MFU, the ratio to the reference (None when it was not
    measured) with the quartiles of its round-by-round ratios (None in results written before they were
    kept), and the compile time where there was one."""
    speedup, rounds = result.get("speedup", {}), result.get("speedup_rounds", {})
    return [{"name": name, "tokens_per_s": r["tokens_per_s"], "mfu": r["mfu"], "speedup": speedup.get(name),
             "speedup_quartiles": speedup_quartiles(rounds[name]) if name in rounds else None,
             "compile_s": r.get("compile_s"), "steps_to_repay": r.get("steps_to_repay")}
            for name, r in result["results"].items()]


def training_reference_verdict(result: dict[str, Any]) -> str:
    """One sentence: the fastest of our trainers against REFERENCE_SPEEDUP_TARGET and MFU_TARGET."""
    best = max((r for r in training_reference_rows(result) if r["name"] != "reference"),
               key=lambda r: r["tokens_per_s"])
    if best["speedup"] is None:
        against = "unmeasured against the reference"
    else:
        met = "meeting" if best["speedup"] >= REFERENCE_SPEEDUP_TARGET else "missing"
        spread = "" if best["speedup_quartiles"] is None else \
            " (quartiles of the round-by-round ratio: {:.2f}, {:.2f})".format(*best["speedup_quartiles"])
        against = f"{best['speedup']:.2f} times the reference's throughput{spread}, {met} the threshold"
    mfu_met = "meeting" if best["mfu"] >= MFU_TARGET else "missing"
    return f"the fastest of ours ({best['name']}) is {against}, at an MFU of {best['mfu']:.0%}, {mfu_met} its threshold"
