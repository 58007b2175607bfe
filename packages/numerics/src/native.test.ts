// The native CPU kernels against the TypeScript specification: quantization bit for bit, the promoted
// block-scaled GEMM bit for bit (FP8 products are exact in fp32 and each output's partial sums run
// sequentially in k, as in the spec) and within 1e-6 of the float64 product of the dequantized operands.
// Fresh random inputs every run (the seed is printed; OCTET_TEST_SEED=<n> repeats a run).
// Skipped when the addon is not built, unless OCTET_REQUIRE_NATIVE=1.
//
// The addon runs the copy of its kernels for the best instruction set the CPU supports; run without
// OCTET_NATIVE_ISA, this file also runs itself once per other supported instruction set (AVX2, scalar, ...)
// with the same seed, so every copy is checked against the specification.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { decodeFp8, encodeBf16, encodeFp8 } from "./formats.js";
import { type Block, type Quantized, dequantize, quantizeReference } from "./quantize.js";
import { frobeniusRelativeError, matmulFloat64, scaledMatmulReference } from "./gemm.js";
import { type NativeKernels, loadNativeKernels, nativeUnavailableReason } from "./native.js";
import { numericsBackend } from "./backend.js";

const kernels = loadNativeKernels();
const skip = kernels ? false : `native kernels unavailable: ${nativeUnavailableReason()}`;
const k = kernels as NativeKernels;

test("native kernels load (required when OCTET_REQUIRE_NATIVE=1)", (t) => {
  if (!kernels) {
    if (process.env.OCTET_REQUIRE_NATIVE === "1") assert.fail(`OCTET_REQUIRE_NATIVE=1 but ${nativeUnavailableReason()}`);
    t.skip(String(skip));
    return;
  }
  const info = k.info();
  t.diagnostic(`native: ${info.isa} (${info.kernels}; supported: ${info.supported.join(", ")}), ${info.threads} threads, ${info.flags}, ${info.compiler}`);
  assert.ok(info.threads >= 1);
  assert.ok(info.supported.includes(info.isa) && info.supported.includes("scalar"), JSON.stringify(info));
  const forced = process.env.OCTET_NATIVE_ISA;
  assert.equal(info.isa, forced && forced !== "auto" ? forced : info.supported[0], "the forced instruction set, else the best supported");
  assert.deepEqual(numericsBackend(), { path: "native", isa: info.isa, reason: null });
});

const seed = process.env.OCTET_TEST_SEED ? Number(process.env.OCTET_TEST_SEED) : (Math.random() * 2 ** 32) >>> 0;
const THIS_FILE = fileURLToPath(import.meta.url);
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
// The other instruction sets to check in child processes (only from the top-level run).
const otherIsas = kernels && !process.env.OCTET_NATIVE_ISA ? k.info().supported.filter((isa) => isa !== k.info().isa) : [];
function mulberry32(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = mulberry32(seed);
test(`random seed ${seed} (OCTET_TEST_SEED=${seed} repeats this run)`, () => {});

const FORMATS = ["e4m3", "e5m2"] as const;
const FMAX = { e4m3: 448, e5m2: 57344 } as const;
const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// Values that land on or next to the casts' rounding boundaries once a block's scale is 1 (its amax = fmax).
const ADVERSARIAL = [
  0, -0, 1, -1, 1.0625, 1.1875, -1.0625, 2 ** -6, 2 ** -7, 2 ** -9, 2 ** -10, 3 * 2 ** -10, 5 * 2 ** -10, 2 ** -11,
  2 ** -14, 2 ** -15, 2 ** -16, 2 ** -17, 3 * 2 ** -17, 1.125, 1.25, 1.375, 2.5, 416, 432, 440, 447.99, 448, -448,
  1e-40, -1e-40, 1.4e-45, 1.17e-38, 1e-30, 1e30, 3e38, -3.4e38, 1e-4, 9.99e-5, 49152, 53248, 57344, -57344,
];

/** log-uniform magnitudes over [10^lo, 10^hi), random signs, sprinkled with adversarial values and block maxima. */
function adversarialInput(rows: number, cols: number, fmax: number): Float32Array {
  const x = new Float32Array(rows * cols);
  const lo = -8 + rand() * 10, span = rand() * 14;
  for (let i = 0; i < x.length; i++) {
    const u = rand();
    if (u < 0.15) x[i] = ADVERSARIAL[Math.floor(rand() * ADVERSARIAL.length)] * (rand() < 0.5 ? 1 : -1);
    else x[i] = (rand() < 0.5 ? -1 : 1) * 10 ** (lo + rand() * span);
  }
  // Rows 0, 128, ... hold ±fmax so many blocks get scale exactly 1 (the adversarial values then hit the ties);
  // one row is all zeros (amax floor), one is all ±0 / fp32 subnormals, when there are enough rows.
  for (let r = 0; r < rows; r += 128) for (let c = 0; c < cols; c += 5) x[r * cols + c] = rand() < 0.5 ? fmax : -fmax;
  if (rows > 2) x.fill(0, cols, 2 * cols);
  if (rows > 3) for (let c = 0; c < cols; c++) x[2 * cols + c] = [0, -0, 1e-40, -1e-42, 1.4e-45][c % 5];
  return x;
}

function assertQuantizedEqual(got: { data: Uint8Array; scales: Float32Array }, want: Quantized, x: Float32Array, label: string): void {
  assert.equal(got.scales.length, want.scales.length, `${label}: scale grid size`);
  const gs = bitsOf(got.scales), ws = bitsOf(want.scales);
  for (let i = 0; i < ws.length; i++) if (gs[i] !== ws[i]) assert.fail(`${label}: scale ${i}: native ${got.scales[i]}, spec ${want.scales[i]}`);
  assert.equal(got.data.length, want.data.length);
  const cols = want.shape[1];
  for (let i = 0; i < want.data.length; i++) {
    if (got.data[i] !== want.data[i]) {
      assert.fail(`${label}: code at (${Math.floor(i / cols)}, ${i % cols}): native 0x${got.data[i].toString(16)}, spec 0x${want.data[i].toString(16)} (x = ${x[i]})`);
    }
  }
}

const QSHAPES: [number, number][] = [[1, 1], [3, 130], [129, 257], [256, 384], [5, 1000]];
const QBLOCKS: Block[] = [[1, 128], [128, 1], [128, 128], [3, 7], [64, 256]];
for (const [rows, cols] of QSHAPES) {
  test(`quantize equals quantizeReference bit for bit on [${rows}, ${cols}] (blocks ${QBLOCKS.map((b) => b.join("x")).join(", ")}; e4m3/e5m2; fp32/pow2)`, { skip }, () => {
    for (const format of FORMATS) {
      const x = adversarialInput(rows, cols, FMAX[format]);
      for (const block of QBLOCKS) {
        for (const scale of ["fp32", "pow2"] as const) {
          const want = quantizeReference(x, [rows, cols], { block, format, scale });
          const got = k.quantize(x, rows, cols, block[0], block[1], format === "e4m3" ? 0 : 1, scale === "pow2");
          assert.equal(got.firstNonFinite, -1);
          assertQuantizedEqual(got, want, x, `[${rows}, ${cols}] ${block.join("x")} ${format} ${scale}`);
        }
      }
    }
  });
}

test("quantize reports the first non-finite input's flat index", { skip }, () => {
  const rows = 200, cols = 300;
  for (const [bad, at] of [[NaN, 7 * cols + 11], [Infinity, 150 * cols + 299], [-Infinity, 0]] as const) {
    const x = adversarialInput(rows, cols, 448);
    x[at] = bad;
    x[rows * cols - 1] = NaN; // a later one does not win
    for (const block of QBLOCKS) assert.equal(k.quantize(x, rows, cols, block[0], block[1], 0, false).firstNonFinite, at);
    assert.equal(k.quantizeTiledBoth(x, rows, cols).firstNonFinite, at);
  }
  // a large input goes through the thread pool
  const big = new Float32Array(512 * 1024).fill(1);
  big[300 * 1024 + 5] = NaN;
  big[400 * 1024] = Infinity;
  assert.equal(k.quantize(big, 512, 1024, 128, 128, 1, true).firstNonFinite, 300 * 1024 + 5);
});

for (const [rows, cols] of [[1, 1], [3, 130], [129, 257], [256, 384], [300, 1000]] as [number, number][]) {
  test(`quantizeTiledBoth equals the separate [1,128] and [128,1] quantizations on [${rows}, ${cols}]`, { skip }, () => {
    for (const format of FORMATS) {
      const x = adversarialInput(rows, cols, FMAX[format]);
      for (const pow2 of [false, true]) {
        const code = format === "e4m3" ? 0 : 1;
        const both = k.quantizeTiledBoth(x, rows, cols, code, pow2);
        assert.equal(both.firstNonFinite, -1);
        const scale = pow2 ? "pow2" : "fp32";
        assertQuantizedEqual(both.rowwise, quantizeReference(x, [rows, cols], { block: [1, 128], format, scale }), x, `rowwise ${format} ${scale}`);
        assertQuantizedEqual(both.colwise, quantizeReference(x, [rows, cols], { block: [128, 1], format, scale }), x, `colwise ${format} ${scale}`);
        const rowSeparate = k.quantize(x, rows, cols, 1, 128, code, pow2);
        assert.deepEqual(both.rowwise.data, rowSeparate.data);
      }
    }
  });
}

function randomMatrix(rows: number, cols: number): Float32Array {
  // rows of different magnitudes (per-row scales matter), a few outliers
  const x = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const mag = 10 ** (rand() * 4 - 2);
    for (let c = 0; c < cols; c++) x[r * cols + c] = (rand() * 2 - 1) * mag * (rand() < 0.01 ? 30 : 1);
  }
  return x;
}

const MSHAPES: [number, number, number][] = [[1, 1, 1], [7, 9, 130], [129, 257, 300], [256, 256, 1024], [30, 70, 128]];
const MBLOCKS: { a: Block; b: Block; label: string }[] = [
  { a: [1, 128], b: [128, 128], label: "A 1x128, B 128x128" },
  { a: [128, 128], b: [128, 128], label: "A 128x128, B 128x128" },
];
for (const [M, N, K] of MSHAPES) {
  test(`scaledMatmul ${M}x${N}x${K} equals scaledMatmulReference and is within 1e-6 of the float64 product (${MBLOCKS.map((b) => b.label).join("; ")}; mixed formats)`, { skip }, () => {
    for (const { a: blockA, b: blockB, label } of MBLOCKS) {
      for (const [fa, fb] of [["e4m3", "e4m3"], ["e4m3", "e5m2"]] as const) {
        const a = randomMatrix(M, K), b = randomMatrix(N, K);
        const qa = quantizeReference(a, [M, K], { block: blockA, format: fa });
        const qb = quantizeReference(b, [N, K], { block: blockB, format: fb, scale: "pow2" });
        const got = k.scaledMatmul(qa.data, qa.scales, M, K, blockA[0], blockA[1], fa === "e4m3" ? 0 : 1, qb.data, qb.scales, N, blockB[0], blockB[1], fb === "e4m3" ? 0 : 1, 128);
        const spec = scaledMatmulReference(qa, qb);
        const exact = matmulFloat64(dequantize(qa), dequantize(qb), M, N, K);
        const where = `${M}x${N}x${K} ${label} ${fa}·${fb}`;
        assert.ok(frobeniusRelativeError(got, exact) <= 1e-6, `${where}: ${frobeniusRelativeError(got, exact)} vs float64`);
        assert.ok(frobeniusRelativeError(got, spec) <= 1e-6, `${where}: ${frobeniusRelativeError(got, spec)} vs the spec`);
        const g = bitsOf(got), s = bitsOf(spec);
        for (let i = 0; i < s.length; i++) if (g[i] !== s[i]) assert.fail(`${where}: C[${Math.floor(i / N)}, ${i % N}] native ${got[i]}, spec ${spec[i]}`);
      }
    }
  });
}

test("scaledMatmul with promoteEvery 32 inside 1x64 / 64x64 blocks and a K tail equals the spec", { skip }, () => {
  const M = 45, N = 33, K = 200;
  const a = randomMatrix(M, K), b = randomMatrix(N, K);
  const qa = quantizeReference(a, [M, K], { block: [1, 64] });
  const qb = quantizeReference(b, [N, K], { block: [64, 64] });
  const got = k.scaledMatmul(qa.data, qa.scales, M, K, 1, 64, 0, qb.data, qb.scales, N, 64, 64, 0, 32);
  assert.deepEqual(bitsOf(got), bitsOf(scaledMatmulReference(qa, qb, { promoteEvery: 32 })));
});

for (const [M, N, K] of [[1, 1, 1], [7, 9, 130], [129, 257, 300], [256, 256, 1024]] as [number, number, number][]) {
  test(`matmulF32 and matmulBf16 ${M}x${N}x${K} against float64`, { skip }, () => {
    const a = randomMatrix(M, K), b = randomMatrix(N, K);
    const want = matmulFloat64(a, b, M, N, K);
    assert.ok(frobeniusRelativeError(k.matmulF32(a, b, M, N, K), want) <= 1e-5);
    const ab = encodeBf16(a), bb = encodeBf16(b);
    const widen = (u: Uint16Array) => new Float32Array(Uint32Array.from(u, (v) => v << 16).buffer);
    const wantBf = matmulFloat64(widen(ab), widen(bb), M, N, K);
    assert.ok(frobeniusRelativeError(k.matmulBf16(ab, bb, M, N, K), wantBf) <= 1e-5);
  });
}

test("encodeFp8 / decodeFp8 / encodeBf16 equal the spec bit for bit on a sweep of float32 bit patterns", { skip }, () => {
  // every 4093rd bit pattern (NaNs, infinities, subnormals included) plus the tie neighbourhoods
  const n = Math.floor(2 ** 32 / 4093);
  const u = new Uint32Array(n + 4 * ADVERSARIAL.length + 64);
  const offset = Math.floor(rand() * 4093);
  for (let i = 0; i < n; i++) u[i] = (i * 4093 + offset) >>> 0;
  const extra = new Float32Array(u.buffer, 4 * n);
  const specials = [...ADVERSARIAL, 464, 480, 479.99, 61440, 65536, 65535.99, 57344.01, 449, 1e-45, Infinity, -Infinity, NaN];
  let j = 0;
  for (const v of specials) {
    for (const d of [-1, 0, 1]) {
      if (j >= extra.length) break;
      const f = new Float32Array([v]);
      const bits = new Uint32Array(f.buffer);
      bits[0] = (bits[0] + d) >>> 0;
      extra[j++] = f[0];
    }
  }
  const x = new Float32Array(u.buffer);
  for (const format of FORMATS) {
    const code = format === "e4m3" ? 0 : 1;
    for (const saturate of [false, true]) {
      const want = encodeFp8(x, format, { saturate });
      const got = k.encodeFp8(x, code, saturate);
      for (let i = 0; i < x.length; i++) if (got[i] !== want[i]) assert.fail(`encodeFp8 ${format} saturate=${saturate}: x = ${x[i]} (0x${u[i].toString(16)}): native 0x${got[i].toString(16)}, spec 0x${want[i].toString(16)}`);
    }
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(bitsOf(k.decodeFp8(codes, code)).map((v, i, arr) => (Number.isNaN(new Float32Array(arr.buffer)[i]) ? 0x7fc00000 : v)),
      bitsOf(decodeFp8(codes, format)).map((v, i, arr) => (Number.isNaN(new Float32Array(arr.buffer)[i]) ? 0x7fc00000 : v)));
  }
  assert.deepEqual(k.encodeBf16(x), encodeBf16(x));
});

test("native kernels reject wrong array types and lengths instead of reading out of bounds", { skip }, () => {
  assert.throws(() => k.quantize(new Float32Array(5), 2, 3, 1, 128, 0, false), RangeError);
  assert.throws(() => k.quantize(new Float64Array(6) as unknown as Float32Array, 2, 3, 1, 128, 0, false), TypeError);
  assert.throws(() => k.matmulF32(new Float32Array(6), new Float32Array(5), 2, 2, 3), RangeError);
  assert.throws(() => k.scaledMatmul(new Uint8Array(4), new Float32Array(2), 2, 2, 1, 128, 0, new Uint8Array(4), new Float32Array(1), 2, 128, 128, 0, 3), RangeError);
});

for (const isa of otherIsas) {
  test(`with OCTET_NATIVE_ISA=${isa}, every test of this file passes too (same seed)`, () => {
    // A run of its own (NODE_TEST_CONTEXT would make it report into this run's stream instead).
    const env: NodeJS.ProcessEnv = { ...process.env, OCTET_NATIVE_ISA: isa, OCTET_TEST_SEED: String(seed), OCTET_REQUIRE_NATIVE: "1" };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", THIS_FILE], { cwd: PACKAGE_DIR, encoding: "utf8", env });
    assert.equal(r.status, 0, `OCTET_NATIVE_ISA=${isa} OCTET_TEST_SEED=${seed} failed:\n${(r.stdout + r.stderr).slice(-4000)}`);
    assert.match(r.stdout, new RegExp(`# native: ${isa} \\(`), "the child ran the forced copy");
    assert.match(r.stdout, /^# fail 0$/m);
  });
}

// The plain GEMMs have no bit-exact specification (the TypeScript path sums in float64), but the model's
// CPU training runs on them: every instruction set must give the same bits, or losses would depend on the CPU.
const GEMM_DIGEST = `
  const { loadNativeKernels } = await import(${JSON.stringify(new URL("./native.ts", import.meta.url).href)});
  const { createHash } = await import("node:crypto");
  const k = loadNativeKernels();
  let s = 7;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 10 ** ((s >>> 20) % 5 - 2);
  const h = createHash("sha256");
  for (const [M, N, K] of [[37, 53, 300], [129, 33, 1024], [5, 200, 129]]) {
    const a = Float32Array.from({ length: M * K }, next), b = Float32Array.from({ length: N * K }, next);
    h.update(new Uint8Array(k.matmulF32(a, b, M, N, K).buffer));
    h.update(new Uint8Array(k.matmulBf16(k.encodeBf16(a), k.encodeBf16(b), M, N, K).buffer));
  }
  process.stdout.write(k.info().isa + " " + h.digest("hex"));
`;

test("matmulF32 and matmulBf16 give the same bits on every instruction set the CPU supports", { skip }, () => {
  const digests = new Map<string, string>();
  for (const isa of k.info().supported) {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", GEMM_DIGEST], {
      cwd: PACKAGE_DIR,
      encoding: "utf8",
      env: { ...process.env, OCTET_NATIVE_ISA: isa },
    });
    assert.equal(r.status, 0, r.stderr);
    const [ran, digest] = r.stdout.split(" ");
    assert.equal(ran, isa);
    digests.set(isa, digest);
  }
  assert.equal(new Set(digests.values()).size, 1, JSON.stringify(Object.fromEntries(digests)));
  assert.ok(createHash("sha256").update("").digest("hex") !== [...digests.values()][0], "the digest covers the outputs");
});
