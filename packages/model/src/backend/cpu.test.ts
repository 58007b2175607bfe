// The CPU backend's shortcuts equal the definitions they replace, bit for bit: both FP8 tile layouts from
// one read (quantizeTiles) against quantize() of x and of xᵀ; a transposed 128x128-block quantization
// against quantizing Wᵀ; the BF16 encoder against @octet/numerics' encodeBf16 (the specification). And the
// structural ops the layers use instead of loops: row views, columns, MLA heads, MoE rows, the step's scalars.

import assert from "node:assert/strict";
import { test } from "node:test";
import { HostTensor, encodeBf16 } from "@octet/numerics";
import { Rng, randn } from "../testing/gradcheck.js";
import { CpuBackend } from "./cpu.js";

const be = new CpuBackend();
const f32 = (data: Float32Array, shape: readonly number[]) => new HostTensor("F32", shape, data);
const host = (t: { shape: readonly number[] }) => HostTensor.of(t as HostTensor).data;

test("quantizeTiles: x in 1x128 tiles and xᵀ in 1x128 tiles equal quantize(x) and quantize(transpose(x)), edge tiles included", () => {
  const rng = Rng.fromU32Seed(1);
  for (const [rows, cols] of [[200, 128], [96, 300], [1, 128], [257, 64]]) {
    const x = randn(rows * cols, rng, 3);
    x[5] = 0;
    const xt = f32(x, [rows, cols]);
    for (const format of ["e4m3", "e5m2"] as const) {
      for (const scale of ["fp32", "pow2"] as const) {
        const { q, qT } = be.quantizeTiles(xt, format, scale);
        const ref = be.quantize(xt, [1, 128], format, scale);
        const refT = be.quantize(be.transpose(xt), [1, 128], format, scale);
        assert.deepEqual(q, ref, `rowwise ${rows}x${cols} ${format} ${scale}`);
        assert.deepEqual(qT, refT, `transposed ${rows}x${cols} ${format} ${scale}`);
      }
    }
  }
});

test("transposeQuantized of W in 128x128 blocks equals quantizing Wᵀ", () => {
  const rng = Rng.fromU32Seed(2);
  for (const [rows, cols] of [[384, 128], [80, 200], [128, 128]]) {
    const w = f32(randn(rows * cols, rng, 0.05), [rows, cols]);
    const qT = be.transposeQuantized(be.quantize(w, [128, 128], "e4m3", "fp32"));
    assert.deepEqual(qT, be.quantize(be.transpose(w), [128, 128], "e4m3", "fp32"));
  }
});

test("toBf16 equals encodeBf16 (round to nearest even, ties, NaN, infinities, subnormals)", () => {
  const rng = Rng.fromU32Seed(3);
  const x = randn(10000, rng, 10);
  const special = [0, -0, Infinity, -Infinity, NaN, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, 1e-40, -1e-45, 65504];
  const all = Float32Array.from([...x, ...special]);
  assert.deepEqual(host(be.toBf16(f32(all, [all.length]))), encodeBf16(all));
  // A view with an offset into a larger buffer (a row range).
  const rows = f32(all.subarray(0, 50), [50, 1]);
  assert.deepEqual(host(be.toBf16(be.rows(rows, 3, 47))), encodeBf16(all.slice(3, 50)));
});

test("transpose of float32, BF16 and FP8 tensors", () => {
  const f = Float32Array.from({ length: 6 }, (_, i) => i);
  assert.deepEqual(host(be.transpose(f32(f, [2, 3]))), Float32Array.from([0, 3, 1, 4, 2, 5]));
  const b = be.transpose(new HostTensor("BF16", [2, 3], Uint16Array.from(f)));
  assert.equal(b.dtype, "BF16");
  assert.deepEqual(b.shape, [3, 2]);
  assert.deepEqual(host(b), Uint16Array.from([0, 3, 1, 4, 2, 5]));
  const u8 = Uint8Array.from({ length: 70 * 33 }, (_, i) => i & 255);
  const t = be.transpose(new HostTensor("F8_E4M3", [70, 33], u8));
  assert.equal(t.dtype, "F8_E4M3");
  assert.equal((host(t) as Uint8Array)[5 * 70 + 69], u8[69 * 33 + 5]);
});

test("rows is a view (no copy); fromHost copies; copyFromHost and toHost move host data; bad shapes are refused naming them", () => {
  const x = be.fromHost(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]);
  const r = be.rows(x, 1, 2);
  assert.deepEqual(r.shape, [2, 3]);
  be.copyFromHost(r, Float32Array.from([9, 9, 9, 8, 8, 8]));
  assert.deepEqual([...(be.toHost(x) as Float32Array)], [0, 1, 2, 9, 9, 9, 8, 8, 8, 9, 10, 11]);
  const src = Int32Array.from([1, 2]);
  const ids = be.fromHost(src, [2]);
  src[0] = 7;
  assert.deepEqual(be.read([ids]), [[1, 2]]);
  assert.throws(() => be.rows(x, 3, 2), /rows: rows 3 \.\. 5 are outside \[4, 3\]/);
  assert.throws(() => be.copyFromHost(x, new Uint16Array(12)), /copyFromHost: a F32 tensor takes a Float32Array, got Uint16Array/);
  assert.throws(() => be.fromHost(new Uint16Array(2), [2]), /name its dtype/);
  assert.throws(() => be.matmul(x, be.zeros([2, 4])), /matmul: a \[4, 3\] and b \[2, 4\] differ in K/);
  assert.throws(() => be.addInPlace(x, be.zeros([1, 3], "I32")), /addInPlace: \[4, 3\] and \[1, 3\] differ in size/);
  assert.throws(() => be.matmul(be.zeros([2, 2], "BF16"), be.zeros([2, 2])), /matmul: a: expected a F32 tensor, got BF16/);
});

test("splitColumns and concatColumns are inverses; mlaHeads places [k_nope | shared k_rope] and v per head, its backward sums k_rope over heads", () => {
  const rng = Rng.fromU32Seed(4);
  const [N, H, dn, dr, dv] = [3, 2, 2, 3, 4];
  const full = f32(randn(N * 7, rng), [N, 7]);
  const [a, b] = be.splitColumns(full, 4);
  assert.deepEqual(a.shape, [N, 4]);
  assert.deepEqual(host(be.concatColumns(a, b)), host(full));
  const kv = f32(randn(N * H * (dn + dv), rng), [N, H * (dn + dv)]);
  const kr = f32(randn(N * dr, rng), [N, dr]);
  const { k, v } = be.mlaHeads(kv, kr, H, dn, dv);
  const [K, V, KV, KR] = [host(k), host(v), host(kv), host(kr)] as Float32Array[];
  for (let t = 0; t < N; t++) {
    for (let h = 0; h < H; h++) {
      const kh = K.subarray((t * H + h) * (dn + dr), (t * H + h + 1) * (dn + dr));
      const kvh = KV.subarray((t * H + h) * (dn + dv), (t * H + h + 1) * (dn + dv));
      assert.deepEqual([...kh], [...kvh.subarray(0, dn), ...KR.subarray(t * dr, (t + 1) * dr)]);
      assert.deepEqual([...V.subarray((t * H + h) * dv, (t * H + h + 1) * dv)], [...kvh.subarray(dn)]);
    }
  }
  const { dkv, dkr } = be.mlaHeadsBackward(k, v, H, dn, dr);
  assert.deepEqual(host(dkv), host(kv));
  const DKR = host(dkr) as Float32Array;
  for (let i = 0; i < N * dr; i++) assert.equal(DKR[i], Math.fround(KR[i] + KR[i])); // H = 2 heads, in order
});

test("MoE rows: route + permute + unpermuteAdd, rowDots into assignments, scaleRows; the step's scalars; clipping", () => {
  const rng = Rng.fromU32Seed(5);
  const [T, E, C] = [6, 4, 5];
  const logits = f32(randn(T * E, rng), [T, E]);
  const routing = be.route(logits, be.zeros([E]), { experts: E, topK: 2, nGroup: 2, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1 });
  assert.equal(routing.rows, T * 2);
  const [counts, offsets] = be.read([routing.expertCounts, routing.expertOffsets]);
  assert.equal(counts.reduce((s, c) => s + c, 0), T * 2);
  assert.deepEqual(offsets.slice(1).map((o, e) => o - offsets[e]), counts);
  const x = f32(randn(T * C, rng), [T, C]);
  const xd = be.permuteRows(x, routing.tokenOfRow);
  const ones = f32(new Float32Array(routing.rows).fill(1), [routing.rows]);
  const back = be.zeros([T, C]);
  be.unpermuteAdd(xd, routing.tokenOfRow, back, ones);
  const X = host(x) as Float32Array;
  (host(back) as Float32Array).forEach((v, i) => assert.equal(v, Math.fround(2 * X[i]))); // each token went to 2 experts
  const dots = host(be.rowDots(xd, xd, routing.assignmentOfRow, T * 2)) as Float32Array;
  const tok = host(routing.tokenOfRow) as Int32Array;
  const asg = host(routing.assignmentOfRow) as Int32Array;
  for (let r = 0; r < routing.rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += X[tok[r] * C + c] ** 2;
    assert.equal(dots[asg[r]], Math.fround(s));
  }
  const w = f32(Float32Array.from({ length: routing.rows }, (_, r) => r), [routing.rows]);
  const scaled = be.permuteRows(x, routing.tokenOfRow);
  be.scaleRows(scaled, w);
  assert.equal((host(scaled) as Float32Array)[3 * C + 1], Math.fround((host(xd) as Float32Array)[3 * C + 1] * 3));
  const dLogits = be.routeBackward(routing, f32(randn(T * 2, rng), [T * 2]));
  assert.deepEqual(dLogits.shape, [T, E]);
  // Gradient norm over tensors, then clipping to it.
  const g1 = f32(Float32Array.from([3, 0]), [2]);
  const g2 = f32(Float32Array.from([4]), [1]);
  const norm = be.gradNorm([g1, g2]);
  assert.deepEqual(be.read([norm]), [[5]]);
  be.clipByNorm([g1, g2], norm, 1);
  const s = 1 / (5 + 1e-6);
  assert.deepEqual([...host(g1), ...host(g2)], [Math.fround(3 * s), 0, Math.fround(4 * s)]);
  be.clipByNorm([g1], be.gradNorm([g1]), 1); // norm ≤ maxNorm: unchanged
  assert.equal((host(g1) as Float32Array)[0], Math.fround(3 * s));
});
