#!/usr/bin/env bash
# Sets everything up (Python deps, and Debian's chromium for the browser tests) and runs the tests.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
. .venv/bin/activate
ruff check .
python -m pytest -q "$@"
