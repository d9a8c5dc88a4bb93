#!/usr/bin/env bash
# Set up .venv (first run: a few minutes) and start the demo: JupyterLab on notebooks/01_quickstart.ipynb.
# Extra arguments go to `p2p-widgets demo` (e.g. --port 8888 --no-browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/p2p-widgets demo "$@"
