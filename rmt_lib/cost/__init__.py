"""What the RMT costs, measured on this machine: the chapter "What it costs" and `benchmarks/cost.py`.

    from rmt_lib.cost import CostConfig, run_cost
    results = run_cost(CostConfig.quick())  # seconds; `python benchmarks/cost.py` runs the full measurement

One run measures three things and returns them as one JSON-ready dict (schema `SCHEMA`):

1. inference time and peak memory against input length, for the RMT streamed segment by segment as
   `evaluate` streams it (`inference_mode`, one thread for a lone sample) and for the same backbone
   attending over the whole input at once (stopped before the point whose predicted peak passes the
   memory cap);
2. training throughput (forward + backward + AdamW, the trainer's own `train_step`) against this machine's
   measured matmul peak: model FLOPs utilisation, for a few cheap variants (threads, batch size, `torch.compile`);
3. the wall time and peak memory of `python -m rmt_lib evaluate --input` on a million-token QA1 sample,
   against a short sample.

The modules:

- `flops`: the FLOP model (per backbone position, PaLM-style) behind throughput and MFU;
- `isolation`: one fresh process per measured point, the per-process memory probes, and a command measured
  from outside (peak RSS from `wait4`);
- `points`: the measured points (an inference pass, the matmul peak, the trainer's step);
- `sweep`: what a run measures (`CostConfig`, `TrainVariant`) and the run itself (`run_cost`);
- `results`: reading a results file for the chapter (`load_results`, `targets`, `inference_rows`, ...).
"""
from rmt_lib.cost.results import (MFU_TARGET, REFERENCE_SPEEDUP_TARGET, SCHEMA, TARGETS, compile_breakeven,
                                  compile_sentence, inference_rows, load_results, load_training_reference, targets,
                                  speedup_quartiles, training_reference_rows, training_reference_verdict)
from rmt_lib.cost.sweep import LENGTHS, CostConfig, TrainVariant, run_cost

__all__ = ["LENGTHS", "SCHEMA", "TARGETS", "CostConfig", "TrainVariant", "compile_breakeven", "compile_sentence",
           "inference_rows", "load_results", "run_cost", "targets", "MFU_TARGET", "REFERENCE_SPEEDUP_TARGET", "load_training_reference",
           "speedup_quartiles", "training_reference_rows", "training_reference_verdict"]
