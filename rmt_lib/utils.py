"""Seeding and device choice: the two things every entry point does first."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DEFAULT_THREADS = 2  # the reference machine has 2 cores; fixed so that float reductions repeat


def seed_everything(seed: int, threads: int | None = DEFAULT_THREADS) -> torch.Generator:
    """Seed python, numpy and torch, force deterministic kernels and fix the thread count.

    Seed 0 is a seed like any other. Returns a torch generator seeded with `seed` for callers
    that want their own stream. `threads=None` leaves torch's thread count alone.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the argument, else `$RMT_DEVICE`, else CUDA when present, else CPU."""
    choice = device if device is not None else os.environ.get("RMT_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for but CUDA is not available here; use 'cpu'")
    return dev
