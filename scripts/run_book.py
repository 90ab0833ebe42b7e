#!/usr/bin/env python
"""Execute every chapter of the book with papermill, in `_toc.yml` order, then build the HTML.

    python scripts/run_book.py --budget ci --output .cache/book-ci   # what `make test` runs
    python scripts/run_book.py --budget full --output book           # `make book`: in place
    python scripts/run_book.py --output book --chapter intro --no-build   # re-run one chapter
    python scripts/run_book.py --output .cache/book-paper --checkpoint models/paper-qa1   # another model

- `--output` other than the source folder: the book's sources are copied there first (the folder is
  replaced, but only if run_book.py made it), so the committed chapters stay untouched.
- Each chapter runs with kernel `python3`, its own folder as working directory, and the parameter
  `budget` injected when (and only when) it has a cell tagged `parameters`.
- A chapter executes into a temporary file that replaces the chapter only on success; a failing chapter
  stops the run with exit status 1, its partly executed copy kept in `.cache/book-failed/` to inspect.
- Per-chapter execution times go to `<output>/_build/execution_times.json` (rewritten after every
  chapter, so the reproducibility chapter sees the chapters before it); the kernels get its path in
  `$RMT_BOOK_TIMINGS`. With `--chapter`, the other chapters' times from the last run at the same
  budget are kept, so re-running one chapter does not erase the record of the rest.
- Then `jupyter-book build -W -n --keep-going --builder html --all <output>`: a warning fails the run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nbformat
import yaml

from rmt_lib.budgets import BUDGETS, Budget
from rmt_lib.jsonio import write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO_ROOT / "book"
KERNEL = "python3"
TIMINGS_NAME = "execution_times.json"  # under <output>/_build/
OUTPUT_MARKER = ".made-by-run_book"  # lets us replace an output folder we made, and only that
VENDOR_STAMP = Path("_vendor") / ".complete"
# Never copied from the sources into an output folder.
COPY_IGNORE = ("_build", ".ipynb_checkpoints", "__pycache__", ".vendor.tmp.*", OUTPUT_MARKER)
# A failing chapter's partly executed copy: outside book/ so that `pytest --nbval book/` never sees it.
FAILED_DIR = REPO_ROOT / ".cache" / "book-failed"
# Cell/notebook metadata that papermill and nbclient stamp on every run (timestamps, absolute paths):
# dropped so that re-running a chapter changes its committed file only where its outputs changed.
VOLATILE_CELL_METADATA = ("papermill", "execution")
KEPT_NOTEBOOK_PAPERMILL = ("parameters", "version")


class BookError(Exception):
    """A problem with the book or the command line: printed as one line, exit status 1."""


@dataclass(frozen=True)
class RunConfig:
    """What one run of the book does."""

    budget: Budget
    output: Path  # where chapters execute and the HTML is built (the source folder: in place)
    source: Path = SOURCE_DIR
    chapters: tuple[str, ...] = ()  # run only these (names as in _toc.yml); empty = all
    build: bool = True
    cell_timeout: int | None = None  # seconds per cell; None = no limit
    checkpoint: Path | None = None  # a model folder for the chapters that take `checkpoint`; None = the shipped one

    def __post_init__(self) -> None:
        if self.checkpoint is not None:
            if not (Path(self.checkpoint) / "checksums.json").is_file():
                raise BookError(f"--checkpoint {self.checkpoint} is not a model folder (no checksums.json); "
                                "write one with `python -m rmt_lib import-rmt` or `train`")
            object.__setattr__(self, "checkpoint", Path(self.checkpoint).resolve())
        if self.budget not in BUDGETS:
            raise BookError(f"--budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.cell_timeout is not None and self.cell_timeout <= 0:
            raise BookError(f"--cell-timeout must be a positive number of seconds, got {self.cell_timeout}")
        object.__setattr__(self, "output", self.output.resolve())
        object.__setattr__(self, "source", self.source.resolve())

    @property
    def in_place(self) -> bool:
        return self.output == self.source

    @property
    def timings_path(self) -> Path:
        return self.output / "_build" / TIMINGS_NAME

    def chapter_name(self, notebook: Path) -> str:
        """A chapter as timings name it: its path under the output folder, e.g. "intro.ipynb"."""
        return notebook.relative_to(self.output).as_posix()


@dataclass(frozen=True)
class ChapterTiming:
    chapter: str  # path relative to the book folder, e.g. "intro.ipynb"
    seconds: float
    status: Literal["ok", "failed"]
    parameters: dict[str, Any]
    finished: str = ""  # local date and time the execution ended, ISO 8601 ("" in records before it was kept)
    machine: str = ""  # where it ran: `machine_description()`


def machine_description() -> str:
    """The machine a chapter ran on, in one line: OS, CPU architecture and count, Python, torch device."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"


def _finished(chapter: str, seconds: float, status: str, parameters: dict[str, Any]) -> ChapterTiming:
    return ChapterTiming(chapter=chapter, seconds=round(seconds, 2), status=status, parameters=parameters,
                         finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=machine_description())


# ---------------------------------------------------------------------------------------------- toc


def toc_documents(toc_path: Path) -> list[str]:
    """Every document named in a jb-book `_toc.yml`, in reading order (root first), without suffix."""
    if not toc_path.is_file():
        raise BookError(f"{toc_path} not found: the book needs a _toc.yml listing its chapters")
    toc = yaml.safe_load(toc_path.read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise BookError(f"{toc_path} has no `root:` entry (expected the jb-book format)")
    docs = [str(toc["root"])]

    def walk(entries: Any) -> None:
        for entry in entries or []:
            if "file" in entry:
                docs.append(str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts") or toc.get("chapters"))
    return [d[: -len(Path(d).suffix)] if Path(d).suffix in (".ipynb", ".md") else d for d in docs]


def chapter_notebooks(book_dir: Path) -> list[Path]:
    """The executable chapters (notebooks) of the book in `_toc.yml` order; a missing file is an error."""
    notebooks = []
    for doc in toc_documents(book_dir / "_toc.yml"):
        nb, md = book_dir / f"{doc}.ipynb", book_dir / f"{doc}.md"
        if nb.is_file():
            notebooks.append(nb)
        elif not md.is_file():
            raise BookError(f"_toc.yml lists {doc!r} but neither {nb.name} nor {md.name} exists in {book_dir}")
    return notebooks


def has_parameters_cell(notebook: nbformat.NotebookNode) -> bool:
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells)


def takes_checkpoint(notebook: nbformat.NotebookNode) -> bool:
    """A chapter whose parameters cell defines `checkpoint` (the model folder it probes)."""
    return any("parameters" in cell.get("metadata", {}).get("tags", [])
               and re.search(r"^checkpoint\s*=", cell.source, re.M) for cell in notebook.cells)


# ----------------------------------------------------------------------------------------- sources


def prepare_output(config: RunConfig) -> None:
    """Copy the book's sources into the output folder (nothing to do when executing in place)."""
    vendor_stamp = config.source / VENDOR_STAMP
    if not vendor_stamp.is_file():
        raise BookError(f"{vendor_stamp} is missing: the widget/MathJax JS is not vendored yet; "
                        "run `bash scripts/vendor_widget_js.sh` (or `make setup`)")
    if config.in_place:
        return
    out = config.output
    if out in config.source.parents or config.source in out.parents:
        raise BookError(f"--output {out} must be the book folder itself or lie outside it, not around or inside it")
    if out.exists():
        if not (out / OUTPUT_MARKER).is_file():
            raise BookError(f"refusing to replace {out}: it was not made by run_book.py "
                            f"(no {OUTPUT_MARKER}); pass a new or empty folder")
        shutil.rmtree(out)
    shutil.copytree(config.source, out, ignore=shutil.ignore_patterns(*COPY_IGNORE), symlinks=False)
    (out / OUTPUT_MARKER).write_text("made by scripts/run_book.py; replaced on every run\n")


# --------------------------------------------------------------------------------------- execution


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(f.name, path)


def _timings_payload(config: RunConfig, timings: list[ChapterTiming], build_seconds: float | None) -> dict[str, Any]:
    return {
        "budget": config.budget,
        "kernel": KERNEL,
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "chapters": [dataclasses.asdict(t) for t in timings],
        "total_execution_seconds": round(sum(t.seconds for t in timings), 2),
        "build_seconds": build_seconds,
    }


def strip_volatile_metadata(path: Path) -> None:
    """Drop per-run timestamps and absolute paths that papermill/nbclient stamp into a notebook, and tag
    papermill's injected-parameters cell `remove-cell`, so the rendered page does not show it."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:  # papermill's copy: plumbing, not shown
            cell.metadata["tags"] = [*tags, "remove-cell"]
    pm = nb.metadata.get("papermill")
    if pm is not None:
        nb.metadata["papermill"] = {k: pm[k] for k in KEPT_NOTEBOOK_PAPERMILL if k in pm}
    nbformat.write(nb, path)


def _kernel_environment(config: RunConfig) -> None:
    """Environment the chapter kernels inherit (papermill starts them from this process)."""
    os.environ["RMT_BOOK_TIMINGS"] = str(config.timings_path)
    os.environ["RMT_BOOK_BUDGET"] = config.budget
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever loaded from a hub
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # keeps a debugger warning off stderr


def execute_chapter(notebook_path: Path, config: RunConfig) -> ChapterTiming:
    """Run one chapter with papermill into a temporary file; replace the chapter only on success."""
    import papermill  # imported here so `--help` is fast

    nb = nbformat.read(notebook_path, as_version=4)
    parameters = {"budget": config.budget} if has_parameters_cell(nb) else {}
    if config.checkpoint is not None and takes_checkpoint(nb):
        parameters["checkpoint"] = str(config.checkpoint)
    rel = config.chapter_name(notebook_path)
    # Executed into a scratch folder (not under book/, where nbval would collect it), then moved.
    scratch = Path(tempfile.mkdtemp(prefix="run_book-"))
    partial = scratch / notebook_path.name
    engine_kwargs = {} if config.cell_timeout is None else {"execution_timeout": config.cell_timeout}
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook_path), str(partial), parameters=parameters, kernel_name=KERNEL, language="python",
            cwd=str(notebook_path.parent), progress_bar=False, log_output=False, **engine_kwargs,
        )
    except Exception as err:  # papermill's own error, a dead kernel, a timeout: all fail the book
        seconds = time.perf_counter() - start
        FAILED_DIR.mkdir(parents=True, exist_ok=True)
        kept = FAILED_DIR / notebook_path.name
        if partial.exists():
            shutil.move(partial, kept)
        shutil.rmtree(scratch, ignore_errors=True)
        raise ChapterFailed(rel, seconds, parameters, err, kept if kept.exists() else None) from err
    seconds = time.perf_counter() - start
    strip_volatile_metadata(partial)
    tmp_target = notebook_path.with_name(f".{notebook_path.name}.tmp")
    shutil.move(partial, tmp_target)  # across filesystems if need be, then an atomic swap
    os.replace(tmp_target, notebook_path)
    shutil.rmtree(scratch, ignore_errors=True)
    return _finished(rel, seconds, "ok", parameters)


@dataclass
class Timings:
    """Each chapter's latest timing, written to `config.timings_path` in `_toc.yml` order on every change."""

    config: RunConfig
    order: list[str]  # every chapter, as ChapterTiming.chapter names it
    by_chapter: dict[str, ChapterTiming]

    def add(self, timing: ChapterTiming) -> None:
        self.by_chapter[timing.chapter] = timing
        self.write()

    def write(self, build_seconds: float | None = None) -> None:
        ordered = [self.by_chapter[c] for c in self.order if c in self.by_chapter]
        _write_json(self.config.timings_path, _timings_payload(self.config, ordered, build_seconds))
        write_text_atomic(self.config.output / STATUS_PAGE, status_page(self.config.budget, self.order, self.by_chapter))


STATUS_PAGE = "status.md"  # listed in _toc.yml; rewritten with the execution records on every change


def status_page(budget: str, order: list[str], by_chapter: dict[str, ChapterTiming]) -> str:
    """The book's execution status page (markdown): per chapter, in reading order, its budget, execution
    time and date, pass or fail, and the machine, from the records of the runs that executed it."""
    rows = []
    for name in order:
        t = by_chapter.get(name)
        link = f"{{doc}}`{Path(name).stem}`"
        if t is None:
            rows.append(f"| {link} | | | | not run | |")
            continue
        used = t.parameters.get("budget", "none (no parameters cell)")
        rows.append(f"| {link} | {used} | {t.seconds:.1f} | {t.finished[:19].replace('T', ' ') or 'unknown'} | "
                    f"{'passed' if t.status == 'ok' else 'FAILED'} | {t.machine or 'unknown'} |")
    done = [by_chapter[n] for n in order if n in by_chapter]
    passed = sum(t.status == "ok" for t in done)
    return "\n".join([
        "# Execution status",
        "",
        "Every chapter of this book is a notebook, executed top to bottom by `scripts/run_book.py` (papermill)",
        "before the HTML is built; this page is written from that script's execution records. A chapter",
        "re-run alone (`--chapter`) keeps the other chapters' records from the last run at the same budget.",
        "",
        f"{passed} of {len(order)} chapters passed, in {sum(t.seconds for t in done):.0f} s of execution; run budget "
        f"`{budget}`.",
        "",
        "| chapter | budget | seconds | finished | result | machine |",
        "| --- | --- | ---: | --- | --- | --- |",
        *rows,
        "",
    ])


def earlier_timings(config: RunConfig) -> dict[str, ChapterTiming]:
    """With --chapter: every chapter's time from the last run at the same budget (read before
    `prepare_output`, which replaces an output folder that is not the book folder)."""
    if not config.chapters or not config.timings_path.is_file():
        return {}
    try:
        earlier = json.loads(config.timings_path.read_text())
        rows = [ChapterTiming(**row) for row in earlier["chapters"]] if earlier.get("budget") == config.budget else []
    except (OSError, ValueError, KeyError, TypeError):  # unreadable or from another version: start afresh
        return {}
    return {t.chapter: t for t in rows}


class ChapterFailed(Exception):
    def __init__(self, chapter: str, seconds: float, parameters: dict[str, Any], cause: Exception, kept: Path | None):
        self.timing = _finished(chapter, seconds, "failed", parameters)
        self.cause, self.kept = cause, kept
        where = f"; the partly executed notebook is {kept}" if kept else ""
        super().__init__(f"chapter {chapter} failed after {seconds:.1f} s{where}\n{cause}")


def select_chapters(all_chapters: list[Path], wanted: tuple[str, ...]) -> list[Path]:
    if not wanted:
        return all_chapters
    by_name = {p.stem: p for p in all_chapters}
    unknown = [w for w in wanted if Path(w).stem not in by_name]
    if unknown:
        raise BookError(f"--chapter {', '.join(unknown)} not in _toc.yml; chapters: {', '.join(by_name)}")
    keep = {Path(w).stem for w in wanted}
    return [p for p in all_chapters if p.stem in keep]


def jupyter_book_executable() -> str:
    """The `jupyter-book` script of this interpreter's environment (the package has no `__main__`)."""
    beside = Path(sys.executable).parent / "jupyter-book"
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed in this environment; run `make setup` "
                        "(requirements.txt pins jupyter-book<2)")
    return found


def build_html(config: RunConfig) -> float:
    """`jupyter-book build -W -n --keep-going --all`: any warning fails (--all so none hides in a cache)."""
    cmd = [jupyter_book_executable(), "build", "-W", "-n", "--keep-going", "--all", "--builder", "html",
           str(config.output)]
    print(f"[build] jupyter-book {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO_ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {result.returncode}) after {seconds:.1f} s; "
                        "every Sphinx warning is an error here (-W -n): see the messages above")
    return round(seconds, 2)


_BUILD_CONFTEST = '''"""Written by scripts/run_book.py: this build folder holds copies of the chapters
(_build/html/_sources/*.ipynb for the download button); `pytest --nbval book/` must not collect them."""
collect_ignore_glob = ["*"]
'''


def keep_build_copies_from_pytest(build_dir: Path) -> None:
    """Keep `pytest --nbval book/` on the committed chapters only, after a build inside book/.

    myst-nb leaves executed copies in _build/jupyter_execute/ (not needed once the HTML is written:
    removed) and the download button needs _build/html/_sources/*.ipynb (kept, but hidden from pytest
    by a conftest.py in the git-ignored build folder).
    """
    shutil.rmtree(build_dir / "jupyter_execute", ignore_errors=True)
    (build_dir / "conftest.py").write_text(_BUILD_CONFTEST)


def run(config: RunConfig) -> int:
    earlier = earlier_timings(config)
    prepare_output(config)
    every_chapter = chapter_notebooks(config.output)
    chapters = select_chapters(every_chapter, config.chapters)
    _kernel_environment(config)
    rerun = {config.chapter_name(p) for p in chapters}
    timings = Timings(config, [config.chapter_name(p) for p in every_chapter],
                      {name: t for name, t in earlier.items() if name not in rerun})
    timings.write()
    where = "in place" if config.in_place else f"in {config.output}"
    print(f"Executing {len(chapters)} chapter(s) {where}, budget={config.budget}", flush=True)
    for i, path in enumerate(chapters, 1):
        label = f"[{i}/{len(chapters)}] {config.chapter_name(path)}"
        print(f"{label} ...", flush=True)
        try:
            timing = execute_chapter(path, config)
        except ChapterFailed as failure:
            timings.add(failure.timing)
            print(f"{label} FAILED\n", file=sys.stderr, flush=True)
            raise BookError(str(failure)) from failure
        timings.add(timing)
        params = f" (parameters: {timing.parameters})" if timing.parameters else ""
        print(f"{label} ok in {timing.seconds:.1f} s{params}", flush=True)
    total = sum(timings.by_chapter[name].seconds for name in rerun)
    print(f"Executed {len(chapters)} chapter(s) in {total:.1f} s; times in {config.timings_path}", flush=True)
    if not config.build:
        return 0
    build_seconds = build_html(config)
    keep_build_copies_from_pytest(config.output / "_build")
    timings.write(build_seconds)
    print(f"Built in {build_seconds:.1f} s: {config.output / '_build' / 'html' / 'index.html'}", flush=True)
    return 0


def parse_args(argv: list[str] | None = None) -> RunConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=BUDGETS, default="ci",
                   help="injected as `budget` into chapters with a `parameters` cell (default: ci)")
    p.add_argument("--output", type=Path, required=True,
                   help="folder to execute and build in; the book folder itself means in place")
    p.add_argument("--source", type=Path, default=SOURCE_DIR, help=f"the book's sources (default: {SOURCE_DIR})")
    p.add_argument("--chapter", action="append", default=[],
                   help="run only this chapter (name from _toc.yml, e.g. intro); repeatable")
    p.add_argument("--no-build", dest="build", action="store_false", help="execute only; skip jupyter-book build")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds one cell may run (default: no limit)")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model folder (e.g. from `python -m rmt_lib "
                   "import-rmt`), injected as `checkpoint` into the chapters that take one (default: the shipped model)")
    args = p.parse_args(argv)
    return RunConfig(budget=args.budget, output=args.output, source=args.source, chapters=tuple(args.chapter),
                     build=args.build, cell_timeout=args.cell_timeout, checkpoint=args.checkpoint)


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except BookError as err:
        print(f"run_book: error: {err}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
