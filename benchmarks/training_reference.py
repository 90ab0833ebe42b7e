"""Training throughput of rmt_lib beside the reference RMT code, side by side in one process.

    python benchmarks/training_reference.py --reference PATH/modeling_rmt/language_modeling.py \
        --output data/results/training_reference.json
    python benchmarks/training_reference.py --output .cache/training_ours.json     # ours alone

The reference is the RMT authors' code (`booydar/recurrent-memory-transformer`, branch `babilong-release`,
`modeling_rmt/language_modeling.py`): its `MemoryCell` and `RecurrentWrapper`, trained as its BABILong
scripts train them (the LM loss on the answer token through `labels_mask`, full backpropagation through
every segment). It is read from the path given, never copied into this repository; without a path the
benchmark measures ours alone. Both wrap the same transformers backbone (the shipped model's Bloom
configuration, fresh weights: timings do not depend on them), take the same token ids, and step AdamW
after clipping the gradient norm. Ours is the trainer's own step (`rmt_lib.train.train_step`, with the
auxiliary loss). Steps alternate, ours then theirs, so that both see the same machine state; each reports
the median of its timed steps after `--warmup` untimed ones.

With `--compile`, ours is also measured with the memory cell under `torch.compile`; its compilation is the
first (untimed) step, reported as `compile_s` with the number of steps that repay it.

MFU counts the same useful work for both (`rmt_lib.cost.flops.rmt_flops`, training: the RMT's forward and
backward over every segment) against this machine's fp32 matmul peak at the thread count, measured here.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from rmt_lib.cost import speedup_quartiles
from rmt_lib.cost.flops import matmul_parameters, rmt_flops
from rmt_lib.cost.points import matmul_point
from rmt_lib.jsonio import check_output_path, write_json
from rmt_lib.model import RecurrentMemoryTransformer, load_model_folder
from rmt_lib.runtime import describe_machine, seed_everything
from rmt_lib.train import TrainConfig, make_batch, make_optimizer, train_step


def load_reference(path: str | Path):
    """The reference module, imported from its file (it needs only torch and transformers)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--reference {path} is not a file; give the path of the reference's "
                         "modeling_rmt/language_modeling.py")
    spec = importlib.util.spec_from_file_location("reference_language_modeling", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a file that is not Python, or imports what is not installed
        raise ValueError(f"--reference {path} could not be imported: {type(err).__name__}: {err}") from None
    missing = [name for name in ("MemoryCell", "RecurrentWrapper") if not hasattr(module, name)]
    if missing:
        raise ValueError(f"--reference {path} defines no {', '.join(missing)}: is it the reference's "
                         "modeling_rmt/language_modeling.py?")
    return module


def reference_model(module, config, n_segments: int) -> torch.nn.Module:
    """The reference RMT over a fresh backbone of our configuration, with full BPTT (k2 = -1)."""
    from transformers import AutoModelForCausalLM

    backbone = AutoModelForCausalLM.from_config(config.backbone_config())
    cell = module.MemoryCell(backbone, num_mem_tokens=config.num_memory_tokens)
    return module.RecurrentWrapper(cell, segment_size=config.segment_size, max_n_segments=n_segments, k2=-1,
                                   segment_alignment="right")


def reference_step(model, optimizer, input_ids: torch.Tensor, grad_clip: float) -> None:
    """The reference's training step: the LM loss on the last token only (its `labels_mask`), as its BABILong
    scripts compute it (they mask all but the answer), then clip and AdamW."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    mask[:, -2] = True  # process_outputs shifts: position t of the mask selects the label at t + 1
    out = model(input_ids=input_ids, labels=input_ids, labels_mask=mask)
    out["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(*, reference: str | None, checkpoint: str | None, n_segments: int, batch_size: int, steps: int,
            warmup: int, threads: int, compile: bool = False, seed: int = 0) -> dict:
    seed_everything(seed, threads=threads)
    shipped, tokenizer = load_model_folder(checkpoint)
    config = shipped.config
    ours = RecurrentMemoryTransformer(config)  # fresh weights of the shipped configuration
    tcfg = TrainConfig(model=config)
    batches = [make_batch(tcfg, tokenizer, n_segments, batch_size, seed + i, "train") for i in range(warmup + steps)]
    ours_step = lambda m, o, b: train_step(m, o, b, tcfg.grad_clip)  # noqa: E731
    contenders = {"rmt_lib": (ours, make_optimizer(ours, tcfg), ours_step)}
    if compile:
        compiled = RecurrentMemoryTransformer(config)
        compiled.load_state_dict(ours.state_dict())
        compiled.compile_cell()  # what the trainer runs (TrainConfig.compile): one graph per batch shape
        contenders["rmt_lib, torch.compile"] = (compiled, make_optimizer(compiled, tcfg), ours_step)
    if reference is not None:
        module = load_reference(reference)
        theirs = reference_model(module, config, n_segments)
        contenders["reference"] = (theirs, torch.optim.AdamW(theirs.parameters(), lr=tcfg.lr),
                                   lambda m, o, b: reference_step(m, o, b.input_ids, tcfg.grad_clip))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    warmups: dict[str, list[float]] = {name: [] for name in contenders}
    for i, batch in enumerate(batches):  # alternating, so that all see the same machine state
        for name, (model, optimizer, step) in contenders.items():
            elapsed = _timed(lambda: step(model, optimizer, batch))
            (times if i >= warmup else warmups)[name].append(elapsed)
    tokens = batch_size * n_segments * config.segment_size
    flops = rmt_flops(config, matmul_parameters(ours), n_segments, batch_size, training=True)
    peak = matmul_point({"threads": threads, "seed": seed, "device": "cpu", "size": 2048,
                         "repeats": 5})["peak_flops_per_s"]
    rows = {}
    for name, ts in times.items():
        step_s = statistics.median(ts)
        rows[name] = {"step_s": step_s, "steps_s": ts, "warmup_s": warmups[name], "tokens_per_s": tokens / step_s,
                      "flops_per_s": flops / step_s, "mfu": flops / step_s / peak}
    if compile and warmup:  # what compiling costs, and how many steps of this shape repay it
        fast, slow = rows["rmt_lib, torch.compile"], rows["rmt_lib"]
        fast["compile_s"] = fast["warmup_s"][0] - fast["step_s"]
        saved = slow["step_s"] - fast["step_s"]
        fast["steps_to_repay"] = fast["compile_s"] / saved if saved > 0 else None
    result = {"config": {"n_segments": n_segments, "batch_size": batch_size, "steps": steps, "warmup": warmup,
                         "threads": threads, "compile": compile, "segment_size": config.segment_size,
                         "num_memory_tokens": config.num_memory_tokens, "hidden_size": config.hidden_size,
                         "num_layers": config.num_layers, "vocab_size": config.vocab_size,
                         "reference": None if reference is None else Path(reference).name},
              "machine": describe_machine("cpu", threads), "tokens_per_step": tokens, "flops_per_step": flops,
              "peak_flops_per_s": peak, "results": rows}
    if "reference" in rows:
        # The ratio within each round, where both met the same machine state (its speed drifts from minute to
        # minute: 15% between runs here), and their median as the speed-up: a paired estimate, which the
        # drift between rounds moves less than it moves the ratio of the two medians.
        result["speedup_rounds"] = {name: [theirs / ours for theirs, ours in zip(times["reference"], ts)]
                                    for name, ts in times.items() if name != "reference"}
        result["speedup"] = {name: statistics.median(r) for name, r in result["speedup_rounds"].items()}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", default=None, help="the reference's modeling_rmt/language_modeling.py "
                                                     "(default: measure rmt_lib alone)")
    p.add_argument("--checkpoint", default=None, help="model folder whose configuration is measured "
                                                      "(default: the shipped model)")
    p.add_argument("--segments", type=int, default=32, help="segments per sample (default 32)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    p.add_argument("--steps", type=int, default=10, help="timed steps of each (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--compile", action="store_true", help="also measure ours with the memory cell under "
                                                          "torch.compile (its compilation is the warm-up step)")
    p.add_argument("--output", required=True, help="results JSON")
    args = p.parse_args(argv)
    try:
        for name in ("segments", "batch_size", "steps", "threads"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
        if args.warmup < 0:
            raise ValueError(f"--warmup must be at least 0, got {args.warmup}")
        check_output_path(args.output)
        if args.reference is not None:
            load_reference(args.reference)  # refuse a bad path before minutes of measuring
        result = measure(reference=args.reference, checkpoint=args.checkpoint, n_segments=args.segments,
                         batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, threads=args.threads,
                         compile=args.compile)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.output, result)
    for name, row in result["results"].items():
        print(f"{name:>22}: {row['tokens_per_s']:,.0f} tokens/s, MFU {row['mfu']:.1%} "
              f"(median of {len(row['steps_s'])} steps of {result['tokens_per_step']:,} tokens)"
              + (f"; compiling took {row['compile_s']:.0f} s" if "compile_s" in row else ""))
    for name, ratio in result.get("speedup", {}).items():
        low, high = speedup_quartiles(result["speedup_rounds"][name])
        print(f"{name} is {ratio:.2f}x the reference's throughput (round by round: quartiles {low:.2f}, {high:.2f})")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
