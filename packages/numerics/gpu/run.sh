#!/usr/bin/env bash
# One GPU run of the CUDA backend of @octet/numerics: build the addon, check every kernel against the CPU
# specification, time ours, time PyTorch's peers, print the table last.
#
#   bash packages/numerics/gpu/run.sh        # on the GPU machine, from the repository root, with carry [".carry"]
#
# .carry/ must hold node.xz and node-include/ (shared/gpu/pack-node.sh) and gpu/*.mjs (npm run gpu:bundle -w
# @octet/numerics). Results go to $OUT (default ./gpu-out): results.md (the table), results.json (all figures),
# logs.txt (environment, build, check, bench and peer output). Each step is time-boxed and a failing step does not
# stop the others. Environment: OCTET_GPU_PHASES (default "build check bench peer"), OCTET_GPU_BUDGET_S (default
# 560: the whole script), OCTET_CHECK_SEED, OCTET_CHECK_QUICK=1, OCTET_BENCH_REPS.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pkg=$(dirname "$here")
root=$(cd "$pkg/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
work=$(mktemp -d /tmp/octet-gpu.XXXXXX)
budget=${OCTET_GPU_BUDGET_S:-560}
phases=" ${OCTET_GPU_PHASES:-build check bench peer} "
start=$(date +%s)

log() { echo "[run.sh +$(( $(date +%s) - start ))s] $*"; }
# step NAME CAP_SECONDS COMMAND...: runs COMMAND under a time box (the smaller of CAP and what the budget leaves,
# keeping 25 s for the report), tees its output to $work/NAME.log, exports OCTET_GPU_DEADLINE for the scripts.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$(( start + budget - $(date +%s) - 25 ))
  local box=$(( cap < left ? cap : left ))
  if (( box < 20 )); then
    log "$name: SKIPPED (no time left in the ${budget}s budget)"
    echo "$name: skipped, no time left" >> "$work/steps.txt"
    return 0
  fi
  log "$name: starting (time box ${box}s)"
  OCTET_GPU_DEADLINE=$(( ($(date +%s) + box - 15) * 1000 )) timeout -k 10 "$box" "$@" 2>&1 | tee "$work/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && log "$name: TIMED OUT after ${box}s"
  log "$name: exit code $rc"
  echo "$name: exit $rc" >> "$work/steps.txt"
  return 0
}

# ---- node --------------------------------------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  if [ -f .carry/node.xz ]; then
    [ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
    export PATH=/tmp:$PATH
  fi
fi
command -v node >/dev/null 2>&1 || { echo "run.sh: no node and no .carry/node.xz (run shared/gpu/pack-node.sh, carry .carry)"; exit 1; }
export NODE_INCLUDE=${NODE_INCLUDE:-$root/.carry/node-include}
export OCTET_CUDA_ADDON=${OCTET_CUDA_ADDON:-$pkg/cuda/build/octet_numerics_cuda.node}
export OCTET_CUDA_BUILD_DIR=${OCTET_CUDA_BUILD_DIR:-$(dirname "$OCTET_CUDA_ADDON")}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S') UTC; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
  echo "node $(node -v) at $(command -v node); phases:${phases}; budget ${budget}s"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu --format=csv 2>&1 | head -3
  nvcc --version 2>&1 | tail -2 | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
} | tee "$work/env.log"

# The bundle must be built from the current sources (npm run gpu:bundle -w @octet/numerics on a machine with node_modules).
bundle=$root/.carry/gpu
if [ ! -f "$bundle/check.mjs" ]; then
  log "NO BUNDLE: $bundle/check.mjs is missing — run 'npm run gpu:bundle -w @octet/numerics' and carry .carry"
else
  now=$(cd "$pkg" && ls src/*.ts gpu/*.ts | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
  if [ "$now" != "$(cat "$bundle/sources.sha256" 2>/dev/null)" ]; then
    log "WARNING: STALE BUNDLE — src/*.ts or gpu/*.ts changed since 'npm run gpu:bundle'; the scripts that run are the bundled ones" | tee -a "$work/env.log"
  fi
fi

case $phases in *" build "*)
  step build 300 bash "$pkg/cuda/build.sh"
  # A part that fails to compile must not take the rest down: rebuild without it, loudly.
  if ! grep -q '^build: exit 0' "$work/steps.txt"; then
    log "BUILD FAILED: retrying without the sm90 GEMM (gemm_sm90.cu)"
    OCTET_CUDA_NO_SM90=1 step build-without-sm90 200 bash "$pkg/cuda/build.sh"
    if ! grep -q '^build-without-sm90: exit 0' "$work/steps.txt"; then
      log "BUILD FAILED again: retrying without sm90 and without cuBLASLt"
      OCTET_CUDA_NO_SM90=1 OCTET_CUDA_NO_CUBLASLT=1 step build-minimal 150 bash "$pkg/cuda/build.sh"
    fi
  fi ;;
esac
if [ ! -f "$OCTET_CUDA_ADDON" ]; then log "no addon at $OCTET_CUDA_ADDON: check and bench will report why"; fi
case $phases in *" check "*) step check 170 node "$bundle/check.mjs" --json "$work/check.json" ;; esac
case $phases in *" bench "*) step bench 150 node "$bundle/bench.mjs" --json "$work/bench.json" --xcheck "$work/xcheck" ;; esac
case $phases in *" peer "*) step peer 170 python3 "$here/peer.py" --json "$work/peer.json" --xcheck "$work/xcheck" ;; esac

# ---- report: the table last ---------------------------------------------------------------------------------------------
{
  for f in env steps build build-without-sm90 build-minimal check bench peer; do
    [ -f "$work/$f.log" ] || [ -f "$work/$f.txt" ] || continue
    echo "=================== $f"
    cat "$work/$f.log" 2>/dev/null || cat "$work/$f.txt"
  done
  [ -d "$OCTET_CUDA_BUILD_DIR/obj" ] && { echo "=================== ptxas resource usage"; grep -h -E 'Function properties|registers|spill' "$OCTET_CUDA_BUILD_DIR"/obj/*.log 2>/dev/null | head -400; }
} > "$OUT/logs.txt" 2>&1
echo
echo "=================================================================================================================="
cat "$work/steps.txt" 2>/dev/null
if [ -f "$bundle/report.mjs" ]; then
  timeout 20 node "$bundle/report.mjs" "$work" && cp "$work/results.md" "$work/results.json" "$OUT/" 2>/dev/null
else
  echo "no report.mjs in the bundle"
fi
log "done; results in $OUT (results.md, results.json, logs.txt)"
