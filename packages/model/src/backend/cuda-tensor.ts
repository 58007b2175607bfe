// The CUDA backend's tensor: a TensorHandle (device "cuda", numerics' DType names) over a byte range of one
// @octet/numerics DeviceTensor buffer from the process's stream-ordered pool. A row range (Backend.rows) is a
// new handle on the same buffer at a larger byte offset: a view, no copy. The arithmetic of views lives here,
// apart from the device, so that it is tested on any machine.

import type { DType, TensorHandle } from "@octet/numerics";
import type { DeviceDtype, DeviceTensor } from "@octet/numerics/cuda";

/** Bytes per element of the dtypes the CUDA backend holds. */
export const CUDA_DTYPE_BYTES: Readonly<Partial<Record<DType, number>>> = {
  F32: 4, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, I32: 4, U32: 4, F64: 8, U8: 1,
};

/** numerics' device dtype of each backend dtype its functions take (the others are only stored and copied). */
export const NUMERICS_DTYPE: Readonly<Partial<Record<DType, DeviceDtype>>> = {
  F32: "fp32", BF16: "bf16", F8_E4M3: "e4m3", F8_E5M2: "e5m2", I32: "i32", U8: "u8",
};

export function elementBytes(dtype: DType, what: string): number {
  const b = CUDA_DTYPE_BYTES[dtype];
  if (b === undefined) throw new TypeError(`${what}: the CUDA backend holds no ${dtype} tensors (${Object.keys(CUDA_DTYPE_BYTES).join(", ")})`);
  return b;
}

/** Elements of a shape; a RangeError naming `what` unless every extent is a non-negative integer. */
export function elementCount(shape: readonly number[], what: string): number {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of non-negative integers`);
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${what}: shape [${shape.join(", ")}] must hold non-negative integers`);
    n *= d;
  }
  return n;
}

/** Where a tensor's elements are: a byte range of a buffer. */
export interface ByteRange {
  readonly shape: readonly number[];
  readonly byteOffset: number;
  readonly byteLength: number;
}

/**
 * Rows start .. start+count−1 of a tensor [rows, …] at `byteOffset`: the same buffer, `start` rows further on.
 * A RangeError names the rows when they are outside the tensor.
 */
export function rowRange(shape: readonly number[], dtype: DType, byteOffset: number, start: number, count: number): ByteRange {
  const rows = shape[0];
  if (shape.length < 1 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
    throw new RangeError(`rows: rows ${start} .. ${start + count} are outside [${shape.join(", ")}]`);
  }
  const rowBytes = elementCount(shape.slice(1), "rows") * elementBytes(dtype, "rows");
  return { shape: [count, ...shape.slice(1)], byteOffset: byteOffset + start * rowBytes, byteLength: count * rowBytes };
}

/** A tensor in device memory: `buffer` (null when it has no elements) from `byteOffset` on. */
export class CudaTensor implements TensorHandle {
  readonly device = "cuda" as const;
  readonly shape: readonly number[];
  readonly size: number;
  readonly byteLength: number;

  constructor(
    readonly dtype: DType,
    shape: readonly number[],
    readonly buffer: DeviceTensor | null,
    readonly byteOffset = 0,
  ) {
    this.size = elementCount(shape, "CudaTensor");
    this.shape = Object.freeze([...shape]);
    this.byteLength = this.size * elementBytes(dtype, "CudaTensor");
    if (this.byteLength > 0) {
      if (!buffer) throw new TypeError(`CudaTensor: ${dtype} [${shape.join(", ")}] needs a buffer`);
      if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + this.byteLength > buffer.byteLength) {
        throw new RangeError(`CudaTensor: bytes ${byteOffset} .. ${byteOffset + this.byteLength} are outside the buffer's ${buffer.byteLength}`);
      }
    }
  }

  /** `t` as a CudaTensor, or a TypeError naming `what`. */
  static of(t: TensorHandle, what: string): CudaTensor {
    if (t instanceof CudaTensor) return t;
    const d = t && typeof t === "object" ? `${t.dtype} [${t.shape?.join(", ")}] on ${t.device}` : String(t);
    throw new TypeError(`${what}: ${d} is not a CUDA tensor (upload it with the CUDA backend's fromHost)`);
  }
}
