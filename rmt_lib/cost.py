"""What the RMT costs, measured on this machine: the chapter "What it costs" and `benchmarks/cost.py`.

    from rmt_lib.cost import CostConfig, run_cost
    results = run_cost(CostConfig.quick())  # seconds; `python benchmarks/cost.py` runs the full measurement

One run measures three things and returns them as one JSON-ready dict (schema `SCHEMA`):

1. inference time and peak memory against input length, for the RMT streamed segment by segment as
   `evaluate` streams it (`inference_mode`, one thread for a lone sample) and for the same backbone
   attending over the whole input at once (stopped before the point whose predicted peak passes the
   memory cap);
2. training throughput (forward + backward + AdamW, the trainer's step) against this machine's measured
   matmul peak: model FLOPs utilisation, for a few cheap variants (threads, batch size, `torch.compile`);
3. the wall time and peak memory of `python -m rmt_lib evaluate --input` on a million-token QA1 sample,
   against a short sample.

Peak memory is per process. Each point of (1) and (2) runs in a fresh process forked from a server that has
imported torch but run nothing; just before the measured work it resets its resident-set high-water mark
(Linux `/proc/self/clear_refs`) and reads it back after, so the number is its own and allocator caches of
an earlier, larger point cannot hide or inflate it. On CUDA the peak is `torch.cuda.max_memory_allocated`.
(3) runs the real CLI as a subprocess and reads its peak RSS from `wait4`.

FLOPs are counted per backbone position (read memory + segment + write memory), PaLM-style: a forward pass
costs 2 x N + 4 x n_layers x hidden x P per position, where N counts the weights of the backbone's matmuls
(its transformer blocks; not the embedding lookup, nor the tied LM head, which the answer reads at one
position per sample) and P is the number of positions attended over (the whole P x P score matrix is computed; causal
masking saves the eager kernel nothing). Training costs 3 x forward (the backward pass is twice the
forward) on the segments that get gradients.
"""
from __future__ import annotations

import gc
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rmt_lib import paths
from rmt_lib.utils import DEFAULT_THREADS

SCHEMA = "rmt-cost/1"
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


# --- FLOPs -----------------------------------------------------------------------------------------------


def matmul_parameters(model) -> int:
    """Weights of the backbone's transformer blocks that enter a matmul per position (nn.Linear weights).

    Left out: embeddings (a lookup), norms and biases (no matmul), and the answer heads (the LM head or
    the classifier, and the auxiliary head: applied at one position per sample or segment).
    """
    blocks = [m for name, m in model.backbone.base_model.named_modules() if isinstance(m, torch.nn.Linear)]
    return sum(m.weight.numel() for m in blocks)


def forward_flops(n_matmul: int, n_layers: int, hidden: int, positions: int, calls: int, batch: int) -> float:
    """FLOPs of `calls` backbone calls over `positions` positions each: (2N + 4 L D P) per position."""
    return float(batch * calls * positions * (2 * n_matmul + 4 * n_layers * hidden * positions))


def rmt_flops(config, n_matmul: int, n_segments: int, batch: int, *, training: bool = False) -> float:
    """Streamed RMT: one call of positions_per_call positions per segment; training adds 2x forward on the
    segments that get gradients (the last bptt_depth of them, or all). An upper bound for inference, where
    the last layer of a segment before the question runs its attention and MLP at the write memory alone
    (BloomStream's `rows`): about a tenth fewer FLOPs than counted here at the default config."""
    fwd = forward_flops(n_matmul, config.num_layers, config.hidden_size, config.positions_per_call, n_segments, batch)
    if not training:
        return fwd
    with_grad = n_segments if config.bptt_depth is None else min(config.bptt_depth, n_segments)
    return fwd * (1 + 2 * with_grad / n_segments)


def full_attention_flops(config, n_matmul: int, n_tokens: int, batch: int) -> float:
    """The bare backbone over all n_tokens at once: one call, quadratic attention."""
    return forward_flops(n_matmul, config.num_layers, config.hidden_size, n_tokens, 1, batch)


# --- memory probes (inside a measured process) -------------------------------------------------------------


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_host_peak() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _host_peak_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class _Memory:
    """Peak memory of the work between `start()` and `peak()`: host RSS, or CUDA allocations on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated() / 2**20
        else:
            self.resettable = _reset_host_peak()
            self.baseline = _status_mb("VmRSS") or _host_peak_mb()

    def peak(self) -> dict[str, Any]:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
            return dict(memory_kind="cuda_allocated", peak_mb=peak, baseline_mb=self.baseline,
                        working_mb=peak - self.baseline, host_peak_rss_mb=_host_peak_mb())
        peak = _host_peak_mb()
        return dict(memory_kind="rss" if self.resettable else "rss_since_start", peak_mb=peak,
                    baseline_mb=self.baseline, working_mb=max(peak - self.baseline, 0.0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# --- measured processes -----------------------------------------------------------------------------------


def _setup(spec: dict[str, Any]) -> torch.device:
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    return torch.device(spec["device"])


def _load(checkpoint: str, device: torch.device):
    from rmt_lib.model import from_pretrained

    return from_pretrained(checkpoint, device=device)


def full_attention_backbone(model, n_tokens: int):
    """The RMT's backbone, able to attend over `n_tokens` positions at once.

    ALiBi (bloom) and RoPE (llama) have no position table: the backbone itself is returned. A learned table
    that is too short (gpt2) is rebuilt at `n_tokens` positions with every other weight copied.
    """
    from transformers import AutoModelForCausalLM

    own = model.backbone
    limit = getattr(own.config, "n_positions", None)
    if limit is None or limit >= n_tokens:
        return own
    wide = AutoModelForCausalLM.from_config(model.config.replace(max_positions=n_tokens).backbone_config())
    shapes = {k: v.shape for k, v in wide.state_dict().items()}
    wide.load_state_dict({k: v for k, v in own.state_dict().items() if shapes.get(k) == v.shape}, strict=False)
    return wide.to(next(own.parameters()).device).eval()


def inference_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Time and peak memory of one forward pass over `n_segments` segments (spec: built by `_inference`)."""
    from rmt_lib.evaluate import stream_threads

    device = _setup(spec)
    model = _load(spec["checkpoint"], device)
    cfg, L = model.config, model.config.segment_size
    n_tokens = spec["n_segments"] * L
    g = torch.Generator().manual_seed(spec["seed"])
    ids = torch.randint(2, cfg.vocab_size, (spec["batch_size"], n_tokens), generator=g).to(device)  # (B, T)
    if spec["mode"] == "rmt":
        def run(x):
            return model(x).logits
    else:
        base = full_attention_backbone(model, n_tokens).base_model

        def run(x):
            return base(input_ids=x, use_cache=False).last_hidden_state

    memory = _Memory(device)
    times: list[float] = []
    cpu: list[float] = []  # process CPU seconds: near the wall time on an idle machine, far below it on a busy one
    # As `evaluate` runs it: a lone sample's stream on one thread (full attention's large matmuls keep them
    # all); the thread check holds the thread count instead, to measure that rule.
    threads = stream_threads(spec["batch_size"], device) if spec["as_evaluate"] else nullcontext()
    with torch.inference_mode(), threads:
        threads_used = torch.get_num_threads()
        run(ids[:, :L])  # warm-up on one segment: first-call costs are not the input's
        memory.start()
        while len(times) < spec["repeats"] and (not times or sum(times) < spec["budget_s"]):
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            run(ids)
            _sync(device)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    n_matmul = matmul_parameters(model)
    flops = (rmt_flops(cfg, n_matmul, spec["n_segments"], spec["batch_size"]) if spec["mode"] == "rmt"
             else full_attention_flops(cfg, n_matmul, n_tokens, spec["batch_size"]))
    time_s = statistics.median(times)
    return dict(mode=spec["mode"], n_segments=spec["n_segments"], n_tokens=n_tokens, batch_size=spec["batch_size"],
                threads=spec["threads"], threads_used=threads_used, time_s=time_s, times_s=times, cpu_s=cpu, tokens_per_s=spec["batch_size"] * n_tokens / time_s,
                flops=flops, **memory.peak())


def matmul_point(spec: dict[str, Any]) -> dict[str, Any]:
    """This machine's fp32 matmul peak: the best of several n x n @ n x n products (2 n^3 FLOPs each)."""
    device = _setup(spec)
    n = spec["size"]
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    times = []
    for _ in range(spec["repeats"]):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return dict(size=n, threads=spec["threads"], flops=2.0 * n**3, best_s=min(times),
                peak_flops_per_s=2.0 * n**3 / min(times), median_flops_per_s=2.0 * n**3 / statistics.median(times))


def train_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s of the trainer's step (forward + backward + clip + AdamW) on real QA1 batches."""
    from rmt_lib.data import load_tokenizer
    from rmt_lib.train import TrainConfig, make_batch

    device = _setup(spec)
    model = _load(spec["checkpoint"], device).train()
    own_tokenizer = Path(spec["checkpoint"]) / "tokenizer.json"
    tokenizer = load_tokenizer(own_tokenizer if own_tokenizer.is_file() else None)
    tcfg = TrainConfig(model=model.config)
    n_steps = spec["warmup_steps"] + spec["steps"]
    make_batch(tcfg, tokenizer, spec["n_segments"], 1, spec["seed"], "train")  # loads the background once, untimed
    t0 = time.perf_counter()
    batches = [make_batch(tcfg, tokenizer, spec["n_segments"], spec["batch_size"], spec["seed"] + i, "train").to(device)
               for i in range(n_steps)]
    data_s = (time.perf_counter() - t0) / n_steps  # what the trainer spends generating each batch
    if spec["compile"]:
        model.cell.compile(dynamic=False)  # every segment has one shape: one graph
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    cpu: list[float] = []

    def step(batch) -> float:
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.input_ids, batch.attention_mask, labels=batch.labels, aux_labels=batch.aux_labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        optimizer.step()
        _sync(device)
        cpu.append(time.process_time() - c)
        return time.perf_counter() - t

    memory = _Memory(device)
    memory.start()
    warmup = [step(b) for b in batches[:spec["warmup_steps"]]]
    times = [step(b) for b in batches[spec["warmup_steps"]:]]
    tokens = spec["batch_size"] * spec["n_segments"] * model.config.segment_size
    flops = rmt_flops(model.config, matmul_parameters(model), spec["n_segments"], spec["batch_size"], training=True)
    step_s = statistics.median(times)
    return dict(name=spec["name"], n_segments=spec["n_segments"], batch_size=spec["batch_size"],
                threads=spec["threads"], compile=spec["compile"], tokens_per_step=tokens, step_s=step_s,
                steps_s=times, cpu_s=cpu[len(warmup):], warmup_s=warmup, data_s_per_step=data_s, tokens_per_s=tokens / step_s,
                tokens_per_s_with_data=tokens / (step_s + data_s), flops_per_step=flops,
                flops_per_s=flops / step_s, **memory.peak())


def _child(fn: Callable[[dict], dict], spec: dict[str, Any], conn) -> None:
    try:
        conn.send(("ok", fn(spec)))
    except BaseException as err:  # reported to the parent, which decides what a failed point means
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


_PRELOAD = ["rmt_lib.cost", "rmt_lib.model", "rmt_lib.train"]


def run_isolated(fn: Callable[[dict], dict], spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """`fn(spec)` in a fresh process forked from a server that imported torch but ran nothing.

    Returns fn's dict, or {"error": ...} when it raised, died (e.g. killed for memory) or timed out.
    """
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, spec, send), daemon=True)
    proc.start()
    send.close()
    try:
        if receive.poll(timeout_s):
            status, payload = receive.recv()
            return payload if status == "ok" else {"error": payload}
        return {"error": f"no result within {timeout_s:.0f} s"}
    except EOFError:
        return {"error": "the measuring process died without a result (killed for memory?)"}
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        receive.close()


# --- the evaluate CLI on a long input --------------------------------------------------------------------


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run `cmd`, returning its wall time, exit status, stderr tail and peak RSS (from wait4's rusage)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    scale = 1 if sys.platform == "darwin" else 1024
    return dict(wall_s=wall, peak_rss_mb=usage.ru_maxrss * scale / 2**20, returncode=proc.returncode,
                stderr_tail=tail)


def measure_evaluate(checkpoint: str, *, n_tokens: int | None = None, n_segments: int | None = None,
                     device: str = "cpu", threads: int = DEFAULT_THREADS, seed: int = 0,
                     workdir: str | Path) -> dict[str, Any]:
    """One QA1 sample of this length through `python -m rmt_lib evaluate --input`, measured from outside."""
    from rmt_lib.data import generate_samples, load_tokenizer, write_jsonl
    from rmt_lib.model.config import RMTConfig

    config = RMTConfig.from_dict(json.loads((Path(checkpoint) / "config.json").read_text()))
    own = Path(checkpoint) / "tokenizer.json"
    tokenizer = load_tokenizer(own if own.is_file() else None)
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


def describe_machine(device: str, threads: int) -> dict[str, Any]:
    """What ran the measurement: CPU, cores, memory, load, library versions, torch threads, GPU."""
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory_mb = None
    try:
        with open("/proc/meminfo") as f:
            memory_mb = next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = dict(cpu=cpu, logical_cpus=os.cpu_count(), usable_cpus=usable, memory_mb=memory_mb,
                load_average_1_5_15=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
                platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                transformers=transformers.__version__, torch_threads=threads, device=device,
                mkldnn=torch.backends.mkldnn.is_available())
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_mb=props.total_memory / 2**20, cuda=torch.version.cuda)
    return info


Echo = Callable[[str], None]


def run_cost(config: CostConfig, *, progress: bool = True, echo: Echo | None = print) -> dict[str, Any]:
    """Measure everything `config` asks for and return the results dict (see the module docstring).

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


FLOPS_COUNTING = ("per backbone position (read memory + segment + write memory): forward 2N + 4 x n_layers x hidden x P, "
                  "N = weights of the backbone's nn.Linear layers, P = positions per call; training = 3 x forward on "
                  "segments with gradients; tokens/s counts segment tokens only (memory positions excluded)")


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


# --- reading results (the chapter) ---------------------------------------------------------------------------

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


