"""Every path the project uses, in one place, relative to the repository root.

`RMT_LIB_HOME` overrides the root (useful when the package is installed elsewhere but the
committed artefacts live in a checkout).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(os.environ.get("RMT_LIB_HOME", Path(__file__).resolve().parents[1]))
DATA_DIR = REPO_ROOT / "data"  # small committed artefacts: tokenizer, shipped model, results
CACHE_DIR = REPO_ROOT / ".cache"  # fetched or generated things that are never committed
BACKGROUND_DIR = CACHE_DIR / "background"  # public-domain prose unpacked by `make`
BOOK_DIR = REPO_ROOT / "book"
TOKENIZER_PATH = DATA_DIR / "tokenizer.json"
SHIPPED_MODEL_DIR = DATA_DIR / "model"
RESULTS_DIR = DATA_DIR / "results"
