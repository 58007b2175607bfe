#!/usr/bin/env bash
# Builds the CUDA addon of @octet/numerics: cuda/build/octet_numerics_cuda.node (a Node-API module; not under the
# package's build/, which node-gyp rebuild wipes).
#
#   bash packages/numerics/cuda/build.sh            # on the GPU machine (CUDA 13, cuBLASLt), or anywhere with nvcc
#
# Each source compiles to an object in parallel (nvcc -c, sm_90a), then nvcc links them into a shared object. Parts:
#   quantize.cu util.cu addon.cu          always (CUDA runtime + Node-API headers)
#   gemm_sm90.cu gemm_sm90_plan.cc        when present (the Hopper GEMMs: C API and launches, with the kernels of
#                                         gemm_sm90_kernel.cuh and sm90_ptx.cuh; the host planner, plain C++);
#                                         -DOCTET_HAVE_SM90 for the addon
#   cublaslt.cu                           when cublasLt.h is found (links -lcublasLt); cublaslt_stub.cu otherwise
# Node-API headers: $NODE_INCLUDE, else <repo>/.carry/node-include (packed by shared/gpu/pack-node.sh), else the
# running node's include/node, else /usr/include/node. An addon needn't link libnode: the napi_* symbols stay
# undefined in the .so and resolve against the node binary that loads it.
# Environment: NVCC, CUDA_HOME, NODE_INCLUDE, OCTET_CUDA_BUILD_DIR (default cuda/build),
# OCTET_CUDA_NO_CUBLASLT=1 / OCTET_CUDA_NO_SM90=1 (leave a part out), OCTET_CUDA_FORCE=1 (rebuild even if unchanged).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pkg=$(dirname "$here")
root=$(cd "$pkg/../.." && pwd)
out=${OCTET_CUDA_BUILD_DIR:-$here/build}
mkdir -p "$out/obj"
t0=$(date +%s)

nvcc=${NVCC:-$(command -v nvcc || true)}
[ -n "$nvcc" ] || nvcc=/usr/local/cuda/bin/nvcc
[ -x "$nvcc" ] || { echo "build.sh: nvcc not found (set NVCC or put it on PATH)" >&2; exit 1; }
cuda_home=${CUDA_HOME:-$(cd "$(dirname "$(readlink -f "$nvcc")")/.." && pwd)}

node_inc=${NODE_INCLUDE:-}
if [ -z "$node_inc" ]; then
  for d in "$root/.carry/node-include" \
           "$( (command -v node >/dev/null && dirname "$(readlink -f "$(command -v node)")") || echo /nonexistent)/../include/node" \
           /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_api.h" ]; then node_inc=$d; break; fi
  done
fi
[ -n "$node_inc" ] && [ -f "$node_inc/node_api.h" ] || { echo "build.sh: node_api.h not found (set NODE_INCLUDE)" >&2; exit 1; }

lt_header=""
if [ "${OCTET_CUDA_NO_CUBLASLT:-0}" != 1 ]; then
  for d in "$cuda_home/include" /usr/local/cuda/include /usr/include; do
    if [ -f "$d/cublasLt.h" ]; then lt_header=$d/cublasLt.h; break; fi
  done
fi
sources=(quantize.cu util.cu addon.cu)
defines=()
libs=()
if [ -n "$lt_header" ]; then
  sources+=(cublaslt.cu)
  libdir=$cuda_home/lib64
  [ -d "$libdir" ] || libdir=$cuda_home/lib
  libs+=(-L"$libdir" -lcublasLt -Xlinker -rpath -Xlinker "$libdir")
else
  sources+=(cublaslt_stub.cu)
fi
if [ "${OCTET_CUDA_NO_SM90:-0}" != 1 ] && [ -f "$here/gemm_sm90.cu" ] && [ -f "$here/gemm_sm90.h" ] \
   && [ -f "$here/gemm_sm90_plan.cc" ]; then
  sources+=(gemm_sm90.cu gemm_sm90_plan.cc)
  defines+=(-DOCTET_HAVE_SM90)
fi

flags=(-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --threads 0 -lineinfo -Xcompiler -fPIC,-fvisibility=hidden
       -I"$here" -I"$node_inc" "${defines[@]}")
target=$out/octet_numerics_cuda.node

# Skip the build when the sources, headers and flags are those of the last successful one.
stamp_now=$( { "$nvcc" --version | tail -n 2; printf '%s\n' "${flags[@]}" "${libs[@]}" "${sources[@]}";
               cat "$here"/*.cu "$here"/*.cc "$here"/*.cuh "$here"/*.h "$node_inc/node_api.h"; } | sha256sum | cut -c1-16)
if [ "${OCTET_CUDA_FORCE:-0}" != 1 ] && [ -f "$target" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp_now" ]; then
  echo "build.sh: $target is up to date (stamp $stamp_now)"
  exit 0
fi
rm -f "$out/stamp" "$target"  # a failed build must not leave an older addon behind

echo "build.sh: nvcc $("$nvcc" --version | grep -o 'release [0-9.]*' || true), node headers $node_inc"
echo "build.sh: compiling ${sources[*]} (cuBLASLt: ${lt_header:-no, stub}; sm90 GEMM: $([ ${#defines[@]} -gt 0 ] && echo yes || echo no))"
pids=()
for s in "${sources[@]}"; do
  o=$out/obj/${s%.*}.o  # foo.cu and foo.cc alike -> foo.o
  ( st=$(date +%s)
    if "$nvcc" "${flags[@]}" --resource-usage -c "$here/$s" -o "$o" > "$out/obj/${s%.*}.log" 2>&1; then
      echo "build.sh:   $s ok ($(( $(date +%s) - st )) s)"
    else
      echo "build.sh:   $s FAILED ($(( $(date +%s) - st )) s):" >&2
      grep -v -E '^ptxas info|^    ' "$out/obj/${s%.*}.log" | head -60 >&2
      exit 1
    fi ) &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ $failed = 0 ] || { echo "build.sh: compilation failed (logs in $out/obj/*.log)" >&2; exit 1; }

objs=()
for s in "${sources[@]}"; do objs+=("$out/obj/${s%.*}.o"); done
"$nvcc" -shared -gencode=arch=compute_90a,code=sm_90a -o "$target.tmp" "${objs[@]}" "${libs[@]}" \
  -Xlinker -z -Xlinker undefs > "$out/link.log" 2>&1 || { cat "$out/link.log" >&2; echo "build.sh: link failed" >&2; exit 1; }
mv "$target.tmp" "$target"
# Spills or local memory in the kernels are worth knowing about: print the resource report's summary lines.
grep -h -E 'spill|stack frame' "$out"/obj/*.log 2>/dev/null | grep -v -E ' 0 bytes spill stores, 0 bytes spill loads|0 bytes stack frame' | sort | uniq -c | head -10 || true
echo "$stamp_now" > "$out/stamp"
cat > "$out/build-info.json" <<EOF
{"sources": "$(echo "${sources[*]}")", "cublasLt": "${lt_header:+yes}", "sm90": "$([ ${#defines[@]} -gt 0 ] && echo yes || echo no)", "nvcc": "$("$nvcc" --version | grep -o 'V[0-9][0-9.]*' | head -1)", "seconds": $(( $(date +%s) - t0 ))}
EOF
echo "build.sh: built $target in $(( $(date +%s) - t0 )) s"
