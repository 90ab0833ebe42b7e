"""Jane Austen's six novels from the R package janeaustenr, read without R; split BY BOOK.

The Debian package `r-cran-janeaustenr` stores the novels in an R lazy-load database
(`data/Rdata.rdx` = gzip'd index of name -> (offset, length); `data/Rdata.rdb` = for each entry a 4-byte
big-endian length + a zlib stream of an R-serialised character vector, one element per printed line).
`scripts/fetch_background.sh` downloads the .deb and runs `python -m rmt_lib.data.austen RDATA_DIR OUT_DIR`,
which writes one UTF-8 `.txt` file per novel (lines joined with newlines, as Project Gutenberg printed them).
"""
from __future__ import annotations

import gzip
import struct
import sys
import warnings
import zlib
from pathlib import Path

from rmt_lib.jsonio import write_text_atomic

# R object name -> file stem. The order is the publication order.
BOOKS = {
    "sensesensibility": "sense_and_sensibility",
    "prideprejudice": "pride_and_prejudice",
    "mansfieldpark": "mansfield_park",
    "emma": "emma",
    "northangerabbey": "northanger_abbey",
    "persuasion": "persuasion",
}
# Evaluation never reuses training prose: whole books go to one split.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("sense_and_sensibility", "pride_and_prejudice", "mansfield_park", "emma"),
    "validation": ("northanger_abbey",),
    "test": ("persuasion",),
}


def _parse_r(raw: bytes):
    import rdata  # only needed here; pinned in requirements.txt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns "Unknown file type: assumed RDS" for bare streams
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def read_rdata(rdata_dir: str | Path) -> dict[str, str]:
    """Novel file stem -> full text, read from janeaustenr's `data/Rdata.{rdx,rdb}`."""
    rdata_dir = Path(rdata_dir)
    index = _parse_r(gzip.decompress((rdata_dir / "Rdata.rdx").read_bytes()))
    variables = {str(k): v for k, v in index["variables"].items()}
    missing = sorted(set(BOOKS) - set(variables))
    if missing:
        raise ValueError(f"{rdata_dir / 'Rdata.rdx'} lacks the novels {missing}; is this janeaustenr's data folder?")
    blob = (rdata_dir / "Rdata.rdb").read_bytes()
    texts = {}
    for name, stem in BOOKS.items():
        offset, length = (int(x) for x in variables[name])
        entry = blob[offset : offset + length]
        (expected,) = struct.unpack(">I", entry[:4])
        raw = zlib.decompress(entry[4:])
        if len(raw) != expected:
            raise ValueError(f"{name}: decompressed {len(raw)} bytes, the index says {expected}")
        lines = ["" if line is None or line != line else str(line) for line in _parse_r(raw)]  # NA -> ""
        texts[stem] = "\n".join(lines) + "\n"
    return texts


def write_texts(rdata_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write each novel to `out_dir/<stem>.txt` (atomically, file by file); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, text in read_rdata(rdata_dir).items():
        path = out_dir / f"{stem}.txt"
        write_text_atomic(path, text)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m rmt_lib.data.austen RDATA_DIR OUT_DIR", file=sys.stderr)
        return 2
    for path in write_texts(argv[0], argv[1]):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
