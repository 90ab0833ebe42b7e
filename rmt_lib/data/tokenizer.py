"""The project's tokenizer: a byte-level BPE (vocab 2048) trained with HF `tokenizers` on the training
background (Austen's four training novels) plus every QA1 fact and question, committed as data/tokenizer.json.

Byte-level means any text tokenizes (users feed their own prose). The pre-tokenizer adds a prefix space and
splits with GPT-2's regex, so on text whose whitespace is single spaces, tokenizing the whole text equals
concatenating the tokens of its space-led pieces: samples are built at the token level and `encode(sample
text)` reproduces them exactly. Retrain with `python -m rmt_lib.data.tokenizer` (deterministic; a test checks).
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rmt_lib import paths
from rmt_lib.jsonio import write_text_atomic

VOCAB_SIZE = 2048
PAD_TOKEN, EOS_TOKEN = "<pad>", "<|endoftext|>"  # ids 0 and 1
# The token of each location after a space (" bathroom", " bedroom", ...; grammar.LOCATIONS order): the LM
# answer head's candidates. Written out so that a model config needs no tokenizer; a test checks them.
LOCATION_TOKEN_IDS = (627, 623, 603, 626, 617, 610)
FACT_REPEATS = 50  # each fact and question is seen this often in training, so the grammar gets whole tokens
# Texts longer than this (chars) are encoded in chunks split at single spaces. Measured on a 3.4M-char text:
# one 64K-char chunk holds 11 MB of tokenizer state at once, a 4K-char one under 1 MB, for no more CPU.
_LONG_TEXT = 1 << 12


class Tokenizer:
    """A thin, typed wrapper over a `tokenizers.Tokenizer` (`.hf` is the wrapped object)."""

    def __init__(self, hf_tokenizer, source: str = "<memory>"):
        self.hf = hf_tokenizer
        # User prose that happens to contain "<pad>" is text, not padding: special tokens only come from ids.
        self.hf.encode_special_tokens = True
        self.source = source
        self.eos_id = self._special_id(EOS_TOKEN)
        # GPT-2's vocabulary (an imported model's) has no pad token; it pads with end-of-text, as GPT-2 does.
        self.pad_id = self.eos_id if hf_tokenizer.token_to_id(PAD_TOKEN) is None else self._special_id(PAD_TOKEN)
        self.vocab_size = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        # Identifies the vocabulary and merges: caches of tokenized text are keyed by it.
        self.fingerprint = hashlib.sha256(hf_tokenizer.to_str().encode()).hexdigest()[:16]
        vocab = hf_tokenizer.get_vocab(with_added_tokens=True)
        space_led = np.zeros(self.vocab_size, dtype=bool)
        for token, idx in vocab.items():
            space_led[idx] = token.startswith("\u0120")  # 'Ġ' is the byte-level form of ' '
        self.space_led = space_led  # (V,) True where a token starts with a space

    def _special_id(self, token: str) -> int:
        idx = self.hf.token_to_id(token)
        if idx is None:
            raise ValueError(f"tokenizer {self.source} has no {token!r} token; retrain it with `python -m rmt_lib.data.tokenizer`")
        return idx

    def __repr__(self) -> str:
        return f"Tokenizer(source={self.source!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(_valid(text), add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch([_valid(t) for t in texts], add_special_tokens=False)]

    def word_ids(self, words: Iterable[str]) -> tuple[int, ...]:
        """The token of each word as it follows a space: the candidate answers' tokens for the LM answer head.

        Each word must be a single token; a ValueError names those that are not."""
        encoded = [(word, self.encode(" " + word)) for word in words]
        if split := {word: ids for word, ids in encoded if len(ids) != 1}:
            raise ValueError(f"each word must be one token after a space, but {self.source} splits {split}")
        return tuple(ids[0] for _, ids in encoded)

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (n,) int64 and their [start, end) character offsets (n, 2) int64 into `text`.

        Long texts are encoded in chunks cut before single spaces (never a pre-token boundary the whole text
        would not have), so memory stays flat: no per-token Python objects outlive a chunk.
        """
        cap = _max_tokens(text)
        ids, offsets = np.empty(cap, dtype=np.int64), np.empty((cap, 2), dtype=np.int64)
        n = 0
        for base, enc in self._encoded_chunks(text):
            k = len(enc.ids)
            ids[n:n + k] = enc.ids
            offsets[n:n + k] = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2) + base
            n += k
        return ids[:n], offsets[:n]

    def encode_with_starts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (n,) int32 and where each token starts in `text` (n,) int32 (int64 past 2**31 characters):
        `encode_with_offsets(text)` in a quarter of its memory, for callers that need no token ends."""
        cap = _max_tokens(text)
        ids = np.empty(cap, dtype=np.int32)
        starts = np.empty(cap, dtype=np.int32 if len(text) < 2**31 else np.int64)
        n = 0
        for base, enc in self._encoded_chunks(text):
            k = len(enc.ids)
            ids[n:n + k] = enc.ids
            starts[n:n + k] = [start for start, _ in enc.offsets]
            starts[n:n + k] += base
            n += k
        return ids[:n], starts[:n]

    def _encoded_chunks(self, text: str) -> Iterator[tuple[int, Any]]:
        """(start, HF Encoding) of each chunk of `text`, one at a time: an Encoding holds about 100 bytes per
        token (strings, offsets, masks), so only one chunk's worth is alive at once. One chunk per call also
        costs less CPU here than `encode_batch` over several (its threads spin on a busy machine)."""
        for base, chunk in _chunks(text):
            yield base, self.hf.encode(_valid(chunk), add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)


def _max_tokens(text: str) -> int:
    """An upper bound on the tokens of `text`: each holds at least one UTF-8 byte, plus the prefix space.
    Arrays of this size are allocated with np.empty, so pages past the real count are never touched (never
    resident), and the result needs no concatenation of parts (which holds two copies at once)."""
    return (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 1


def _valid(text: str) -> str:
    """`text` with lone surrogates (e.g. from a JSON "\\ud800" escape; not encodable as UTF-8) replaced by "?",
    one character for one, so that character offsets still point into the original text."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(start, chunk) pieces of `text`, cut just before a single space that follows a non-space character and
    precedes one (GPT-2's regex never matches across such a space, so chunked encoding equals whole encoding)."""
    start = 0
    while len(text) - start > _LONG_TEXT:
        cut = start + _LONG_TEXT
        while cut < len(text) and not _safe_cut(text, cut):
            cut += 1
        if cut >= len(text):
            break
        yield start, text[start:cut]
        start = cut
    if start < len(text) or start == 0:
        yield start, text[start:]


def _safe_cut(text: str, i: int) -> bool:
    return text[i] == " " and not text[i - 1].isspace() and i + 1 < len(text) and not text[i + 1].isspace()


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The committed tokenizer (default `rmt_lib.paths.TOKENIZER_PATH`), or the one at `path`."""
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(path) if path is not None else paths.TOKENIZER_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer file {path} not found; it is committed as data/tokenizer.json "
            "(retrain it with `python -m rmt_lib.data.tokenizer` after `make setup`)"
        )
    try:
        inner = HFTokenizer.from_file(str(path))
    except Exception as err:  # the Rust library raises a bare Exception for a corrupt or foreign file
        raise ValueError(f"{path} is not a readable tokenizer file ({err}); restore it, or retrain with "
                         "`python -m rmt_lib.data.tokenizer`") from None
    return Tokenizer(inner, source=str(path))


_DEFAULT: Tokenizer | None = None


def default_tokenizer() -> Tokenizer:
    """The committed tokenizer, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_tokenizer()
    return _DEFAULT


def training_texts() -> Iterator[str]:
    """What the tokenizer is trained on: the training split's sentences, then each fact and question."""
    from rmt_lib.data.background import load_background
    from rmt_lib.data.grammar import ACTORS, all_fact_sentences, question_sentence

    yield from load_background(split="train").sentences
    grammar = all_fact_sentences() + [question_sentence(a) for a in ACTORS]
    for _ in range(FACT_REPEATS):
        yield from grammar


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts` (deterministic for a given input)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text tokenizes
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer=trainer)
    return hf


def token_strings(tokenizer, input_ids: Sequence[int]) -> list[str]:
    """A short display string per token id: leading spaces dropped, padding shown as <pad>."""
    out = []
    for i in input_ids:
        i = int(i)
        if i == tokenizer.pad_id:
            out.append("<pad>")
            continue
        text = tokenizer.decode([i]).strip()
        out.append(text if text else "␣")
    return out

def save_tokenizer(hf_tokenizer, path: str | Path) -> Path:
    """Write atomically: a reader never sees half a tokenizer."""
    return write_text_atomic(path, hf_tokenizer.to_str(pretty=True) + "\n")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else paths.TOKENIZER_PATH
    path = save_tokenizer(train_tokenizer(training_texts()), out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

