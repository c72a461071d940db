#!/usr/bin/env bash
# Sets everything up, builds the index of corpus/ if needed, and starts the app on 127.0.0.1:7860.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
. .venv/bin/activate
rag index
exec rag serve "$@"
