// Shared helpers of the GPU scripts (check.ts, bench.ts, report.ts): seeded randomness, inputs, float64 references,
// argument parsing, timestamps. Bundled with esbuild into .carry/gpu/*.mjs (npm run gpu:bundle -w @octet/numerics).
import { writeFileSync } from "node:fs";
import { FP8_DECODE_TABLES, type Fp8Format, encodeBf16 } from "../src/formats.js";
import type { Quantized } from "../src/quantize.js";

export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32;
  };
}

export const FMAX = { e4m3: 448, e5m2: 57344 } as const;

// Values on or next to the casts' rounding boundaries once a block's scale is 1 (amax = fmax).
const ADVERSARIAL = [
  0, -0, 1, -1, 1.0625, 1.1875, -1.0625, 2 ** -6, 2 ** -7, 2 ** -9, 2 ** -10, 3 * 2 ** -10, 5 * 2 ** -10, 2 ** -11,
  2 ** -14, 2 ** -15, 2 ** -16, 2 ** -17, 3 * 2 ** -17, 1.125, 1.25, 1.375, 2.5, 416, 432, 440, 447.99, 448, -448,
  1e-40, -1e-40, 1.4e-45, 1.17e-38, 1e-30, 1e30, 3e38, -3.4e38, 1e-4, 9.99e-5, 49152, 53248, 57344, -57344,
];

/** Log-uniform magnitudes over a random span, random signs, adversarial values, rows with ±fmax, a zero row. */
export function adversarialInput(rand: () => number, rows: number, cols: number, fmax: number): Float32Array {
  const x = new Float32Array(rows * cols);
  const lo = -8 + rand() * 10, span = rand() * 14;
  for (let i = 0; i < x.length; i++) {
    const u = rand();
    if (u < 0.15) x[i] = ADVERSARIAL[Math.floor(rand() * ADVERSARIAL.length)] * (rand() < 0.5 ? 1 : -1);
    else x[i] = (rand() < 0.5 ? -1 : 1) * 10 ** (lo + rand() * span);
  }
  for (let r = 0; r < rows; r += 128) for (let c = 0; c < cols; c += 5) x[r * cols + c] = rand() < 0.5 ? fmax : -fmax;
  if (rows > 2) x.fill(0, cols, 2 * cols);
  if (rows > 3) for (let c = 0; c < cols; c++) x[2 * cols + c] = [0, -0, 1e-40, -1e-42, 1.4e-45][c % 5];
  return x;
}

/** Normal-ish values (sum of 4 uniforms) with a per-row magnitude spread over `decades`. */
export function gaussianRows(rand: () => number, rows: number, cols: number, sd = 1, decades = 2): Float32Array {
  const x = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const s = sd * 10 ** ((rand() - 0.5) * decades);
    for (let c = 0; c < cols; c++) x[r * cols + c] = (rand() + rand() + rand() + rand() - 2) * 1.7320508 * s;
  }
  return x;
}

/** x rounded to bf16: the bit patterns, and their exact float32 values. */
export function toBf16(x: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const bits = encodeBf16(x);
  const values = new Float32Array(bits.length);
  const u = new Uint32Array(values.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return { bits, values };
}

export function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return t;
}

export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

/**
 * float64 reference of one row m of D = A · Bᵀ from quantized operands (A in [1,128] tiles, B in [128,128] blocks): the
 * exact product of the dequantized inputs (each code times its scale, in float64). B given as expert-local codes.
 */
export function referenceRow(a: Quantized, m: number, bData: Uint8Array, bScales: Float32Array, N: number, K: number, bFormat: Fp8Format, bOffset = 0, bScaleOffset = 0): Float64Array {
  const ta = FP8_DECODE_TABLES[a.format], tb = FP8_DECODE_TABLES[bFormat];
  const kb = Math.ceil(K / 128);
  const arow = new Float64Array(K);
  for (let k = 0; k < K; k++) arow[k] = ta[a.data[m * K + k]] * a.scales[m * kb + (k >> 7)];
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const base = bOffset + n * K;
    const srow = bScaleOffset + (n >> 7) * kb;
    let acc = 0;
    for (let b = 0; b < kb; b++) {
      let partial = 0;
      const k1 = Math.min(K, (b + 1) * 128);
      for (let k = b * 128; k < k1; k++) partial += arow[k] * tb[bData[base + k]];
      acc += partial * bScales[srow + b];
    }
    out[n] = acc;
  }
  return out;
}

/** float64 row m of A · Bᵀ for float32 (e.g. bf16-valued) inputs. */
export function referenceRowF32(a: Float32Array, m: number, b: Float32Array, N: number, K: number): Float64Array {
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += a[m * K + k] * b[n * K + k];
    out[n] = acc;
  }
  return out;
}

/** Accumulates ‖got − want‖² and ‖want‖² and the largest elementwise relative error. */
export class ErrorMeter {
  diff = 0;
  norm = 0;
  maxRel = 0;
  nonFinite = 0;
  add(got: number, want: number): void {
    if (!Number.isFinite(got)) {
      this.nonFinite++;
      return;
    }
    const d = got - want;
    this.diff += d * d;
    this.norm += want * want;
    if (want !== 0) this.maxRel = Math.max(this.maxRel, Math.abs(d) / Math.abs(want));
  }
  get frobenius(): number {
    return this.nonFinite > 0 ? Infinity : this.norm === 0 ? Math.sqrt(this.diff) : Math.sqrt(this.diff / this.norm);
  }
}

/** Distinct sorted sample of `count` row indices of [0, rows), always with the first and the last. */
export function sampleRows(rand: () => number, rows: number, count: number): number[] {
  if (rows <= count) return Array.from({ length: rows }, (_, i) => i);
  const set = new Set<number>([0, rows - 1]);
  while (set.size < count) set.add(Math.floor(rand() * rows));
  return [...set].sort((x, y) => x - y);
}

export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export function writeJson(path: string | undefined, value: unknown): void {
  if (path) writeFileSync(path, JSON.stringify(value, null, 1) + "\n");
}

export function stamp(): string {
  return new Date().toISOString().replace("T", " ").slice(0, 19);
}

export function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
}

/** Seconds since the script started (for progress lines). */
const t0 = Date.now();
export function elapsed(): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)}s`;
}

/** Milliseconds left before the deadline $OCTET_GPU_DEADLINE (epoch ms), or Infinity. */
export function timeLeft(): number {
  const d = Number(process.env.OCTET_GPU_DEADLINE);
  return Number.isFinite(d) && d > 0 ? d - Date.now() : Infinity;
}

/** DeepSeek-V3's GEMM shapes (N×K of the linear layers) and token counts. */
export const DSV3_NK: [number, number][] = [[2112, 7168], [24576, 1536], [32768, 512], [7168, 16384], [4096, 7168], [7168, 2048]];
export const DSV3_M = [64, 128, 4096];
