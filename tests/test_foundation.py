"""The ground every other test stands on: CLI entry points, seeding, devices, pins."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from rmt_lib import paths, resolve_device, seed_everything
from rmt_lib.runtime import DEFAULT_THREADS, torch_threads


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmt_lib", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_help_exits_zero():
    result = _cli("--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


@pytest.mark.slow
def test_unknown_subcommand_prints_usage_and_exits_2():
    result = _cli("no-such-command")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "no-such-command" in result.stderr


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_seed_everything_repeats_every_generator(seed):
    def draw():
        seed_everything(seed)
        import random

        return random.random(), float(np.random.rand()), float(torch.rand(()))

    assert draw() == draw()


def test_seed_zero_differs_from_seed_one():
    seed_everything(0)
    a = torch.rand(4)
    seed_everything(1)
    assert not torch.equal(a, torch.rand(4))


def test_seed_everything_fixes_threads():
    seed_everything(0, threads=1)
    assert torch.get_num_threads() == 1
    seed_everything(0)
    assert torch.get_num_threads() == DEFAULT_THREADS  # 2, unless $RMT_NUM_THREADS says otherwise


def test_torch_threads_restores_the_thread_count_even_after_an_error():
    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2
    seed_everything(0)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_non_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


def test_device_defaults_and_overrides(monkeypatch):
    monkeypatch.delenv("RMT_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setenv("RMT_DEVICE", "cpu")
    assert resolve_device().type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_device_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_paths_are_inside_the_repository():
    for p in (paths.DATA_DIR, paths.CACHE_DIR, paths.BOOK_DIR, paths.TOKENIZER_PATH):
        assert paths.REPO_ROOT in p.parents
    assert (paths.REPO_ROOT / "pyproject.toml").is_file()


def _requirement_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_environment_yml_and_requirements_pin_the_same_packages():
    reqs = _requirement_lines((paths.REPO_ROOT / "requirements.txt").read_text())
    env = yaml.safe_load((paths.REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == reqs
    assert all("==" in r for r in reqs), "every requirement is pinned exactly"
    assert "torch==2.13.0" in reqs
    jb = next(r for r in reqs if r.startswith("jupyter-book=="))
    assert jb.split("==")[1].startswith("1."), "Jupyter Book 2 cannot build offline"
