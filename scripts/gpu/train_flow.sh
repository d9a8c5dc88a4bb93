#!/usr/bin/env bash
# Device script: train the pocket flow model (pocket/flow.py) on one GPU and return its fp16 weights.
# Run through the device tool with `.whl` carried (diffusers + importlib_metadata wheels):
#   bash scripts/gpu/train_flow.sh
# Dry run on a CPU (a few steps, to check the script): DEVICE=cpu FLOW_SECONDS=20 POOL=512 bash scripts/gpu/train_flow.sh
# Outputs under $OUT/flow: text_encoder_2/transformer .safetensors, flow.json, train.log
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
OUT=${OUT:-/tmp/flow_out}
mkdir -p "$OUT/flow"
timeout "${TRAIN_TIMEOUT:-540}" python3 -m p2p_widgets.pocket.train_flow --out /tmp/flow --workers "${WORKERS:-14}" \
    --pool "${POOL:-120000}" --batch "${BATCH:-512}" --lr "${LR:-1e-3}" --seconds "${FLOW_SECONDS:-420}" \
    --save-every 60 ${DEVICE:+--device "$DEVICE"} 2>&1 | grep -v torchvision
cp /tmp/flow/*.safetensors /tmp/flow/flow.json /tmp/flow/train.log "$OUT/flow/"
ls -la "$OUT/flow"
