#!/usr/bin/env bash
# Device script: the engine benchmark on SD 1.5's architecture (random weights) at 512 px, fp16,
# 50 steps: plain diffusers pipeline vs P2P fast path vs explicit path. Carry `.whl`.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -m p2p_widgets.bench engine --model sd15 --steps 50 --repeats 3 2>&1 | grep -v -i "torchvision\|float32" | tee "$OUT/bench_sd15.txt"
