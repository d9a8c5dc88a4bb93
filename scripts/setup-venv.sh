#!/usr/bin/env bash
# Create (or update) the project venv in .venv and install p2p_widgets into it, editable.
#   bash scripts/setup-venv.sh          # runtime only (what the demo needs)
#   bash scripts/setup-venv.sh test     # + test extras (what .ci/run needs)
# torch is installed first and pinned (TORCH_SPEC): an unpinned torch resolves to a multi-GB CUDA
# build on many machines. Set TORCH_SPEC=torch to let pip choose.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${1:-}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q "$@"; }
echo "== pip install $TORCH_SPEC"
pip_install "$TORCH_SPEC"
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
echo "== pip install -e '$target'"
pip_install -e "$target"
