// Block-scaled FP8 GEMM, C = A · Bᵀ for A [M,K] and B [N,K]: the readable specification.
//
// "promoted" is DeepSeek-V3's scheme (report §3.3.2): the tensor cores sum the code products of one
// interval of `promoteEvery` elements of K; that partial sum is moved to an FP32 register, multiplied by
// both blocks' scales and added to the FP32 accumulator. "limited" emulates what happens without the
// promotion: the whole K is summed in the tensor cores' accumulator, which keeps only about 14 bits.

import { FP8_DECODE_TABLES } from "./formats.js";
import { type Quantized, validateQuantized } from "./quantize.js";

export type Accumulation = "promoted" | "limited";

export interface ScaledMatmulOptions {
  accumulation?: Accumulation;
  /** Elements of K summed before each promotion to FP32 (default 128). Must divide both operands' K block. */
  promoteEvery?: number;
  /**
   * Significant bits the accumulator keeps before promotion: 24 (exact float32) by default for "promoted",
   * 14 for "limited". Each addition into a limited accumulator is truncated toward zero, as Hopper's FP8
   * tensor cores drop the bits of aligned addends that fall below their window.
   */
  accumulatorBits?: number;
}

export interface ResolvedMatmulOptions {
  accumulation: Accumulation;
  promoteEvery: number;
  accumulatorBits: number;
}

function describe(q: Quantized): string {
  return `[${q.shape[0]}, ${q.shape[1]}] in [${q.block[0]}, ${q.block[1]}] blocks`;
}

/** Validate operands and options; returns the options with defaults filled in. */
export function resolveMatmulArgs(a: Quantized, b: Quantized, opts: ScaledMatmulOptions = {}): ResolvedMatmulOptions {
  validateQuantized("scaledMatmul: a", a);
  validateQuantized("scaledMatmul: b", b);
  if (a.shape[1] !== b.shape[1]) {
    throw new RangeError(`scaledMatmul: a is ${describe(a)} and b is ${describe(b)}; a·bᵀ needs the same K (columns) in both`);
  }
  const accumulation = opts.accumulation ?? "promoted";
  if (accumulation !== "promoted" && accumulation !== "limited") {
    throw new RangeError(`scaledMatmul: accumulation must be "promoted" or "limited", got ${JSON.stringify(accumulation)}`);
  }
  const promoteEvery = opts.promoteEvery ?? 128;
  if (!Number.isInteger(promoteEvery) || promoteEvery <= 0) {
    throw new RangeError(`scaledMatmul: promoteEvery must be a positive integer, got ${promoteEvery}`);
  }
  const accumulatorBits = opts.accumulatorBits ?? (accumulation === "limited" ? 14 : 24);
  if (!Number.isInteger(accumulatorBits) || accumulatorBits < 2 || accumulatorBits > 24) {
    throw new RangeError(`scaledMatmul: accumulatorBits must be an integer in [2, 24], got ${accumulatorBits}`);
  }
  if (accumulation === "promoted" && (a.block[1] % promoteEvery !== 0 || b.block[1] % promoteEvery !== 0)) {
    throw new RangeError(
      `scaledMatmul: promoteEvery ${promoteEvery} must divide the K extent of both operands' blocks so each interval has one scale; ` +
        `a is ${describe(a)} and b is ${describe(b)}`,
    );
  }
  return { accumulation, promoteEvery, accumulatorBits };
}

// Truncation of a float64 value to `bits` significant bits, toward zero, on its bit pattern.
const truncF64 = new Float64Array(1);
const truncWords = new Uint32Array(truncF64.buffer); // little-endian: [low, high]

export function truncateToBits(value: number, bits: number): number {
  if (value === 0 || !Number.isFinite(value)) return value;
  truncF64[0] = value;
  const dropped = 53 - bits; // bits of the 53-bit significand to clear
  if (dropped >= 32) {
    truncWords[0] = 0;
    truncWords[1] = (truncWords[1] & ~((1 << (dropped - 32)) - 1)) >>> 0;
  } else if (dropped > 0) {
    truncWords[0] = (truncWords[0] & ~((2 ** dropped - 1) >>> 0)) >>> 0;
  }
  return truncF64[0];
}

/** The TypeScript specification of scaledMatmul; returns C [M,N] row-major in float32. */
export function scaledMatmulReference(a: Quantized, b: Quantized, opts: ScaledMatmulOptions = {}): Float32Array {
  const resolved = resolveMatmulArgs(a, b, opts);
  return resolved.accumulation === "promoted" ? promotedMatmul(a, b, resolved) : limitedMatmul(a, b, resolved);
}

function promotedMatmul(a: Quantized, b: Quantized, { promoteEvery, accumulatorBits }: ResolvedMatmulOptions): Float32Array {
  const [M, K] = a.shape;
  const N = b.shape[0];
  const decodeA = FP8_DECODE_TABLES[a.format];
  const decodeB = FP8_DECODE_TABLES[b.format];
  const aGridCols = Math.ceil(K / a.block[1]);
  const bGridCols = Math.ceil(K / b.block[1]);
  const exactPartials = accumulatorBits >= 24;
  const out = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const aRow = m * K;
    const aScaleRow = Math.floor(m / a.block[0]) * aGridCols;
    for (let n = 0; n < N; n++) {
      const bRow = n * K;
      const bScaleRow = Math.floor(n / b.block[0]) * bGridCols;
      let acc = 0;
      for (let k0 = 0; k0 < K; k0 += promoteEvery) {
        const k1 = Math.min(k0 + promoteEvery, K);
        // The tensor cores' partial sum of code products over one interval.
        let partial = 0;
        for (let k = k0; k < k1; k++) {
          const product = decodeA[a.data[aRow + k]] * decodeB[b.data[bRow + k]];
          partial = exactPartials ? Math.fround(partial + product) : Math.fround(truncateToBits(partial + product, accumulatorBits));
        }
        // Promotion: scale in FP32 and add to the FP32 accumulator.
        const scale = Math.fround(a.scales[aScaleRow + Math.floor(k0 / a.block[1])] * b.scales[bScaleRow + Math.floor(k0 / b.block[1])]);
        acc = Math.fround(acc + Math.fround(partial * scale));
      }
      out[m * N + n] = acc;
    }
  }
  return out;
}

function limitedMatmul(a: Quantized, b: Quantized, { accumulatorBits }: ResolvedMatmulOptions): Float32Array {
  const [M, K] = a.shape;
  const N = b.shape[0];
  const decodeA = FP8_DECODE_TABLES[a.format];
  const decodeB = FP8_DECODE_TABLES[b.format];
  const aGridCols = Math.ceil(K / a.block[1]);
  const bGridCols = Math.ceil(K / b.block[1]);
  const out = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const aRow = m * K;
    const aScaleRow = Math.floor(m / a.block[0]) * aGridCols;
    for (let n = 0; n < N; n++) {
      const bRow = n * K;
      const bScaleRow = Math.floor(n / b.block[0]) * bGridCols;
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const aValue = Math.fround(decodeA[a.data[aRow + k]] * a.scales[aScaleRow + Math.floor(k / a.block[1])]);
        const bValue = Math.fround(decodeB[b.data[bRow + k]] * b.scales[bScaleRow + Math.floor(k / b.block[1])]);
        acc = truncateToBits(acc + aValue * bValue, accumulatorBits);
      }
      out[m * N + n] = Math.fround(acc);
    }
  }
  return out;
}

/** float64 product of the dequantized operands (the yardstick for accuracy tests and the study). */
export function matmulFloat64(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += a[m * K + k] * b[n * K + k];
      out[m * N + n] = sum;
    }
  }
  return out;
}

/** ‖got − want‖_F / ‖want‖_F. */
export function frobeniusRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i] - want[i];
    diff += d * d;
    norm += want[i] * want[i];
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

/** max_i |got_i − want_i| / |want_i| over elements with want_i ≠ 0. */
export function maxRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === 0) continue;
    const e = Math.abs(got[i] - want[i]) / Math.abs(want[i]);
    if (e > worst) worst = e;
  }
  return worst;
}
