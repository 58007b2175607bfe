// Element types of the safetensors format (https://github.com/huggingface/safetensors): one description of each —
// its name, bytes per element and the typed array its little-endian bytes are read as — and of a tensor's shape.
// Model state, the checkpointer's tensors and the EMA arrays all describe their data with this table.

/**
 * The typed array each dtype's bytes are read as. Formats JavaScript has no array for are read as their bit
 * patterns: FP8 codes as bytes (decodeFp8), BF16 and F16 as 16-bit words (decodeBf16), BOOL as bytes (0 or 1);
 * C64 as interleaved (real, imaginary) float32 pairs.
 */
export interface DTypeArrays {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  F8_E5M2: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E8M0: Uint8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
  C64: Float32Array;
}

export type DType = keyof DTypeArrays;

/** The typed array of a dtype (a union of arrays for a union of dtypes). */
export type TypedArrayFor<D extends DType> = DTypeArrays[D];

/** A typed-array constructor, as the table below holds them. */
export interface TypedArrayConstructorOf<A> {
  readonly BYTES_PER_ELEMENT: number;
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): A;
}

export interface DTypeInfo<D extends DType = DType> {
  readonly name: D;
  /** Bytes per element as safetensors counts them (8 for C64: one complex number). */
  readonly bytes: number;
  /** The typed array the element bytes are read as. */
  readonly array: TypedArrayConstructorOf<DTypeArrays[D]>;
}

function info<D extends DType>(name: D, bytes: number, array: TypedArrayConstructorOf<DTypeArrays[D]>): DTypeInfo<D> {
  return Object.freeze({ name, bytes, array });
}

/** Every safetensors dtype Octet reads and writes, in the order the format's documentation lists them. */
export const DTYPE_INFO: { readonly [D in DType]: DTypeInfo<D> } = Object.freeze({
  BOOL: info("BOOL", 1, Uint8Array),
  U8: info("U8", 1, Uint8Array),
  I8: info("I8", 1, Int8Array),
  F8_E5M2: info("F8_E5M2", 1, Uint8Array),
  F8_E4M3: info("F8_E4M3", 1, Uint8Array),
  F8_E8M0: info("F8_E8M0", 1, Uint8Array),
  I16: info("I16", 2, Int16Array),
  U16: info("U16", 2, Uint16Array),
  F16: info("F16", 2, Uint16Array),
  BF16: info("BF16", 2, Uint16Array),
  I32: info("I32", 4, Int32Array),
  U32: info("U32", 4, Uint32Array),
  F32: info("F32", 4, Float32Array),
  F64: info("F64", 8, Float64Array),
  I64: info("I64", 8, BigInt64Array),
  U64: info("U64", 8, BigUint64Array),
  C64: info("C64", 8, Float32Array),
});

export const DTYPES: readonly DType[] = Object.freeze(Object.keys(DTYPE_INFO) as DType[]);

/** Bytes per element of every dtype (the `bytes` column of DTYPE_INFO). */
export const DTYPE_SIZES: { readonly [D in DType]: number } = Object.freeze(
  Object.fromEntries(DTYPES.map((d) => [d, DTYPE_INFO[d].bytes])) as { [D in DType]: number },
);

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && Object.prototype.hasOwnProperty.call(DTYPE_INFO, x);
}

/** Throws a TypeError naming the offending value unless `x` is a safetensors dtype. */
export function checkDType(x: unknown, what = "dtype"): DType {
  if (!isDType(x)) {
    throw new TypeError(`${what}: unknown dtype ${JSON.stringify(x)} (expected one of ${DTYPES.join(", ")})`);
  }
  return x;
}

export function dtypeSize(dtype: DType): number {
  return DTYPE_INFO[dtype].bytes;
}

/** Validates a shape (non-negative safe integers) and returns its element count. */
export function numElements(shape: readonly number[], what = "shape"): number {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: expected an array of non-negative integers`);
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${what}: dimension ${JSON.stringify(d)} is not a non-negative integer`);
    }
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`${what}: element count overflows`);
  }
  return n;
}

/** Byte length of a tensor of this dtype and shape. */
export function tensorByteLength(dtype: DType, shape: readonly number[], what = "shape"): number {
  const bytes = numElements(shape, what) * DTYPE_INFO[dtype].bytes;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`${what}: byte size overflows`);
  return bytes;
}

/** A tensor's description: its name, element type and row-major shape. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A tensor as stored: its row-major, little-endian element bytes. */
export interface Tensor extends TensorSpec {
  data: Uint8Array;
}

/** A tensor held as the typed array of its dtype (model state, EMA arrays). */
export interface TypedTensor<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: TypedArrayFor<D>;
}

/** The bytes of a typed array (a view: no copy). */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/**
 * The element bytes of a tensor as the typed array of its dtype. A view of `bytes` where their offset allows one
 * (typed arrays must start at a multiple of their element size), else — or with `copy` — an aligned copy.
 */
export function typedArrayOf<D extends DType>(dtype: D, bytes: Uint8Array, opts: { copy?: boolean } = {}): TypedArrayFor<D> {
  const { array } = DTYPE_INFO[checkDType(dtype)] as DTypeInfo<D>;
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${dtype} data: expected a Uint8Array`);
  if (bytes.byteLength % DTYPE_INFO[dtype].bytes !== 0) {
    throw new RangeError(`${dtype} data: ${bytes.byteLength} bytes is not a whole number of ${DTYPE_INFO[dtype].bytes}-byte elements`);
  }
  const length = bytes.byteLength / array.BYTES_PER_ELEMENT;
  if (!opts.copy && bytes.byteOffset % array.BYTES_PER_ELEMENT === 0) {
    return new array(bytes.buffer as ArrayBuffer, bytes.byteOffset, length);
  }
  const own = new Uint8Array(bytes.byteLength);
  own.set(bytes);
  return new array(own.buffer, 0, length);
}
