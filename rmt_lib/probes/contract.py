"""The probe JSON (README, "Public contracts"): arrays as lists rounded to what float32 carries, written
atomically."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rmt_lib.jsonio import to_plain, write_json

JSON_SIGNIFICANT_DIGITS = 6  # memory_change and distance_matrix in the JSON: float32 states carry ~7 digits


def _round_list(values: np.ndarray) -> list:
    """Nested lists of floats rounded to JSON_SIGNIFICANT_DIGITS (the same rounding everywhere, so the
    JSON's distance_matrix[s][s + 1] equals its memory_change[s])."""
    a = np.asarray(values, dtype=np.float64)
    fmt = f"{{:.{JSON_SIGNIFICANT_DIGITS}g}}".format
    if a.ndim == 1:
        return [float(fmt(v)) for v in a.tolist()]
    return [_round_list(row) for row in a]


_jsonable = to_plain


def to_json(result: Mapping) -> dict:
    """The probe result as plain JSON types: arrays become (rounded) lists."""
    samples = []
    for entry in result["samples"]:
        e = {k: v for k, v in entry.items() if k not in ("memory_change", "distance_matrix")}
        e = _jsonable(e)
        e["memory_change"] = _round_list(entry["memory_change"])
        e["distance_matrix"] = _round_list(entry["distance_matrix"])
        samples.append(e)
    extra = {k: _jsonable(v) for k, v in result.items() if k not in ("samples", "summary")}  # e.g. decoding
    return {"samples": samples, "summary": _jsonable(result["summary"]), **extra}


def write_probe_json(result: Mapping, path: str | Path) -> Path:
    """Write `to_json(result)` to `path` atomically (a temporary file in the same folder, then rename)."""
    return write_json(path, to_json(result), indent=None)
