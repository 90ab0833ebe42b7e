"""What one run measures (`CostConfig`, `TrainVariant`) and the run itself (`run_cost`).

The points of inference and training run in processes of their own (`rmt_lib.cost.points`, through
`run_isolated`); the million-token `evaluate` is the real CLI as a subprocess (`measure_evaluate`).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rmt_lib import paths
from rmt_lib.cost.flops import FLOPS_COUNTING
from rmt_lib.cost.isolation import run_isolated, run_measured
from rmt_lib.cost.points import inference_point, matmul_point, train_point
from rmt_lib.cost.results import SCHEMA, targets
from rmt_lib.runtime import DEFAULT_THREADS, describe_machine

LENGTHS = tuple(2**k for k in range(13))  # 1 ... 4,096 segments
Device = Literal["cpu", "cuda"]


# --- what to measure -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainVariant:
    """One training-throughput measurement: the trainer's step at one setting."""

    name: str
    n_segments: int = 32  # the default curriculum's last stage
    batch_size: int = 32
    threads: int | None = None  # None: CostConfig.threads
    compile: bool = False  # torch.compile the memory cell (one segment's backbone call)

    def __post_init__(self) -> None:
        if not self.name or self.n_segments < 1 or self.batch_size < 1:
            raise ValueError(f"TrainVariant needs a name and positive n_segments/batch_size, got {self}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"TrainVariant.threads must be None or >= 1, got {self.threads}")


DEFAULT_VARIANTS = (
    TrainVariant("default (32 seg, batch 32)"),
    TrainVariant("1 thread", threads=1),
    TrainVariant("batch 8", batch_size=8),
    TrainVariant("batch 64", batch_size=64),
    TrainVariant("torch.compile", compile=True),
    TrainVariant("stage 1 (1 seg, batch 64)", n_segments=1, batch_size=64),
)


@dataclass(frozen=True)
class CostConfig:
    """Everything one measurement run does. Defaults are the full run (about 10 minutes on 2 idle cores)."""

    checkpoint: str | None = None  # model folder; None = the shipped model (data/model)
    device: Device = "cpu"
    threads: int = DEFAULT_THREADS  # torch threads in every measured process ($RMT_NUM_THREADS, else 2)
    rmt_segments: tuple[int, ...] = LENGTHS
    full_segments: tuple[int, ...] = LENGTHS  # tried in order until the predicted peak passes the cap
    memory_cap_mb: float = 8192.0
    batch_size: int = 1  # inference inputs per call: one long document
    repeats: int = 3  # timed calls per inference point (fewer when one call takes longer than point_budget_s)
    point_budget_s: float = 20.0
    # The streamed RMT again at these thread counts, held (evaluate's one-thread rule for a lone sample off):
    # the measurement behind that rule ...
    thread_check: tuple[int, ...] = (1, 2)
    thread_check_segments: int = 256  # ... at this length
    train_variants: tuple[TrainVariant, ...] = DEFAULT_VARIANTS
    train_warmup_steps: int = 1  # untimed (they include torch.compile's compilation, reported apart)
    train_steps: int = 3
    matmul_size: int = 2048  # n of the n x n fp32 matmul that measures the machine's peak
    eval_tokens: int = 1_000_000  # the long sample through `python -m rmt_lib evaluate`
    eval_short_segments: int = 32
    # Each evaluate command runs this often; its wall time is the median. One run of the 1M-token sample
    # varied from 52 to 61 s on this machine, whose speed drifts by a quarter from minute to minute.
    eval_repeats: int = 3
    eval_long_threads: tuple[int, ...] = ()  # the long evaluate again at these thread counts (RMT_NUM_THREADS)
    child_timeout_s: float = 1800.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        for name in ("threads", "batch_size", "repeats", "train_steps", "matmul_size", "eval_tokens",
                     "eval_short_segments", "thread_check_segments", "eval_repeats"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"CostConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("rmt_segments", "full_segments"):
            lengths = tuple(getattr(self, name))
            if any(not isinstance(n, int) or n < 1 for n in lengths) or list(lengths) != sorted(set(lengths)):
                raise ValueError(f"CostConfig.{name} must be increasing positive ints, got {lengths}")
            object.__setattr__(self, name, lengths)
        if self.train_warmup_steps < 0 or self.memory_cap_mb <= 0 or self.point_budget_s <= 0:
            raise ValueError("train_warmup_steps must be >= 0, memory_cap_mb and point_budget_s > 0")
        for name in ("thread_check", "eval_long_threads"):
            counts = tuple(getattr(self, name))
            if any(not isinstance(k, int) or k < 1 for k in counts):
                raise ValueError(f"CostConfig.{name} must hold thread counts >= 1, got {counts}")
            object.__setattr__(self, name, counts)
        object.__setattr__(self, "train_variants", tuple(self.train_variants))

    @classmethod
    def quick(cls, **changes: Any) -> "CostConfig":
        """Every measurement at toy sizes (well under a minute): the smoke test and the chapter's live check."""
        quick = dict(rmt_segments=(1, 32, 256), full_segments=(1, 8, 32), repeats=1, point_budget_s=5.0,
                     train_variants=(TrainVariant("quick (2 seg, batch 4)", n_segments=2, batch_size=4),),
                     train_warmup_steps=1, train_steps=1, matmul_size=256, eval_tokens=2048,
                     eval_short_segments=8, eval_repeats=1, eval_long_threads=(), thread_check=(),
                     child_timeout_s=300.0)
        return cls(**(quick | changes))


# --- the evaluate CLI on a long input --------------------------------------------------------------------


def measure_evaluate(checkpoint: str, *, n_tokens: int | None = None, n_segments: int | None = None,
                     device: str = "cpu", threads: int = DEFAULT_THREADS, seed: int = 0,
                     workdir: str | Path) -> dict[str, Any]:
    """One QA1 sample of this length through `python -m rmt_lib evaluate --input`, measured from outside."""
    from rmt_lib.data import generate_samples, write_jsonl
    from rmt_lib.model import load_model_folder

    # Loaded here only for its config and its own tokenizer, the one the CLI will read the sample with; the
    # measured process is the CLI's, which loads the folder again.
    model, tokenizer = load_model_folder(checkpoint)
    config = model.config
    del model
    samples = generate_samples("qa1", n_samples=1, n_segments=n_segments, tokens=n_tokens, split="test", seed=seed,
                               segment_size=config.segment_size, tokenizer=tokenizer)
    name = f"qa1_{n_tokens or n_segments * config.segment_size}"
    data, out = Path(workdir) / f"{name}.jsonl", Path(workdir) / f"{name}.json"
    write_jsonl(samples, data)
    cmd = [sys.executable, "-m", "rmt_lib", "--device", device, "evaluate", "--checkpoint", str(checkpoint),
           "--input", str(data), "--output", str(out), "--batch-size", "1", "--seed", str(seed)]
    env = os.environ | {"RMT_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    run = run_measured(cmd, env)
    row = dict(n_tokens=n_tokens or n_segments * config.segment_size, input_chars=len(samples[0].input),
               input_file_mb=data.stat().st_size / 2**20, command=_printable(cmd), **run)
    if run["returncode"] == 0:
        result = json.loads(out.read_text())
        row.update(n_segments=result["samples"][0]["n_segments"], prediction=result["samples"][0]["prediction"],
                   target=result["samples"][0]["target"])
    return row


def _printable(cmd: Sequence[str]) -> str:
    root = str(paths.REPO_ROOT) + os.sep
    return " ".join("python" if c == sys.executable else c.replace(root, "") for c in cmd)


# --- the whole run -----------------------------------------------------------------------------------------


def predicted_peak_mb(baseline_mb: float, measured: tuple[int, float], n_tokens: int) -> float:
    """An upper bound on the peak at `n_tokens`, from the working memory measured at a shorter length.

    Working memory that grows at most quadratically with length (any a + bT + cT^2 with non-negative
    coefficients) grows at most by (T'/T)^2 when the length goes from T to T'.
    """
    tokens, working_mb = measured
    return baseline_mb + working_mb * (n_tokens / tokens) ** 2


Echo = Callable[[str], None]


def run_cost(config: CostConfig, *, progress: bool = True, echo: Echo | None = print) -> dict[str, Any]:
    """Measure everything `config` asks for and return the results dict (see the package docstring, `rmt_lib.cost`).

    `echo` gets one readable line per measurement as it lands (None: silent); `progress` shows a tqdm bar.
    """
    from tqdm.auto import tqdm

    from rmt_lib.model.config import RMTConfig

    checkpoint = Path(config.checkpoint) if config.checkpoint is not None else paths.SHIPPED_MODEL_DIR
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"no model folder at {checkpoint}: train the shipped model, or pass a folder written "
                                "by rmt_lib.model.save_pretrained (timings do not depend on the weights)")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available here; use --device cpu")
    model_config = RMTConfig.from_dict(json.loads((checkpoint / "config.json").read_text()))
    machine = describe_machine(config.device, config.threads)
    total = (len(config.rmt_segments) + len(config.full_segments) + len(config.thread_check)
             + len(config.train_variants) + len(_matmul_threads(config)) + 2
             + len(_other_threads(config.eval_long_threads, config)))
    bar = tqdm(total=total, desc="cost", unit="point", disable=not progress)
    say: Echo = (bar.write if progress else echo) if echo else (lambda _: None)
    load = (machine.get("load_average_1_5_15") or [0.0])[0]
    if config.device == "cpu" and load > 0.5 * (machine["usable_cpus"] or 1):
        say(f"warning: load average {load} on {machine['usable_cpus']} cores: other processes will inflate the timings")
    out: dict[str, Any] = dict(schema=SCHEMA, config=_config_dict(config), machine=machine,
                               model=dict(checkpoint=str(checkpoint), config=model_config.to_dict()))
    started = time.perf_counter()
    common = dict(checkpoint=str(checkpoint), device=config.device, threads=config.threads, seed=config.seed)
    try:
        out["inference"] = _inference(config, common, model_config.segment_size, bar, say)
        out["training"] = _training(config, common, bar, say)
        out["evaluate"] = _evaluate(config, checkpoint, bar, say)
    finally:
        bar.close()
    out["wall_s"] = time.perf_counter() - started
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    out["targets"] = targets(out)
    for name, t in out["targets"].items():
        verdict = {True: "met", False: "NOT met", None: f"no verdict (measured at {t['sizes']})"}[t["met"]]
        (echo or (lambda _: None))(f"target {name}: {_fmt(t['value'])} (limit {t['limit']}) {verdict} - {t['what']}")
    return out


def _other_threads(counts: Sequence[int], config: CostConfig) -> list[int]:
    return [k for k in counts if k != config.threads]


def _matmul_threads(config: CostConfig) -> list[int]:
    return sorted({v.threads or config.threads for v in config.train_variants})


def _config_dict(config: CostConfig) -> dict[str, Any]:
    d = asdict(config)
    d["train_variants"] = [asdict(v) for v in config.train_variants]
    return d


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _inference(config: CostConfig, common: dict, segment_size: int, bar, say: Echo) -> dict[str, Any]:
    say(f"{'inference':<15}{'threads':>8}{'segments':>9}{'tokens':>10}{'time s':>9}{'cpu s':>8}{'tokens/s':>10}"
        f"{'peak MB':>9}{'working MB':>11}")
    result: dict[str, Any] = dict(rmt=[], full_attention=[], rmt_threads=[], skipped=[], failed=[])
    plan = [("rmt", n, config.threads, True) for n in config.rmt_segments]  # as evaluate streams
    plan += [("rmt", config.thread_check_segments, k, False) for k in config.thread_check]  # threads held
    plan += [("full_attention", n, config.threads, False) for n in config.full_segments]
    last = None  # the previous full-attention row: it bounds the next one's memory
    for mode, n, threads, as_evaluate in plan:
        bar.update()
        n_tokens = n * segment_size
        head = f"{mode:<15}{threads:>8}{n:>9}{n_tokens:>10}"
        if mode == "full_attention" and last is not None:
            predicted = predicted_peak_mb(last["baseline_mb"], (last["n_tokens"], last["working_mb"]), n_tokens)
            if predicted > config.memory_cap_mb:
                result["skipped"].append(dict(mode=mode, n_segments=n, n_tokens=n_tokens, predicted_peak_mb=predicted,
                                              memory_cap_mb=config.memory_cap_mb))
                say(f"{head}  skipped: predicted peak {predicted:,.0f} MB > cap {config.memory_cap_mb:,.0f} MB")
                continue
        spec = dict(common, mode=mode, n_segments=n, threads=threads, batch_size=config.batch_size,
                    repeats=config.repeats, budget_s=config.point_budget_s, as_evaluate=as_evaluate)
        row = run_isolated(inference_point, spec, config.child_timeout_s)
        if "error" in row:
            result["failed"].append(dict(mode=mode, n_segments=n, n_tokens=n_tokens, threads=threads, error=row["error"]))
            say(f"{head}  failed: {row['error']}")
            if mode == "full_attention":
                last = dict(baseline_mb=math.inf, n_tokens=n_tokens, working_mb=math.inf)  # longer ones need more
            continue
        key = "rmt_threads" if mode == "rmt" and not as_evaluate else mode
        result[key].append(row)
        if mode == "full_attention":
            last = row
        say(f"{head}{row['time_s']:>9.3f}{statistics.median(row['cpu_s']):>8.3f}{row['tokens_per_s']:>10,.0f}"
            f"{row['peak_mb']:>9,.0f}{row['working_mb']:>11,.1f}")
    return result


def _training(config: CostConfig, common: dict, bar, say: Echo) -> dict[str, Any]:
    peaks = {}
    for threads in _matmul_threads(config):
        bar.update()
        spec = dict(common, threads=threads, size=config.matmul_size, repeats=5)
        peaks[str(threads)] = run_isolated(matmul_point, spec, config.child_timeout_s)
        p = peaks[str(threads)]
        say(f"matmul peak, {threads} thread(s): " + (p["error"] if "error" in p else
              f"{p['peak_flops_per_s'] / 1e9:,.1f} GFLOP/s ({config.matmul_size}^2 fp32)"))
    say(f"{'training':<28}{'tokens/s':>10}{'+data':>9}{'GFLOP/s':>9}{'MFU':>7}{'step s':>8}{'warmup s':>10}{'peak MB':>9}")
    runs = []
    for v in config.train_variants:
        bar.update()
        threads = v.threads or config.threads
        spec = dict(common, threads=threads, name=v.name, n_segments=v.n_segments, batch_size=v.batch_size,
                    compile=v.compile, warmup_steps=config.train_warmup_steps, steps=config.train_steps)
        row = run_isolated(train_point, spec, config.child_timeout_s)
        if "error" in row:
            runs.append(dict(name=v.name, error=row["error"]))
            say(f"{v.name:<28}failed: {row['error']}")
            continue
        peak = peaks[str(threads)].get("peak_flops_per_s")
        row["mfu"] = row["flops_per_s"] / peak if peak else None
        runs.append(row)
        say(f"{v.name:<28}{row['tokens_per_s']:>10,.0f}{row['tokens_per_s_with_data']:>9,.0f}"
              f"{row['flops_per_s'] / 1e9:>9.2f}{_pct(row['mfu']):>7}{row['step_s']:>8.2f}"
              f"{sum(row['warmup_s']):>10.1f}{row['peak_mb']:>9,.0f}")
    return dict(matmul_peak=peaks, runs=runs, flops_counting=FLOPS_COUNTING)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _evaluate(config: CostConfig, checkpoint: Path, bar, say: Echo) -> dict[str, Any]:
    """The short and the long sample at the configured threads (the targets), the long one again at others.

    Each command runs `eval_repeats` times: the row is the run with the median wall time, with every run's
    wall time and peak RSS beside it, and its peak RSS is the largest of them."""
    plan = [("short", dict(n_segments=config.eval_short_segments), config.threads),
            ("long", dict(n_tokens=config.eval_tokens), config.threads)]
    plan += [(f"long_{k}_threads", dict(n_tokens=config.eval_tokens), k)
             for k in _other_threads(config.eval_long_threads, config)]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="rmt-cost-") as tmp:
        for name, size, threads in plan:
            bar.update()
            runs = [measure_evaluate(str(checkpoint), device=config.device, threads=threads, seed=config.seed,
                                     workdir=tmp, **size) for _ in range(config.eval_repeats)]
            rows[name] = row = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
            row.update(threads=threads, wall_s_runs=[r["wall_s"] for r in runs],
                       peak_rss_mb_runs=[r["peak_rss_mb"] for r in runs],
                       peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                       returncode=max((r["returncode"] for r in runs), key=abs))
            status = "ok" if row["returncode"] == 0 else f"exit {row['returncode']}: {row['stderr_tail'][-300:]}"
            say(f"evaluate {name:<16}{threads:>3} thr {row['n_tokens']:>10,} tokens {row['wall_s']:>7.1f} s  "
                f"peak RSS {row['peak_rss_mb']:>6,.0f} MB  {status}")
    return rows
