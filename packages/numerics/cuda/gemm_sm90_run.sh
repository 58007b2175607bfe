#!/usr/bin/env bash
# Builds and runs the sm_90a block-scaled FP8 GEMM harness (gemm_sm90_test.cu) in one go, e.g. in one device
# call from the repository root:
#
#   bash packages/numerics/cuda/gemm_sm90_run.sh                 # everything (about 1-2 minutes of running)
#   bash packages/numerics/cuda/gemm_sm90_run.sh --quick         # a subset of every group
#   bash packages/numerics/cuda/gemm_sm90_run.sh --shape 4096,7168,16384 --cfg 128x144
#   bash packages/numerics/cuda/gemm_sm90_run.sh --build-only    # build here (no GPU needed) ...
#
# ... and carry packages/numerics/cuda/build/gemm_sm90 to the device machine: a binary whose stamp (sources, flags, nvcc
# version) matches is reused there instead of rebuilt. Harness flags: see the head of gemm_sm90_test.cu.
# Writes gemm_test.log, ptxas.log and sass-summary.txt under $OUT when $OUT is set (else under build/gemm_sm90/).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build/gemm_sm90"  # beside the addon's build outputs; ignored by git
out="${OUT:-$build}"
mkdir -p "$build" "$out"
export PATH="$PATH:/usr/local/cuda/bin"  # nvcc and cuobjdump where CUDA is installed but not on PATH
NVCC="${NVCC:-nvcc}"
flags=(-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a)

build_only=0
if [[ "${1:-}" == "--build-only" ]]; then
  build_only=1
  shift
fi

# The GEMM's sources: the C API and launches, its kernels and PTX wrappers, its planner, and the harness.
sources=(gemm_sm90.cu gemm_sm90_plan.cc gemm_sm90_test.cu)
headers=(gemm_sm90.h gemm_sm90_kernel.cuh sm90_ptx.cuh gemm_sm90_plan.h)
stamp=$( (cd "$here" && cat "${headers[@]}" "${sources[@]}"; echo "${flags[*]}"; "$NVCC" --version) | sha256sum | cut -c1-16)
if [[ -x "$build/gemm_test" && -f "$build/stamp" && "$(cat "$build/stamp")" == "$stamp" ]]; then
  echo "nvcc: skipped, reusing $build/gemm_test (stamp $stamp)"
else
  rm -f "$build/stamp"
  t0=$(date +%s.%N)
  if ! "$NVCC" "${flags[@]}" --threads 0 -Xptxas -v "${sources[@]/#/$here/}" -o "$build/gemm_test" \
      2> "$build/ptxas.log"; then
    cat "$build/ptxas.log"
    echo "BUILD FAILED"
    exit 1
  fi
  t1=$(date +%s.%N)
  echo "nvcc: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s ($("$NVCC" --version | tail -1))"
  echo "$stamp" > "$build/stamp"
  # Anything but ptxas's info lines is a warning worth seeing.
  grep -v "^ptxas info\|bytes stack frame\|^$" "$build/ptxas.log" | head -20
fi

# Registers and spills per kernel (ptxas), e.g. "128x144 168 regs 0 spill"; the two-consumer kernels start at
# 168 registers and move to 24 (producer) / 240 (consumers) with setmaxnreg.
if [[ -f "$build/ptxas.log" ]]; then
  awk '
    function kname(s,  a) { split(s, a, /[^0-9]+/); return a[2] "x" a[3] (a[4] == "32" ? "p32" : "") (a[5] == "2" ? "mc2" : "") }
    /Compiling entry function/ {
      name = $0
      if (match(name, /kernelILi[0-9]+ELi[0-9]+ELi[0-9]+ELi[0-9]+E/)) { name = kname(substr(name, RSTART, RLENGTH)) }
      else if (name ~ /simt/) name = "simt(lib)"; else if (name ~ /reference/) name = "reference"; else name = "other"
    }
    /bytes stack frame/ { spill = $5 + $9 }
    /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) if ($i == "Used") regs = $(i + 1); printf "%s:%s regs/%s spill  ", name, regs, spill; n++; if (n % 6 == 0) printf "\n" }
    END { printf "\n" }' "$build/ptxas.log" | tee "$out/ptxas-summary.txt"
  [[ "$out" != "$build" ]] && cp "$build/ptxas.log" "$out/ptxas.log"
fi

# SASS: the FP8 tensor-core instructions (QGMMA) and local-memory traffic (LDL/STL) per kernel, where cuobjdump exists.
if command -v cuobjdump > /dev/null 2>&1; then
  cuobjdump -sass "$build/gemm_test" 2> /dev/null | awk '
    function kname(s,  a) { split(s, a, /[^0-9]+/); return a[2] "x" a[3] (a[4] == "32" ? "p32" : "") (a[5] == "2" ? "mc2" : "") }
    /Function :/ { f = $3; if (match(f, /kernelILi[0-9]+ELi[0-9]+ELi[0-9]+ELi[0-9]+E/)) { f = kname(substr(f, RSTART, RLENGTH)) } else if (f ~ /simt/) f = "simt(lib)"; else if (f ~ /reference/) f = "reference"; order[++n] = f }
    /QGMMA/ { q[f]++ } /HGMMA/ { h[f]++ } /[^A-Z]LDL|[^A-Z]STL/ { l[f]++ } /USETMAXREG/ { u[f]++ }
    END { printf "SASS per kernel (QGMMA / LDL+STL / USETMAXREG):"; for (i = 1; i <= n; i++) printf " %s:%d/%d/%d", order[i], q[order[i]], l[order[i]], u[order[i]]; printf "\n" }' \
    | tee "$out/sass-summary.txt"
fi

if [[ $build_only == 1 ]]; then
  exit 0
fi

nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv,noheader 2> /dev/null || true
"$build/gemm_test" "$@" 2>&1 | tee "$out/gemm_test.log"
exit "${PIPESTATUS[0]}"
