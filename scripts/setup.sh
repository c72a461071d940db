#!/usr/bin/env bash
# Idempotent setup: a virtualenv in .venv with the CPU build of torch installed first (an
# unpinned torch would pull a multi-GB CUDA build), then notes-rag with its test and local-model extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,local,postgres]"
