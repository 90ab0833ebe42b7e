"""Self-tests of pagecheck.py on pages built here: a check that passes everything would pass the book too.

A good page (a figure, a matplotlib to_jshtml scrubber and an rmt_lib.display.scrubbers static scrubber) must
come out clean, with both sliders changing their frame; a bad page must be caught on each of its
faults; an embedded ipywidgets view must render from the vendored widget manager with no network.
These need Chromium but no built book.
"""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from matplotlib import animation  # noqa: E402

from pagecheck import REPO_ROOT, check_page  # noqa: E402

VENDOR = REPO_ROOT / "book" / "_vendor"


def _png_data_uri() -> str:
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _jshtml(n_frames: int = 4) -> str:
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    (line,) = ax.plot([], [])
    ax.set_xlim(0, n_frames)
    ax.set_ylim(0, n_frames)

    def draw(k):
        line.set_data(np.arange(k + 1), np.arange(k + 1))
        return (line,)

    html = animation.FuncAnimation(fig, draw, frames=n_frames).to_jshtml()
    plt.close(fig)
    return re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>', "", html)  # as the chapters do


def _rmt_scrubber() -> str:
    from rmt_lib.display.scrubbers import ScrubberData, static_scrubber_html

    text = "Mary went to the kitchen. " + "Some prose. " * 6
    spans = ((0, 26), (26, 50), (50, len(text)))
    rng = np.random.default_rng(0)
    d = rng.random((4, 4))
    data = ScrubberData(text=text, segment_char_spans=spans, fact_char_spans=((0, 25),),
                        distance_matrix=(d + d.T) / 2, memory_change=np.array([1.0, 0.1, 0.2]),
                        fact_segments=(0,), question_segment=2, question="Where is Mary?")
    return static_scrubber_html(data, dpi=30)


def _write_page(tmp_path: Path, name: str, body: str, head: str = "") -> str:
    page = tmp_path / f"{name}.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{name}</title>{head}</head>"
                    f"<body><article><h1>{name}</h1><p>A page made by the self-test of the browser checks.</p>"
                    f"{body}</article></body></html>")
    return page.as_uri()


def test_a_good_page_is_clean_and_both_scrubbers_move(browser, tmp_path):
    body = (f'<div class="cell_output"><img alt="figure" src="{_png_data_uri()}"/></div>'
            f'<div class="cell_output">{_jshtml()}</div>'
            f'<div class="cell_output">{_rmt_scrubber()}</div>')
    report = check_page(browser, _write_page(tmp_path, "good", body), tmp_path, expect_theme=False)
    assert report.problems == []
    assert [s.kind for s in report.scrubbers] == ["jshtml", "rmt-scrubber"]
    assert all(s.changed for s in report.scrubbers)
    assert report.images_checked >= 3
    assert report.screenshot.stat().st_size > 0
    assert all(s.screenshot.stat().st_size > 0 for s in report.scrubbers)


def test_a_bad_page_is_caught_on_every_fault(browser, tmp_path):
    frozen = (f'<div class="animation"><img src="{_png_data_uri()}"/>'
              '<input type="range" min="0" max="3" value="0"/></div>')  # a slider wired to nothing
    body = ('<div class="cell_output"><img alt="missing" src="no-such-figure.png"/></div>'
            '<div class="cell_output"><div class="output traceback"><pre>Traceback (most recent call last):\n'
            'ValueError: boom</pre></div></div>'
            f'<div class="cell_output">{frozen}</div>'
            '<script src="https://cdn.example.invalid/lib.js"></script>')
    report = check_page(browser, _write_page(tmp_path, "bad", body), tmp_path, expect_theme=True)
    joined = "\n".join(report.problems)
    assert "image did not load" in joined and "no-such-figure.png" in joined
    assert "error output in the page" in joined and "Traceback (most recent call last)" in joined
    assert "request leaves file://: https://cdn.example.invalid/lib.js" in joined
    assert "did not change the frame" in joined
    assert "theme CSS not applied" in joined


def test_a_javascript_error_is_reported(browser, tmp_path):
    report = check_page(browser, _write_page(tmp_path, "jserror", "<script>undefinedFunction();</script>"),
                        expect_theme=False)
    assert any("JavaScript error" in p and "undefinedFunction" in p for p in report.problems)


def test_embedded_widgets_render_offline_from_the_vendored_manager(browser, tmp_path):
    """What myst-nb writes for a chapter with widget state, pointed at book/_vendor/ instead of a CDN."""
    if not (VENDOR / ".complete").is_file():
        pytest.fail(f"{VENDOR} is not vendored: run `bash scripts/vendor_widget_js.sh` (`make setup` does)")
    import ipywidgets as widgets
    from ipywidgets.embed import embed_data

    slider = widgets.IntSlider(value=3, min=0, max=9, description="segment")
    data = embed_data(views=[slider])
    # The script tags myst-nb writes from _config.yml's nb_ipywidgets_js, with _static/ -> book/_vendor/.
    config = yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text())
    head = ""
    for src, attrs in config["sphinx"]["config"]["nb_ipywidgets_js"].items():
        extra = "".join(f' {k}="{(VENDOR / v.removeprefix("_static/")).as_uri()}/"' for k, v in (attrs or {}).items())
        head += f'<script src="{(VENDOR / src).as_uri()}"{extra}></script>'
    head += f'<script type="application/vnd.jupyter.widget-state+json">{json.dumps(data["manager_state"])}</script>'
    body = "".join(f'<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">'
                   f'{json.dumps(spec)}</script></div>' for spec in data["view_specs"])
    report = check_page(browser, _write_page(tmp_path, "widgets", body, head), tmp_path, expect_theme=False)
    assert report.problems == []
    assert report.widgets_expected == 1
    assert report.widgets_rendered >= 1
    assert any(r.endswith("embed-amd.js") for r in report.requests)


@pytest.mark.slow
def test_a_built_chapter_with_widgets_loads_the_vendored_manager(browser, tmp_path):
    """End to end through myst-nb: the book's _config.yml, a chapter executed by papermill with a widget
    in it, `jupyter-book build -W -n`; the page must load require.js/embed-amd.js from _static/widgets/
    and draw the widget, offline."""
    import shutil
    import subprocess
    import sys

    import nbformat
    import papermill
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    if not (VENDOR / ".complete").is_file():
        pytest.fail(f"{VENDOR} is not vendored: run `bash scripts/vendor_widget_js.sh` (`make setup` does)")
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "references.bib"):
        shutil.copy(REPO_ROOT / "book" / name, book / name)
    shutil.copytree(VENDOR, book / "_vendor")
    (book / "_toc.yml").write_text("format: jb-book\nroot: widgets\n")
    nb = new_notebook(cells=[
        new_markdown_cell("# Widgets\n\nA chapter with a live widget, as a later chapter may have one.\n\n"
                          "```{bibliography}\n:filter: False\n```"),
        new_code_cell("import ipywidgets as widgets\nwidgets.IntSlider(value=3, min=0, max=9, description='segment')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "widgets.ipynb")
    papermill.execute_notebook(str(book / "widgets.ipynb"), str(book / "widgets.ipynb"), kernel_name="python3",
                               cwd=str(book), progress_bar=False)
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", "-W", "-n", "--builder",
                            "html", str(book)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    page = book / "_build" / "html" / "widgets.html"
    html = page.read_text()
    assert "_static/widgets/embed-amd.js" in html and "cdn.jsdelivr" not in html and "cdnjs" not in html
    report = check_page(browser, page.as_uri(), tmp_path)
    assert report.problems == []
    assert report.widgets_expected == 1 and report.widgets_rendered >= 1
