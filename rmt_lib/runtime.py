"""Seeding and device choice: the two things every entry point does first."""
from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

# The reference machine has 2 cores. Fixed, so that float reductions repeat; $RMT_NUM_THREADS overrides
# (e.g. 1 for a long run that shares the machine: oversubscribed OpenMP threads stall each other).
DEFAULT_THREADS = int(os.environ.get("RMT_NUM_THREADS", "2"))


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


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` inside the block, and restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the argument, else `$RMT_DEVICE`, else CUDA when present, else CPU."""
    choice = device if device is not None else os.environ.get("RMT_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = "--device" if device is not None else "$RMT_DEVICE"
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError):
        raise ValueError(f"{where} {choice!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{where} {choice!r}: this project runs on cpu or cuda, not {dev.type}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for but CUDA is not available here; use 'cpu'")
    return dev


@contextmanager
def init_distributed() -> Iterator[None]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise.

    gloo on CPU, nccl on CUDA: the engine is torch's own DDP, not a home-made one.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield
        return
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("RMT_DEVICE", "cuda").startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def describe_machine(device: str, threads: int) -> dict[str, Any]:
    """What ran the measurement: CPU, cores, memory, load, library versions, torch threads, GPU."""
    import transformers

    cpu, cpuinfo = platform.processor() or platform.machine(), {}
    try:
        with open("/proc/cpuinfo") as f:  # the first processor's fields
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():
                    break
                cpuinfo.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = cpuinfo.get("model name", cpu)
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
                mkldnn=torch.backends.mkldnn.is_available(),
                # Two CPUs of one model name may differ in family and instruction set, and so in the kernels
                # the BLAS and torch.compile choose: float results repeat bit for bit only where these agree.
                cpu_family_model=[cpuinfo.get("cpu family"), cpuinfo.get("model")],
                cpu_capability=torch.backends.cpu.get_cpu_capability())
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_mb=props.total_memory / 2**20, cuda=torch.version.cuda)
    return info
