import { test } from "node:test";
import assert from "node:assert/strict";
import { ceilToPow2, dequantize, quantizeReference } from "./quantize.js";
import { quantize } from "./backend.js";
import { asF32, asU32, randomNormal, readGolden, seededRandom } from "./testing/golden.js";

const golden = readGolden("quantize");
const [rows, cols] = golden.info("input").shape as [number, number];
const input = asF32(golden.get("input"));

// Both the specification and the public (possibly native) path must equal DeepGEMM's reference.
for (const [label, fn] of [["quantizeReference", quantizeReference], ["quantize", quantize]] as const) {
  for (const scale of ["fp32", "pow2"] as const) {
    for (const [kind, block] of [["token", [1, 128]], ["block", [128, 128]]] as const) {
      test(`${label} ${block.join("x")} ${scale} equals DeepGEMM's per_${kind}_cast_to_fp8 (PyTorch ${golden.torch}) on [${rows}, ${cols}] across 15 decades`, () => {
        const q = fn(input, [rows, cols], { block, scale });
        const wantData = golden.get(`${kind}_${scale}_data`);
        const wantScales = asU32(golden.get(`${kind}_${scale}_scales`));
        assert.equal(q.scales.length, wantScales.length);
        const gotScales = new Uint32Array(q.scales.buffer, q.scales.byteOffset, q.scales.length);
        for (let i = 0; i < wantScales.length; i++) assert.equal(gotScales[i], wantScales[i], `scale ${i}: ${q.scales[i]}`);
        for (let i = 0; i < wantData.length; i++) {
          if (q.data[i] !== wantData[i]) assert.fail(`code at row ${Math.floor(i / cols)}, column ${i % cols}: got 0x${q.data[i].toString(16)}, DeepGEMM 0x${wantData[i].toString(16)} (x = ${input[i]})`);
        }
      });
    }
  }
}

test("scale grid is row-major and rounds up for [1,128], [128,1] and [128,128]", () => {
  const x = randomNormal(seededRandom(1), 3 * 130);
  assert.equal(quantizeReference(x, [3, 130], { block: [1, 128] }).scales.length, 3 * 2);
  assert.equal(quantizeReference(x, [3, 130], { block: [128, 1] }).scales.length, 1 * 130);
  assert.equal(quantizeReference(x, [3, 130], { block: [128, 128] }).scales.length, 1 * 2);
  // [128,1] is the transpose of [1,128]: quantizing x in [128,1] blocks equals quantizing xᵀ in [1,128] tiles.
  const y = randomNormal(seededRandom(2), 200 * 5, 3);
  const yt = new Float32Array(5 * 200);
  for (let r = 0; r < 200; r++) for (let c = 0; c < 5; c++) yt[c * 200 + r] = y[r * 5 + c];
  const column = quantizeReference(y, [200, 5], { block: [128, 1] });
  const row = quantizeReference(yt, [5, 200], { block: [1, 128] });
  for (let r = 0; r < 200; r++) for (let c = 0; c < 5; c++) assert.equal(column.data[r * 5 + c], row.data[c * 200 + r]);
  for (let g = 0; g < 2; g++) for (let c = 0; c < 5; c++) assert.equal(column.scales[g * 5 + c], row.scales[c * 2 + g]);
});

test("the block amax is clamped at float32(1e-4): an all-zero block gets scale 1e-4/448 and zero codes", () => {
  const q = quantizeReference(new Float32Array(128), [1, 128], { block: [1, 128] });
  assert.equal(q.scales[0], Math.fround(Math.fround(1e-4) / 448));
  assert.ok(q.data.every((c) => c === 0));
});

test("pow2 scales are powers of two not below the fp32 scale, UE8M0 style", () => {
  assert.equal(ceilToPow2(0.25), 0.25);
  assert.equal(ceilToPow2(0.3), 0.5);
  assert.equal(ceilToPow2(Math.fround(1 / 448)), 2 ** -8);
  const x = randomNormal(seededRandom(3), 4 * 256, 10);
  const a = quantizeReference(x, [4, 256], { block: [1, 128], scale: "fp32" });
  const b = quantizeReference(x, [4, 256], { block: [1, 128], scale: "pow2" });
  for (let i = 0; i < a.scales.length; i++) {
    assert.ok(b.scales[i] >= a.scales[i] && b.scales[i] < 2 * a.scales[i]);
    assert.ok(Number.isInteger(Math.log2(b.scales[i])), `scale ${b.scales[i]} is not a power of two`);
  }
});

test("dequantize(quantize(x)) is within half an ulp of x: 2^-4 relative for E4M3, 2^-3 for E5M2 (plus half a subnormal step)", () => {
  const x = randomNormal(seededRandom(4), 129 * 257, 5);
  for (const [format, relative, halfSubnormal] of [["e4m3", 2 ** -4, 2 ** -10], ["e5m2", 2 ** -3, 2 ** -17]] as const) {
    for (const block of [[1, 128], [128, 1], [128, 128]] as const) {
      const q = quantizeReference(x, [129, 257], { block, format });
      const back = dequantize(q);
      const largestScale = q.scales.reduce((m, v) => Math.max(m, v), 0);
      for (let i = 0; i < x.length; i++) {
        const bound = relative * Math.abs(x[i]) + halfSubnormal * largestScale;
        if (Math.abs(back[i] - x[i]) > bound) assert.fail(`${format} ${block}: x[${i}] = ${x[i]} came back as ${back[i]}`);
      }
    }
  }
});

test("non-finite input: RangeError naming row and column by default; 'report' encodes NaN/inf as non-finite codes", () => {
  const x = new Float32Array(4 * 128).fill(1);
  x[2 * 128 + 5] = NaN;
  x[3 * 128 + 7] = -Infinity;
  assert.throws(() => quantizeReference(x, [4, 128], { block: [1, 128] }), { name: "RangeError", message: /non-finite input NaN at row 2, column 5/ });
  assert.throws(() => quantize(x, [4, 128], { block: [1, 128] }), { name: "RangeError", message: /row 2, column 5/ });
  for (const format of ["e4m3", "e5m2"] as const) {
    const q = quantize(x, [4, 128], { block: [1, 128], format, nonFinite: "report" });
    assert.deepEqual(q.nonFinite, { count: 2, first: [2, 5] });
    const back = dequantize(q);
    assert.ok(Number.isNaN(back[2 * 128 + 5]));
    assert.ok(!Number.isFinite(back[3 * 128 + 7]));
    // The finite neighbours are still quantized against the finite amax.
    assert.equal(back[2 * 128 + 6], 1);
    assert.equal(back[3 * 128 + 8], 1);
  }
});

test("bad shapes, blocks and lengths throw errors that say what is wrong", () => {
  const x = new Float32Array(10);
  assert.throws(() => quantize(x, [3, 4], { block: [1, 128] }), { name: "RangeError", message: /x has 10 elements but shape \[3, 4\] needs 12/ });
  assert.throws(() => quantize(x, [2, 5], { block: [0, 128] }), { name: "RangeError", message: /block/ });
  assert.throws(() => quantize(x, [2.5, 4] as never, { block: [1, 128] }), { name: "RangeError", message: /shape/ });
  assert.throws(() => quantize(x, [2, 5], { block: [1, 128], format: "e8m0" as never }), { name: "RangeError", message: /unknown FP8 format/ });
  assert.throws(() => quantize(x, [2, 5], { block: [1, 128], scale: "pow3" as never }), { name: "RangeError", message: /scale kind/ });
  assert.throws(() => quantize(Array.from(x) as never, [2, 5], { block: [1, 128] }), TypeError);
  assert.throws(() => dequantize({ data: new Uint8Array(3), scales: new Float32Array(1), shape: [2, 2], block: [1, 128], format: "e4m3" }), { name: "RangeError", message: /3 codes but shape \[2, 2\] needs 4/ });
});
