"""Each measurement in a process of its own, and the memory probes that run inside it.

Peak memory is per process. Each point runs in a fresh process forked from a server that has imported torch
but run nothing (`run_isolated`); just before the measured work it resets its resident-set high-water mark
(Linux `/proc/self/clear_refs`) and reads it back after (`_Memory`), so the number is its own and allocator
caches of an earlier, larger point cannot hide or inflate it. On CUDA the peak is
`torch.cuda.max_memory_allocated`. A command measured from outside (`run_measured`: the evaluate CLI) has
its peak RSS read from `wait4`.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

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


def _child(fn: Callable[[dict], dict], spec: dict[str, Any], conn) -> None:
    try:
        conn.send(("ok", fn(spec)))
    except BaseException as err:  # reported to the parent, which decides what a failed point means
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


# Imported once by the fork server before it forks, not by every point: the child's entry point (this
# module), the measured points (rmt_lib.cost.points) and what they load.
_PRELOAD = ["rmt_lib.cost.isolation", "rmt_lib.cost.points", "rmt_lib.model", "rmt_lib.train"]


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


# --- a command, measured from outside ------------------------------------------------------------------------


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
