// Element types of the safetensors format (https://github.com/huggingface/safetensors), with their sizes.

/** Bytes per element of every safetensors dtype Octet reads and writes. */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
} as const;

export type DType = keyof typeof DTYPE_SIZES;

export const DTYPES: readonly DType[] = Object.keys(DTYPE_SIZES) as DType[];

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, x);
}

/** Throws a TypeError naming the offending value unless `x` is a safetensors dtype. */
export function checkDType(x: unknown, what = "dtype"): DType {
  if (!isDType(x)) {
    throw new TypeError(`${what}: unknown dtype ${JSON.stringify(x)} (expected one of ${DTYPES.join(", ")})`);
  }
  return x;
}

export function dtypeSize(dtype: DType): number {
  return DTYPE_SIZES[dtype];
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
  const bytes = numElements(shape, what) * DTYPE_SIZES[dtype];
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`${what}: byte size overflows`);
  return bytes;
}
