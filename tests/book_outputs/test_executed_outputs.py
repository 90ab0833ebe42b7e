"""The committed chapters' outputs are what executing them gives: nbval's check, applied to the execution that
`make test` has already done (papermill, into $RMT_BOOK_EXECUTED), instead of executing every chapter a second
time. The rules are nbval's own (compare.py); `pytest --nbval book/` runs them on an execution of its own."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from tests.book_outputs.compare import differences, sanitizer

BOOK = Path(__file__).resolve().parents[2] / "book"
EXECUTED = os.environ.get("RMT_BOOK_EXECUTED")

pytestmark = pytest.mark.skipif(not EXECUTED, reason="set RMT_BOOK_EXECUTED to a folder of executed chapters "
                                                     "(make test does, after scripts/run_book.py)")


def chapters() -> list[str]:
    import yaml

    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    names = [toc["root"], *(entry["file"] for entry in toc["chapters"])]
    return [n for n in names if (BOOK / f"{n}.ipynb").is_file()]


@pytest.mark.parametrize("chapter", chapters())
def test_executed_chapter_reproduces_the_committed_outputs(chapter):
    path = Path(EXECUTED) / f"{chapter}.ipynb"
    assert path.is_file(), f"{path} is missing: run scripts/run_book.py --output {EXECUTED} first"
    found = differences(nbformat.read(BOOK / f"{chapter}.ipynb", as_version=4), nbformat.read(path, as_version=4),
                        sanitizer(BOOK / "nbval_sanitize.cfg"))
    assert not found, f"{chapter}: " + "\n".join(found)
