#!/usr/bin/env bash
# The same-function check of @octet/hf on the GPU machine: Octet's export loaded by transformers' DeepseekV3ForCausalLM
# and a random transformers model imported into Octet, logits compared in FP32 (compare.py prints one table).
#
#   bash /work/shared/gpu/pack-node.sh           # here: .carry/node.xz (Node for the GPU machine)
#   node packages/hf/gpu/bundle.mjs              # here, with node_modules: .carry/hf/{export,import,train,logits}.mjs
#   bash packages/hf/gpu/run.sh                  # there, from the repository root, carrying .carry/node.xz and .carry/hf
#
# A trained tiny state may be carried as .carry/hf/tiny.safetensors (npm run train -w @octet/model -- --config tiny
# --out /tmp/tiny, then cp /tmp/tiny/state.safetensors .carry/hf/tiny.safetensors); without it the script trains tiny
# for OCTET_HF_TRAIN_STEPS (default 5: slow there, on the TypeScript kernels) steps there on the CPU. Results go to $OUT: table.txt, results.json, log.txt.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  if [ -f .carry/node.xz ]; then
    [ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
    export PATH=/tmp:$PATH
  fi
fi
command -v node >/dev/null 2>&1 || { echo "run.sh: no node and no .carry/node.xz (bash /work/shared/gpu/pack-node.sh, carry .carry/node.xz)"; exit 1; }
for f in export import train logits; do
  [ -f ".carry/hf/$f.mjs" ] || { echo "run.sh: .carry/hf/$f.mjs is missing (node packages/hf/gpu/bundle.mjs, carry .carry/hf)"; exit 1; }
done
# The bundles cannot locate the native CPU kernels' builds: numerics and router run their TypeScript specification.
export OCTET_NUMERICS_BACKEND=typescript OCTET_ROUTER_BACKEND=typescript
state_arg=()
[ -f .carry/hf/tiny.safetensors ] && state_arg=(--state "$root/.carry/hf/tiny.safetensors")
python3 "$here/compare.py" --node "$(command -v node)" --bundle "$root/.carry/hf" --out "$OUT" \
  --train-steps "${OCTET_HF_TRAIN_STEPS:-5}" "${state_arg[@]}" 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
