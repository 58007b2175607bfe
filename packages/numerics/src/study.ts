// The accumulation-precision study: how the error of an FP8 GEMM grows with K when the accumulator keeps
// only ~14 bits (tensor cores without promotion), and how promotion to FP32 every 128 elements removes it.

import { dequantize } from "./quantize.js";
import { quantize } from "./backend.js";
import { frobeniusRelativeError, matmulFloat64, maxRelativeError, scaledMatmulReference } from "./gemm.js";

export interface AccumulationStudyRow {
  K: number;
  /** 14-bit accumulator over the whole K (cuBLAS's fast accumulation). */
  limitedMax: number;
  limitedFrobenius: number;
  /** 14-bit accumulator within each 128-element interval, promoted to FP32 between them (DeepSeek-V3 on H800). */
  promotedLimitedMax: number;
  promotedLimitedFrobenius: number;
  /** Exact FP32 partial sums promoted every 128 (the CPU kernel's scheme). */
  promotedMax: number;
  promotedFrobenius: number;
}

export interface AccumulationStudyOptions {
  Ks?: number[];
  /** Output rows and columns (M = N). */
  size?: number;
  accumulatorBits?: number;
  promoteEvery?: number;
  seed?: number;
  /** "uniform": all-positive U[0,1) as in the cuBLAS measurements; "normal": zero-mean Gaussian. */
  distribution?: "uniform" | "normal";
  onRow?: (row: AccumulationStudyRow) => void;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function runAccumulationStudy(opts: AccumulationStudyOptions = {}): AccumulationStudyRow[] {
  const Ks = opts.Ks ?? [512, 1024, 2048, 4096, 8192, 16384];
  const size = opts.size ?? 64;
  const bits = opts.accumulatorBits ?? 14;
  const promoteEvery = opts.promoteEvery ?? 128;
  const random = mulberry32(opts.seed ?? 1);
  const sample =
    opts.distribution === "normal"
      ? () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
      : random;
  const rows: AccumulationStudyRow[] = [];
  for (const K of Ks) {
    const x = Float32Array.from({ length: size * K }, sample);
    const w = Float32Array.from({ length: size * K }, sample);
    const a = quantize(x, [size, K], { block: [1, 128] });
    const b = quantize(w, [size, K], { block: [128, 128] });
    const exact = matmulFloat64(dequantize(a), dequantize(b), size, size, K);
    const limited = scaledMatmulReference(a, b, { accumulation: "limited", accumulatorBits: bits });
    const promotedLimited = scaledMatmulReference(a, b, { accumulation: "promoted", promoteEvery, accumulatorBits: bits });
    const promoted = scaledMatmulReference(a, b, { accumulation: "promoted", promoteEvery });
    const row: AccumulationStudyRow = {
      K,
      limitedMax: maxRelativeError(limited, exact),
      limitedFrobenius: frobeniusRelativeError(limited, exact),
      promotedLimitedMax: maxRelativeError(promotedLimited, exact),
      promotedLimitedFrobenius: frobeniusRelativeError(promotedLimited, exact),
      promotedMax: maxRelativeError(promoted, exact),
      promotedFrobenius: frobeniusRelativeError(promoted, exact),
    };
    opts.onRow?.(row);
    rows.push(row);
  }
  return rows;
}
