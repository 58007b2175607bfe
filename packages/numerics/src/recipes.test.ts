import { test } from "node:test";
import assert from "node:assert/strict";
import { DelayedScaler, RECIPES, blockFor, quantizeCurrent, validateRecipe } from "./recipes.js";
import { dequantize } from "./quantize.js";
import { randomNormal, seededRandom } from "./testing/golden.js";

test("built-in recipes are valid, serializable, and round-trip through JSON", () => {
  for (const recipe of Object.values(RECIPES)) {
    assert.deepEqual(validateRecipe(JSON.parse(JSON.stringify(recipe))), recipe);
  }
  assert.equal(RECIPES.deepseekV3.dgrad.gradOutput.format, "e4m3");
  assert.equal(RECIPES.hybrid.dgrad.gradOutput.format, "e5m2");
  assert.deepEqual(RECIPES.deepseekV3.fprop.weight.granularity, { kind: "block", block: [128, 128] });
});

test("invalid recipes are rejected with every problem and its path", () => {
  const bad = JSON.parse(JSON.stringify(RECIPES.deepseekV3));
  bad.fprop.input.format = "e3m4";
  bad.wgrad.input.granularity = { kind: "block", block: [0, 128] };
  bad.extra = 1;
  assert.throws(() => validateRecipe(bad), (e: Error) => e instanceof RangeError && /fprop\.input\.format/.test(e.message) && /wgrad\.input\.granularity\.block\.0/.test(e.message) && /extra/.test(e.message));
  const delayedNoHistory = { ...JSON.parse(JSON.stringify(RECIPES.delayed)), delayed: undefined };
  assert.throws(() => validateRecipe(delayedNoHistory), { name: "RangeError", message: /delayed: delayed scaling needs/ });
  const delayedBlocks = JSON.parse(JSON.stringify(RECIPES.delayed));
  delayedBlocks.fprop.input.granularity = { kind: "row" };
  assert.throws(() => validateRecipe(delayedBlocks), { name: "RangeError", message: /fprop\.input\.granularity: delayed scaling is per tensor/ });
});

test("current scaling per tensor, per row and per block picks the matching quantization block", () => {
  assert.deepEqual(blockFor({ kind: "tensor" }, [64, 256]), [64, 256]);
  assert.deepEqual(blockFor({ kind: "row" }, [64, 256]), [1, 256]);
  const x = randomNormal(seededRandom(9), 64 * 256);
  const perRow = quantizeCurrent(x, [64, 256], { format: "e4m3", granularity: { kind: "row" }, scale: "fp32" });
  assert.equal(perRow.scales.length, 64);
  const perTensor = quantizeCurrent(x, [64, 256], { format: "e5m2", granularity: { kind: "tensor" }, scale: "fp32" });
  assert.equal(perTensor.scales.length, 1);
  assert.equal(perTensor.format, "e5m2");
});

test("delayed scaling uses the history's amax, saturates stale overflow, and records this step", () => {
  const scaler = new DelayedScaler("e4m3", { amaxHistoryLength: 4, amaxReduction: "max", margin: 0 });
  assert.equal(scaler.referenceAmax(), null);
  const first = scaler.quantize(Float32Array.of(1, -2, 0.5, 0), [1, 4]);
  assert.equal(first.scales[0], Math.fround(2 / 448)); // empty history: its own amax
  assert.equal(first.overflows, 0);
  // The next tensor is 4x larger than anything in the history: it saturates at ±448·scale.
  const second = scaler.quantize(Float32Array.of(8, -1, 0, 0), [1, 4]);
  assert.equal(second.overflows, 1);
  assert.equal(dequantize(second)[0], Math.fround(448 * Math.fround(2 / 448)));
  assert.equal(scaler.referenceAmax(), 8);
  const recent = new DelayedScaler("e4m3", { amaxHistoryLength: 3, amaxReduction: "most_recent", margin: 1 });
  for (const v of [5, 1, 2]) recent.quantize(Float32Array.of(v), [1, 1]);
  assert.equal(recent.referenceAmax(), 2);
  const restored = new DelayedScaler("e4m3", { amaxHistoryLength: 3, amaxReduction: "most_recent", margin: 1 });
  restored.importState(recent.exportState());
  assert.deepEqual(restored.exportState(), { history: [5, 1, 2], recorded: 3 });
  assert.equal(restored.referenceAmax(), 2);
  for (const v of [7, 3]) { recent.quantize(Float32Array.of(v), [1, 1]); restored.quantize(Float32Array.of(v), [1, 1]); }
  assert.deepEqual(restored.exportState(), recent.exportState());
  assert.throws(() => new DelayedScaler("e4m3", { amaxHistoryLength: 0, amaxReduction: "max", margin: 0 }), { name: "RangeError", message: /amaxHistoryLength/ });
  assert.throws(() => scaler.quantize(Float32Array.of(NaN), [1, 1]), { name: "RangeError", message: /non-finite/ });
});
