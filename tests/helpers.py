"""Builders the probe tests share: a tiny random RMT and a folder of word-salad prose."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig

_WORDS = "the of and to a in that was her it his she he not be had with for as you at but on all".split()


def tiny_rmt(tokenizer, segment_size: int = 16, seed: int = 0) -> RecurrentMemoryTransformer:
    """Width 8, 2 layers x 2 heads, 2 memory tokens, random weights (torch seeded with `seed`), eval mode."""
    torch.manual_seed(seed)
    cfg = RMTConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_layers=2, num_heads=2,
                    segment_size=segment_size, num_memory_tokens=2)
    return RecurrentMemoryTransformer(cfg).eval()


def word_prose(folder: Path, n_sentences: int = 300, seed: int = 5) -> Path:
    """`folder` holding prose.txt: `n_sentences` sentences of common words, the same every time."""
    rng = np.random.default_rng(seed)
    sentences = [" ".join(rng.choice(_WORDS, size=int(rng.integers(4, 15)))).capitalize() + "."
                 for _ in range(n_sentences)]
    (folder / "prose.txt").write_text(" ".join(sentences))
    return folder


# Fixtures of the probe tests (import them by name into a test module): the committed tokenizer, a tiny RMT
# of 16-token segments, and a word-prose background folder.
SEGMENT = 16


@pytest.fixture(scope="module")
def tokenizer():
    from rmt_lib.data import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_rmt(tokenizer, SEGMENT)


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    return word_prose(tmp_path_factory.mktemp("prose"))


def run_main(*args) -> subprocess.CompletedProcess:
    """The CLI's entry point, `rmt_lib.cli.main`, in this process: what `python -m rmt_lib ARGS` runs, less the
    interpreter's start (seconds of importing torch per case). Its exit status and what it printed, as a
    subprocess would report them; an exception it lets escape fails the test with its traceback. The
    behaviour only a process has (`sys.exit` of `python -m`, signals, a lock held by another process) is
    tested with real subprocesses."""
    from rmt_lib.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's usage errors exit 2
            code = stop.code if isinstance(stop.code, int) else 2
    return subprocess.CompletedProcess(["rmt_lib", *argv], code, out.getvalue(), err.getvalue())


def run_process(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m rmt_lib ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "rmt_lib", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
