import { test } from "node:test";
import assert from "node:assert/strict";
import { dequantize, quantizeReference } from "./quantize.js";
import { frobeniusRelativeError, matmulFloat64, maxRelativeError, scaledMatmulReference, truncateToBits } from "./gemm.js";
import { matmulBf16, matmulF32, quantizeBoth, scaledMatmul } from "./backend.js";
import { decodeBf16, encodeBf16 } from "./formats.js";
import { randomNormal, seededRandom } from "./testing/golden.js";

const seed = Date.now() % 1_000_000;
const random = seededRandom(seed);

function operands(M: number, N: number, K: number, aBlock: [number, number] = [1, 128], bBlock: [number, number] = [128, 128]) {
  const a = quantizeReference(randomNormal(random, M * K), [M, K], { block: aBlock });
  const b = quantizeReference(randomNormal(random, N * K, 0.02), [N, K], { block: bBlock });
  return { a, b, exact: matmulFloat64(dequantize(a), dequantize(b), M, N, K) };
}

for (const [M, N, K] of [[1, 1, 1], [7, 9, 130], [33, 20, 300], [64, 64, 512]] as const) {
  test(`promoted scaledMatmul ${M}x${N}x${K} (spec and public path) is within 1e-6 relative of float64 (seed ${seed})`, () => {
    const { a, b, exact } = operands(M, N, K);
    const reference = scaledMatmulReference(a, b);
    assert.ok(frobeniusRelativeError(reference, exact) < 1e-6, `spec error ${frobeniusRelativeError(reference, exact)}`);
    const fast = scaledMatmul(a, b);
    assert.equal(fast.length, M * N);
    assert.ok(frobeniusRelativeError(fast, exact) < 1e-6, `public path error ${frobeniusRelativeError(fast, exact)}`);
  });
}

test("both operands in 128x128 blocks, and promoteEvery 64 dividing the blocks, stay within 1e-6", () => {
  const { a, b, exact } = operands(130, 140, 384, [128, 128], [128, 128]);
  assert.ok(frobeniusRelativeError(scaledMatmul(a, b), exact) < 1e-6);
  assert.ok(frobeniusRelativeError(scaledMatmulReference(a, b, { promoteEvery: 64 }), exact) < 1e-6);
});

test("limited accumulation loses precision as K grows; promotion every 128 removes the growth", () => {
  const errors: number[] = [];
  const promotedErrors: number[] = [];
  for (const K of [512, 4096]) {
    // All-positive inputs make the accumulator grow, the case where truncation hurts most.
    const x = Float32Array.from({ length: 8 * K }, random);
    const w = Float32Array.from({ length: 8 * K }, random);
    const a = quantizeReference(x, [8, K], { block: [1, 128] });
    const b = quantizeReference(w, [8, K], { block: [128, 128] });
    const exact = matmulFloat64(dequantize(a), dequantize(b), 8, 8, K);
    errors.push(maxRelativeError(scaledMatmulReference(a, b, { accumulation: "limited" }), exact));
    promotedErrors.push(maxRelativeError(scaledMatmulReference(a, b, { accumulatorBits: 14 }), exact));
  }
  assert.ok(errors[0] > 2e-3 && errors[0] < 3e-2, `K=512 limited error ${errors[0]}`);
  assert.ok(errors[1] > 4 * errors[0], `error must grow with K: ${errors}`);
  assert.ok(promotedErrors.every((e) => e < 2e-3), `promoted errors ${promotedErrors}`);
});

test("truncateToBits keeps the leading bits and rounds toward zero", () => {
  assert.equal(truncateToBits(1 + 2 ** -13 + 2 ** -20, 14), 1 + 2 ** -13);
  assert.equal(truncateToBits(-(1 + 2 ** -13 + 2 ** -20), 14), -(1 + 2 ** -13));
  assert.equal(truncateToBits(0b1111, 2), 0b1100);
  assert.equal(truncateToBits(0.1, 53), 0.1);
  assert.equal(truncateToBits(0, 14), 0);
});

test("matmulF32 equals the float64 product to float32 accuracy", () => {
  const a = randomNormal(random, 17 * 33);
  const b = randomNormal(random, 5 * 33);
  assert.ok(frobeniusRelativeError(matmulF32(a, b, 17, 5, 33), matmulFloat64(a, b, 17, 5, 33)) < 1e-6);
  assert.throws(() => matmulF32(a, b, 17, 5, 32), { name: "RangeError", message: /a has 561 elements/ });
});

test("mismatched shapes or blocks throw a RangeError naming both shapes", () => {
  const { a } = operands(4, 4, 256);
  const b = quantizeReference(new Float32Array(4 * 128), [4, 128], { block: [128, 128] });
  assert.throws(() => scaledMatmul(a, b), { name: "RangeError", message: /a is \[4, 256\] in \[1, 128\] blocks and b is \[4, 128\] in \[128, 128\] blocks/ });
  const column = quantizeReference(new Float32Array(4 * 256), [4, 256], { block: [128, 1] });
  assert.throws(() => scaledMatmul(column, a), { name: "RangeError", message: /promoteEvery 128 must divide.*\[4, 256\] in \[128, 1\] blocks/ });
  assert.throws(() => scaledMatmul(a, a, { promoteEvery: 0 }), { name: "RangeError", message: /promoteEvery/ });
  assert.throws(() => scaledMatmul(a, a, { accumulation: "fast" as never }), { name: "RangeError", message: /accumulation/ });
  assert.throws(() => scaledMatmul(a, { ...a, scales: new Float32Array(1) }), { name: "RangeError", message: /b.scales has 1 entries/ });
});

test("matmulBf16 equals the float64 product of the bf16-rounded inputs to float32 accuracy", () => {
  const a = encodeBf16(randomNormal(random, 9 * 130));
  const b = encodeBf16(randomNormal(random, 11 * 130));
  const exact = matmulFloat64(decodeBf16(a), decodeBf16(b), 9, 11, 130);
  assert.ok(frobeniusRelativeError(matmulBf16(a, b, 9, 11, 130), exact) < 1e-6);
  assert.throws(() => matmulBf16(a, b, 9, 11, 129), { name: "RangeError", message: /matmulBf16: a has 1170 elements/ });
});

test("quantizeBoth equals the separate [1,128] and [128,1] quantizations bit for bit", () => {
  const x = randomNormal(random, 200 * 300, 3);
  for (const scale of ["fp32", "pow2"] as const) {
    const both = quantizeBoth(x, [200, 300], { scale });
    const rowwise = quantizeReference(x, [200, 300], { block: [1, 128], scale });
    const colwise = quantizeReference(x, [200, 300], { block: [128, 1], scale });
    assert.deepEqual(both.rowwise, rowwise);
    assert.deepEqual(both.colwise, colwise);
  }
  const bad = Float32Array.from(x);
  bad[5 * 300 + 7] = Infinity;
  assert.throws(() => quantizeBoth(bad, [200, 300]), { name: "RangeError", message: /row 5, column 7/ });
});
