"""Fixtures for the browser tests: the built book (from $RMT_BOOK_HTML) and a headless system Chromium.

`make test` runs these with RMT_BOOK_HTML=.cache/book-ci/_build/html. Without it, the book tests skip
(with the reason); with it set but pointing at no built book, they fail.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # pagecheck.py beside this file

import pagecheck  # noqa: E402

from pagecheck import BOOK_ENV, SCREENSHOT_DIR  # noqa: E402


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR


@pytest.fixture(scope="session")
def browser():
    if pagecheck.chromium_path() is None:
        message = (f"no Chromium at {pagecheck.DEFAULT_CHROMIUM}: install it with "
                   "`apt-get install -y --no-install-recommends chromium` (`make test` does)")
        if os.environ.get(BOOK_ENV):
            pytest.fail(message)  # asked to check a book: a missing browser is an error, not a skip
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = pagecheck.launch(p)
        yield b
        b.close()
