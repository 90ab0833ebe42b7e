"""Writing files so that a reader never sees half of one and a failed run leaves none behind."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
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
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path` for a set of files; on success they move into `path` (created,
    or kept with its other files), on failure the temporary folder goes, so a failed run leaves none of
    the set. `path` must be a folder or not exist yet; that is checked before the work."""
    if not str(path).strip():  # Path("") would be the current folder
        raise ValueError("the output folder's name is empty; give a folder for the output files")
    path = Path(path)
    if (path.exists() and not path.is_dir()) or path.is_symlink():
        raise ValueError(f"{path} is not a folder; give a folder for the output files")
    check_output_path(path / "_")  # a parent that is a file
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
            os.chmod(path, 0o777 & ~_umask())
            return
        for file in sorted(tmp.iterdir()):
            os.replace(file, path / file.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tmp_prefix(path: Path) -> str:
    """Temporary names carry the writer's pid, so that a later run can tell a dead writer's leftovers."""
    return f".{path.name}.{os.getpid()}."


def _sweep_stale(path: Path) -> None:
    """Remove temporary files and folders beside `path` left by writers that died (SIGKILL, power loss)
    before they could clean up; those of live processes are kept."""
    ours = re.compile(rf"\.{re.escape(path.name)}\.(\d{{1,10}})\.[A-Za-z0-9_]{{8}}\.tmp.*")  # _tmp_prefix + mkstemp's 8
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        found = ours.fullmatch(leftover.name)
        if found is None or _alive(int(found.group(1))):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a number no pid can be
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


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
