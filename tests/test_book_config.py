"""The book's machinery and the chapter conventions (book/CONTRIBUTING.md), checked without a kernel.

Fast: reads _config.yml, _toc.yml, the committed chapters and scripts/run_book.py's pure functions.
One slow test runs run_book.py on a two-chapter book (one failing) to see it fail loudly.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rmt_lib.paths import BOOK_DIR, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import run_book  # noqa: E402

CONFIG = yaml.safe_load((BOOK_DIR / "_config.yml").read_text())
SPHINX = CONFIG["sphinx"]["config"]
CHAPTERS = run_book.chapter_notebooks(BOOK_DIR)
NBVAL_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION")
CDN_HOSTS = ("cdn.jsdelivr", "cdnjs", "unpkg.com", "googleapis", "bootstrapcdn", "mathjax.org")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(path: Path) -> list:
    return [c for c in _read(path).cells if c.cell_type == "code"]


# ------------------------------------------------------------------------------------ _config.yml


def test_the_build_never_executes_chapters():
    assert CONFIG["execute"]["execute_notebooks"] == "off", "run_book.py (papermill) executes; the build only renders"


def test_widget_and_math_javascript_come_from_the_vendored_copy():
    assert SPHINX["html_static_path"] == ["_vendor"]
    scripts = list(SPHINX["nb_ipywidgets_js"])
    assert scripts == ["widgets/require.js", "widgets/amd-paths.js", "widgets/embed-amd.js"], "order matters"
    assert not any("://" in s for s in scripts)
    assert "://" not in SPHINX["mathjax_path"]
    assert not any(host in yaml.safe_dump(CONFIG) for host in CDN_HOSTS)


def test_the_vendor_script_produces_every_file_the_config_names():
    script = (REPO_ROOT / "scripts" / "vendor_widget_js.sh").read_text()
    for name in (*SPHINX["nb_ipywidgets_js"], SPHINX["mathjax_path"]):
        assert Path(name).name in script, f"{name} is loaded by the book but scripts/vendor_widget_js.sh never writes it"
    vendor = BOOK_DIR / "_vendor"
    if (vendor / ".complete").is_file():  # after `make setup`: the files are really there
        for name in (*SPHINX["nb_ipywidgets_js"], SPHINX["mathjax_path"]):
            assert (vendor / name).is_file() and (vendor / name).stat().st_size > 0, name


def test_no_static_folder_that_would_put_the_vendored_js_on_every_page():
    assert not (BOOK_DIR / "_static").exists(), (
        "book/_static makes Jupyter Book 1 add every .js/.css under html_static_path (the whole vendored "
        "widget bundle and MathJax) to every page; put page assets elsewhere (see _config.yml)")


def test_thebe_is_not_loaded():
    # sphinx_thebe writes its inline script twice (a JavaScript error on every page) and points at a CDN.
    assert "sphinx_thebe" not in SPHINX["extensions"]
    assert CONFIG["launch_buttons"]["thebe"] is False


def test_bibliography_extension_is_kept_with_the_replaced_extension_list():
    if CONFIG.get("bibtex_bibfiles"):
        assert "sphinxcontrib.bibtex" in SPHINX["extensions"]
        for bib in CONFIG["bibtex_bibfiles"]:
            assert (BOOK_DIR / bib).is_file()


# --------------------------------------------------------------------------------------- _toc.yml


def test_toc_lists_existing_chapters_in_order_starting_with_the_introduction():
    docs = run_book.toc_documents(BOOK_DIR / "_toc.yml")
    assert docs[0] == "intro" and docs[-2:] == ["reproducibility", "status"]  # status: written by run_book.py
    assert len(docs) == len(set(docs)), "a chapter is listed twice"
    assert [p.stem for p in CHAPTERS] == [d for d in docs if (BOOK_DIR / f"{d}.ipynb").is_file()]


def test_toc_parser_walks_parts_chapters_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "intro", "parts": [
        {"caption": "A", "chapters": [{"file": "a.ipynb", "sections": [{"file": "a1"}]}, {"file": "b"}]},
        {"caption": "B", "chapters": [{"file": "c.md"}]}]}))
    assert run_book.toc_documents(toc) == ["intro", "a", "a1", "b", "c"]


def test_a_toc_entry_without_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: nowhere\n")
    nbformat.write(new_notebook(), tmp_path / "intro.ipynb")
    with pytest.raises(run_book.BookError, match="nowhere"):
        run_book.chapter_notebooks(tmp_path)


# ------------------------------------------------------------------------------ chapter conventions


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_sets_up_inline_plots_and_seeds(chapter):
    first = _code_cells(chapter)[0].source
    assert "%matplotlib inline" in first
    assert re.search(r"seed_everything\(0\)", first), "the setup cell seeds everything with seed_everything(0)"
    assert not re.search(r"^seed_everything\(", first, re.M), (
        "assign the generator it returns (`rng = seed_everything(0)`): a bare call prints "
        "`<torch._C.Generator at 0x...>`, an address nbval would compare")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_executed_without_errors(chapter):
    cells = _code_cells(chapter)
    assert all(c.execution_count is not None for c in cells), "run it with scripts/run_book.py before committing"
    for c in cells:
        for out in c.outputs:
            assert out.output_type != "error", f"{chapter.name}: an error output is committed"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{chapter.name}: stderr is committed ({out.text[:120]!r}); fix the warning, or tag the cell "
                "`remove-stderr` with a comment why")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_nbval_markers_stand_alone_on_their_line(chapter):
    # nbval only honours a comment that is exactly the marker: "# NBVAL_IGNORE_OUTPUT  # why" is ignored.
    for c in _code_cells(chapter):
        for line in c.source.splitlines():
            if any(m in line for m in NBVAL_MARKERS):
                assert line.strip().lstrip("#").strip() in NBVAL_MARKERS, (
                    f"{chapter.name}: {line.strip()!r}: put the marker alone on its line and the reason on the next")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_ignored_outputs_say_why(chapter):
    for c in _code_cells(chapter):
        lines = [ln.strip() for ln in c.source.splitlines()]
        for i, line in enumerate(lines):
            if line.lstrip("#").strip() in ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP"):
                assert i + 1 < len(lines) and lines[i + 1].startswith("# why:"), (
                    f"{chapter.name}: `{line}` needs a `# why: ...` comment on the next line")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_at_most_one_parameters_cell_and_it_defines_budget(chapter):
    cells = [c for c in _read(chapter).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) <= 1
    if cells:
        assert re.search(r"^budget\s*=\s*['\"]ci['\"]", cells[0].source, re.M), "the parameters cell sets budget = \"ci\""


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_plumbing_in_view(chapter):
    """The rendered page shows no parameters cell (nor papermill's copy) and folds the setup cell's code."""
    cells = _code_cells(chapter)
    for c in cells:
        tags = c.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            assert "remove-cell" in tags, f"{chapter.name}: tag the parameters cell remove-cell (papermill still finds it)"
    assert {"hide-input", "remove-input", "remove-cell"} & set(cells[0].metadata.get("tags", [])), (
        f"{chapter.name}: fold the setup cell (hide-input)")


MAX_CODE_LINE = 100  # characters: a code line fits the rendered page without a horizontal scrollbar


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(chapter):
    long = [line for c in _code_cells(chapter) for line in c.source.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"{chapter.name}: {len(long)} code line(s) over {MAX_CODE_LINE} characters, e.g. {long[0]!r}"


def test_the_status_page_lists_every_chapter_with_its_record():
    done = run_book.ChapterTiming("a.ipynb", 12.34, "ok", {"budget": "ci"}, "2026-12-02T03:00:00+0000", "Linux x")
    failed = run_book.ChapterTiming("b.ipynb", 1.0, "failed", {}, "2026-12-02T03:01:00+0000", "Linux x")
    page = run_book.status_page("ci", ["a.ipynb", "b.ipynb", "c.ipynb"], {"a.ipynb": done, "b.ipynb": failed})
    assert page.startswith("# Execution status")
    assert "| {doc}`a` | ci | 12.3 | 2026-12-02 03:00:00 | passed | Linux x |" in page
    assert "| {doc}`b` | none (no parameters cell) | 1.0 | 2026-12-02 03:01:00 | FAILED | Linux x |" in page
    assert "| {doc}`c` | | | | not run | |" in page and "1 of 3 chapters passed" in page
    assert (BOOK_DIR / run_book.STATUS_PAGE).is_file(), "the committed book carries its status page"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_progress_bars_use_tqdm_auto(chapter):
    for c in _code_cells(chapter):
        assert not re.search(r"^\s*(from tqdm import|import tqdm\b)", c.source, re.M), (
            f"{chapter.name}: use `from tqdm.auto import tqdm` (plain tqdm writes rates to stderr, which nbval compares)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_cdn_in_committed_outputs(chapter):
    text = json.dumps([c.get("outputs", []) for c in _read(chapter).cells])
    for host in CDN_HOSTS:
        assert host not in text, f"{chapter.name} has an output that loads from {host}: an offline reader would miss it"


def test_sanitize_file_pairs_every_regex_with_a_replace_on_the_next_line():
    lines = (BOOK_DIR / "nbval_sanitize.cfg").read_text().splitlines()
    regex_lines = [i for i, ln in enumerate(lines) if ln.startswith("regex:")]
    assert regex_lines
    for i in regex_lines:
        assert i + 1 < len(lines) and lines[i + 1].startswith("replace:"), f"line {i + 1}: regex without replace"
        re.compile(lines[i].removeprefix("regex:").strip())


# -------------------------------------------------------------------------------------- run_book.py


def test_run_config_rejects_a_budget_it_does_not_know(tmp_path):
    with pytest.raises(run_book.BookError, match="budget"):
        run_book.RunConfig(budget="long", output=tmp_path)


def test_run_book_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    config = run_book.RunConfig(budget="ci", output=tmp_path)
    if not (BOOK_DIR / run_book.VENDOR_STAMP).is_file():
        pytest.skip("book/_vendor is not vendored here (make setup); prepare_output checks that first")
    with pytest.raises(run_book.BookError, match="refusing"):
        run_book.prepare_output(config)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_run_book_refuses_an_output_around_the_book():
    with pytest.raises(run_book.BookError):
        run_book.prepare_output(run_book.RunConfig(budget="ci", output=REPO_ROOT, source=BOOK_DIR))


def test_only_chapters_with_a_parameters_cell_get_parameters():
    with_cell = new_notebook(cells=[new_code_cell('budget = "ci"', metadata={"tags": ["parameters"]})])
    assert run_book.has_parameters_cell(with_cell)
    assert not run_book.has_parameters_cell(new_notebook(cells=[new_code_cell("x = 1")]))


def test_volatile_metadata_is_stripped(tmp_path):
    nb = new_notebook(cells=[new_code_cell("1", metadata={"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "2025-01-01T00:00:00Z"},
                                                           "tags": ["keep"]})])
    nb.metadata["papermill"] = {"parameters": {"budget": "ci"}, "version": "2.7.0", "input_path": "/abs/x.ipynb",
                                "start_time": "now"}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    run_book.strip_volatile_metadata(path)
    out = _read(path)
    assert out.cells[0].metadata == {"tags": ["keep"]}
    assert out.metadata["papermill"] == {"parameters": {"budget": "ci"}, "version": "2.7.0"}


def test_earlier_timings_are_read_only_for_a_chapter_run_at_the_same_budget(tmp_path):
    order = ["intro.ipynb", "data.ipynb"]
    everything = run_book.RunConfig(budget="ci", output=tmp_path)
    first = [run_book.ChapterTiming(chapter=name, seconds=1.0 + i, status="ok", parameters={})
             for i, name in enumerate(order)]
    run_book._write_json(everything.timings_path, run_book._timings_payload(everything, first, None))
    one = run_book.RunConfig(budget="ci", output=tmp_path, chapters=("data",))
    assert {name: t.seconds for name, t in run_book.earlier_timings(one).items()} == {"intro.ipynb": 1.0,
                                                                                       "data.ipynb": 2.0}
    assert run_book.earlier_timings(run_book.RunConfig(budget="full", output=tmp_path, chapters=("data",))) == {}
    assert run_book.earlier_timings(everything) == {}  # a whole-book run starts afresh
    everything.timings_path.write_text("{not json")
    assert run_book.earlier_timings(one) == {}


@pytest.mark.slow
def test_run_book_executes_in_order_injects_budget_and_fails_loudly(tmp_path):
    """A two-chapter book: the first takes `budget` and writes a file the second needs; then the second
    is broken, and the run must stop with exit status 1, naming the chapter, leaving it unreplaced."""
    src = tmp_path / "src"
    (src / "_vendor").mkdir(parents=True)
    (src / run_book.VENDOR_STAMP).write_text("test\n")
    (src / "_toc.yml").write_text("format: jb-book\nroot: first\nchapters:\n  - file: second\n")
    nbformat.write(new_notebook(cells=[
        new_code_cell('budget = "full"', metadata={"tags": ["parameters"]}),
        new_code_cell('open("handoff.txt", "w").write(budget)')]), src / "first.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# two"),
                                       new_code_cell('print(open("handoff.txt").read())')]), src / "second.ipynb")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "run_book.py"), "--budget", "ci", "--source", str(src),
           "--output", str(out), "--no-build"]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "[1/2] first.ipynb ok" in ok.stdout and "[2/2] second.ipynb ok" in ok.stdout
    second = _read(out / "second.ipynb")
    assert second.cells[1].outputs[0].text == "ci\n"  # the injected budget reached the second chapter
    timings = json.loads((out / "_build" / run_book.TIMINGS_NAME).read_text())
    assert [c["chapter"] for c in timings["chapters"]] == ["first.ipynb", "second.ipynb"]
    assert timings["chapters"][0]["parameters"] == {"budget": "ci"} and timings["chapters"][1]["parameters"] == {}

    # One chapter again: the output folder is made afresh, yet the other chapter's time is kept, in toc order.
    (src / "handoff.txt").write_text("ci")  # what the first chapter left in the old output folder
    again = subprocess.run(cmd + ["--chapter", "second"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert again.returncode == 0, again.stderr
    kept = json.loads((out / "_build" / run_book.TIMINGS_NAME).read_text())["chapters"]
    assert [c["chapter"] for c in kept] == ["first.ipynb", "second.ipynb"] and kept[0] == timings["chapters"][0]

    nbformat.write(new_notebook(cells=[new_code_cell('raise RuntimeError("chapter two is broken")')]),
                   src / "second.ipynb")
    failed = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    assert failed.returncode == 1
    assert "second.ipynb FAILED" in failed.stderr and "chapter two is broken" in failed.stderr
    assert _read(out / "second.ipynb").cells[0].outputs == []  # the failed run did not replace the chapter
    statuses = [c["status"] for c in json.loads((out / "_build" / run_book.TIMINGS_NAME).read_text())["chapters"]]
    assert statuses == ["ok", "failed"]
