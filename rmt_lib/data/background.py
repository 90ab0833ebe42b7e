"""Background prose: where it comes from, how it is cleaned and split into sentences.

Sources (`background=` everywhere):
- None: Jane Austen's novels under `.cache/background/austen/` (fetched by `make setup`), split BY BOOK;
- a folder (str or Path) of `.txt` files: all of them, sorted by name, for every split;
- "pg19": PG19 through Hugging Face `datasets` (optional; needs the package and the network).

Cleaning: paragraphs are separated by blank lines; Gutenberg's `_italics_` markers are dropped; every run of
whitespace becomes one space. Sentences are cut after `.`, `!` or `?` (plus closing quotes) when the next
word does not start in lower case, except after titles such as "Mr.". Paragraph ends are sentence ends.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rmt_lib import paths
from rmt_lib.data.austen import SPLITS
from rmt_lib.data.grammar import FACT_RE

SPLIT_NAMES = ("train", "validation", "test")
AUSTEN_DIR = paths.BACKGROUND_DIR / "austen"
PG19_BOOKS = 8  # books streamed per split from PG19: plenty of prose, little download

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_SPACES = re.compile(r"\s+")
_ITALICS = re.compile(r"_")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?= [^a-z])")
_TITLES = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Messrs", "Col", "Capt", "Gen", "Rev", "Lt", "No"})


@dataclass(frozen=True)
class Background:
    """Clean prose as sentences: each has single spaces only and no leading/trailing space."""

    name: str  # e.g. "austen:train", a folder path, "pg19:validation"
    sentences: tuple[str, ...]

    def __post_init__(self):
        if not self.sentences:
            raise ValueError(f"background {self.name} holds no text")

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def normalize_prose(text: str) -> str:
    """Drop `_` italics markers and collapse whitespace to single spaces."""
    return _SPACES.sub(" ", _ITALICS.sub("", text)).strip()


def split_sentences(text: str) -> list[str]:
    """Clean sentences of raw prose (see the module docstring for the rules)."""
    sentences = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = normalize_prose(paragraph)
        start = 0
        for m in _SENTENCE_END.finditer(paragraph):
            word = paragraph[:m.start()].rsplit(" ", 1)[-1]
            if word.lstrip("\"'(") in _TITLES:
                continue
            sentences.append(paragraph[start : m.end()])
            start = m.end() + 1  # skip the single space
        if start < len(paragraph):
            sentences.append(paragraph[start:])
    # A prose sentence in the bAbI grammar would be a fact nobody placed: it could change the answer.
    return [s for s in sentences if s and FACT_RE.search(s) is None]


_CACHE: dict[tuple[str, str], Background] = {}


def load_background(background: str | Path | None = None, split: str = "train") -> Background:
    """The background prose for `split` from the source `background` (see the module docstring); cached."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLIT_NAMES}")
    if background is None:
        key = ("austen", split)
    elif isinstance(background, str) and background == "pg19":
        key = ("pg19", split)
    else:
        key = (str(Path(background).resolve()), "all")
    if key not in _CACHE:
        if key[0] == "austen":
            _CACHE[key] = _load_austen(split)
        elif key[0] == "pg19":
            _CACHE[key] = _load_pg19(split)
        else:
            _CACHE[key] = _load_folder(Path(background))
    return _CACHE[key]


def _load_austen(split: str) -> Background:
    if not (AUSTEN_DIR / ".complete").is_file():
        raise FileNotFoundError(
            f"Austen's novels are not in {AUSTEN_DIR}; run `make setup` "
            "(or `bash scripts/fetch_background.sh .venv/bin/python`), or pass a folder of .txt files as background"
        )
    sentences: list[str] = []
    for stem in SPLITS[split]:
        sentences += split_sentences((AUSTEN_DIR / f"{stem}.txt").read_text(encoding="utf-8"))
    return Background(f"austen:{split}", tuple(sentences))


def _load_folder(folder: Path) -> Background:
    if not folder.is_dir():
        raise FileNotFoundError(f"background folder {folder} does not exist; pass a folder of .txt files")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ValueError(f"background folder {folder} holds no .txt files; put UTF-8 prose in *.txt files there")
    sentences: list[str] = []
    for file in files:
        sentences += split_sentences(_read_prose(file))
    if not sentences:
        raise ValueError(f"background folder {folder}: its .txt files are empty")
    return Background(str(folder), tuple(sentences))


_UNPRINTABLE = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # undecodable, or control but not whitespace
_MAX_UNPRINTABLE = 0.05  # share of a file's characters that may be undecodable or control characters


def _read_prose(file: Path) -> str:
    """A background file's text. A stray bad byte becomes U+FFFD, but a file that is not mostly printable
    text (a binary saved as .txt, another encoding) is refused, named, rather than turned into "prose"."""
    text = file.read_bytes().decode("utf-8", errors="replace")
    bad = len(_UNPRINTABLE.findall(text))
    if text and bad > _MAX_UNPRINTABLE * len(text):
        raise ValueError(f"background file {file} is not UTF-8 prose: {bad / len(text):.0%} of its characters are "
                         "undecodable or control characters; remove it or save it as UTF-8 text")
    return text


def _load_pg19(split: str) -> Background:
    """PG19 (deepmind/pg19) streamed through HF `datasets`: the first PG19_BOOKS books of the split."""
    try:
        import datasets
    except ImportError as err:
        raise ValueError(
            "background 'pg19' needs the Hugging Face `datasets` package (`pip install datasets`) and access to "
            "the Hugging Face Hub; without them use the default Austen background or --background DIR"
        ) from err
    try:
        stream = datasets.load_dataset("deepmind/pg19", split=split, streaming=True)
        texts = [row["text"] for _, row in zip(range(PG19_BOOKS), stream)]
    except Exception as err:  # offline, hub down, renamed dataset: all mean "cannot get PG19 here"
        raise ValueError(
            f"could not load PG19 ({split}) from the Hugging Face Hub: {type(err).__name__}: {err}. "
            "This machine is probably offline; use the default Austen background or --background DIR"
        ) from err
    sentences: list[str] = []
    for text in texts:
        sentences += split_sentences(text)
    return Background(f"pg19:{split}", tuple(sentences))
