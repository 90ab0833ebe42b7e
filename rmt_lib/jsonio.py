"""Writing files so that a reader never sees half of one and a failed run leaves none behind."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def check_output_path(path: str | Path) -> Path:
    """`path` as an output file: ValueError, before any work, for an empty name, a folder, a symlink or a
    special file (FIFO, device), or a parent that is a file."""
    if str(path) == "":
        raise ValueError("the output path is empty; give a file name")
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "a symlink" if path.is_symlink() else \
            "a special file (FIFO or device)"
        raise ValueError(f"{path} is {kind}; outputs are written as new regular files, give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{path}: {parent} is a file, not a folder")
            break
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

    The file gets the usual permissions (mkstemp makes 0600). An existing `path` that is not a regular
    file (a folder, a symlink, a FIFO, a device such as /dev/full) is refused, never replaced.
    """
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def to_plain(value: Any) -> Any:
    """JSON types: arrays to (nested) lists, numpy scalars to Python numbers, tuples to lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def write_json(path: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """`data` (numpy values allowed) as JSON; NaN is refused rather than written as invalid JSON."""
    separators = None if indent is not None else (",", ":")
    return write_text_atomic(path, json.dumps(to_plain(data), indent=indent, separators=separators, allow_nan=False) + "\n")


def lookup(summary: Mapping, *keys):
    """summary[k1][k2]...; None where any level is missing or None."""
    value = summary
    for k in keys:
        if not isinstance(value, Mapping) or value.get(k) is None:
            return None
        value = value[k]
    return value
