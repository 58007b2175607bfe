// The parameter count of a config equals the built model's, and the gpu-small preset is what issue 14 says.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type Config, RECIPE_NAMES, presetConfig, validateConfig } from "./config.js";
import { CpuBackend } from "./backend/cpu.js";
import { Transformer } from "./model.js";
import { checkFitsDevice, modelFlopsPerStep, parameterCount, trainingMemoryEstimate } from "./size.js";

function built(c: Config): number {
  return new Transformer(c.model, "fp32", new CpuBackend(), 1).store.count();
}

test("parameterCount equals the built model's for micro, tiny, MHA, no q-LoRA, all-dense and no MTP", () => {
  const variants: Config[] = [presetConfig("micro"), presetConfig("tiny")];
  const mha = presetConfig("micro");
  mha.model.attention = { kind: "mha", headDim: 8 };
  const noQLora = presetConfig("micro");
  if (noQLora.model.attention.kind === "mla") noQLora.model.attention.qLoraRank = 0;
  const dense = presetConfig("micro");
  dense.model.nDenseLayers = dense.model.nLayers;
  const deepMtp = presetConfig("micro");
  deepMtp.model.mtp = { depth: 2 };
  const noMtp = presetConfig("micro");
  noMtp.model.mtp = { depth: 0 };
  variants.push(mha, noQLora, dense, deepMtp, noMtp);
  for (const c of variants) assert.equal(parameterCount(c.model).total, built(c), JSON.stringify(c.model.attention));
});

test("gpu-small: validates under every recipe; 2.52 B parameters, 0.44 B active per token, 16,384 tokens a step", () => {
  const c = presetConfig("gpu-small");
  for (const r of RECIPE_NAMES) validateConfig(c, r);
  const n = parameterCount(c.model);
  assert.equal(Math.round(n.total / 1e7) / 100, 2.52);
  assert.equal(Math.round(n.activePerToken / 1e7) / 100, 0.44);
  assert.equal(c.train.batchSize * c.model.seqLen, 16384);
  assert.equal(c.model.moe.nRoutedExperts, 64);
});

test("trainingMemoryEstimate: parts add up, BF16 moments halve the optimizer, more tokens cost more", () => {
  const c = presetConfig("gpu-small");
  const e = trainingMemoryEstimate(c, "fp8");
  const P = parameterCount(c.model).total;
  assert.equal(e.parts.weights, 4 * P);
  assert.equal(e.parts.optimizer, 4 * P);
  assert.equal(e.bytes, Math.ceil(Object.values(e.parts).reduce((a, b) => a + b, 0) * 1.1));
  const fp32Moments = structuredClone(c);
  fp32Moments.train.bf16Moments = false;
  assert.equal(trainingMemoryEstimate(fp32Moments, "fp8").parts.optimizer, 8 * P);
  const bigger = structuredClone(c);
  bigger.train.batchSize *= 2;
  assert.ok(trainingMemoryEstimate(bigger, "fp8").parts.activations === 2 * e.parts.activations);
  assert.equal(trainingMemoryEstimate(c, "fp32").parts.fp8Weights, 0);
});

test("checkFitsDevice: refuses a config that cannot fit, with the estimate and the free memory", () => {
  const c = presetConfig("gpu-small");
  const need = trainingMemoryEstimate(c, "bf16").bytes;
  checkFitsDevice(c, "bf16", need, 80 * 2 ** 30);
  assert.throws(() => checkFitsDevice(c, "bf16", need - 1, 80 * 2 ** 30), (err: Error) => {
    assert.ok(err instanceof RangeError);
    assert.match(err.message, /^config gpu-small \(bf16, 8 × 2048 tokens a step\) needs about \d+\.\d GiB of device memory/);
    assert.match(err.message, /GiB free of 80\.0/);
    assert.match(err.message, /activations \d/);
    return true;
  });
});

test("modelFlopsPerStep: 6 · active · tokens plus causal attention (gpu-small: 46.3 TFLOP a step, the definition behind the PyTorch peer figures of the GPU README)", () => {
  const c = presetConfig("gpu-small");
  const tokens = 16384;
  const attention = 3 * 5 * 8 * 16 * 2048 * 2048 * (192 + 128);
  assert.equal(modelFlopsPerStep(c), 6 * parameterCount(c.model).activePerToken * tokens + attention);
  assert.equal(Math.round(modelFlopsPerStep(c) / 1e11) / 10, 46.3);
});
