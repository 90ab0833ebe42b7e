"""The built book in headless Chromium: every chapter renders, offline, with its figures and scrubbers.

For each chapter page (in _toc.yml order): the themed page renders, every image in it loads
(naturalWidth > 0), no cell shows an error, stderr or traceback, math is typeset by the vendored MathJax,
embedded widgets are drawn by the vendored widget manager, no request leaves file://, and on every static
scrubber (matplotlib to_jshtml or rmt_lib.display.scrubbers.static_scrubber) moving the slider changes the frame.
Screenshots land in .cache/screenshots/.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from pagecheck import BOOK_ENV, REPO_ROOT, check_page

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from run_book import toc_documents  # noqa: E402  the same order run_book.py executes

SKIP_REASON = (f"{BOOK_ENV} is not set: point it at a built book, e.g. "
               f"`RMT_BOOK_HTML=.cache/book-ci/_build/html pytest tests/browser` (`make test` does)")


def _book_html() -> Path | None:
    value = os.environ.get(BOOK_ENV)
    return Path(value).resolve() if value else None


def _chapter_pages() -> list:
    html = _book_html()
    if html is None:
        return [pytest.param(None, id="no-book", marks=pytest.mark.skip(reason=SKIP_REASON))]
    toc = html.parent.parent / "_toc.yml"  # <book>/_build/html -> <book>/_toc.yml
    if not (html / "index.html").is_file() or not toc.is_file():
        return [pytest.param(None, id="missing-book")]  # the test fails with the explanation
    return [pytest.param(doc, id=doc) for doc in toc_documents(toc)]


def _require_book() -> Path:
    html = _book_html()
    if html is None or not (html / "index.html").is_file():
        pytest.fail(f"{BOOK_ENV}={os.environ.get(BOOK_ENV)!r} holds no built book (no index.html); "
                    "build it with `python scripts/run_book.py --budget ci --output .cache/book-ci`")
    if not (html.parent.parent / "_toc.yml").is_file():
        pytest.fail(f"{html.parent.parent / '_toc.yml'} not found: {BOOK_ENV} must be <book>/_build/html")
    return html


@pytest.mark.parametrize("doc", _chapter_pages())
def test_chapter_page(doc, browser, screenshot_dir):
    html = _require_book()
    page_file = html / f"{doc}.html"
    assert page_file.is_file(), f"chapter {doc} is in _toc.yml but {page_file} was not built"
    # Also what is only fetched later (on a click, lazily): no script or stylesheet named by a remote URL.
    remote = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="((?:https?:)?//[^"]+)"', page_file.read_text())
    assert not remote, f"{doc}.html names remote scripts/stylesheets: {remote}"
    report = check_page(browser, page_file.as_uri(), screenshot_dir, name=doc.replace("/", "_"))
    assert not report.problems, f"{doc}.html:\n  " + "\n  ".join(report.problems)
    assert report.screenshot is not None and report.screenshot.stat().st_size > 0
    assert report.requests, "the page made no requests at all: it cannot have loaded its stylesheets"


def test_landing_page_opens_the_book(browser, screenshot_dir):
    """index.html (what `make book` prints) leads to the first chapter, offline."""
    html = _book_html()
    if html is None:
        pytest.skip(SKIP_REASON)
    html = _require_book()
    report = check_page(browser, (html / "index.html").as_uri(), screenshot_dir, name="index")
    assert not report.problems, "index.html:\n  " + "\n  ".join(report.problems)
    first = toc_documents(html.parent.parent / "_toc.yml")[0]
    assert any(r.endswith(f"{first}.html") for r in report.requests), f"index.html did not open {first}.html"


def test_the_introduction_opens_with_the_result(browser, screenshot_dir):
    """The landing chapter shows our Figure 8 and the claims table before anything else of substance."""
    html = _book_html()
    if html is None:
        pytest.skip(SKIP_REASON)
    html = _require_book()
    doc = toc_documents(html.parent.parent / "_toc.yml")[0]
    text = (html / f"{doc}.html").read_text()
    # By the sections' anchors: their titles also appear earlier, in the page's navigation.
    glance = text.find('<section id="results-at-a-glance"')
    assert glance >= 0, "the introduction has no 'Results at a glance' section"
    first_image = text.find("<img", glance)
    next_section = text.find("<section id=", glance + 1)
    assert 0 <= first_image < next_section, "the overview figure is not in the first section"
    assert text.find("<img") == first_image, "an image comes before the overview figure"
    table = text[text.find("<table", glance):text.find("</table>", glance)]
    assert text.find("<table", glance) < next_section, "the claims table is not in the first section"
    rows = table.count("<tr") - 1  # less the header
    assert rows >= 10 and "verdict" in table, f"the claims table has {rows} rows"
    assert table.count('href="figure8') >= 4 and 'href="evaluation' in table, "claims must link to their chapters"
    report = check_page(browser, (html / f"{doc}.html").as_uri(), screenshot_dir, name=f"{doc}-landing")
    assert not report.problems and report.images_checked >= 2, report.problems


@pytest.mark.parametrize("doc", _chapter_pages())
def test_no_parameters_cell_is_shown(doc):
    html = _require_book()
    page = (html / f"{doc}.html").read_text()
    assert "tag_parameters" not in page and "tag_injected-parameters" not in page, f"{doc}.html shows its parameters"


def test_the_status_page_lists_every_chapter_as_run(browser, screenshot_dir):
    html = _book_html()
    if html is None:
        pytest.skip(SKIP_REASON)
    html = _require_book()
    docs = [d for d in toc_documents(html.parent.parent / "_toc.yml") if d != "status"]
    page = (html / "status.html").read_text()
    table = page[page.find("<table"):page.find("</table>")]
    for doc in docs:
        row = re.search(rf'<tr[^>]*>(?:(?!</tr>).)*href="{re.escape(doc)}\.html(?:(?!</tr>).)*</tr>', table, re.S)
        assert row and "passed" in row.group(0), f"the status page has no passed row for {doc}"
    report = check_page(browser, (html / "status.html").as_uri(), screenshot_dir, name="status")
    assert not report.problems, report.problems
