#!/usr/bin/env bash
# One GPU run of @octet/model's CUDA backend: build both addons, then (1) every backend op CUDA vs CPU, (2) tiny
# fp32/bf16/fp8 trained N steps on cuda vs cpu, (3) two cuda runs bit-identical; prints one table last.
#
#   node packages/model/gpu/bundle.mjs       # here, with node_modules: writes .carry/gpu-model/check.mjs
#   bash packages/model/gpu/run.sh           # on the GPU machine, from the repository root, carrying .carry
#
# .carry/ must hold node.xz, node-include/ and gpu-model/check.mjs. The CPU reference runs numerics' and router's
# TypeScript kernels there (OCTET_NUMERICS_BACKEND / OCTET_ROUTER_BACKEND=typescript: the bundle cannot locate the
# CPU packages' native builds). Each phase is time-boxed and a failing phase does not stop the others; the whole
# script stays under OCTET_GPU_BUDGET_S (default 530 s). Results to $OUT: results.jsonl, table.txt, logs.
# Environment: OCTET_GPU_PHASES (default "build ops train det resume long"), OCTET_GPU_STEPS (20), OCTET_GPU_RECIPES.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
budget=${OCTET_GPU_BUDGET_S:-530}
phases=" ${OCTET_GPU_PHASES:-build ops train det resume long} "
start=$(date +%s)
log() { echo "[model gpu/run.sh +$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/steps.txt"; }

# step NAME CAP COMMAND...: COMMAND under the smaller of CAP and what the budget leaves (20 s kept for the table).
step() {
  local name=$1 cap=$2
  shift 2
  local left=$(( start + budget - $(date +%s) - 20 ))
  local box=$(( cap < left ? cap : left ))
  if (( box < 15 )); then log "$name: SKIPPED (budget spent)"; return 0; fi
  log "$name: starting (time box ${box}s)"
  timeout -k 5 "$box" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && log "$name: TIMED OUT after ${box}s"
  log "$name: exit code $rc"
  tail -n 5 "$OUT/$name.log"
  return 0
}

if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  if [ -f .carry/node.xz ]; then
    [ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
    export PATH=/tmp:$PATH
  fi
fi
command -v node >/dev/null 2>&1 || { echo "run.sh: no node and no .carry/node.xz"; exit 1; }
export NODE_INCLUDE=${NODE_INCLUDE:-$root/.carry/node-include}
build=/tmp/octet-model-gpu-build
# A build directory may be given (an addon compiled elsewhere with the same nvcc: build.sh's stamp then skips it).
export OCTET_CUDA_BUILD_DIR=${OCTET_CUDA_BUILD_DIR:-$build/numerics} OCTET_MODEL_CUDA_BUILD_DIR=${OCTET_MODEL_CUDA_BUILD_DIR:-$build/model}
export OCTET_CUDA_ADDON=$OCTET_CUDA_BUILD_DIR/octet_numerics_cuda.node OCTET_MODEL_CUDA_ADDON=$OCTET_MODEL_CUDA_BUILD_DIR/octet_model_cuda.node
export OCTET_NUMERICS_BACKEND=typescript OCTET_ROUTER_BACKEND=typescript
{ echo "date $(date -u '+%F %T') UTC; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); node $(node -v)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2; } | tee "$OUT/env.txt"
check=$root/.carry/gpu-model/check.mjs
[ -f "$check" ] || log "NO BUNDLE: $check is missing (node packages/model/gpu/bundle.mjs, carry .carry)"

case $phases in *" build "*)
  # The two addons compile in parallel (each already compiles its sources in parallel).
  step build 200 bash -c "bash packages/numerics/cuda/build.sh > $OUT/build-numerics.log 2>&1 & a=\$!; bash packages/model/cuda/build.sh > $OUT/build-model.log 2>&1; b=\$?; wait \$a; c=\$?; tail -3 $OUT/build-numerics.log $OUT/build-model.log; exit \$(( b | c ))" ;;
esac
for p in ops train det resume long small; do
  case $phases in *" $p "*)
    case $p in train) cap=240 ;; long) cap=300 ;; small) cap=200 ;; *) cap=100 ;; esac
    step "$p" "$cap" node --max-old-space-size=16000 --expose-gc "$check" "$p" ;;
  esac
done

# The table: one line per op, recipe and determinism check, from the phases' JSON lines.
cat "$OUT"/ops.log "$OUT"/train.log "$OUT"/det.log "$OUT"/resume.log "$OUT"/long.log "$OUT"/small.log 2>/dev/null | grep '^{"phase"' > "$OUT/results.jsonl"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const rows = [];
for (const r of lines) {
  const status = r.pass === undefined ? "" : r.pass ? "PASS" : "FAIL";
  if (r.phase === "ops") rows.push(["op", r.op, r.error ? "error: " + r.error.split("\n")[0] : r.err !== undefined ? `err ${r.err.toExponential(2)} (tol ${r.tol})` : JSON.stringify(r.copies ?? "") + " " + JSON.stringify(r.hostSyncs ?? ""), status]);
  else if (r.phase === "train") rows.push(["train", `${r.recipe} ${r.device ?? ""}`, r.error ? "error: " + r.error.split("\n")[0] : r.device === "cuda" ? `${r.losses.length} steps ${r.ms.toFixed(0)} ms, loss ${r.losses.at(-1)?.toFixed(5)}, syncs/step ${r.hostSyncsPerStep} ${JSON.stringify(r.hostSyncs)}, peak ${(r.peakMemoryBytes / 2 ** 20).toFixed(0)} MiB` : `loss ${r.losses.at(-1)?.toFixed(5)}, max rel diff ${r.maxRel.toExponential(2)}; per step ${r.rel.map((x) => x.toExponential(1)).join(" ")}`, status]);
  else if (r.phase === "long") rows.push(["long", r.recipe, r.error ? "error: " + r.error.split("\n")[0] : `${r.steps} steps ${(r.ms / 1000).toFixed(1)} s (cpu ${r.cpuSeconds.toFixed(0)} s), val ${r.valLoss.toFixed(5)} vs cpu ${r.cpuValLoss.toFixed(5)} (rel ${r.valRel.toExponential(2)}), first 20 max rel ${r.first20Max.toExponential(2)}, skipped ${r.skipped}, syncs/step ${r.hostSyncsPerStep.toFixed(2)}, peak ${(r.peakMemoryBytes / 2 ** 20).toFixed(0)} MiB`, status]);
  else if (r.phase === "small") rows.push(["small", r.recipe, r.error ? "error: " + r.error.split("\n")[0] : `gpu-small ${r.steps} steps, ms ${r.ms.map((x) => x.toFixed(0)).join(" ")}, ${r.tokensPerSec.toFixed(0)} tok/s, syncs/step ${r.hostSyncsPerStep.toFixed(2)}, peak ${(r.peakMemoryBytes / 2 ** 30).toFixed(2)} GiB vs estimate ${(r.estimateBytes / 2 ** 30).toFixed(2)}`, status]);
  else rows.push([r.phase, r.recipe, r.error ? "error: " + r.error.split("\n")[0] : `losses ${r.pass ? "bit-identical" : "differ"}: ${r.a?.slice(-2).join(", ")} vs ${r.b?.slice(-2).join(", ")}`, status]);
}
for (const [a, b, c, d] of rows) console.log(`${a.padEnd(6)} ${String(b).padEnd(42)} ${d.padEnd(5)} ${c}`);
' "$OUT/results.jsonl" > "$OUT/table.txt" 2>&1
log "done in $(( $(date +%s) - start ))s"
echo "==== table ===="
cat "$OUT/table.txt"
