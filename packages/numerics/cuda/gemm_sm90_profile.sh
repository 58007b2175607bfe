#!/usr/bin/env bash
# Profiles the sm_90a GEMM harness's kernels with Nsight Compute on the GPU machine: one launch per case, the
# full section set with clocks left as found, written as text (details page: speed of light, memory workload,
# warp stalls, launch) and as per-SASS-instruction counters (source page, CSV) — what bench/history/GEMM-NOTES.md
# reads to decide where a k-block's time goes. Run from the repository root after gemm_sm90_run.sh has built the harness
# (or carry packages/numerics/cuda/build/gemm_sm90 built here with --build-only):
#
#   bash packages/numerics/cuda/gemm_sm90_profile.sh big:4096,7168,16384 mc:4096,7168,16384:--cfg,mc
#
# Each case is NAME:M,N,K[:harness flags, comma-separated]. Everything lands in $OUT/profiles.tar.xz (one file,
# so the device call's file limits are kept) and a one-line summary per case is printed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/build/gemm_sm90/gemm_test"
out="${OUT:-$here/build/gemm_sm90}"
work=$(mktemp -d /tmp/octet-prof.XXXXXX)
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
[[ -x "$bin" ]] || { echo "profile: no harness at $bin (run gemm_sm90_run.sh --build-only first)"; exit 1; }
[[ -n "$ncu" ]] || { echo "profile: ncu not found"; exit 1; }

for spec in "$@"; do
  IFS=: read -r name shape flags <<< "$spec"
  IFS=, read -r -a extra <<< "${flags:-}"
  t0=$(date +%s)
  timeout 240 "$ncu" --target-processes all -k regex:fp8_gemm_sm90_kernel --launch-count 1 --set full \
    --import-source no --clock-control none -f -o "$work/$name" \
    "$bin" --shape "$shape" --no-fork --no-timing "${extra[@]}" > "$work/$name.log" 2>&1
  rc=$?
  if [[ -f "$work/$name.ncu-rep" ]]; then
    "$ncu" --import "$work/$name.ncu-rep" --page details --print-details all > "$work/$name.details.txt" 2>&1
    "$ncu" --import "$work/$name.ncu-rep" --page source --print-source sass --csv > "$work/$name.sass.csv" 2>&1
    dur=$(grep -m1 -E '^\s+Duration' "$work/$name.details.txt" | awk '{print $(NF-1), $NF}')
    sm=$(grep -m1 -E '^\s+Compute \(SM\) Throughput' "$work/$name.details.txt" | awk '{print $NF}')
    l2=$(grep -m1 -E '^\s+L2 Cache Throughput' "$work/$name.details.txt" | awk '{print $NF}')
    echo "profile $name ($shape ${flags:-}): exit $rc, $(( $(date +%s) - t0 )) s; duration $dur, SM $sm %, L2 $l2 %"
    rm -f "$work/$name.ncu-rep"
  else
    echo "profile $name ($shape ${flags:-}): exit $rc, no report"; tail -5 "$work/$name.log"
  fi
done
tar -C "$work" -cJf "$out/profiles.tar.xz" . && echo "profile: $(du -h "$out/profiles.tar.xz" | cut -f1) in $out/profiles.tar.xz"
