"""Bad input and faults through the real CLI (a subprocess, tiny inputs): one `error:` line, exit 2, and
nothing new on disk; special files are refused, never replaced."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rmt_lib.jsonio import check_output_path, write_json
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained
from rmt_lib.runtime import resolve_device

SAMPLE = '{"input": "Mary went to the garden.", "question": "Where is Mary?", "target": "garden"}\n'


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = RMTConfig(hidden_size=16, num_layers=1, num_heads=2, num_memory_tokens=2)
    return save_pretrained(RecurrentMemoryTransformer(cfg), tmp_path_factory.mktemp("ckpt") / "model")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmt_lib", *args], capture_output=True, text=True, timeout=300)


def _one_error_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo", "parent is a file", "empty"])
@pytest.mark.parametrize("command", ["evaluate", "probe"])
def test_bad_outputs_are_refused_before_the_work(tmp_path, checkpoint, kind, command):
    samples = tmp_path / "s.jsonl"
    samples.write_text(SAMPLE)
    target = tmp_path / "out.json"
    if kind == "folder":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_text("kept")
        target.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "parent is a file":
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "out.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _run(command, "--checkpoint", str(checkpoint), "--input", str(samples),
                "--output", "" if kind == "empty" else str(target))
    _one_error_line(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new, nothing replaced
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "elsewhere.json").read_text() == "kept"


def test_a_device_node_is_never_replaced(tmp_path):
    with pytest.raises(ValueError, match="special file"):
        write_json("/dev/null", {"a": 1})
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert check_output_path(tmp_path / "new.json") == tmp_path / "new.json"


@pytest.mark.parametrize("device, message", [("bogus", "is not a device"), ("meta", "cpu or cuda")])
def test_a_bad_device_is_a_clear_error(checkpoint, tmp_path, device, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(device)
    (tmp_path / "s.jsonl").write_text(SAMPLE)
    done = _run("--device", device, "evaluate", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "s.jsonl"),
                "--output", str(tmp_path / "e.json"))
    _one_error_line(done, device)
    assert not (tmp_path / "e.json").exists()
    env = {**os.environ, "RMT_DEVICE": device}
    done = subprocess.run([sys.executable, "-m", "rmt_lib", "evaluate", "--checkpoint", str(checkpoint), "--input",
                           str(tmp_path / "s.jsonl"), "--output", str(tmp_path / "e.json")],
                          capture_output=True, text=True, env=env, timeout=300)
    _one_error_line(done, "$RMT_DEVICE")

