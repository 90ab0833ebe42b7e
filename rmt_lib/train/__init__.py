"""Training: a config (stages, optimiser, presets), one step shared with the cost benchmark, the curriculum loop,
and the run folder it writes.

    from rmt_lib.train import PRESETS, train
    model = train(PRESETS["ci"], "runs/ci")
"""
from rmt_lib.train.average import average_models
from rmt_lib.train.config import PRESETS, SHIPPED_MODEL, Stage, TrainConfig, lr_at
from rmt_lib.train.loop import Trainer, train
from rmt_lib.train.run_folder import CHECKPOINT, METRICS
from rmt_lib.train.step import make_batch, make_optimizer, train_step

__all__ = ["CHECKPOINT", "METRICS", "PRESETS", "SHIPPED_MODEL", "Stage", "TrainConfig", "Trainer", "average_models",
           "lr_at", "make_batch", "make_optimizer", "train", "train_step"]
