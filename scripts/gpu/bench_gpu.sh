#!/usr/bin/env bash
# Device script: the engine benchmark (plain diffusers pipeline vs P2P fast path vs explicit path,
# random weights, fp16) on SD 1.5's architecture at 512 px, 50 steps, with MasaCtrl, Plug-and-Play
# and StyleAligned beside them (six subprocesses); then SDXL base's at 1024 px, 30 steps, plain vs
# P2P fast and explicit only (each subprocess builds the 2.6 B-parameter UNet); and the seconds of
# a 512 px null-text inversion on SD 1.5's architecture. About 8 minutes of device time. Carry `.whl`.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 300 python3 -m p2p_widgets.bench engine --model sd15 --steps 50 --repeats 3 2>&1 \
    | grep -v -i "torchvision\|float32" | tee "$OUT/bench_sd15.txt"
timeout 240 python3 -m p2p_widgets.bench engine --model sdxl --steps 30 --repeats 2 --paths fast,explicit 2>&1 \
    | grep -v -i "torchvision\|float32" | tee "$OUT/bench_sdxl.txt"
timeout 150 python3 -m p2p_widgets.bench invert --model sd15 --steps 50 --guidance 7.5 2>&1 \
    | grep -v -i "torchvision\|float32" | tee "$OUT/invert_sd15.txt"
