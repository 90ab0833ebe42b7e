"""`python -m rmt_lib generate`: byte-identical output per seed, `error: ...` + exit 2 + nothing written on bad input."""
from __future__ import annotations

import subprocess
import sys

import pytest

from rmt_lib.cli import main
from rmt_lib.data import read_jsonl


def generate(*args: str) -> int:
    return main(["generate", *args])


def test_same_seed_same_bytes(prose_dir, tmp_path):
    common = ["--samples", "6", "--segments", "4", "--background", str(prose_dir), "--facts", "2"]
    assert generate(*common, "--seed", "0", "--output", str(tmp_path / "a.jsonl")) == 0
    assert generate(*common, "--seed", "0", "--output", str(tmp_path / "b.jsonl")) == 0
    assert generate(*common, "--seed", "1", "--output", str(tmp_path / "c.jsonl")) == 0
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b != c
    samples = read_jsonl(tmp_path / "a.jsonl")
    assert len(samples) == 6 and all(len(s.facts) == 2 for s in samples)


def test_tokens_and_segment_size(prose_dir, tmp_path, tokenizer):
    out = tmp_path / "t.jsonl"
    assert generate("--samples", "2", "--tokens", "100", "--segment-size", "16", "--background", str(prose_dir), "--output", str(out)) == 0
    for s in read_jsonl(out):
        assert len(tokenizer.encode(s.input)) + len(tokenizer.encode(" " + s.question)) == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "3", "--segments", "1", "--facts", "10"], "too few tokens"),
        (["--samples", "3", "--segments", "4", "--task", "qa7"], "unknown task"),
        (["--samples", "0", "--segments", "4"], "--samples must be at least 1"),
        (["--samples", "3", "--segments", "4", "--background", "{missing}"], "does not exist"),
        (["--samples", "3", "--segments", "4", "--background", "{empty}"], "holds no .txt files"),
    ],
)
def test_bad_input(prose_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in args]
    if "--background" not in args:
        args += ["--background", str(prose_dir)]
    out = tmp_path / "out.jsonl"
    assert generate(*args, "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_module_entry_point(prose_dir, tmp_path):
    out = tmp_path / "m.jsonl"
    cmd = [sys.executable, "-m", "rmt_lib", "generate", "--samples", "2", "--segments", "4", "--seed", "0",
           "--background", str(prose_dir), "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(out)) == 2
    bad = subprocess.run(cmd[:-2] + ["--segments", "1", "--facts", "10", "--output", str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and not (tmp_path / "x.jsonl").exists()


def _babi_file(tmp_path):
    path = tmp_path / "qa1_test.txt"
    path.write_text("1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n"
                    "4 Daniel went back to the garden.\n5 Where is Daniel? \tgarden\t4\n")
    return path


def test_babi_stories_and_placement(prose_dir, tmp_path):
    babi = _babi_file(tmp_path)
    out = tmp_path / "b.jsonl"
    common = ["--segments", "4", "--background", str(prose_dir), "--babi", str(babi)]
    assert generate("--samples", "2", *common, "--output", str(out)) == 0
    samples = read_jsonl(out)
    assert [s.question for s in samples] == ["Where is Mary?", "Where is Daniel?"]
    assert samples[1].facts == ("Mary moved to the bathroom.", "John went to the hallway.",
                                "Daniel went back to the garden.")
    aligned = tmp_path / "a.jsonl"
    assert generate("--samples", "2", *common, "--placement", "aligned", "--output", str(aligned)) == 0
    assert [s.facts for s in read_jsonl(aligned)] == [s.facts for s in samples]


@pytest.mark.parametrize("args, message", [
    (["--samples", "3"], "only 2 bAbI stories"),
    (["--samples", "1", "--facts", "2"], "--facts and --babi exclude each other"),
    (["--samples", "1", "--babi", "{missing}"], "no such bAbI file"),
    (["--samples", "1", "--babi", "{qa2}"], "not a bAbI QA1 file"),
])
def test_bad_babi_input(prose_dir, tmp_path, capsys, args, message):
    qa2 = tmp_path / "qa2.txt"
    qa2.write_text("1 Mary got the milk there.\n2 Where is the milk? \tbathroom\t1\n")
    args = [a.format(missing=tmp_path / "missing.txt", qa2=qa2) for a in args]
    if "--babi" not in args:
        args += ["--babi", str(_babi_file(tmp_path))]
    out = tmp_path / "out.jsonl"
    assert generate(*args, "--segments", "4", "--background", str(prose_dir), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not out.exists()


def test_cli_placements_are_the_generators():
    from rmt_lib import cli
    from rmt_lib.data.samples import PLACEMENTS

    assert cli.PLACEMENTS == PLACEMENTS
