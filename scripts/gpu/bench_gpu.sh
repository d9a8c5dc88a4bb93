#!/usr/bin/env bash
# Device script: the engine benchmark (plain diffusers pipeline vs the engine's paths, random weights,
# interleaved rounds, ratios to plain). Run through the device tool with `.whl` carried:
#   bash scripts/gpu/bench_gpu.sh
# Dry run on a CPU (every step shrunk: tiny or CPU-width models, 64 px, 1 step, 1 round; fluxgeom
# stands in for the full-size Flux; under a minute on one thread):
#   DRY=1 DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/bench_dry OMP_NUM_THREADS=1 bash scripts/gpu/bench_gpu.sh
# Steps, in this order, each under its own `timeout`, output tee'd to $OUT/<step>.txt:
#   fluxgeom, sd3geom: Flux.1-dev's and SD3-medium's layouts at CPU widths, 256 px, bf16, 20 steps,
#     3 rounds: the engine's plain sampling (seam), P2P fast and explicit, K/V injection.
#   flux: Flux.1-dev's transformer at full size (11.9 B parameters, 24 GB in bf16, built on the GPU)
#     and VAE, 1024 px, bf16, 4 steps, 3 rounds: seam, P2P fast, K/V injection. Not P2P explicit:
#     it materialises the joint softmax, (4096 image + 512 text tokens)^2 = 4608^2 scores x 24 heads
#     per batch row, in each of the 57 blocks.
#   sd15: SD 1.5's architecture at 512 px, fp16, 50 steps, 3 rounds: P2P fast and explicit, MasaCtrl,
#     Plug-and-Play, StyleAligned. sdxl: SDXL base's at 1024 px, 30 steps, 3 rounds: P2P fast and
#     explicit. invert_sd15: the seconds of a 512 px null-text inversion on SD 1.5's architecture.
# The whole script keeps to BUDGET seconds (default 480: under 9 minutes of a 15-minute device
# session); a step is cut to what is left of it, or skipped with a line saying so.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/bench_out}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

SD15=sd15 SDXL=sdxl FLUX=flux SHRINK=() INVERT=(--steps 50 --guidance 7.5)
if [ -n "${DRY:-}" ]; then  # check the script on a CPU: same steps, small models, one step each
  SD15=tiny SDXL=tinyxl FLUX=fluxgeom SHRINK=(--size 64 --steps 1 --rounds 1)
  INVERT=(--steps 2 --guidance 7.5 --inner-steps 1)
fi
ON=(${DEVICE:+--device "$DEVICE"})
# the two warnings every step prints, hidden from the logs (any other line, an error naming float32 or
# torchvision included, stays): transformers without torchvision, diffusers' .to(dtype) note
KNOWN_WARNINGS='^\[transformers\] `[A-Za-z]+` requires torchvision \(not installed\); falling back|^There are modules in [A-Za-z0-9_]+ that should be kept in float32: '

# step NAME LIMIT COMMAND...: COMMAND under `timeout` (LIMIT seconds, or what is left of BUDGET)
step() {
  local name=$1 limit=$2 left=$((BUDGET - SECONDS)) rc
  shift 2
  ((left < limit)) && limit=$left
  if ((limit < 30)); then
    echo "$name: skipped, ${left} s of the ${BUDGET} s budget left" | tee "$OUT/$name.txt"
    return
  fi
  echo "== $name (timeout ${limit} s)"
  timeout "$limit" "$@" 2>&1 | grep -v -E "$KNOWN_WARNINGS" | tee "$OUT/$name.txt"
  rc=${PIPESTATUS[0]}
  ((rc == 124)) && echo "$name: stopped by its ${limit} s timeout" | tee -a "$OUT/$name.txt"
  ((rc != 0 && rc != 124)) && echo "$name: exit status $rc" | tee -a "$OUT/$name.txt"
  return 0
}

ENGINE=("$PY" -m p2p_widgets.bench engine)
FLOW_PATHS=seam,fast,explicit,kv-injection
step fluxgeom 60 "${ENGINE[@]}" --model fluxgeom --steps 20 --rounds 3 --paths $FLOW_PATHS "${ON[@]}" "${SHRINK[@]}"
step sd3geom 60 "${ENGINE[@]}" --model sd3geom --steps 20 --rounds 3 --paths $FLOW_PATHS "${ON[@]}" "${SHRINK[@]}"
step flux 180 "${ENGINE[@]}" --model "$FLUX" --dtype bf16 --steps 4 --rounds 3 --paths seam,fast,kv-injection \
  "${ON[@]}" "${SHRINK[@]}"
step sd15 120 "${ENGINE[@]}" --model "$SD15" --steps 50 --rounds 3 "${ON[@]}" "${SHRINK[@]}"
step sdxl 100 "${ENGINE[@]}" --model "$SDXL" --steps 30 --rounds 3 --paths fast,explicit "${ON[@]}" "${SHRINK[@]}"
step invert_sd15 100 "$PY" -m p2p_widgets.bench invert --model "$SD15" "${INVERT[@]}"
echo "total: ${SECONDS} s"
ls -la "$OUT"
