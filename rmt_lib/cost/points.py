"""The measured points: each runs in a process of its own (`run_isolated`) and returns one JSON-ready row.

- `inference_point`: time and peak memory of one forward pass, the RMT streamed segment by segment as
  `evaluate` streams it, or the same backbone attending over the whole input at once;
- `matmul_point`: this machine's fp32 matmul peak, the denominator of MFU;
- `train_point`: tokens/s of the trainer's own step (`rmt_lib.train.train_step`) on real QA1 batches.
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch

from rmt_lib.cost.flops import full_attention_flops, matmul_parameters, rmt_flops
from rmt_lib.cost.isolation import _Memory, _sync


def _setup(spec: dict[str, Any]) -> torch.device:
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    return torch.device(spec["device"])


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
    from rmt_lib.model import load_model_folder

    device = _setup(spec)
    model, _ = load_model_folder(spec["checkpoint"], device=device)  # random ids: the tokenizer is not needed
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
                threads=spec["threads"], threads_used=threads_used, time_s=time_s, times_s=times, cpu_s=cpu,
                tokens_per_s=spec["batch_size"] * n_tokens / time_s, flops=flops, **memory.peak())


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
    """Tokens/s of the trainer's step (`train_step`: forward + backward + clip + AdamW) on real QA1 batches,
    with the trainer's optimiser (`make_optimizer`) and batches (`make_batch`)."""
    from rmt_lib.model import load_model_folder
    from rmt_lib.train import TrainConfig, make_batch, make_optimizer, train_step

    device = _setup(spec)
    model, tokenizer = load_model_folder(spec["checkpoint"], device=device)
    tcfg = TrainConfig(model=model.config)
    n_steps = spec["warmup_steps"] + spec["steps"]
    make_batch(tcfg, tokenizer, spec["n_segments"], 1, spec["seed"], "train")  # loads the background once, untimed
    t0 = time.perf_counter()
    batches = [make_batch(tcfg, tokenizer, spec["n_segments"], spec["batch_size"], spec["seed"] + i, "train").to(device)
               for i in range(n_steps)]
    data_s = (time.perf_counter() - t0) / n_steps  # what the trainer spends generating each batch
    if spec["compile"]:
        model.compile_cell()  # what the trainer runs (TrainConfig.compile): one graph per batch shape
    optimizer = make_optimizer(model, tcfg)

    cpu: list[float] = []

    def step(batch) -> float:
        _sync(device)  # the timed span is the trainer's step and nothing else
        t, c = time.perf_counter(), time.process_time()
        train_step(model, optimizer, batch, tcfg.grad_clip)
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
                steps_s=times, cpu_s=cpu[len(warmup):], warmup_s=warmup, data_s_per_step=data_s,
                tokens_per_s=tokens / step_s, tokens_per_s_with_data=tokens / (step_s + data_s),
                flops_per_step=flops, flops_per_s=flops / step_s, **memory.peak())
