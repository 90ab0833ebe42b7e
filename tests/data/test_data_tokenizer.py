"""The committed byte-level BPE: special ids, any text tokenizes, the single-space piece property, retraining."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt_lib.data import load_background, load_tokenizer
from rmt_lib.data import tokenizer as tokenizer_module
from rmt_lib.data.grammar import ACTORS, LOCATIONS, all_fact_sentences

from .conftest import needs_austen


def test_shape_and_special_tokens(tokenizer):
    assert tokenizer.vocab_size == 2048
    assert (tokenizer.pad_id, tokenizer.eos_id) == (0, 1)


def test_grammar_words_are_single_tokens(tokenizer):
    for word in ACTORS + LOCATIONS:
        assert len(tokenizer.encode(" " + word)) == 1, word
    assert max(len(tokenizer.encode(" " + f)) for f in all_fact_sentences()) <= 8


def test_word_ids_are_the_words_single_tokens(tokenizer):
    ids = tokenizer.word_ids(LOCATIONS)
    assert [tokenizer.decode([i]) for i in ids] == [" " + w for w in LOCATIONS]
    assert ids == tokenizer_module.LOCATION_TOKEN_IDS  # the LM answer head's candidates, written out
    with pytest.raises(ValueError, match="one token.*'unbelievably'"):
        tokenizer.word_ids(["kitchen", "unbelievably"])


@given(text=st.text(max_size=200))
@settings(deadline=None)
def test_any_text_tokenizes_and_decodes_back(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    # A prefix space is added to text that does not start with one; decode returns the exact bytes.
    assert tokenizer.decode(ids) == (text if text[:1] == " " or not text else " " + text)


@given(text=st.lists(st.sampled_from(list("ab é.\n ,'") + ["xyz", "Mary", "  "]), max_size=200).map("".join))
@settings(max_examples=60, deadline=None)
def test_chunked_encoding_equals_whole(tokenizer, text):
    whole = tokenizer.hf.encode(text, add_special_tokens=False)
    old = tokenizer_module._LONG_TEXT
    tokenizer_module._LONG_TEXT = 7  # force many chunks
    try:
        ids, offsets = tokenizer.encode_with_offsets(text)
    finally:
        tokenizer_module._LONG_TEXT = old
    assert ids.tolist() == whole.ids
    assert offsets.tolist() == [list(o) for o in whole.offsets]


@given(words=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=8), min_size=1, max_size=30))
@settings(deadline=None)
def test_single_spaced_text_tokenizes_as_its_space_led_pieces(tokenizer, words):
    """The rule samples are built on: with single spaces, encode(text) == concat(encode(" " + piece))."""
    text = " ".join(words)
    assert tokenizer.encode(text) == [i for w in words for i in tokenizer.encode(" " + w)]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer file .* not found"):
        load_tokenizer(tmp_path / "nope.json")


@needs_austen
def test_whole_background_equals_its_sentences(tokenizer):
    background = load_background(split="validation")
    whole = tokenizer.encode(background.text)
    pieces = [i for ids in tokenizer.encode_batch([" " + s for s in background.sentences]) for i in ids]
    assert whole == pieces


@needs_austen
@pytest.mark.slow
def test_retraining_gives_the_committed_file(tmp_path):
    from rmt_lib import paths

    out = tokenizer_module.save_tokenizer(tokenizer_module.train_tokenizer(tokenizer_module.training_texts()), tmp_path / "t.json")
    assert out.read_bytes() == paths.TOKENIZER_PATH.read_bytes()
