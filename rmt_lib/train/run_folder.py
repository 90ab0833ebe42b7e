"""A training run's folder: its checkpoint, its metrics log and its lock, read and held here for the curriculum
loop (`loop`), the run's read-back (`log`) and the average of runs (`average`)."""
from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from rmt_lib.train.config import TrainConfig

CHECKPOINT = "checkpoint.safetensors"  # one file: tensors + JSON metadata, replaced atomically
METRICS = "metrics.jsonl"
AVERAGE = "average"  # the kind of the metrics record that names an averaged model's ingredients (train.average)
LOCK = ".train.lock"  # held while a run trains into the folder (run_lock)


def checkpoint_config(output: str | Path) -> TrainConfig | None:
    """The configuration of the run whose checkpoint lies in the run folder `output` (its metadata only, no
    tensors read); None when there is none. ValueError naming the file when it is not a checkpoint."""
    path = Path(output) / CHECKPOINT
    return read_checkpoint(path, tensors=False)[2] if path.is_file() else None


def read_checkpoint(path: Path, tensors: bool = True) -> tuple[dict[str, str], dict[str, torch.Tensor], TrainConfig]:
    """(metadata, tensors, config) of a training checkpoint (tensors {} when not asked for); ValueError naming
    it when it is truncated, a pickle, or written by something else. Only safetensors is read: nothing here
    can run code."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata()
        saved = TrainConfig.from_dict(json.loads(meta["train_config"]))
        for key in ("run_state", "param_groups"):
            json.loads(meta[key])
        return meta, load_file(path) if tensors else {}, saved
    except (SafetensorError, KeyError, TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a readable training checkpoint ({type(err).__name__}: {err}); delete it "
                         "to train from scratch, or restore it") from None


def finished_stages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's metrics records of kind "stage", one per finished stage, in order."""
    return [r for r in records if r.get("kind") == "stage"]


def average_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The record naming an averaged model's ingredients (rmt_lib.train.average); None for a training run's log."""
    return next((r for r in reversed(records) if r.get("kind") == AVERAGE), None)


def is_average(records: list[dict[str, Any]]) -> bool:
    """Whether a model folder's metrics records are those of an average of folders (rmt_lib.train.average)."""
    return average_record(records) is not None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl; ValueError naming the file and line when one is not JSON."""
    if not path.is_file():
        raise ValueError(f"{path.parent} has no {METRICS}: it is not a model folder written by `train`")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err})") from None
        if not isinstance(records[-1], dict):
            raise ValueError(f"{path}, line {number}: a metrics record is a JSON object")
    return records


@contextmanager
def run_lock(output: Path, rank: int, world: int = 1) -> Iterator[None]:
    """Hold an OS lock on the run folder, so that a second run into it fails at once instead of mixing its
    log and weights with this one's. The kernel drops the lock when the process dies, even by SIGKILL;
    the empty lock file stays. Under DDP rank 0 locks (only it writes) and tells the other ranks, so that a
    refused run ends on every rank instead of leaving them waiting in their first collective."""
    held = None
    refused = False
    if rank == 0:
        output.mkdir(parents=True, exist_ok=True)
        held = open(output / LOCK, "a+")
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            refused = True
    if world > 1:
        verdict = [refused]
        dist.broadcast_object_list(verdict, src=0)
        refused = verdict[0]
    try:
        if refused:
            raise ValueError(f"another train run is using {output}; wait for it to finish, or choose another "
                             "--output")
        yield
    finally:
        if held is not None:
            if not refused:
                fcntl.flock(held, fcntl.LOCK_UN)
            held.close()
