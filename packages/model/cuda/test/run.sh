#!/usr/bin/env bash
# Builds and runs the model's standalone CUDA kernel harnesses (attention, ops, loss, gate) on the GPU machine, from
# the repository root. The four compile in parallel; each run is time-boxed and a failing harness does not stop the
# others. Output to $OUT/kernels-<name>.log, and a one-line verdict per harness last.
#   bash packages/model/cuda/test/run.sh                     # all four
#   OCTET_KERNEL_TESTS="attention ops" OCTET_KERNEL_BOX_S=120 bash packages/model/cuda/test/run.sh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../../.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}

nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p "$OUT"
tests=${OCTET_KERNEL_TESTS:-attention ops loss gate grouped}
box=${OCTET_KERNEL_BOX_S:-150}
declare -A args=([attention]="--reps 5" [ops]="all" [loss]="" [gate]="" [grouped]="")
# OCTET_KERNEL_BIN_DIR: harnesses compiled elsewhere (nvcc runs without a GPU); those found there are not rebuilt.
bins=${OCTET_KERNEL_BIN_DIR:-/tmp/octet-kernel-tests}
mkdir -p "$bins"
for t in $tests; do
  [ -x "$bins/$t" ] && continue
  ( "$nvcc" -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o "$bins/$t" \
      packages/model/cuda/test/${t}_test.cu packages/model/cuda/$t.cu > "$OUT/kernels-$t-build.log" 2>&1 \
    || echo "build failed" >> "$OUT/kernels-$t-build.log" ) &
done
wait
verdicts=()
for t in $tests; do
  if [ ! -x "$bins/$t" ]; then verdicts+=("$t: BUILD FAILED ($(tail -3 "$OUT/kernels-$t-build.log" | tr '\n' ' '))"); continue; fi
  t0=$(date +%s)
  timeout -k 5 "$box" "$bins/$t" ${args[$t]} > "$OUT/kernels-$t.log" 2>&1
  rc=$?
  verdicts+=("$t: exit $rc in $(( $(date +%s) - t0 ))s, $(grep -c FAIL "$OUT/kernels-$t.log") lines with FAIL")
done
for v in "${verdicts[@]}"; do echo "kernels $v"; done
