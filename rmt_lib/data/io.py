"""Reading and writing samples: BABILong JSONL/JSON, and the original bAbI task files."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from rmt_lib.data.grammar import LOCATIONS, parse_fact, parse_question
from rmt_lib.data.samples import Sample
from rmt_lib.jsonio import atomic_path

_BABI_LINE = re.compile(r"(\d+) (.*)")
_SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, read with errors="surrogateescape"


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    """One JSON object per line (BABILong layout + extras), written atomically: temp file, then os.replace."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for sample in samples:
            f.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
    return Path(path)


def read_jsonl(path: str | Path) -> list[Sample]:
    """Samples from BABILong JSONL (one object per line) or JSON (a list of objects, or an object whose values
    are such lists). Needs `input`, `question`, `target`; our extras are read when present, others ignored.

    JSONL is read line by line (a million-token sample is parsed once, not held as file text + document +
    lines); the file is parsed as one JSON document only where it can be one: a first line that is not JSON
    (a document spread over lines), or a single line holding a list or an object without `input`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such samples file: {path}")
    samples: list[Sample] = []
    single: tuple[int, object] | None = None  # the first line, when it would be a whole JSON document alone
    # Universal newlines, as read_text. Undecodable bytes become lone surrogates, so that the line that holds
    # one is named by its number (a strict decoder fails on a buffer, at an offset into it).
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            _check_utf8(path, number, line)
            if not line.strip():
                continue
            if single is not None:  # a second line, so the first was a JSONL line: one that is no sample
                _line_sample(path, *single)  # raises, naming it
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if not samples:  # the first line: maybe a JSON document spread over lines
                    whole = _whole_json(path.read_bytes())
                    if _is_document(whole):
                        return _read_json(path, whole, line=number)
                raise ValueError(f"{path}:{number}: not a BABILong sample: {_json_error(line)}") from None
            if not samples and single is None and _is_document(row):
                single = (number, row)
                continue
            samples.append(_line_sample(path, number, row))
    return _read_json(path, single[1], line=single[0]) if single is not None else samples


def _check_utf8(path: Path, number: int, line: str) -> None:
    bad = _SURROGATE.search(line)
    if bad is not None:
        byte = len(line[:bad.start()].encode("utf-8", "surrogateescape")) + 1
        raw = line[bad.start()].encode("utf-8", "surrogateescape")
        raise ValueError(f"{path}:{number}: not UTF-8 text (byte {byte} of the line is {raw!r}); save the file "
                         "as UTF-8")


def _is_document(data) -> bool:
    """A JSON document of samples rather than one sample: a list, or an object without `input`."""
    return isinstance(data, list) or (isinstance(data, dict) and "input" not in data)


def _json_error(line: str) -> json.JSONDecodeError | None:
    """The error of `line` without its newline, whose position (line 1, column ...) names the spot in the line."""
    try:
        json.loads(line.removesuffix("\n"))
    except json.JSONDecodeError as err:
        return err
    return None


def _line_sample(path: Path, number: int, row) -> Sample:
    try:
        return Sample.from_dict(row)
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}:{number}: not a BABILong sample: {err}") from None


def _whole_json(text: bytes):
    """The file parsed as one JSON document, or None (JSONL with several lines is not one document)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _read_json(path: Path, data, line: int | None = None) -> list[Sample]:
    """Samples from a JSON document: a list of them, or an object whose list values hold them. An object
    with no list is read as one sample, so that its missing field is named."""
    if isinstance(data, dict) and not any(isinstance(v, list) for v in data.values()):
        return [_line_sample(path, line or 1, data)]
    rows = data if isinstance(data, list) else [r for v in data.values() if isinstance(v, list) for r in v]
    samples = []
    for i, row in enumerate(rows):
        try:
            samples.append(Sample.from_dict(row))
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: sample {i}: not a BABILong sample: {err}") from None
    return samples


def read_babi(path: str | Path) -> list[Sample]:
    """One Sample per question of a bAbI task file (format: ../shared/babi/README.txt): its input is the
    story so far (sentences joined by single spaces), all of them recorded as facts with their spans."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such bAbI file: {path}")
    samples: list[Sample] = []
    story: list[str] = []
    expected = 1
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = _BABI_LINE.fullmatch(line)
            if m is None:
                raise ValueError(f"{path}:{number}: malformed bAbI line {line!r} (expected 'ID text' or 'ID question<TAB>answer<TAB>ids')")
            line_id, rest = int(m.group(1)), m.group(2)
            if line_id == 1:
                story, expected = [], 1
            if line_id != expected:
                raise ValueError(f"{path}:{number}: bAbI line id {line_id} out of order (expected {expected} or 1)")
            expected += 1
            if "\t" not in rest:
                story.append(rest.strip())
                continue
            fields = rest.split("\t")
            if len(fields) != 3 or not fields[1].strip():
                raise ValueError(f"{path}:{number}: malformed bAbI question line {line!r} (expected 'ID question<TAB>answer<TAB>ids')")
            samples.append(_story_sample(story, fields[0].strip(), fields[1].strip()))
    return samples


def _story_sample(story: list[str], question: str, target: str) -> Sample:
    spans, pos = [], 0
    for sentence in story:
        spans.append((pos, pos + len(sentence)))
        pos += len(sentence) + 1
    return Sample(input=" ".join(story), question=question, target=target, facts=tuple(story), fact_char_spans=tuple(spans))


def read_babi_qa1(path: str | Path) -> list[Sample]:
    """`read_babi` for task 1 only: every statement a QA1 fact, every question "Where is X?" answered by a
    location; ValueError naming the file and the first question that is not QA1 (another task's file)."""
    samples = read_babi(path)
    if not samples:
        raise ValueError(f"{path} holds no bAbI questions; give a bAbI QA1 file such as qa1_single-supporting-fact_test.txt")
    for i, sample in enumerate(samples, start=1):
        try:
            parse_question(sample.question)
            for fact in sample.facts:
                parse_fact(fact)
            if sample.target not in LOCATIONS:
                raise ValueError(f"answer {sample.target!r} is not a QA1 location")
        except ValueError as err:
            raise ValueError(f"{path} is not a bAbI QA1 file (task 1, single supporting fact): question {i}: {err}") from None
    return samples
