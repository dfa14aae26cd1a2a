#!/usr/bin/env bash
# One prepared run on a GPU machine (no network, torch already installed): build with the CUDA kernels,
# run the GPU-marked tests and the GPU benchmarks, print a short table last. Budget: 8 minutes.
#
#   bash bench/gpu_check.sh            # on the GPU machine
#   bash bench/gpu_check.sh --dry-run  # here, without a GPU: the same steps on the CPU with tiny shapes
#
# Results land in $OUT (default: a fresh temp dir): build.log, tests.log, bench/*.json|md|png.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
STATUS=()

step() { echo; echo "== $* ($(date +%H:%M:%S))"; }
record() { STATUS+=("$(printf '%-28s %s' "$1" "$2")"); }

step "machine"
if [[ $DRY_RUN == 1 ]]; then
  echo "dry run: no GPU expected"
else
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"

step "build (MOAFAST_CUDA=ON, no build isolation)"
export MOAFAST_CUDA=ON
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
if timeout 300 "$PY" -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1; then
  record build ok
else
  record build "FAILED (see $OUT/build.log)"
  tail -n 40 "$OUT/build.log"
fi
"$PY" -m moafast.env || record env FAILED

step "GPU tests (pytest -m cuda)"
if [[ $DRY_RUN == 1 ]]; then
  timeout 120 "$PY" -m pytest -m cuda -q -rs tests >"$OUT/tests.log" 2>&1
else
  timeout 120 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider tests >"$OUT/tests.log" 2>&1
fi
tail -n 15 "$OUT/tests.log"
record "GPU tests" "$(grep -Eo '[0-9]+ (passed|failed|skipped|error)[^=]*' "$OUT/tests.log" | tail -n 1)"

step "GPU benchmarks"
if [[ $DRY_RUN == 1 ]]; then
  BENCH=(--device cpu --quick)
else
  BENCH=(--device cuda)
fi
if timeout 330 "$PY" -m bench.runner logprobs fused_dpo hypervolume tilted_sampling "${BENCH[@]}" --out "$OUT/bench" >"$OUT/bench.log" 2>&1; then
  record benchmarks ok
else
  record benchmarks "FAILED or timed out (see $OUT/bench.log)"
fi
tail -n 30 "$OUT/bench.log"

step "summary"
printf '%s\n' "${STATUS[@]}"
"$PY" -m bench.summary "$OUT/bench" 2>/dev/null || echo "(no benchmark results to summarise)"
echo "results in $OUT"
