"""The lean paths a million-token sample takes: ids + token starts without offsets, JSONL read line by line.

Each is pinned to the path it replaced: same tokens, same starts, same samples, same error messages.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt_lib.data import Sample, read_jsonl
from rmt_lib.data import tokenizer as tokenizer_module

TEXTS = st.lists(st.sampled_from(list("ab é.\n ,'") + ["xyz", "Mary", "  ", "\ud800", "日本", "😀"]), max_size=120).map("".join)


@given(text=TEXTS, chunk=st.sampled_from([7, 1 << 12]))
@settings(max_examples=80, deadline=None)
def test_starts_are_the_offsets_starts(tokenizer, text, chunk):
    old = tokenizer_module._LONG_TEXT
    tokenizer_module._LONG_TEXT = chunk  # 7 forces many chunks
    try:
        ids, offsets = tokenizer.encode_with_offsets(text)
        lean_ids, starts = tokenizer.encode_with_starts(text)
    finally:
        tokenizer_module._LONG_TEXT = old
    whole = tokenizer.hf.encode(tokenizer_module._valid(text), add_special_tokens=False)
    assert ids.dtype == offsets.dtype == np.int64 and offsets.shape == (len(whole.ids), 2)
    assert ids.tolist() == whole.ids and offsets.tolist() == [list(o) for o in whole.offsets]
    assert lean_ids.dtype == starts.dtype == np.int32
    assert lean_ids.tolist() == whole.ids and starts.tolist() == [a for a, _ in whole.offsets]


def test_token_bound_holds_for_the_worst_case(tokenizer):
    for text in ("", "a", "é" * 50, "😀" * 20, "\ud800" * 5, "a b" * 100):
        assert len(tokenizer.hf.encode(tokenizer_module._valid(text), add_special_tokens=False).ids) \
            <= tokenizer_module._max_tokens(text)


# --- read_jsonl against the whole-file reader it replaced -------------------------------------------------

def _reference_read_jsonl(path) -> list[Sample]:
    """The previous reader: the whole file parsed as one document first, then line by line (and, since,
    an object that holds no list of samples is read as one sample, which names its missing field)."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "input" not in whole and not any(isinstance(v, list) for v in whole.values()):
        number = next(i for i, line in enumerate(text.split("\n"), start=1) if line.strip())
        try:  # one sample lacking `input`, not a document of none: its missing field is named
            return [Sample.from_dict(whole)]
        except ValueError as err:
            raise ValueError(f"{path}:{number}: not a BABILong sample: {err}") from None
    if isinstance(whole, list) or (isinstance(whole, dict) and "input" not in whole):
        rows = whole if isinstance(whole, list) else [r for v in whole.values() if isinstance(v, list) for r in v]
        samples = []
        for i, row in enumerate(rows):
            try:
                samples.append(Sample.from_dict(row))
            except (ValueError, TypeError, AttributeError) as err:
                raise ValueError(f"{path}: sample {i}: not a BABILong sample: {err}") from None
        return samples
    samples = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}:{number}: not a BABILong sample: {err}") from None
    return samples


_GOOD = json.dumps({"input": "Mary went to the garden.", "question": "Where is Mary?", "target": "garden"})
_LINES = [_GOOD, _GOOD + " ", f"[{_GOOD}]", "[", "]", "{}", f'{{"qa1": [{_GOOD}]}}', '{"qa1": [', _GOOD + ",",
          "not json", "", " ", "\t", "1", '"s"', "[]", '{"input": 1}', '{"input": "x"', "null", '{"a": ',
          json.dumps({"input": "x", "question": "q"}), "\ufeff" + _GOOD, json.dumps([json.loads(_GOOD)], indent=1)]


def _outcome(read, path):
    try:
        return "ok", read(path)
    except ValueError as err:
        return "error", str(err)


@given(lines=st.lists(st.sampled_from(_LINES), max_size=4), sep=st.sampled_from(["\n", "\r\n", "\r", "\n\n"]),
       end=st.sampled_from(["", "\n", " \n"]))
@settings(max_examples=300, deadline=None)
def test_read_jsonl_reads_and_refuses_as_the_whole_file_reader_did(tmp_path_factory, lines, sep, end):
    path = tmp_path_factory.mktemp("jsonl") / "s.jsonl"
    path.write_bytes((sep.join(lines) + end).encode("utf-8", "surrogatepass"))
    assert _outcome(read_jsonl, path) == _outcome(_reference_read_jsonl, path)


def test_read_jsonl_error_names_the_column_of_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_GOOD + '\n{"input": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a BABILong sample: Expecting value: line 1 column 11"):
        read_jsonl(path)
