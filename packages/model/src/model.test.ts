// The whole model with multi-token prediction against finite differences: L = L_main + λ·(1/D)·Σ_k L_k,
// gradients w.r.t. the shared embedding and head (which collect both losses), the MTP modules' own
// tensors, their transformer blocks and the main blocks (whose h^0 gradient comes partly from MTP).
// Plus: MTP off leaves the main model's initialization unchanged, and its tensors join the store.

import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "./backend/cpu.js";
import { type ModelConfig, presetConfig } from "./config.js";
import { Transformer } from "./model.js";
import { Rng, host, numericalGrad, relError } from "./testing/gradcheck.js";

const be = new CpuBackend();

function microModel(depth: number, over: Partial<ModelConfig> = {}): ModelConfig {
  const m = presetConfig("micro").model;
  return {
    ...m,
    vocabSize: 11, dModel: 16, nHeads: 2, seqLen: 6, nLayers: 2, nDenseLayers: 1, ffnHidden: 12,
    attention: { kind: "mla", qLoraRank: 8, kvLoraRank: 6, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 3 },
    moe: { ...m.moe, nRoutedExperts: 4, nGroup: 2, topkGroup: 1, topK: 2, expertHidden: 6, nSharedExperts: 1 },
    initStd: 0.3,
    mtp: { depth },
    ...over,
  };
}

function tokens(n: number, V: number, rng: Rng): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor((rng.nextU32() / 2 ** 32) * V));
}

test("model + MTP (D = 2, λ = 0.3): gradients of L_main + λ·mean_k L_k match finite differences", () => {
  const cfg = microModel(2);
  const model = new Transformer(cfg, "fp32", be, 3);
  const rng = Rng.fromU32Seed(9);
  const B = 2;
  const stream = tokens(B * (cfg.seqLen + 1), cfg.vocabSize, rng);
  const inputs = new Int32Array(B * cfg.seqLen);
  const targets = new Int32Array(B * cfg.seqLen);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < cfg.seqLen; i++) {
      inputs[b * cfg.seqLen + i] = stream[b * (cfg.seqLen + 1) + i];
      targets[b * cfg.seqLen + i] = stream[b * (cfg.seqLen + 1) + i + 1];
    }
  }
  // Non-trivial MTP norm gains so their gradients are exercised.
  for (const name of ["mtp.1.enorm.weight", "mtp.2.hnorm.weight", "norm.weight"]) {
    const w = host(model.store.get(name).value);
    for (let i = 0; i < w.length; i++) w[i] = 1 + 0.3 * rng.nextNormal32();
  }
  const lambda = 0.3;
  const L = () => {
    const f = model.forward(inputs, targets, false);
    const [[loss], [mtpLoss]] = be.read([f.loss, f.mtpLoss!]);
    return loss + lambda * mtpLoss;
  };
  model.store.zeroGrads();
  const f = model.forward(inputs, targets, true);
  assert.equal(f.mtpLosses.length, 2);
  const [[mtpLoss], [L1], [L2]] = be.read([f.mtpLoss!, ...f.mtpLosses]);
  assert.ok(Math.abs(mtpLoss - (L1 + L2) / 2) < 1e-12);
  model.backward(lambda);
  const checked = [
    "embed.weight", "head.weight", "norm.weight", // shared: main and MTP gradients add up
    "mtp.1.eh_proj.weight", "mtp.1.enorm.weight", "mtp.1.hnorm.weight", "mtp.2.eh_proj.weight", "mtp.2.hnorm.weight",
    "mtp.1.block.attn_norm.weight", "mtp.1.block.attn.wkv_a.weight", "mtp.2.block.attn.wo.weight",
    "mtp.1.block.moe.gate.weight", "mtp.2.block.moe.shared.w2.weight", "mtp.1.block.moe.experts.1.w1.weight",
    "layers.1.moe.shared.w1.weight", "layers.0.attn.wq_b.weight", "layers.0.ffn.w2.weight",
  ];
  for (const name of checked) {
    const p = model.store.get(name);
    const err = relError(host(p.grad), numericalGrad(L, host(p.value), 1e-3, 40));
    assert.ok(err < 1e-2, `${name}: relative error ${err.toExponential(2)}`);
  }
  // The MTP part really contributes: without it (λ = 0) the shared head's gradient differs.
  const withMtp = Float32Array.from(host(model.store.get("head.weight").grad));
  model.store.zeroGrads();
  model.forward(inputs, targets, true);
  model.backward(0);
  assert.notDeepEqual(host(model.store.get("head.weight").grad), withMtp);
  assert.ok(host(model.store.get("mtp.1.eh_proj.weight").grad).every((g) => g === 0));
});

test("MTP tensors join the store (named as @octet/mtp names them); MTP off draws the same main initialization", () => {
  const withMtp = new Transformer(microModel(1), "fp32", be, 4);
  const without = new Transformer(microModel(0), "fp32", be, 4);
  assert.equal(without.mtp, null);
  for (const p of without.store.all()) assert.deepEqual(host(withMtp.store.get(p.name).value), host(p.value), p.name);
  const mtpNames = withMtp.mtp!.params().map((p) => p.name);
  assert.ok(mtpNames.includes("mtp.1.eh_proj.weight") && mtpNames.includes("mtp.1.block.attn.wkv_b.weight"));
  for (const p of withMtp.mtp!.params()) assert.equal(withMtp.store.get(p.name).value, p.value, p.name);
  assert.deepEqual(withMtp.store.get("mtp.1.eh_proj.weight").shape, [16, 32]);
  assert.equal(withMtp.moeLayers().length, 2); // the main MoE layer and the MTP block's
  const extra = withMtp.store.count() - without.store.count();
  assert.equal(extra, withMtp.mtp!.params().reduce((n, p) => n + host(p.value).length, 0));
});
