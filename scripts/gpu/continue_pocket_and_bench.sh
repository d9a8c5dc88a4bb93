#!/usr/bin/env bash
# Device script, second GPU round: continue training the shipped pocket weights (larger batch:
# the first round was kernel-launch bound at batch 512), then the engine benchmark on SD 1.5's
# architecture (random weights) at 512 px in fp16, 50 steps, plain vs P2P fast and explicit (bench_gpu.sh
# adds the other methods and SDXL). Carry `.whl`.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$OUT/pocket"
timeout "${TRAIN_TIMEOUT:-260}" python3 -m p2p_widgets.pocket.train --out /tmp/pocket --init p2p_widgets/pocket/weights \
    --workers 14 --batch "${BATCH:-2048}" --lr 1e-3 --unet-seconds "${UNET_SECONDS:-200}" --save-every 60 2>&1 | grep -v torchvision
cp /tmp/pocket/*.safetensors /tmp/pocket/pocket.json /tmp/pocket/train.log "$OUT/pocket/"
cp /tmp/pocket/samples.png "$OUT/pocket/" 2>/dev/null
timeout "${BENCH_TIMEOUT:-170}" python3 -m p2p_widgets.bench engine --model sd15 --steps 50 --repeats 2 --paths fast,explicit 2>&1 \
    | grep -v -i torchvision | tee "$OUT/bench_sd15.txt"
ls -la "$OUT" "$OUT/pocket"
