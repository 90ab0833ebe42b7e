"""Bad input and faults through the CLI (tiny inputs): one `error:` line, exit 2, and nothing new on disk;
special files are refused, never replaced. Outputs are checked through `rmt_lib.cli.main` in this process;
devices, $RMT_DEVICE and Ctrl-C through real `python -m rmt_lib` processes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rmt_lib.jsonio import check_output_path, write_json
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained
from rmt_lib.runtime import resolve_device
from tests.helpers import run_main, run_process


SAMPLE = '{"input": "Mary went to the garden.", "question": "Where is Mary?", "target": "garden"}\n'


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = RMTConfig(hidden_size=16, num_layers=1, num_heads=2, num_memory_tokens=2)
    return save_pretrained(RecurrentMemoryTransformer(cfg), tmp_path_factory.mktemp("ckpt") / "model")


_run = run_process


def _one_error_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.slow  # the CLI with a model folder, each case
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
    done = run_main(command, "--checkpoint", str(checkpoint), "--input", str(samples),
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


@pytest.mark.slow  # the real CLI in a subprocess
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



@pytest.mark.slow  # the real CLI in a subprocess
def test_ctrl_c_prints_one_line_exits_130_and_writes_nothing(tmp_path, checkpoint):
    import signal

    out = tmp_path / "e.json"
    # A parent that ignores SIGINT (a shell's background job, some CI runners) passes that on, and Python
    # then never raises KeyboardInterrupt: give the child the default handler, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "rmt_lib", "evaluate", "--checkpoint", str(checkpoint),
                             "--segments", "4096", "--samples", "1000", "--output", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while "evaluate" not in seen:  # the progress bar: past the imports, inside minutes of work
        char = proc.stderr.read(1)
        assert char, f"the command ended before it could be interrupted: {seen}"
        seen += char
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "interrupted: nothing was written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_set_of_files_leaves_none_and_a_good_one_lands_whole(tmp_path):
    from rmt_lib.jsonio import atomic_folder

    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "figs") as tmp:
        write_json(tmp / "a.json", {"a": 1})
        raise RuntimeError("the second figure failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_folder(tmp_path / "figs") as tmp:
        write_json(tmp / "a.json", {"a": 1})
    (tmp_path / "figs" / "kept.txt").write_text("mine")
    with atomic_folder(tmp_path / "figs") as tmp:  # into an existing folder: its other files stay
        write_json(tmp / "b.json", {"b": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["a.json", "b.json", "kept.txt"]
    with pytest.raises(ValueError, match="not a folder"):
        with atomic_folder(tmp_path / "figs" / "a.json"):
            pass


def test_a_dead_writers_temporary_files_are_swept_and_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: no process has this pid now (pids are not reused at once)
    stale = tmp_path / f".out.json.{dead_pid}.abcd_123.tmp.json"  # as atomic_path names them (mkstemp's 8)
    live = tmp_path / f".out.json.{os.getppid()}.abcd_456.tmp.json"
    stale_dir = tmp_path / f".out.json.{dead_pid}.abcd_789.tmp"
    other = tmp_path / f".out.json.5.{dead_pid}.abcd_000.tmp.json"  # a temporary file of `out.json.5`: kept
    other.write_text("another target's")
    stale.write_text("half")
    live.write_text("being written")
    stale_dir.mkdir()
    write_json(tmp_path / "out.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.json"])
