import { test } from "node:test";
import assert from "node:assert/strict";
import { linearBackward, linearForward, rmsNormBackward, rmsNormForward, softmaxCrossEntropy, transpose } from "./ops.js";

test("rmsNorm: unit RMS with unit gain; gain scales; zero row stays finite", () => {
  const x = Float32Array.from([3, 4, 0, 0, 0, 0, 0, 0]);
  const { y } = rmsNormForward(x, Float32Array.from([1, 1, 1, 2]), 2);
  const rms = Math.sqrt((9 + 16) / 4);
  assert.ok(Math.abs(y[0] - 3 / rms) < 1e-5 && Math.abs(y[1] - 4 / rms) < 1e-5);
  assert.ok(y.every(Number.isFinite));
  assert.throws(() => rmsNormForward(x, new Float32Array(3), 2), /want rows·dim = 6/);
});

test("rmsNorm backward and linear backward agree with finite differences", () => {
  const rows = 3;
  const dim = 5;
  const x = Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i * 1.7) + 0.2);
  const g = Float32Array.from({ length: dim }, (_, i) => 1 + 0.1 * i);
  const w = Float32Array.from({ length: 2 * dim }, (_, i) => Math.cos(i));
  const f = () => {
    const { y } = rmsNormForward(x, g, rows);
    const z = linearForward(y, w, rows, 2, dim);
    return z.reduce((s, v, i) => s + v * (i % 3 - 1), 0);
  };
  const { y, cache } = rmsNormForward(x, g, rows);
  const dz = Float32Array.from({ length: rows * 2 }, (_, i) => i % 3 - 1);
  const wGrad = new Float32Array(w.length);
  const gGrad = new Float32Array(dim);
  const dy = linearBackward(dz, y, w, wGrad, rows, 2, dim);
  const dx = rmsNormBackward(dy, g, gGrad, cache);
  for (const [arr, grad] of [[x, dx], [g, gGrad], [w, wGrad]] as const) {
    for (let i = 0; i < arr.length; i++) {
      const x0 = arr[i];
      arr[i] = x0 + 1e-2;
      const a = f();
      arr[i] = x0 - 1e-2;
      const b = f();
      arr[i] = x0;
      assert.ok(Math.abs((a - b) / 2e-2 - grad[i]) < 2e-3, `${i}: ${(a - b) / 2e-2} vs ${grad[i]}`);
    }
  }
});

test("softmaxCrossEntropy: uniform logits give ln V; gradient rows sum to zero; bad target refused", () => {
  const { loss, dLogits } = softmaxCrossEntropy(new Float32Array(8), Int32Array.from([1, 3]), 2, 4, 1);
  assert.ok(Math.abs(loss - Math.log(4)) < 1e-9);
  assert.ok(Math.abs(dLogits[1] - (0.25 - 1) / 2) < 1e-7);
  assert.ok(Math.abs(dLogits.slice(0, 4).reduce((s, v) => s + v, 0)) < 1e-7);
  assert.throws(() => softmaxCrossEntropy(new Float32Array(4), Int32Array.from([4]), 1, 4, 1), /target 4 at row 0 is outside/);
  assert.deepEqual([...transpose(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3)], [1, 4, 2, 5, 3, 6]);
});
