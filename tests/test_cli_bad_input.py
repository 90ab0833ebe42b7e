"""Every bad-input case of the README's promise, through the CLI's entry point (tiny inputs): exit status 2,
one `error:` line that names what was wrong, no traceback, and nothing new on disk. The cases run
`rmt_lib.cli.main` in this process (`tests.helpers.run_main`); a real `python -m rmt_lib` process refuses a
case the same way (test_a_real_process_refuses_the_same_way), and the lock is held by another process."""
from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained
from rmt_lib.model.checkpoint import CHECKSUMS, sha256
from tests.helpers import run_main, run_process

# The CLI with models, files and training runs, each case: integration tests (`make test`; `make unit` skips them).
pytestmark = pytest.mark.slow

SAMPLE = {"input": "Mary went to the garden. It rained.", "question": "Where is Mary?", "target": "garden"}
TINY_TRAIN = {"model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_memory_tokens": 2},
              "stages": [{"n_segments": 1, "max_steps": 1, "batch_size": 2}], "eval_samples": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = RMTConfig(hidden_size=16, num_layers=1, num_heads=2, num_memory_tokens=2)
    return save_pretrained(RecurrentMemoryTransformer(cfg), tmp_path_factory.mktemp("ckpt") / "model")


run_cli = run_main


def assert_refused(done: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 and exactly one error line (ours, or argparse's `prog: error:`) holding every word."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, done.stderr
    assert all(w in lines[0] for w in words), lines[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def write_lines(path: Path, *rows: dict | str) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def resealed_copy(checkpoint: Path, dest: Path, **replace: bytes) -> Path:
    """A copy of the model folder with files replaced and its checksums rewritten to match, so that the
    file's own check, not the checksum, has to catch the damage."""
    shutil.copytree(checkpoint, dest)
    for name, data in replace.items():
        (dest / name).write_bytes(data)
    sums = {p.name: sha256(p) for p in sorted(dest.iterdir()) if p.name != CHECKSUMS}
    (dest / CHECKSUMS).write_text(json.dumps(sums))
    return dest


# --- samples files ---------------------------------------------------------------------------------------

BAD_SAMPLES = {
    "not a QA1 question": ([{**SAMPLE, "question": "Where is the apple?"}], ["sample 1", "QA1"]),
    "an unknown actor": ([{**SAMPLE, "question": "Where is Bob?"}], ["sample 1", "Bob"]),
    "an empty input": ([{**SAMPLE, "input": ""}], ["input", "non-empty"]),
    "a missing input": ([{k: v for k, v in SAMPLE.items() if k != "input"}], [":1", "input"]),
    "not JSON": (["{not json"], [":1", "not a BABILong sample"]),
}


# Both commands where they once differed (probe took other questions and empty inputs); evaluate otherwise.
SAMPLE_CASES = [("probe", case) for case in ("not a QA1 question", "an unknown actor", "an empty input")] + \
    [("evaluate", case) for case in sorted(BAD_SAMPLES)]


@pytest.mark.parametrize("command, case", SAMPLE_CASES)
def test_bad_samples_are_refused(tmp_path, checkpoint, command, case):
    rows, words = BAD_SAMPLES[case]
    samples = write_lines(tmp_path / "s.jsonl", *rows)
    before = files_under(tmp_path)
    done = run_cli(command, "--checkpoint", checkpoint, "--input", samples, "--output", tmp_path / "out.json")
    assert_refused(done, *words)
    assert files_under(tmp_path) == before


def test_non_utf8_samples_name_the_file_and_line(tmp_path, checkpoint):
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(json.dumps(SAMPLE).encode() + b"\n" + b'{"input": "caf\xe9"}\n')
    done = run_cli("evaluate", "--checkpoint", checkpoint, "--input", samples, "--output", tmp_path / "e.json")
    assert_refused(done, f"{samples}:2", "UTF-8", "byte 15")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("batch_size", ["-1", "0", "two"])
def test_a_batch_size_below_one_is_refused(tmp_path, checkpoint, batch_size):
    samples = write_lines(tmp_path / "s.jsonl", SAMPLE)
    done = run_cli("evaluate", "--checkpoint", checkpoint, "--input", samples, "--batch-size", batch_size,
                   "--output", tmp_path / "e.json")
    assert_refused(done, "--batch-size")
    assert not (tmp_path / "e.json").exists()


def test_device_is_accepted_after_the_command(tmp_path, checkpoint):
    samples = write_lines(tmp_path / "s.jsonl", SAMPLE)
    done = run_cli("evaluate", "--device", "bogus", "--checkpoint", checkpoint, "--input", samples,
                   "--output", tmp_path / "e.json")
    assert_refused(done, "bogus")
    assert "unrecognized" not in done.stderr  # refused as a device, not as an unknown option
    done = run_cli("evaluate", "--device", "cpu", "--checkpoint", checkpoint, "--input", samples,
                   "--output", tmp_path / "e.json")
    assert done.returncode == 0, done.stderr


# --- model folders ---------------------------------------------------------------------------------------

BAD_FOLDERS = {
    "checksums not JSON": ({CHECKSUMS: b"{oops"}, [CHECKSUMS, "not JSON"]),
    "checksums a list": ({CHECKSUMS: b"[]"}, [CHECKSUMS, "sha256"]),
    "checksums empty": ({CHECKSUMS: b"{}"}, [CHECKSUMS, "verifies nothing"]),
    "tokenizer corrupt": ({"tokenizer.json": b'{"model": 3}'}, ["tokenizer.json", "not a readable tokenizer"]),
    "weights a pickle": ({"model.safetensors": b"\x80\x04\x95 pickled"}, ["model.safetensors", "safetensors"]),
}


# Every command loads a folder the same way (`load_model_folder`): every case through evaluate, and the one
# that once ended in a traceback (the tokenizer) through probe and figures too.
FOLDER_CASES = [("evaluate", case) for case in sorted(BAD_FOLDERS)] + \
    [(command, "tokenizer corrupt") for command in ("probe", "figures")]


@pytest.mark.parametrize("command, case", FOLDER_CASES)
def test_damaged_model_folders_are_refused(tmp_path, checkpoint, command, case):
    replace, words = BAD_FOLDERS[case]
    folder = resealed_copy(checkpoint, tmp_path / "model", **{k: v for k, v in replace.items() if k != CHECKSUMS})
    if CHECKSUMS in replace:
        (folder / CHECKSUMS).write_bytes(replace[CHECKSUMS])
    samples = write_lines(tmp_path / "s.jsonl", SAMPLE)
    before = files_under(tmp_path)
    out = tmp_path / ("figs" if command == "figures" else "out.json")
    args = ["--input", samples] if command != "figures" else ["--heldout", "1"]
    done = run_cli(command, "--checkpoint", folder, *args, "--output", out)
    assert_refused(done, *words)
    assert files_under(tmp_path) == before


AVERAGE_CASES = {  # what `average` is given (model folders, --output) -> what its error names
    "one folder": (lambda ckpt, tmp: ([ckpt], tmp / "avg"), ["two or more"]),
    "a folder twice": (lambda ckpt, tmp: ([ckpt, ckpt], tmp / "avg"), ["given twice"]),
    "a missing folder": (lambda ckpt, tmp: ([ckpt, tmp / "nowhere"], tmp / "avg"), ["nowhere", "not a folder"]),
    "folders train did not write": (lambda ckpt, tmp: ([ckpt, shutil.copytree(ckpt, tmp / "copy2")], tmp / "avg"),
                                    ["metrics.jsonl", "not a model folder"]),
    "the output among them": (lambda ckpt, tmp: ([ckpt, tmp / "nowhere"], ckpt), ["is one of the folders"]),
    "an output that is a file": (lambda ckpt, tmp: ([ckpt, tmp / "nowhere"], tmp / "copy" / "config.json"),
                                 ["must name a folder"]),
}


@pytest.mark.parametrize("case", sorted(AVERAGE_CASES))
def test_average_refuses_folders_it_cannot_average(tmp_path, checkpoint, case):
    shutil.copytree(checkpoint, tmp_path / "copy")
    make, words = AVERAGE_CASES[case]
    folders, output = make(tmp_path / "copy", tmp_path)
    before = files_under(tmp_path)
    assert_refused(run_cli("average", *folders, "--output", output), *words)
    assert files_under(tmp_path) == before


# --- background text -------------------------------------------------------------------------------------

def test_a_binary_background_file_is_named(tmp_path):
    folder = tmp_path / "prose"
    folder.mkdir()
    (folder / "a.txt").write_text("It was a fine morning. The garden lay quiet. " * 50)
    (folder / "b.txt").write_bytes(bytes(range(256)) * 40)
    done = run_cli("generate", "--samples", "2", "--segments", "40", "--background", folder,
                   "--output", tmp_path / "s.jsonl")
    assert_refused(done, "b.txt", "not UTF-8 prose")
    assert not (tmp_path / "s.jsonl").exists()


# --- training --------------------------------------------------------------------------------------------

BAD_CONFIGS = {
    "not JSON": ("{stages: 3", ["c.json", "not JSON"]),
    "a top-level list": (json.dumps([TINY_TRAIN]), ["c.json", "JSON object", "list"]),
    "a stage that is no object": (json.dumps({**TINY_TRAIN, "stages": [4]}), ["c.json", "stage 1", "object"]),
    "an unknown stage field": (json.dumps({**TINY_TRAIN, "stages": [{"n_segments": 1, "max_steps": 1, "speed": 2}]}),
                               ["c.json", "stage 1", "speed"]),
    "an unknown field": (json.dumps({**TINY_TRAIN, "epochs": 3}), ["c.json", "epochs"]),
    "a field of the wrong type": (json.dumps({**TINY_TRAIN, "lr": "fast"}), ["c.json", "lr"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_train_configs_name_the_file(tmp_path, case):
    text, words = BAD_CONFIGS[case]
    (tmp_path / "c.json").write_text(text)
    before = files_under(tmp_path)
    done = run_cli("train", "--config", tmp_path / "c.json", "--output", tmp_path / "run", "--no-progress")
    assert_refused(done, *words)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("damage", [b"", b"\x80\x04\x95 a pickle", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"])
def test_resume_from_a_damaged_checkpoint_is_refused(tmp_path, damage):
    (tmp_path / "c.json").write_text(json.dumps(TINY_TRAIN))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(damage)
    done = run_cli("train", "--config", tmp_path / "c.json", "--output", run, "--resume", "--no-progress")
    assert_refused(done, "checkpoint.safetensors", "not a readable training checkpoint")
    assert sorted(p.name for p in run.iterdir()) == [".train.lock", "checkpoint.safetensors"]


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(TINY_TRAIN))
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".train.lock", "a+") as held:  # what a live run holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_process("train", "--config", tmp_path / "c.json", "--output", run, "--no-progress")
    assert_refused(done, "another train run", str(run))
    assert sorted(p.name for p in run.iterdir()) == [".train.lock"]
    done = run_cli("train", "--config", tmp_path / "c.json", "--output", run, "--no-progress")  # released
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", ["evaluate", "figures", "train"])
def test_outputs_that_cannot_be_written_are_refused(tmp_path, checkpoint, command):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "out"
    samples = write_lines(tmp_path / "s.jsonl", SAMPLE)
    (tmp_path / "c.json").write_text(json.dumps(TINY_TRAIN))
    args = {"evaluate": ["--checkpoint", checkpoint, "--input", samples, "--output", target],
            "figures": ["--checkpoint", checkpoint, "--heldout", "1", "--output", target],
            "train": ["--config", tmp_path / "c.json", "--no-progress", "--output", target]}[command]
    before = files_under(tmp_path)
    done = run_cli(command, *args)
    assert_refused(done, "is a file, not a folder")
    assert files_under(tmp_path) == before


def test_a_real_process_refuses_the_same_way(tmp_path, checkpoint):
    """`python -m rmt_lib` exits with main's status and prints the same one line."""
    samples = write_lines(tmp_path / "s.jsonl", {**SAMPLE, "question": "Where is Bob?"})
    args = ("evaluate", "--checkpoint", checkpoint, "--input", samples, "--output", tmp_path / "e.json")
    real, here = run_process(*args), run_main(*args)
    assert_refused(real, "sample 1", "Bob")
    assert real.returncode == here.returncode and real.stderr.strip() == here.stderr.strip()
    assert not (tmp_path / "e.json").exists()
