"""The chapters' held-out measurement: two-fact samples of the test split, probed, and cached on disk.

Which samples: `held_out_probe` draws with MEASURE_SEED (2). `figure8_inputs` draws the displayed samples
with seed 0 and chooses its heads on seed 1, so no measured sample is also shown or used for the head choice.

Disk cache: probing is the slow step and several chapters measure the same samples, so `held_out_probe`
keeps its result in ``.cache/probes/<key>.npz``. The key hashes everything the result depends on: the
model's weights and config, the tokenizer, the background prose, the arguments, and the source of the
modules that compute it (RESULT_SOURCES; not the tables, plots or claims). A new model or a change to
that code is a new key, so a stale result is never reused; the file holds the exact arrays (no
rounding), so a cached result equals a fresh one. Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import rmt_lib
from rmt_lib import paths
from rmt_lib.data import generate_samples, load_background
from rmt_lib.jsonio import atomic_path, to_plain
from rmt_lib.probes.run import probe_samples

MEASURE_SEED = 2  # the measured samples (seed 0: displayed samples; seed 1: figure8_inputs' head choice)
CACHE_FORMAT = 1  # bump when the file layout changes
PROBE_CACHE_DIR = paths.CACHE_DIR / "probes"
PACKAGE = Path(rmt_lib.__file__).parent
# What a probe result is computed by (relative to the package): its key hashes their source.
RESULT_SOURCES = ("data", "model", "probes/run.py", "probes/memory.py", "probes/attention.py", "probes/summary.py",
                  "stats.py")


@dataclass(frozen=True, eq=False)
class HeldOutProbe:
    """Held-out samples and their probe result (`rmt_lib.probes.probe_samples`), in the same order."""

    n_segments: int
    seed: int
    samples: tuple  # rmt_lib.data.Sample
    result: dict  # {"samples": [...], "summary": {...}}
    from_cache: bool = False  # varies between runs: never print it

    @property
    def entries(self) -> list[dict]:
        return self.result["samples"]

    @property
    def summary(self) -> dict:
        return self.result["summary"]


def held_out_probe(model, tokenizer, *, n_segments: int, n_samples: int, seed: int = MEASURE_SEED,
                   n_facts: int = 2, split: str = "test", cache: bool = True, cache_dir: Path | None = None,
                   background: str | Path | None = None, progress: bool = False) -> HeldOutProbe:
    """Generate `n_samples` held-out samples (`n_facts` facts, `n_segments` segments) and probe them.

    Same arguments, same samples, same numbers. With `cache`, the result is read from (or written to)
    `cache_dir` (default ``.cache/probes``) under a key of everything it depends on (module docstring).
    """
    samples = tuple(generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, n_facts=n_facts,
                                     split=split, background=background, seed=seed,
                                     segment_size=model.config.segment_size, tokenizer=tokenizer))
    args = {"n_segments": n_segments, "n_samples": n_samples, "seed": seed, "n_facts": n_facts, "split": split}
    path = None
    if cache:
        key = probe_cache_key(model, tokenizer, args, background=background, split=split)
        path = Path(cache_dir if cache_dir is not None else PROBE_CACHE_DIR) / f"{key}.npz"
        result = _load_result(path, key)
        if result is not None:
            return HeldOutProbe(n_segments, seed, samples, result, from_cache=True)
    result = probe_samples(model, tokenizer, samples, progress=progress)
    if path is not None:
        _save_result(path, path.stem, result)
    return HeldOutProbe(n_segments, seed, samples, result)


def probe_cache_key(model, tokenizer, args: Mapping, *, background=None, split: str = "test") -> str:
    """sha256 (hex, 32 digits) of the model's weights and config, the tokenizer, the background prose,
    `args` and the source of every module the result is computed by (RESULT_SOURCES)."""
    h = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "args": dict(args), "config": model.config.to_dict(),
            "tokenizer": tokenizer.fingerprint}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    prose = load_background(background, split)
    h.update(prose.name.encode())
    h.update(hashlib.sha256(prose.text.encode()).digest())
    for source in result_sources():
        h.update(source.relative_to(PACKAGE).as_posix().encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:32]


def result_sources() -> list[Path]:
    """The source files of RESULT_SOURCES; FileNotFoundError when one of them is gone (a renamed module
    must be renamed here too, never silently dropped from the key)."""
    files = []
    for name in RESULT_SOURCES:
        path = PACKAGE / name
        if not path.exists():
            raise FileNotFoundError(f"RESULT_SOURCES names {name}, which rmt_lib no longer has; update the list")
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


_ARRAY_FIELDS = ("memory_change", "distance_matrix")


def _save_result(path: Path, key: str, result: Mapping) -> None:
    """One .npz: each sample's arrays exactly, and everything else as JSON (floats round-trip exactly)."""
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, entry in enumerate(result["samples"]):
        for name in _ARRAY_FIELDS:
            arrays[f"{name}_{i}"] = np.asarray(entry[name])
        entries.append(to_plain({k: v for k, v in entry.items() if k not in _ARRAY_FIELDS}))
    meta = {"key": key, "format": CACHE_FORMAT, "entries": entries, "summary": to_plain(result["summary"])}
    arrays["meta"] = np.array(json.dumps(meta, allow_nan=True))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_result(path: Path, key: str) -> dict | None:
    """The cached result, or None when there is none (or it is unreadable or of another key)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                return None
            entries = []
            for i, entry in enumerate(meta["entries"]):
                for name in _ARRAY_FIELDS:
                    entry[name] = z[f"{name}_{i}"]
                for w in entry.get("write_attention") or ():
                    w["share"] = np.asarray(w["share"], dtype=np.float64)
                if entry.get("read_attention"):
                    entry["read_attention"]["memory_share"] = np.asarray(entry["read_attention"]["memory_share"],
                                                                         dtype=np.float64)
                entries.append(entry)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a damaged cache file is recomputed, never trusted
    return {"samples": entries, "summary": meta["summary"]}
