"""Every path the project uses, in one place, relative to the repository root.

`RMT_LIB_HOME` overrides the root (useful when the package is installed elsewhere but the
committed artefacts live in a checkout).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(os.environ.get("RMT_LIB_HOME", Path(__file__).resolve().parents[1]))
DATA_DIR = REPO_ROOT / "data"  # small committed artefacts: tokenizer, shipped model, results
CACHE_DIR = REPO_ROOT / ".cache"  # fetched or generated things that are never committed
BACKGROUND_DIR = CACHE_DIR / "background"  # public-domain prose unpacked by `make`
BOOK_DIR = REPO_ROOT / "book"
TOKENIZER_PATH = DATA_DIR / "tokenizer.json"
SHIPPED_MODEL_DIR = DATA_DIR / "model"
RESULTS_DIR = DATA_DIR / "results"
BASELINE_MODEL_DIR = DATA_DIR / "baseline"  # the no-memory baseline (train PRESETS["baseline"])
# The original bAbI files (CC BY 3.0): read where a user has them, never copied into the project.
BABI_DIR = Path(os.environ.get("RMT_BABI_DIR", REPO_ROOT.parent / "shared" / "babi"))


def relative(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (outputs must not carry absolute paths)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return path.name if path.is_absolute() else path.as_posix()


@dataclass(frozen=True)
class Missing:
    """An artefact that is not there (yet): what it is, where it belongs, and the command that makes it."""

    what: str  # "the shipped model's training log"
    path: str  # relative to the repository
    how: str  # the command (or step) that writes it

    available = False

    def __str__(self) -> str:
        return f"Not found here: {self.what} ({self.path}). It is made by: {self.how}"

    def __repr__(self) -> str:
        return f"Missing({self.path!r})"

    def summary(self) -> str:
        """One sentence for the prose (glued as Markdown)."""
        return f"*Not available yet:* {self.what} (`{self.path}`) is not there."

    def _repr_markdown_(self) -> str:
        return (f"> **Note.** Not found here: {self.what} (`{self.path}`), so this result is left out. "
                f"It is made by `{self.how}`; re-run this chapter afterwards.")
