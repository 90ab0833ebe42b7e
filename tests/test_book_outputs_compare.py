"""The executed-vs-committed comparison that `make test` uses in place of a second execution: it flags what
nbval flags and lets pass what nbval lets pass."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from tests.book_outputs.compare import differences, sanitizer

SANITIZE = sanitizer(Path(__file__).resolve().parents[1] / "book" / "nbval_sanitize.cfg")


def notebook(*cells):
    nb = new_notebook()
    for source, outputs in cells:
        cell = new_code_cell(source, execution_count=1)
        cell.outputs = [new_output(**o) for o in outputs]
        nb.cells.append(cell)
    return nbformat.from_dict(nb)


def text(s: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": s}


def result(**data) -> dict:
    return {"output_type": "execute_result", "data": data, "execution_count": 1}


def test_the_same_outputs_pass_and_a_changed_number_is_flagged():
    a = notebook(("print(1)", [text("accuracy 0.99\n")]))
    assert differences(a, a, SANITIZE) == []
    b = notebook(("print(1)", [text("accuracy 0.98\n")]))
    assert "cell 0 (stdout)" in differences(a, b, SANITIZE)[0]


def test_what_nbval_ignores_is_ignored():
    ignored = "# NBVAL_IGNORE_OUTPUT\n# why: timings\nprint(t)"
    a = notebook((ignored, [text("12 s\n")]), ("f", [result(**{"image/png": "AAAA", "text/plain": "<Figure>"})]),
                 ("repr(o)", [result(**{"text/plain": "<object at 0x7f3a12345678>"})]))
    b = notebook((ignored, [text("14 s\n")]), ("f", [result(**{"image/png": "BBBB", "text/plain": "<Figure>"})]),
                 ("repr(o)", [result(**{"text/plain": "<object at 0x7f3a87654321>"})]))
    assert differences(a, b, SANITIZE) == []


def test_split_streams_are_merged_and_missing_outputs_are_flagged():
    a = notebook(("print(1); print(2)", [text("1\n2\n")]))
    assert differences(a, notebook(("print(1); print(2)", [text("1\n"), text("2\n")])), SANITIZE) == []
    assert "output kinds" in differences(a, notebook(("print(1); print(2)", [])), SANITIZE)[0]
    assert "other code" in differences(a, notebook(("print(3)", [text("1\n2\n")])), SANITIZE)[0]


def test_images_inside_a_scrubbers_html_are_not_compared_but_its_text_is():
    def page(png: str, caption: str) -> dict:
        return result(**{"text/html": f'<div class="rmt-scrubber" id="rmt-scrubber-{png * 16}"><p>{caption}</p>'
                                      f'<img src="data:image/png;base64,{png * 40}="/></div>',
                         "text/plain": "<IPython.core.display.HTML object>"})

    a = notebook(("scrub", [page("a", "segment 3 of 32")]))
    assert differences(a, notebook(("scrub", [page("b", "segment 3 of 32")])), SANITIZE) == []
    assert "text/html" in differences(a, notebook(("scrub", [page("b", "segment 4 of 32")])), SANITIZE)[0]
