"""Open one page of the built book in headless Chromium and list everything wrong with it.

Used by the book's browser tests and by their self-tests (which feed it pages known to be good or
bad, so that a check that silently passes everything would be caught). Nothing here asserts: every
check appends a readable line to `PageReport.problems`.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / ".cache" / "screenshots"
BOOK_ENV = "RMT_BOOK_HTML"  # the built book's html folder, e.g. .cache/book-ci/_build/html

# Schemes a fully offline page may request: its own files and inline data.
LOCAL_SCHEMES = ("file", "data", "blob", "about")
CHROMIUM_ENV = "RMT_CHROMIUM"  # override the browser binary
DEFAULT_CHROMIUM = "/usr/bin/chromium"  # Debian's package (the Makefile installs it); never downloaded
SETTLE_MS = 300  # after an interaction, time for a page script to swap the frame
WIDGET_TIMEOUT_MS = 15_000  # the widget bundle is 3.6 MB of JavaScript to parse

# Where the book puts cell outputs (myst-nb) and what counts as an error output there.
OUTPUT_AREA = ".cell_output, div.output"
ERROR_OUTPUTS = ".output.traceback, .output.error, .output.stderr, .output_error, .output_stderr"


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none on this machine."""
    candidate = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if Path(candidate).is_file():
        return candidate
    return shutil.which("chromium")


def launch(playwright):
    """Headless system Chromium. Playwright's own browser download is never used (it fails offline)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(f"no Chromium at {DEFAULT_CHROMIUM} (or ${CHROMIUM_ENV}); install it with "
                           "`apt-get install -y --no-install-recommends chromium` (`make test` does)")
    return playwright.chromium.launch(
        executable_path=path, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )


@dataclass
class ScrubberResult:
    index: int
    kind: str  # "rmt-scrubber" (rmt_lib.display.scrubbers), "jshtml" (matplotlib to_jshtml) or "range"
    before: str
    after: str
    changed: bool
    screenshot: Path | None = None


@dataclass
class PageReport:
    url: str
    title: str = ""
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images_checked: int = 0
    widgets_expected: int = 0
    widgets_rendered: int = 0
    math_rendered: int = 0
    scrubbers: list[ScrubberResult] = field(default_factory=list)
    screenshot: Path | None = None


# ------------------------------------------------------------------------------ in-page JavaScript

_IMAGES_JS = """
async (selector) => {
  const imgs = Array.from(document.querySelectorAll(selector));
  for (const img of imgs) {
    img.loading = "eager";
    try { await img.decode(); } catch (e) { /* reported below as naturalWidth 0 */ }
  }
  return imgs.map(img => ({src: (img.currentSrc || img.src || "").slice(0, 120),
                           ok: img.complete && img.naturalWidth > 0}));
}
"""

_SIGNATURE_JS = """
(slider) => {
  const box = slider.closest(".rmt-scrubber, .animation") || slider.parentElement.parentElement;
  const visible = el => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
  const imgs = Array.from(box.querySelectorAll("img")).filter(visible)
      .map(img => (img.currentSrc || img.src).length + ":" + (img.currentSrc || img.src).slice(-64));
  const frames = Array.from(box.querySelectorAll("[data-segment]")).filter(visible)
      .map(el => el.getAttribute("data-segment"));
  return JSON.stringify({imgs, frames});
}
"""

_VISIBLE_IMAGES_OK_JS = """
(slider) => {
  const box = slider.closest(".rmt-scrubber, .animation") || slider.parentElement.parentElement;
  const visible = el => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
  const imgs = Array.from(box.querySelectorAll("img")).filter(visible);
  return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0);
}
"""

_KIND_JS = """
(slider) => slider.closest(".rmt-scrubber") ? "rmt-scrubber"
          : slider.closest(".animation") ? "jshtml" : "range"
"""


def _set_slider(slider, value: int) -> None:
    """Fallback when the keyboard did not move it: set the value and fire the events a user's drag fires."""
    slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true}));"
                    " el.dispatchEvent(new Event('change', {bubbles: true})); }", value)


def _move_slider(page, slider) -> None:
    """Move a range input as a reader would: focus it and press End (or Home when already at the end)."""
    value, maximum = slider.evaluate("el => [Number(el.value), Number(el.max || 100)]")
    key, target = ("Home", int(float(slider.evaluate("el => el.min || 0")))) if value >= maximum else ("End", int(maximum))
    slider.focus()
    page.keyboard.press(key)
    page.wait_for_timeout(SETTLE_MS)
    if int(float(slider.evaluate("el => el.value"))) != target:
        _set_slider(slider, target)
        page.wait_for_timeout(SETTLE_MS)


# ------------------------------------------------------------------------------------ the check


def check_page(browser, url: str, screenshot_dir: Path | None = None, *, name: str | None = None,
               expect_theme: bool = True) -> PageReport:
    """Load `url`, wait for its scripts, and check it; see the module docstring and the test files."""
    report = PageReport(url=url)
    name = name or re.sub(r"[^\w.-]+", "_", Path(urlparse(url).path).stem) or "page"
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    page = context.new_page()

    def on_request(request):
        report.requests.append(request.url)
        if urlparse(request.url).scheme not in LOCAL_SCHEMES:
            report.problems.append(f"request leaves file://: {request.url}")

    def on_request_failed(request):
        if urlparse(request.url).scheme in LOCAL_SCHEMES:  # off-page ones are reported by on_request
            report.problems.append(f"failed to load {request.url}: {request.failure}")

    page.on("request", on_request)
    page.on("requestfailed", on_request_failed)
    page.on("pageerror", lambda err: report.problems.append(f"JavaScript error: {err}"))
    # Nothing may reach a network: anything that is not a local file is refused before it is sent.
    context.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: route.abort())
    try:
        page.goto(url, wait_until="load")
        _wait_for_scripts(page, report)
        report.title = page.title()
        _check_content(page, report, expect_theme)
        _check_images(page, report)
        _check_widgets(page, report)
        _check_scrubbers(page, report, screenshot_dir, name)
        if screenshot_dir is not None:
            page.evaluate("window.scrollTo(0, 0)")
            report.screenshot = screenshot_dir / f"{name}.png"
            page.screenshot(path=str(report.screenshot), full_page=True)
    finally:
        context.close()
    return report


def _wait_for_scripts(page, report: PageReport) -> None:
    """Let MathJax typeset and the widget manager render before anything is inspected."""
    page.wait_for_load_state("networkidle")
    if page.evaluate("() => !!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)"):
        page.evaluate("() => window.MathJax.startup.promise")
    report.widgets_expected = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if report.widgets_expected:
        try:
            page.wait_for_function(
                "n => document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets').length >= n",
                arg=report.widgets_expected, timeout=WIDGET_TIMEOUT_MS)
        except Exception:  # reported by _check_widgets with the counts
            pass


def _check_content(page, report: PageReport, expect_theme: bool) -> None:
    main = page.locator("article, main, body").first
    text = main.inner_text().strip()
    if len(text) < 20:
        report.problems.append(f"page has almost no text ({len(text)} characters): did it render?")
    if page.locator("h1").count() == 0:
        report.problems.append("page has no <h1> heading")
    if expect_theme:
        # The theme's stylesheet lays out a primary sidebar at desktop width; unstyled HTML has none.
        width = page.evaluate("() => { const s = document.querySelector('.bd-sidebar-primary');"
                              " return s ? s.getBoundingClientRect().width : 0; }")
        if width < 100:
            report.problems.append(f"theme CSS not applied (primary sidebar {width:.0f}px wide)")
    errors = page.locator(f":is({OUTPUT_AREA}) :is({ERROR_OUTPUTS}), :is({ERROR_OUTPUTS})")
    for i in range(errors.count()):
        report.problems.append(f"error output in the page: {errors.nth(i).inner_text()[:300]!r}")
    outputs_text = " ".join(page.locator(OUTPUT_AREA).all_inner_texts())
    for marker in ("Traceback (most recent call last)", "Error displaying widget"):
        if marker in outputs_text:
            report.problems.append(f"an output contains {marker!r}")
    math = page.locator(".math, span.math, div.math").count()
    report.math_rendered = page.locator("mjx-container").count()
    if math and not report.math_rendered:
        report.problems.append(f"{math} math element(s) but MathJax rendered none (is the vendored MathJax loaded?)")


def _check_images(page, report: PageReport) -> None:
    results = page.evaluate(_IMAGES_JS, "article img, main img, " + ", ".join(f"{s} img" for s in OUTPUT_AREA.split(", ")))
    report.images_checked = len(results)
    for r in results:
        if not r["ok"]:
            report.problems.append(f"image did not load (naturalWidth 0): {r['src']}")


def _check_widgets(page, report: PageReport) -> None:
    if not report.widgets_expected:
        return
    report.widgets_rendered = page.locator(".jupyter-widgets").count()
    if report.widgets_rendered < report.widgets_expected:
        report.problems.append(f"{report.widgets_expected} embedded widget view(s) but {report.widgets_rendered} "
                               "rendered: is the vendored widget manager (require.js, embed-amd.js) loaded?")


def _check_scrubbers(page, report: PageReport, screenshot_dir: Path | None, name: str) -> None:
    sliders = page.locator(", ".join(f"{s} input[type=range]" for s in OUTPUT_AREA.split(", ")))
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        slider.scroll_into_view_if_needed()
        kind = slider.evaluate(_KIND_JS)
        before = slider.evaluate(_SIGNATURE_JS)
        _move_slider(page, slider)
        after = slider.evaluate(_SIGNATURE_JS)
        result = ScrubberResult(index=i, kind=kind, before=before, after=after, changed=before != after)
        if not result.changed:
            report.problems.append(f"scrubber {i} ({kind}): moving its slider did not change the frame")
        elif not slider.evaluate(_VISIBLE_IMAGES_OK_JS):
            report.problems.append(f"scrubber {i} ({kind}): the frame shown after moving has no loaded image")
        if screenshot_dir is not None:
            box = slider.locator("xpath=ancestor::*[contains(@class,'rmt-scrubber') or contains(@class,'animation')][1]")
            target = box if box.count() else slider.locator("xpath=../..")
            result.screenshot = screenshot_dir / f"{name}-scrubber{i}.png"
            target.screenshot(path=str(result.screenshot))
        report.scrubbers.append(result)
