#!/usr/bin/env bash
# Prints the path of a python3 that can import the test-only Python packages
# (moto's S3 server for tests/backends/test_s3_moto.c; the openai and ollama
# clients for tests/server/test_clients.c): the system python3 when it
# already can, else a virtual environment under the cache directory, made on
# first use. Best effort: without network or venv support it prints the
# system python3 and the tests that need the packages skip, saying why.
set -u
imports='import moto.server, flask, openai, ollama'
packages=('moto[server]==5.2.1' 'openai==3.51.0' 'ollama==0.6.3')
if python3 -c "$imports" >/dev/null 2>&1; then
  command -v python3
  exit 0
fi
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ipfs-accelerate/test-venv"
if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c "$imports" >/dev/null 2>&1; then
  echo "test-python: installing ${packages[*]} into $venv (S3 and client tests)" >&2
  if python3 -m venv "$venv" >/dev/null 2>&1 &&
     "$venv/bin/python3" -m pip install -q "${packages[@]}" >&2; then
    :
  else
    echo "test-python: could not install the packages; the S3 and client tests will be skipped" >&2
    command -v python3
    exit 0
  fi
fi
echo "$venv/bin/python3"
