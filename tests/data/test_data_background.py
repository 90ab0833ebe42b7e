"""Background prose: cleaning, sentence splitting, the Austen split by book, folders, PG19 offline."""
from __future__ import annotations

import pytest

from rmt_lib.data import load_background, split_sentences
from rmt_lib.data.austen import BOOKS, SPLITS
from rmt_lib.data.background import normalize_prose

from .conftest import needs_austen


def test_normalize_and_split():
    text = 'It was _very_ odd.  Mr. Darcy\nsaid "No!" and left. she paused? Yes.\n\nNew   paragraph without end'
    assert normalize_prose("a\n  b\t_c_") == "a b c"
    assert split_sentences(text) == ['It was very odd.', 'Mr. Darcy said "No!" and left. she paused?', "Yes.", "New paragraph without end"]


def test_fact_sentences_are_removed_from_prose():
    assert split_sentences("Rain fell. Mary went to the kitchen. It stopped.") == ["Rain fell.", "It stopped."]


def test_splits_are_disjoint_books():
    assert sorted(b for books in SPLITS.values() for b in books) == sorted(BOOKS.values())
    assert SPLITS["validation"] == ("northanger_abbey",) and SPLITS["test"] == ("persuasion",)


@needs_austen
def test_austen_splits_hold_their_books():
    train, test = load_background(split="train"), load_background(split="test")
    assert len(train.sentences) > 20_000 and len(test.sentences) > 3_000
    assert "Emma Woodhouse, handsome, clever, and rich" in train.text
    assert "Sir Walter Elliot" in test.text and "Sir Walter Elliot" not in train.text
    assert all("  " not in s and s == s.strip() for s in train.sentences)


def test_folder_background(prose_dir):
    background = load_background(prose_dir)
    assert background.name == str(prose_dir)
    assert any("Mr. Knightley" in s for s in background.sentences)
    assert load_background(prose_dir, split="test") is background  # a folder serves every split, cached


def test_bad_backgrounds(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_background(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no .txt files"):
        load_background(tmp_path)
    (tmp_path / "empty.txt").write_text("  \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="are empty"):
        load_background(tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_background(None, split="dev")


def test_pg19_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="PG19|pg19"):
        load_background("pg19", split="validation")
