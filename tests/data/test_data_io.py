"""JSONL / BABILong JSON / bAbI readers and the atomic writer."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt_lib.data import Sample, generate_samples, read_babi, read_babi_qa1, read_jsonl, write_jsonl
from rmt_lib.data.io import _story_sample

BABI_TEXT = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Sandra moved to the garden.
6 Where is Daniel? \thallway\t4
1 Sandra travelled to the office.
2 Sandra went to the bathroom.
3 Where is Sandra? \tbathroom\t2
"""


def test_jsonl_roundtrip(prose_dir, tmp_path, tokenizer):
    samples = generate_samples("qa1", 5, n_segments=6, background=prose_dir, seed=0, tokenizer=tokenizer)
    path = write_jsonl(samples, tmp_path / "out" / "s.jsonl")
    assert read_jsonl(path) == samples
    assert [json.loads(line)["target"] for line in path.read_text().splitlines()] == [s.target for s in samples]


@given(text=st.text(max_size=50).filter(str.strip), target=st.sampled_from(["kitchen", "office"]))
@settings(deadline=None)
def test_any_text_roundtrips(tmp_path_factory, text, target):
    path = tmp_path_factory.mktemp("rt") / "x.jsonl"
    sample = Sample(input=text, question="Where is Mary?", target=target)
    assert read_jsonl(write_jsonl([sample], path)) == [sample]


@pytest.mark.parametrize("blank", ["", " \n\t"])
def test_a_blank_field_is_refused_with_its_line(tmp_path, blank):
    path = tmp_path / "x.jsonl"
    write_jsonl([Sample("Mary went home.", "Where is Mary?", "office"), Sample(blank, "Where is Mary?", "office")], path)
    with pytest.raises(ValueError, match=r"x\.jsonl:2: .*\['input'\] must be non-empty"):
        read_jsonl(path)


def test_babilong_layout_and_extras_ignored(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"input": "Mary went to the office.", "question": "Where is Mary?", "target": "office", "answer": "x", "id": 3}) + "\n\n")
    assert read_jsonl(path) == [Sample("Mary went to the office.", "Where is Mary?", "office")]
    listed = tmp_path / "b.json"
    listed.write_text(json.dumps([{"input": "a", "question": "q", "target": "t"}, {"input": "b", "question": "q", "target": "t"}], indent=1))
    assert [s.input for s in read_jsonl(listed)] == ["a", "b"]
    split = tmp_path / "c.json"  # BABILong on the Hub: {"qa1": [...], ...}
    split.write_text(json.dumps({"qa1": [{"input": "c", "question": "q", "target": "t"}]}))
    assert [s.input for s in read_jsonl(split)] == ["c"]


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "a", "question": "q", "target": "t"}\n{"input": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*target"):
        read_jsonl(path)
    path.write_text('{"input": "a", "question": "q", "target": "t"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("old\n")

    def broken():
        yield Sample("a", "q", "t")
        raise RuntimeError("generation failed midway")

    with pytest.raises(RuntimeError):
        write_jsonl(broken(), path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]


def test_read_babi(tmp_path):
    path = tmp_path / "qa1_train.txt"
    path.write_text(BABI_TEXT)
    samples = read_babi(path)
    assert [(s.question, s.target, len(s.facts)) for s in samples] == [
        ("Where is Mary?", "bathroom", 2),
        ("Where is Daniel?", "hallway", 4),
        ("Where is Sandra?", "bathroom", 2),
    ]
    assert samples[1].input == "Mary moved to the bathroom. John went to the hallway. Daniel went back to the hallway. Sandra moved to the garden."
    assert [samples[1].input[a:b] for a, b in samples[1].fact_char_spans] == list(samples[1].facts)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("Mary moved to the bathroom.", "malformed bAbI line"),
        ("7 Where is Mary?\tbathroom", "malformed bAbI question line"),
        ("9 Sandra moved to the garden.", "bAbI line id 9 out of order"),
    ],
)
def test_malformed_babi_line_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "broken.txt"
    lines = BABI_TEXT.splitlines()
    lines.insert(6, bad_line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"broken.txt:7: {message}"):
        read_babi(path)


def test_story_sample_spans():
    sample = _story_sample(["A b.", "C d e."], "Where is Mary?", "office")
    assert sample.fact_char_spans == ((0, 4), (5, 11))


def test_read_babi_qa1_accepts_task_1_and_names_what_is_not(tmp_path):
    good = tmp_path / "qa1.txt"
    good.write_text("1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n")
    (sample,) = read_babi_qa1(good)
    assert sample.facts == ("Mary moved to the bathroom.", "John went to the hallway.") and sample.target == "bathroom"
    qa2 = tmp_path / "qa2.txt"
    qa2.write_text("1 Mary got the milk there.\n2 Mary went to the hallway.\n3 Where is the milk? \thallway\t1 2\n")
    with pytest.raises(ValueError, match=r"qa2.txt is not a bAbI QA1 file .* question 1"):
        read_babi_qa1(qa2)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no bAbI questions"):
        read_babi_qa1(empty)
    with pytest.raises(FileNotFoundError, match="no such bAbI file"):
        read_babi_qa1(tmp_path / "absent.txt")
