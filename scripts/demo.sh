#!/usr/bin/env bash
# Set up .venv (first run: a few minutes) and start the demo: JupyterLab on working copies of the
# notebooks (~/p2p-widgets-notebooks; P2P_WIDGETS_WORKDIR or --workdir DIR choose another folder),
# so that JupyterLab's autosave never writes outputs into this clone's tracked notebooks.
# Extra arguments go to `p2p-widgets demo` (e.g. --port 8888 --no-browser, --in-place).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ -x "$VENV/bin/p2p-widgets" ]; then
  echo "== checking $VENV (pip's output follows)"
else
  echo "== setting up $VENV: pip downloads and installs torch and the package's dependencies,"
  echo "   about 2-3 minutes on a first run; pip's output follows"
fi
# setup-venv.sh keeps pip quiet (-q, for CI logs); one -v back gives pip's ordinary lines
# (Collecting / Downloading with sizes / Installing), so a long first run is not silent
PIP_VERBOSE=1 VENV="$VENV" bash scripts/setup-venv.sh
exec "$VENV/bin/p2p-widgets" demo "$@"
