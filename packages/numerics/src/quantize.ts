// Fine-grained FP8 quantization: the readable specification.
//
// Equal bit for bit to DeepGEMM's reference quantizers (deep_gemm/utils: per_token_cast_to_fp8 for
// 1x128 tiles, per_block_cast_to_fp8 for 128x128 blocks), every step in float32:
//   amax  = max |x| over the block, clamped below at float32(1e-4)
//   scale = f32(amax / fmax)                       (fmax = 448 for E4M3, 57344 for E5M2)
//   pow2:   scale = 2^ceil(log2(scale))            (UE8M0: the exponent, plus one if the mantissa is non-zero)
//   data  = cast(f32(x * f32(1 / scale)))          (PyTorch's non-saturating cast)
// Edge blocks cover only the elements present (as if zero-padded); the scale grid rounds up.

import { type Fp8Format, FP8_DECODE_TABLES, encodeE4m3Scalar, encodeE5m2Scalar, float32Bits, fp8Info } from "./formats.js";

export type ScaleKind = "fp32" | "pow2";
export type Block = readonly [number, number];
export type Shape2 = readonly [number, number];

export interface Quantized {
  /** FP8 codes, row-major [rows, cols]. */
  data: Uint8Array;
  /** Dequantization multipliers, row-major over the block grid [ceil(rows/br), ceil(cols/bc)]. */
  scales: Float32Array;
  shape: [number, number];
  block: [number, number];
  format: Fp8Format;
  /** Present only when quantize was asked to report non-finite inputs instead of throwing. */
  nonFinite?: NonFiniteReport;
}

export interface NonFiniteReport {
  count: number;
  /** Row and column of the first non-finite input in row-major order. */
  first: [number, number];
}

export interface QuantizeOptions {
  block: Block;
  format?: Fp8Format;
  scale?: ScaleKind;
  /**
   * What a NaN or infinite input does. "throw" (default): a RangeError naming its position.
   * "report": the element is encoded as NaN (E4M3) or NaN/±inf (E5M2), never a finite code; the block's
   * scale is taken over its finite elements; `nonFinite` on the result counts them.
   */
  nonFinite?: "throw" | "report";
}

/** The float32 clamp DeepGEMM applies to a block's amax. */
export const AMAX_FLOOR = Math.fround(1e-4);

export function gridShape(shape: Shape2, block: Block): [number, number] {
  return [Math.ceil(shape[0] / block[0]), Math.ceil(shape[1] / block[1])];
}

/** Round a positive normal float32 scale up to a power of two, on its bits. */
export function ceilToPow2(scale: number): number {
  const bits = float32Bits.bitsOf(scale);
  if ((bits & 0x7fffff) === 0) return scale;
  return float32Bits.floatOf(((bits & 0x7f800000) + 0x800000) >>> 0);
}

/** The scale of one block from its amax, as DeepGEMM computes it (float32 throughout). */
export function scaleFromAmax(amax: number, format: Fp8Format, kind: ScaleKind): number {
  const clamped = amax > AMAX_FLOOR ? amax : AMAX_FLOOR;
  const scale = Math.fround(clamped / fp8Info(format).max);
  return kind === "pow2" ? ceilToPow2(scale) : scale;
}

function isPositiveInt(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n > 0;
}

export function validateShape(what: string, shape: unknown): asserts shape is Shape2 {
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every(isPositiveInt)) {
    throw new RangeError(`${what} must be [rows, cols] of positive integers, got ${JSON.stringify(shape)}`);
  }
}

export function validateQuantizeArgs(x: unknown, shape: unknown, opts: QuantizeOptions): void {
  if (!(x instanceof Float32Array)) throw new TypeError("quantize: x must be a Float32Array");
  validateShape("quantize: shape", shape);
  validateShape("quantize: block", opts?.block);
  if (x.length !== shape[0] * shape[1]) {
    throw new RangeError(`quantize: x has ${x.length} elements but shape [${shape[0]}, ${shape[1]}] needs ${shape[0] * shape[1]}`);
  }
  fp8Info(opts.format ?? "e4m3");
  if (opts.scale !== undefined && opts.scale !== "fp32" && opts.scale !== "pow2") {
    throw new RangeError(`quantize: unknown scale kind ${JSON.stringify(opts.scale)}: expected "fp32" or "pow2"`);
  }
  if (opts.nonFinite !== undefined && opts.nonFinite !== "throw" && opts.nonFinite !== "report") {
    throw new RangeError(`quantize: nonFinite must be "throw" or "report", got ${JSON.stringify(opts.nonFinite)}`);
  }
}

export function firstNonFiniteIndex(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

export function nonFiniteError(index: number, value: number, cols: number): RangeError {
  const row = Math.floor(index / cols);
  return new RangeError(`quantize: non-finite input ${value} at row ${row}, column ${index - row * cols} (flat index ${index})`);
}

/** The TypeScript specification of quantize; the native and CUDA kernels are tested against it. */
export function quantizeReference(x: Float32Array, shape: Shape2, opts: QuantizeOptions): Quantized {
  validateQuantizeArgs(x, shape, opts);
  const [rows, cols] = shape;
  const [blockRows, blockCols] = opts.block;
  const format = opts.format ?? "e4m3";
  const scaleKind = opts.scale ?? "fp32";
  const report = opts.nonFinite === "report";
  const encode = format === "e4m3" ? encodeE4m3Scalar : encodeE5m2Scalar;
  const [gridRows, gridCols] = gridShape(shape, opts.block);
  const data = new Uint8Array(rows * cols);
  const scales = new Float32Array(gridRows * gridCols);
  let nonFiniteCount = 0;
  let firstNonFinite = -1;

  if (!report) {
    const first = firstNonFiniteIndex(x);
    if (first >= 0) throw nonFiniteError(first, x[first], cols);
  }

  for (let gr = 0; gr < gridRows; gr++) {
    const r0 = gr * blockRows;
    const r1 = Math.min(r0 + blockRows, rows);
    for (let gc = 0; gc < gridCols; gc++) {
      const c0 = gc * blockCols;
      const c1 = Math.min(c0 + blockCols, cols);
      let amax = 0;
      for (let r = r0; r < r1; r++) {
        for (let i = r * cols + c0, end = r * cols + c1; i < end; i++) {
          const a = Math.abs(x[i]);
          if (a > amax && a !== Infinity) amax = a; // NaN fails the comparison; both are excluded
        }
      }
      const scale = scaleFromAmax(amax, format, scaleKind);
      const inverse = Math.fround(1 / scale);
      scales[gr * gridCols + gc] = scale;
      for (let r = r0; r < r1; r++) {
        for (let i = r * cols + c0, end = r * cols + c1; i < end; i++) {
          const v = x[i];
          if (report && !Number.isFinite(v)) {
            nonFiniteCount++;
            if (firstNonFinite < 0 || i < firstNonFinite) firstNonFinite = i;
          }
          // inf * inverse stays inf and NaN stays NaN: the cast maps both to non-finite codes.
          data[i] = encode(Math.fround(v * inverse));
        }
      }
    }
  }

  const result: Quantized = { data, scales, shape: [rows, cols], block: [blockRows, blockCols], format };
  if (report) {
    const firstRow = firstNonFinite < 0 ? -1 : Math.floor(firstNonFinite / cols);
    const firstCol = firstNonFinite < 0 ? -1 : firstNonFinite - firstRow * cols;
    result.nonFinite = { count: nonFiniteCount, first: [firstRow, firstCol] };
  }
  return result;
}

/** Check that q is a well-formed Quantized value; `what` names it in the error. */
export function validateQuantized(what: string, q: Quantized): void {
  if (q === null || typeof q !== "object") throw new TypeError(`${what} must be a Quantized object`);
  validateShape(`${what}.shape`, q.shape);
  validateShape(`${what}.block`, q.block);
  fp8Info(q.format);
  if (!(q.data instanceof Uint8Array)) throw new TypeError(`${what}.data must be a Uint8Array`);
  if (!(q.scales instanceof Float32Array)) throw new TypeError(`${what}.scales must be a Float32Array`);
  const [rows, cols] = q.shape;
  if (q.data.length !== rows * cols) {
    throw new RangeError(`${what}.data has ${q.data.length} codes but shape [${rows}, ${cols}] needs ${rows * cols}`);
  }
  const [gr, gc] = gridShape(q.shape, q.block);
  if (q.scales.length !== gr * gc) {
    throw new RangeError(`${what}.scales has ${q.scales.length} entries but the block grid of [${rows}, ${cols}] in [${q.block[0]}, ${q.block[1]}] blocks is [${gr}, ${gc}]`);
  }
}

/** Codes times their block's scale, in float32. */
export function dequantize(q: Quantized): Float32Array {
  validateQuantized("dequantize: q", q);
  const [rows, cols] = q.shape;
  const [blockRows, blockCols] = q.block;
  const gridCols = Math.ceil(cols / blockCols);
  const table = FP8_DECODE_TABLES[q.format];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scaleRow = Math.floor(r / blockRows) * gridCols;
    const rowBase = r * cols;
    for (let c = 0; c < cols; c++) {
      out[rowBase + c] = Math.fround(table[q.data[rowBase + c]] * q.scales[scaleRow + Math.floor(c / blockCols)]);
    }
  }
  return out;
}
