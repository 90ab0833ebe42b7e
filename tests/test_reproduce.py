"""The timed reproduction (rmt_lib.reproduction, scripts/reproduce.py): its steps are the README's commands, in
the README's order, and its runner times them, stops at the first failure and leaves a record either way.
Fast: the runner runs stand-in steps."""
from __future__ import annotations

import json
import re
import sys

import pytest

from rmt_lib import reproduction
from rmt_lib.paths import REPO_ROOT, Missing, relative
from rmt_lib.reproduction import (NAMES, STEPS, Step, check_steps, reproduction_record, reproduction_table,
                                  run_steps, select_steps)
from rmt_lib.train import CHECKPOINT
from rmt_lib.runtime import DEFAULT_THREADS
from rmt_lib.train.log import FULL_TRAINING_DIR

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import reproduce  # noqa: E402

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """The commands of the README's "Retrain and re-measure" code blocks, without comments, `python` for the
    venv's interpreter."""
    section = README[README.index("## Retrain and re-measure"):README.index("### Where the shipped model stands")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line := line.split("  #")[0].strip():
                commands.append(re.sub(r"^\.venv/bin/python ", "python ", line))
    return commands


def test_the_steps_are_the_readme_s_commands_in_its_order():
    assert readme_commands() == [step.command for step in STEPS]


def test_the_book_reads_the_training_step_s_run_instead_of_training_again():
    train = next(s for s in STEPS if s.name == "train")
    output = re.search(r"--output (\S+)", train.command).group(1)
    assert relative(FULL_TRAINING_DIR) == output
    assert STEPS[-1].name == "book"  # after everything it reads and checksums


def test_python_is_this_interpreter_and_make_is_make():
    by_name = {s.name: s for s in STEPS}
    assert by_name["train"].argv[:3] == [sys.executable, "-m", "rmt_lib"]
    assert by_name["book"].argv == ["make", "book", "BUDGET=full"]


def test_list_prints_the_steps_and_runs_nothing(capsys, tmp_path):
    assert reproduce.main(["--list", "--skip", "backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [n for n in NAMES if n != "backbones"]


@pytest.mark.parametrize("argv, message", [
    (["--only", "trian", "--output", "x.json"], "no step 'trian'; the steps are train, baseline, evaluation"),
    (["--skip", *NAMES, "--output", "x.json"], "leave no step"),
    (["--only", "train"], "--output is required"),
    (["--only", "evaluation", "--output", "."], "is a folder"),
])
def test_bad_arguments_exit_2_and_write_nothing(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert reproduce.main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_runner_times_each_step_and_stops_at_the_first_failure(tmp_path):
    steps = (Step("fine", "python -c 'open(\"here\", \"w\")'", "here"),
             Step("broken", "python -c 'import sys; sys.exit(3)'", "nothing"),
             Step("never", "python -c 'open(\"ran\", \"w\")'", "ran"))
    out = tmp_path / "out" / "reproduction.json"
    (tmp_path / "out").mkdir()
    assert run_steps(steps, out, cwd=tmp_path, whole=steps) == 1
    assert (tmp_path / "here").is_file() and not (tmp_path / "ran").exists()  # run from cwd, stopped at "broken"
    record = json.loads(out.read_text())
    assert [(s["name"], s["returncode"]) for s in record["steps"]] == [("fine", 0), ("broken", 3)]
    assert record["complete"] is False and "started" in record
    assert record["total_s"] == pytest.approx(sum(s["seconds"] for s in record["steps"]), abs=0.2)
    table = reproduction_table(reproduction_record(out), steps)
    assert table.startswith(f"Started {record['started']} on ")
    assert "| `broken` | `python -c 'import sys; sys.exit(3)'` |" in table and "failed (3)" in table
    assert table.splitlines()[-1].endswith("| incomplete |")

    assert run_steps(steps[:1], out, cwd=tmp_path, whole=steps[:1]) == 0
    assert json.loads(out.read_text())["complete"] is True
    assert run_steps(steps[:1], out, cwd=tmp_path, whole=steps) == 0  # --only one step of three
    assert json.loads(out.read_text())["complete"] is False


def test_an_unwritable_record_fails_before_the_first_step(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    steps = (Step("never", "python -c 'open(\"ran\", \"w\")'", "ran"),)
    with pytest.raises(ValueError, match="a-file is a file, not a folder"):
        run_steps(steps, tmp_path / "a-file" / "reproduction.json", cwd=tmp_path)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("make_trouble, names, message", [
    (lambda root: (root / "runs" / "default").mkdir(parents=True) or (root / "runs" / "default" / CHECKPOINT)
     .write_bytes(b"x"), ["train"], "runs/default already holds a training run"),
    (lambda root: (root / "runs" / "baseline").mkdir(parents=True) or
     (root / "runs" / "baseline" / CHECKPOINT).write_bytes(b"x"), ["baseline"],
     r"runs/baseline already holds a training run.*--config baseline --output runs/baseline --resume"),
    (lambda root: None, ["evaluation_babi"], "qa1_single-supporting-fact_test.txt is not there"),
])
def test_what_would_stop_a_step_hours_in_is_refused_first(make_trouble, names, message, tmp_path):
    make_trouble(tmp_path)
    with pytest.raises(ValueError, match=message):
        check_steps(select_steps(only=names), cwd=tmp_path)
    check_steps(select_steps(only=["evaluation"]), cwd=tmp_path)  # nothing it needs is missing


def test_an_absent_record_is_a_missing_note_that_names_make_reproduce(tmp_path):
    missing = reproduction_record(tmp_path / "reproduction.json")
    assert isinstance(missing, Missing) and "make reproduce" in missing._repr_markdown_()
    assert reproduction.REPRODUCTION_FILE.parent == REPO_ROOT / "data" / "results"


def test_resume_keeps_the_steps_that_succeeded_and_runs_the_rest(tmp_path):
    fine = Step("fine", "python -c 'open(\"fine\", \"a\").write(\"ran\\n\")'", "fine")
    later = Step("later", "python -c 'open(\"later\", \"w\")'", "later")
    out = tmp_path / "reproduction.json"
    broken = (fine, Step("flaky", "python -c 'import sys; sys.exit(4)'", "-"), later)
    assert run_steps(broken, out, cwd=tmp_path, whole=broken) == 1
    assert reproduction.finished_steps(out, broken) == {"fine"} and reproduction.finished_steps(out) == set()
    mended = (fine, Step("flaky", "python -c pass", "-"), later)
    assert run_steps(mended, out, cwd=tmp_path, resume=True, whole=mended) == 0
    record = json.loads(out.read_text())
    assert (tmp_path / "fine").read_text() == "ran\n" and (tmp_path / "later").is_file()  # fine ran once
    assert [(s["name"], s["returncode"]) for s in record["steps"]] == [("fine", 0), ("flaky", 0), ("later", 0)]
    assert record["complete"] is True and len(record["resumed"]) == 1
    assert record["total_s"] == pytest.approx(sum(s["seconds"] for s in record["steps"]), abs=0.2)
    assert f"resumed {record['resumed'][0]}," in reproduction_table(record)
    assert run_steps(mended, out, cwd=tmp_path, resume=True, whole=mended) == 0  # nothing left: nothing runs
    assert (tmp_path / "fine").read_text() == "ran\n" and len(json.loads(out.read_text())["resumed"]) == 1


def test_resume_needs_a_record_of_this_machine(tmp_path):
    out = tmp_path / "reproduction.json"
    with pytest.raises(ValueError, match="there is none"):
        run_steps((Step("x", "python -c pass", "-"),), out, cwd=tmp_path, resume=True)
    assert run_steps((Step("x", "python -c pass", "-"),), out, cwd=tmp_path) == 0
    elsewhere = json.loads(out.read_text())
    elsewhere["machine"]["cpu"] = "another CPU"
    out.write_text(json.dumps(elsewhere))
    with pytest.raises(ValueError, match="made on another machine"):
        run_steps((Step("x", "python -c pass", "-"),), out, cwd=tmp_path, resume=True)


@pytest.mark.parametrize("backbone", ["bloom", "llama", "gpt2"])
@pytest.mark.parametrize("answer_head", ["classifier", "lm"])
def test_the_backbone_comparison_builds_a_run_for_every_backbone(backbone, answer_head):
    import compare_backbones  # scripts/, on the path above

    cfg = compare_backbones.backbone_config(backbone, answer_head, (10, 8), 0.9)
    assert (cfg.model.backbone, cfg.model.answer_head, cfg.model.memory_path) == (backbone, answer_head, "final_norm")
    assert [(s.n_segments, s.max_steps) for s in cfg.stages] == [(1, 10), (2, 8)] and cfg.advance_accuracy == 0.9


def test_main_resume_checks_only_the_steps_left_to_run(tmp_path, monkeypatch):
    train = next(s for s in STEPS if s.name == "train")
    out = tmp_path / "reproduction.json"
    out.write_text(json.dumps({"machine": {}, "steps": [{"name": "train", "command": train.command, "writes": "",
                                                         "seconds": 1.0, "returncode": 0}], "total_s": 1.0}))
    checked, ran = [], []
    monkeypatch.setattr(reproduce, "check_steps", lambda steps: checked.extend(s.name for s in steps))
    monkeypatch.setattr(reproduce, "run_steps", lambda steps, output, resume: ran.append(resume) or 0)
    assert reproduce.main(["--resume", "--only", "train", "evaluation", "--output", str(out)]) == 0
    assert checked == ["evaluation"] and ran == [True]  # a finished train step: its run folder is not refused


def test_resume_with_only_some_steps_keeps_the_record_of_the_others(tmp_path):
    fine, later = Step("fine", "python -c pass", "-"), Step("later", "python -c pass", "-")
    broken = (fine, Step("flaky", "python -c 'import sys; sys.exit(4)'", "-"), later)
    mended = (fine, Step("flaky", "python -c pass", "-"), later)
    out = tmp_path / "reproduction.json"
    assert run_steps(broken, out, cwd=tmp_path, whole=broken) == 1
    assert run_steps(mended[1:2], out, cwd=tmp_path, resume=True, whole=mended) == 0  # --only flaky
    record = json.loads(out.read_text())
    assert [s["name"] for s in record["steps"]] == ["fine", "flaky"] and record["complete"] is False


def test_the_table_says_how_the_steps_changed_since_the_record():
    record = {"machine": {"cpu": "x", "cpu_family_model": ["1", "2"], "usable_cpus": 2, "torch": "t", "torch_threads": 2},
              "steps": [{"name": s.name, "command": s.command, "seconds": 60.0, "returncode": 0} for s in STEPS],
              "total_s": 60.0 * len(STEPS), "complete": True}
    assert "changed" not in reproduction_table(record)
    record["steps"] = [{**record["steps"][0], "command": "python -m rmt_lib train --config old"}] + record["steps"][2:]
    assert reproduction_table(record).endswith(f"it lacks `{STEPS[1].name}`; it ran `train` with another command.")
