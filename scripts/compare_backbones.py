"""Which backbone learns QA1 fastest from scratch? Steps to 90% validation accuracy, per backbone.

    python scripts/compare_backbones.py --output data/results/backbones.json

Each backbone trains the same curriculum prefix (1 then 2 segments) with the default hyperparameters,
and we record the step at which validation accuracy first reaches the threshold (a stage ends there,
as a curriculum stage ends at its advance threshold) and the best validation accuracy of each stage.
The answer picks RMTConfig's default backbone (see rmt_lib/model/config.py). About 12 minutes on 2 cores,
with the lm head's run (data/results/reproduction.json).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from rmt_lib.jsonio import write_json
from rmt_lib.train import PRESETS, TrainConfig, train


def steps_to_threshold(metrics: Path, n_segments: int, threshold: float) -> int | None:
    for line in metrics.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "train" and r["n_segments"] == n_segments and r.get("val_accuracy", 0) >= threshold \
                and r["stage"] == (0 if n_segments == 1 else 1):
            return r["step"]
    return None


def backbone_config(backbone: str, answer_head: str, steps: tuple[int, int], threshold: float) -> TrainConfig:
    """The run of one backbone: the default preset's first two stages with these budgets (their own learning
    rates), ending at `threshold`. The default model carries the locations' token ids for the "lm" head.
    Every backbone reads its memory where the reference RMT code does, after the final norm: the shipped
    model's "last_block" is Bloom's alone."""
    base = PRESETS["default"]
    stages = tuple(dataclasses.replace(s, max_steps=n) for s, n in zip(base.stages[:2], steps))
    model = base.model.replace(backbone=backbone, answer_head=answer_head, memory_path="final_norm")
    return dataclasses.replace(base, model=model, advance_accuracy=threshold, stages=stages, eval_every=25)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["bloom", "llama", "gpt2"])
    p.add_argument("--steps", type=int, nargs=2, default=[1000, 800], help="budgets at 1 and 2 segments")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--answer-head", choices=["classifier", "lm"], default="classifier",
                   help="classifier over the six locations (default: how data/results/backbones.json was measured) "
                        "or the backbone's LM head at their tokens (the shipped model's head)")
    p.add_argument("--output", default="data/results/backbones.json")
    args = p.parse_args()
    rows = []
    for backbone in args.backbones:
        cfg = backbone_config(backbone, args.answer_head, tuple(args.steps), args.threshold)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(cfg, tmp, progress=True)
            metrics = Path(tmp) / "metrics.jsonl"
            stages = [json.loads(x) for x in metrics.read_text().splitlines() if '"kind": "stage"' in x]
            rows.append(dict(backbone=backbone, answer_head=args.answer_head, wall_s=round(time.perf_counter() - t0, 1),
                             steps_to_threshold={"1": steps_to_threshold(metrics, 1, args.threshold),
                                                 "2": steps_to_threshold(metrics, 2, args.threshold)},
                             best_val_accuracy={str(s["n_segments"]): s["best_val_accuracy"] for s in stages}))
        print(rows[-1], flush=True)
    ran = backbone_config("bloom", args.answer_head, tuple(args.steps), args.threshold)  # each backbone varies it
    write_json(args.output, dict(threshold=args.threshold, budgets=args.steps, config=ran.to_dict(), results=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
