#!/usr/bin/env bash
# Fetch the default background prose: Jane Austen's six novels (Project Gutenberg texts, MIT-packaged
# by janeaustenr) from the Debian package r-cran-janeaustenr, WITHOUT installing it (that pulls in R).
# The .deb is downloaded and unpacked into a temporary folder; rmt_lib.data.austen reads the R lazy-load
# database and writes one .txt per novel under .cache/background/austen/, then `.complete` is touched.
#
# usage: bash scripts/fetch_background.sh [PYTHON]     (PYTHON: the venv's interpreter, default python3)
# Idempotent: does nothing when .cache/background/austen/.complete exists.
set -euo pipefail

PY="${1:-python3}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO_ROOT/.cache/background/austen"
PKG=r-cran-janeaustenr

if [ -f "$OUT/.complete" ]; then
    echo "fetch_background: $OUT already complete"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

WORK="$(mktemp -d)"
TMP_OUT=""
cleanup() { rm -rf "$WORK"; if [ -n "$TMP_OUT" ]; then rm -rf "$TMP_OUT"; fi; }
trap cleanup EXIT
# apt writes the .deb into the current directory; _apt must be able to write there (else a warning).
chmod 0777 "$WORK"
cd "$WORK"
if ! apt-get download "$PKG" >/dev/null 2>"$WORK/apt.err"; then
    echo "fetch_background: 'apt-get download $PKG' failed; updating the apt lists and retrying" >&2
    $SUDO apt-get update -qq
    apt-get download "$PKG" >/dev/null
fi
DEB="$(ls "$WORK"/${PKG}_*.deb)"
dpkg-deb -x "$DEB" "$WORK/pkg"

# Write into a temporary folder next to OUT, then swap it in: nothing half-written is ever visible.
mkdir -p "$(dirname "$OUT")"
TMP_OUT="$(mktemp -d "$(dirname "$OUT")/.austen.XXXXXX")"
cd "$REPO_ROOT"
chmod 0755 "$TMP_OUT"
"$PY" -c 'import sys; from rmt_lib.data.austen import main; sys.exit(main(sys.argv[1:]))' \
    "$WORK/pkg/usr/lib/R/site-library/janeaustenr/data" "$TMP_OUT"
cp "$WORK/pkg/usr/share/doc/$PKG/copyright" "$TMP_OUT/COPYRIGHT.debian"
rm -rf "$OUT"
mv "$TMP_OUT" "$OUT"
touch "$OUT/.complete"
echo "fetch_background: Austen's novels are in $OUT"
