// The public quantize / scaledMatmul: the native CPU kernel when it loads, the TypeScript spec otherwise.
//
// The native path is chosen once, at load, and so is its instruction set (AVX-512, AVX2 or scalar: the best
// the CPU supports, or OCTET_NATIVE_ISA). When it is missing the package says so once (on stderr) and every
// call runs the specification; `numericsBackend()` tells callers (and benchmarks) which path runs.

import { type ScaledMatmulOptions, resolveMatmulArgs, scaledMatmulReference } from "./gemm.js";
import {
  type Quantized,
  type QuantizeOptions,
  type ScaleKind,
  type Shape2,
  gridShape,
  nonFiniteError,
  quantizeReference,
  validateQuantizeArgs,
} from "./quantize.js";
import type { NativeIsa } from "@octet/native-common";
import { type NativeKernels, loadNativeKernels, nativeUnavailableReason } from "./native.js";
import { type Fp8Format, decodeBf16 } from "./formats.js";

const FORMAT_CODE = { e4m3: 0, e5m2: 1 } as const;

let kernels: NativeKernels | null | undefined;
let kernelsIsa: NativeIsa | null = null;
let warned = false;

function native(): NativeKernels | null {
  if (kernels === undefined) {
    kernels = loadNativeKernels();
    kernelsIsa = kernels ? kernels.info().isa : null;
    if (!kernels && !warned && process.env.OCTET_NUMERICS_BACKEND !== "typescript") {
      warned = true;
      process.emitWarning(`@octet/numerics: native CPU kernels unavailable (${nativeUnavailableReason()}); using the TypeScript path`, { code: "OCTET_NUMERICS_NATIVE" });
    }
  }
  return kernels;
}

export interface BackendInfo {
  /** Which implementation quantize, scaledMatmul and the GEMMs run in this process. */
  path: "native" | "typescript";
  /** The native kernels' instruction set ("avx512", "avx2" or "scalar"); null on the TypeScript path. */
  isa: NativeIsa | null;
  /** Why the TypeScript path runs; null on the native path. */
  reason: string | null;
}

/** Which path the kernels run, with which instruction set, and why (e.g. for benchmarks and service logs). */
export function numericsBackend(): BackendInfo {
  const k = native();
  return k ? { path: "native", isa: kernelsIsa, reason: null } : { path: "typescript", isa: null, reason: nativeUnavailableReason() };
}

/** Fine-grained FP8 quantization (see quantizeReference for the exact definition it equals bit for bit). */
export function quantize(x: Float32Array, shape: Shape2, opts: QuantizeOptions): Quantized {
  const k = native();
  if (!k || opts.nonFinite === "report") return quantizeReference(x, shape, opts);
  validateQuantizeArgs(x, shape, opts);
  const format = opts.format ?? "e4m3";
  const [rows, cols] = shape;
  const out = k.quantize(x, rows, cols, opts.block[0], opts.block[1], FORMAT_CODE[format], opts.scale === "pow2");
  if (out.firstNonFinite >= 0) throw nonFiniteError(out.firstNonFinite, x[out.firstNonFinite], cols);
  const [gr, gc] = gridShape(shape, opts.block);
  if (out.scales.length !== gr * gc) throw new Error("native quantize returned a scale grid of the wrong size");
  return { data: out.data, scales: out.scales, shape: [rows, cols], block: [opts.block[0], opts.block[1]], format };
}

/** C = a · bᵀ with block scales (see scaledMatmulReference for the definition and its options). */
export function scaledMatmul(a: Quantized, b: Quantized, opts: ScaledMatmulOptions = {}): Float32Array {
  const resolved = resolveMatmulArgs(a, b, opts);
  const k = native();
  // The native kernel implements exact FP32 promotion; the limited-accumulator emulations are a study.
  if (!k || resolved.accumulation !== "promoted" || resolved.accumulatorBits < 24) return scaledMatmulReference(a, b, opts);
  return k.scaledMatmul(
    a.data, a.scales, a.shape[0], a.shape[1], a.block[0], a.block[1], FORMAT_CODE[a.format],
    b.data, b.scales, b.shape[0], b.block[0], b.block[1], FORMAT_CODE[b.format],
    resolved.promoteEvery,
  );
}

function checkMatmulShape(what: string, aLength: number, bLength: number, M: number, N: number, K: number): void {
  for (const [name, v] of [["M", M], ["N", N], ["K", K]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${what}: ${name} must be a positive integer, got ${v}`);
  }
  if (aLength !== M * K || bLength !== N * K) {
    throw new RangeError(`${what}: a has ${aLength} elements (want M·K = ${M * K}) and b has ${bLength} (want N·K = ${N * K})`);
  }
}

/** Plain float32 C = a · bᵀ for a [M,K], b [N,K] (the fp32 recipe's GEMM and the benchmarks' peer). */
export function matmulF32(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float32Array {
  if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) throw new TypeError("matmulF32: a and b must be Float32Arrays");
  checkMatmulShape("matmulF32", a.length, b.length, M, N, K);
  const k = native();
  if (k) return k.matmulF32(a, b, M, N, K);
  const out = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let i = 0; i < K; i++) sum += a[m * K + i] * b[n * K + i];
      out[m * N + n] = sum;
    }
  }
  return out;
}

export interface QuantizedBoth {
  /** [1,128] tiles along rows: the layout Fprop/Dgrad contract over columns in. */
  rowwise: Quantized;
  /** [128,1] tiles along columns: the transposed layout Wgrad contracts the token dimension in. */
  colwise: Quantized;
}

/**
 * The [1,128] and [128,1] quantizations of x together, from one read of x on the native path (the
 * backward pass needs both). Each equals the separate `quantize` call bit for bit.
 */
export function quantizeBoth(x: Float32Array, shape: Shape2, opts: { format?: Fp8Format; scale?: ScaleKind } = {}): QuantizedBoth {
  const format = opts.format ?? "e4m3";
  const rowOpts: QuantizeOptions = { block: [1, 128], format, scale: opts.scale };
  validateQuantizeArgs(x, shape, rowOpts);
  const k = native();
  if (!k) return { rowwise: quantizeReference(x, shape, rowOpts), colwise: quantizeReference(x, shape, { ...rowOpts, block: [128, 1] }) };
  const [rows, cols] = shape;
  const out = k.quantizeTiledBoth(x, rows, cols, FORMAT_CODE[format], opts.scale === "pow2");
  if (out.firstNonFinite >= 0) throw nonFiniteError(out.firstNonFinite, x[out.firstNonFinite], cols);
  return {
    rowwise: { data: out.rowwise.data, scales: out.rowwise.scales, shape: [rows, cols], block: [1, 128], format },
    colwise: { data: out.colwise.data, scales: out.colwise.scales, shape: [rows, cols], block: [128, 1], format },
  };
}

/** C = a · bᵀ for bfloat16 bit patterns a [M,K], b [N,K], accumulated in fp32 (the bf16 recipe's GEMM). */
export function matmulBf16(a: Uint16Array, b: Uint16Array, M: number, N: number, K: number): Float32Array {
  if (!(a instanceof Uint16Array) || !(b instanceof Uint16Array)) throw new TypeError("matmulBf16: a and b must be Uint16Arrays of bfloat16 bits");
  const k = native();
  if (k) {
    checkMatmulShape("matmulBf16", a.length, b.length, M, N, K);
    return k.matmulBf16(a, b, M, N, K);
  }
  return matmulF32(decodeBf16(a), decodeBf16(b), M, N, K);
}
