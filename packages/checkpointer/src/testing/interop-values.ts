// The tensors of the interoperability check, defined exactly as interop/check.py defines them (arange-based,
// all exactly representable), as little-endian bytes.
import { type Tensor, encodeBf16, encodeFp8 } from "@octet/numerics";

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

/** float16 bits of a value that is exactly representable as a normal half (or zero). */
function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  const mant = a / 2 ** e - 1;
  const m = Math.round(mant * 1024);
  if (m / 1024 !== mant || e < -14 || e > 15) throw new RangeError(`${x} is not an exact normal float16`);
  return sign | ((e + 15) << 10) | m;
}

export const NUMPY_METADATA = { source: "interop" };

/** Tensors numpy can hold (loaded with safetensors.numpy). */
export function numpyTensors(): Tensor[] {
  return [
    { name: "f32", dtype: "F32", shape: [2, 3, 4], data: bytesOf(new Float32Array(range(24, (i) => i * 0.5 - 3))) },
    { name: "f64", dtype: "F64", shape: [5], data: bytesOf(new Float64Array(range(5, (i) => i * 0.25))) },
    { name: "f16", dtype: "F16", shape: [10], data: bytesOf(new Uint16Array(range(10, (i) => f16Bits(i / 4)))) },
    { name: "i64", dtype: "I64", shape: [6], data: bytesOf(new BigInt64Array(range(6, () => 0).map((_, i) => BigInt(i - 3) * 10n ** 12n))) },
    { name: "i32", dtype: "I32", shape: [10], data: bytesOf(new Int32Array(range(10, (i) => i - 5))) },
    { name: "i16", dtype: "I16", shape: [8], data: bytesOf(new Int16Array(range(8, (i) => i - 4))) },
    { name: "u16", dtype: "U16", shape: [8], data: bytesOf(new Uint16Array(range(8, (i) => i * 1000))) },
    { name: "i8", dtype: "I8", shape: [8], data: bytesOf(new Int8Array(range(8, (i) => i - 4))) },
    { name: "u8", dtype: "U8", shape: [16, 16], data: Uint8Array.from(range(256, (i) => i)) },
    { name: "u32", dtype: "U32", shape: [4], data: bytesOf(new Uint32Array(range(4, (i) => i * 1e9))) },
    { name: "u64", dtype: "U64", shape: [3], data: bytesOf(new BigUint64Array(range(3, () => 0).map((_, i) => BigInt(i) * 10n ** 18n))) },
    { name: "bool", dtype: "BOOL", shape: [6], data: Uint8Array.from(range(6, (i) => (i % 2 === 0 ? 1 : 0))) },
    { name: "scalar", dtype: "F32", shape: [], data: bytesOf(new Float32Array([7])) },
    { name: "empty", dtype: "F32", shape: [0, 3], data: new Uint8Array(0) },
  ];
}

/** Tensors that need torch (bfloat16, float8). */
export function torchTensors(): Tensor[] {
  const quarters = new Float32Array(range(16, (i) => (i - 8) / 4));
  return [
    { name: "bf16", dtype: "BF16", shape: [16], data: bytesOf(encodeBf16(new Float32Array(range(16, (i) => i / 8)))) },
    { name: "f8_e4m3", dtype: "F8_E4M3", shape: [4, 4], data: encodeFp8(quarters, "e4m3") },
    { name: "f8_e5m2", dtype: "F8_E5M2", shape: [16], data: encodeFp8(quarters, "e5m2") },
    { name: "f32", dtype: "F32", shape: [3], data: bytesOf(new Float32Array([1, 2, 3])) },
  ];
}
