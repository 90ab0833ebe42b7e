"""The background prose tokenized once, as a ring of tokens that long samples wrap around.

The ring text is "".join(" " + s for s in sentences); its tokens tile it. Tokenizing a book takes seconds,
so the arrays are cached on disk per (text, tokenizer) and in memory per process.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmt_lib import paths
from rmt_lib.data.background import Background
from rmt_lib.data.tokenizer import Tokenizer
from rmt_lib.jsonio import atomic_path

TOKENIZED_CACHE_DIR = paths.CACHE_DIR / "tokenized"
_BATCH = 4096  # sentences per encode_batch call while tokenizing a background


@dataclass(frozen=True)
class Ring:
    """A background tokenized once. The ring text is "".join(" " + s for s in sentences); tokens tile it."""

    text: str
    ids: np.ndarray  # (N,) int32
    starts: np.ndarray  # (N + 1,) int64, char start of each token in `text`; starts[N] = len(text)
    sentence_starts: np.ndarray  # (n_sentences,) int64 token index of each sentence's first token
    space_led: np.ndarray  # (N,) bool: the token starts with a space (a piece boundary)

    @property
    def n(self) -> int:
        return len(self.ids)

    def ring_ids(self, a: int, b: int) -> np.ndarray:
        """Token ids of ring positions [a, b) (0 <= a <= b; positions past N wrap)."""
        parts = []
        while a < b:
            i = a % self.n
            k = min(b - a, self.n - i)
            parts.append(self.ids[i : i + k])
            a += k
        return np.concatenate(parts) if parts else self.ids[:0]

    def ring_text(self, a: int, b: int) -> tuple[str, np.ndarray]:
        """Text of ring positions [a, b) and each token's char start in that text."""
        texts, starts, base = [], [], 0
        while a < b:
            i = a % self.n
            k = min(b - a, self.n - i)
            c0, c1 = int(self.starts[i]), int(self.starts[i + k])
            texts.append(self.text[c0:c1])
            starts.append(self.starts[i : i + k] - c0 + base)
            base += c1 - c0
            a += k
        if not texts:
            return "", np.zeros(0, dtype=np.int64)
        return "".join(texts), np.concatenate(starts)


_STREAMS: dict[tuple[str, str], Ring] = {}


def tokenized_background(background: Background, tokenizer: Tokenizer) -> Ring:
    """The background as the generator draws from it: tokenized once per process (and cached on disk)."""
    key = (background.name, tokenizer.fingerprint)
    if key not in _STREAMS:
        _STREAMS[key] = _tokenize_background(background, tokenizer)
    return _STREAMS[key]


def _tokenize_background(background: Background, tokenizer: Tokenizer) -> Ring:
    text = "".join(" " + s for s in background.sentences)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache_file = TOKENIZED_CACHE_DIR / f"{tokenizer.fingerprint}-{digest}.npz"
    arrays = _read_cache(cache_file)
    if arrays is None:
        arrays = _encode_sentences(background.sentences, tokenizer)
        _write_cache(cache_file, arrays)
    ids, starts, sentence_starts = arrays
    return Ring(text, ids, starts, sentence_starts, tokenizer.space_led[ids])


def _encode_sentences(sentences, tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sentence encoded as " " + sentence (equal, by the single-space rule, to encoding the whole text)."""
    ids_parts, start_parts, counts = [], [], []
    base = 0
    for i in range(0, len(sentences), _BATCH):
        batch = [" " + s for s in sentences[i : i + _BATCH]]
        for piece, enc in zip(batch, tokenizer.hf.encode_batch(batch, add_special_tokens=False)):
            offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            ids_parts.append(np.asarray(enc.ids, dtype=np.int32))
            start_parts.append(offsets[:, 0] + base)
            counts.append(len(enc.ids))
            base += len(piece)
    ids = np.concatenate(ids_parts)
    starts = np.concatenate(start_parts + [np.array([base], dtype=np.int64)])
    sentence_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return ids, starts, sentence_starts


def _read_cache(path: Path):
    try:
        with np.load(path) as z:
            return z["ids"], z["starts"], z["sentence_starts"]
    except (OSError, KeyError, ValueError):
        return None


def _write_cache(path: Path, arrays) -> None:
    """Best effort (a read-only checkout still works, only slower to start)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=arrays[0], starts=arrays[1], sentence_starts=arrays[2])
    except OSError:
        pass
