// The CPU backend's shortcuts equal the definitions they replace, bit for bit: both FP8 tile layouts from
// one read (quantizeTiles) against quantize() of x and of xᵀ; a transposed 128x128-block quantization
// against quantizing Wᵀ; the BF16 encoder against @octet/numerics' encodeBf16 (the specification).

import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeBf16 } from "@octet/numerics";
import { Rng, randn } from "../testing/gradcheck.js";
import { CpuBackend } from "./cpu.js";

const be = new CpuBackend();

test("quantizeTiles: x in 1x128 tiles and xᵀ in 1x128 tiles equal quantize(x) and quantize(transpose(x)), edge tiles included", () => {
  const rng = Rng.fromU32Seed(1);
  for (const [rows, cols] of [[200, 128], [96, 300], [1, 128], [257, 64]]) {
    const x = randn(rows * cols, rng, 3);
    x[5] = 0;
    for (const format of ["e4m3", "e5m2"] as const) {
      for (const scale of ["fp32", "pow2"] as const) {
        const { q, qT } = be.quantizeTiles(x, rows, cols, format, scale);
        const ref = be.quantize(x, rows, cols, [1, 128], format, scale);
        const refT = be.quantize(be.transpose(x, rows, cols), cols, rows, [1, 128], format, scale);
        assert.deepEqual(q, ref, `rowwise ${rows}x${cols} ${format} ${scale}`);
        assert.deepEqual(qT, refT, `transposed ${rows}x${cols} ${format} ${scale}`);
      }
    }
  }
});

test("transposeQuantized of W in 128x128 blocks equals quantizing Wᵀ", () => {
  const rng = Rng.fromU32Seed(2);
  for (const [rows, cols] of [[384, 128], [80, 200], [128, 128]]) {
    const w = randn(rows * cols, rng, 0.05);
    const qT = be.transposeQuantized(be.quantize(w, rows, cols, [128, 128], "e4m3", "fp32"));
    assert.deepEqual(qT, be.quantize(be.transpose(w, rows, cols), cols, rows, [128, 128], "e4m3", "fp32"));
  }
});

test("toBf16 equals encodeBf16 (round to nearest even, ties, NaN, infinities, subnormals)", () => {
  const rng = Rng.fromU32Seed(3);
  const x = randn(10000, rng, 10);
  const special = [0, -0, Infinity, -Infinity, NaN, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, 1e-40, -1e-45, 65504];
  const all = Float32Array.from([...x, ...special]);
  assert.deepEqual(be.toBf16(all), encodeBf16(all));
  // A view with an offset into a larger buffer.
  assert.deepEqual(be.toBf16(all.subarray(3, 50)), encodeBf16(all.slice(3, 50)));
});

test("transpose of float32, BF16 and FP8 arrays", () => {
  const f = Float32Array.from({ length: 6 }, (_, i) => i);
  assert.deepEqual(be.transpose(f, 2, 3), Float32Array.from([0, 3, 1, 4, 2, 5]));
  assert.deepEqual(be.transpose(Uint16Array.from(f), 2, 3), Uint16Array.from([0, 3, 1, 4, 2, 5]));
  const u8 = Uint8Array.from({ length: 70 * 33 }, (_, i) => i & 255);
  const t = be.transpose(u8, 70, 33);
  assert.ok(t instanceof Uint8Array);
  assert.equal(t[5 * 70 + 69], u8[69 * 33 + 5]);
});
