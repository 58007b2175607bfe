// One tensor type for every backend. A TensorHandle is opaque: its shape, its element type (the safetensors
// dtype names of safetensors-dtypes.ts, the one description of dtype and shape that named tensors, wire tensors
// and EMA arrays use too) and the device its memory lives on. Code that computes with tensors (the model's
// layers) holds handles and calls a backend's ops; only the backend that made a handle looks behind it. The
// CPU's handle is HostTensor (a typed array of the dtype); a CUDA backend's is a device buffer.

import { DTYPE_INFO, type DType, type TypedArrayFor, checkDType, numElements } from "./safetensors-dtypes.js";

/** Where a tensor's memory is. */
export type TensorDevice = "cpu" | "cuda";

/** A tensor as the code above a backend sees it: shape (row-major), element type and device, no memory. */
export interface TensorHandle {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: TensorDevice;
}

function describe(t: TensorHandle): string {
  return `${t.dtype} [${t.shape.join(", ")}] on ${t.device}`;
}

/**
 * A tensor in host memory: `data` is the dtype's typed array (Float32Array for F32, Uint16Array of bit patterns
 * for BF16, Uint8Array of codes for the FP8 types, Int32Array for I32, …) holding exactly the shape's elements.
 * `data` may be a view into a larger buffer (a row range of another HostTensor).
 */
export class HostTensor<D extends DType = DType> implements TensorHandle {
  readonly device = "cpu" as const;
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayFor<D>;

  /** A tensor over `data` (no copy), or over new zeroed memory when `data` is omitted. */
  constructor(dtype: D, shape: readonly number[], data?: TypedArrayFor<D>) {
    const info = DTYPE_INFO[checkDType(dtype, "HostTensor: dtype")];
    // C64 holds each complex element as two float32 values.
    const length = numElements(shape, "HostTensor: shape") * (dtype === "C64" ? 2 : 1);
    if (data === undefined) {
      data = new info.array(new ArrayBuffer(length * info.array.BYTES_PER_ELEMENT)) as TypedArrayFor<D>;
    } else if (!(data instanceof (info.array as unknown as new () => unknown))) {
      throw new TypeError(`HostTensor: ${dtype} data must be a ${info.array.name}, got ${(data as object)?.constructor?.name ?? typeof data}`);
    } else if (data.length !== length) {
      throw new RangeError(`HostTensor: shape [${shape.join(", ")}] holds ${length} ${dtype} values, the array has ${data.length}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  /** Number of elements (the product of the shape). */
  get size(): number {
    return this.dtype === "C64" ? this.data.length / 2 : this.data.length;
  }

  /** `t` as a HostTensor, or a TypeError naming `what` when its memory is not on the host. */
  static of(t: TensorHandle, what = "tensor"): HostTensor {
    if (t instanceof HostTensor) return t;
    throw new TypeError(`${what}: ${t && typeof t === "object" ? describe(t) : String(t)} is not a host tensor (copy it to the host with its backend's toHost)`);
  }
}
