"""Fixtures for the data tests: the committed tokenizer, a small synthetic prose folder, the Austen texts."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rmt_lib import paths
from rmt_lib.data import load_tokenizer
from rmt_lib.data.background import AUSTEN_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HAVE_AUSTEN = (AUSTEN_DIR / ".complete").is_file()
needs_austen = pytest.mark.skipif(not HAVE_AUSTEN, reason="Austen texts absent: run `make setup` (scripts/fetch_background.sh)")
BABI_DIR = paths.BABI_DIR

_WORDS = (
    "the of and to a in that was her it his she he not be had with for as you at but on all by so my which "
    "have him could were would no an from there this said what very one been they much more must such will "
    "any should only Elinor Marianne Willoughby Edward Barton cottage café naïve letter morning evening walk"
).split()


def synthetic_prose(n_sentences: int = 400, seed: int = 7) -> str:
    """Deterministic pseudo-prose: paragraphs of sentences with commas, quotes, titles and a few non-ASCII words."""
    rng = np.random.default_rng(seed)
    paragraphs, sentences = [], []
    for i in range(n_sentences):
        words = [_WORDS[j] for j in rng.integers(len(_WORDS), size=int(rng.integers(3, 30)))]
        if i % 7 == 3:
            words.insert(1, "Mr. Knightley")  # a title must not end a sentence
        if i % 5 == 1:
            words[len(words) // 2] += ","
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + ".!?"[int(rng.integers(3))]
        if i % 11 == 0:
            sentence = f'"{sentence}"'
        sentences.append(sentence)
        if len(sentences) == 5:
            # Line-wrapped like a Gutenberg text, with some extra spaces that the cleaner must remove.
            text = " ".join(sentences)
            paragraphs.append(textwrap.fill(text, 70).replace(" the ", "  the "))
            sentences = []
    return "\n\n".join(paragraphs) + "\n"


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def prose_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prose")
    (folder / "a.txt").write_text(synthetic_prose(300, seed=1), encoding="utf-8")
    (folder / "b.txt").write_text(synthetic_prose(200, seed=2), encoding="utf-8")
    return folder
