#!/usr/bin/env bash
# Device script: train the pocket model on one GPU in ~8 minutes and return the fp16 weights.
# Run through the device tool with `.whl` carried (diffusers + importlib_metadata wheels):
#   bash scripts/gpu/train_pocket.sh
# Outputs under $OUT/pocket: vae/text_encoder/unet .safetensors, pocket.json, train.log, samples.png
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$OUT/pocket"
timeout "${TRAIN_TIMEOUT:-520}" python3 -m p2p_widgets.pocket.train --out /tmp/pocket --workers 14 \
    --vae-batch 256 --vae-seconds "${VAE_SECONDS:-70}" --batch 512 --lr 1e-3 \
    --unet-seconds "${UNET_SECONDS:-320}" --save-every 60 2>&1 | grep -v torchvision
cp /tmp/pocket/*.safetensors /tmp/pocket/pocket.json /tmp/pocket/train.log "$OUT/pocket/"
cp /tmp/pocket/samples.png "$OUT/pocket/" 2>/dev/null
ls -la "$OUT/pocket"
