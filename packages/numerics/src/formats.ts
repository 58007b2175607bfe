// FP8 (E4M3, E5M2) and BF16 formats: the readable specification.
//
// Every conversion here is defined to equal PyTorch's tensor casts bit for bit (c10/util/Float8_e4m3fn.h,
// Float8_e5m2.h, and the CPU bfloat16 conversion): the same integer tricks on the float32 bit pattern, the same float32
// addition for subnormals. Native and CUDA kernels are tested against these functions.

export type Fp8Format = "e4m3" | "e5m2";

export interface Fp8FormatInfo {
  readonly name: Fp8Format;
  /** Largest finite magnitude. */
  readonly max: number;
  /** Smallest positive subnormal. */
  readonly minSubnormal: number;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  readonly hasInfinity: boolean;
}

export const FP8_FORMATS: Readonly<Record<Fp8Format, Fp8FormatInfo>> = Object.freeze({
  // OCP "fn" variant: no infinities, the single NaN pattern S.1111.111, max 448.
  e4m3: Object.freeze({ name: "e4m3", max: 448, minSubnormal: 2 ** -9, exponentBits: 4, mantissaBits: 3, bias: 7, hasInfinity: false }),
  e5m2: Object.freeze({ name: "e5m2", max: 57344, minSubnormal: 2 ** -16, exponentBits: 5, mantissaBits: 2, bias: 15, hasInfinity: true }),
} as const);

export function fp8Info(format: unknown): Fp8FormatInfo {
  if (format === "e4m3" || format === "e5m2") return FP8_FORMATS[format];
  throw new RangeError(`unknown FP8 format ${JSON.stringify(format)}: expected "e4m3" or "e5m2"`);
}

// One shared scratch pair for reading and writing float32 bit patterns.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}

function floatOf(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}

// Constants of PyTorch's conversions, as float32 bit patterns.
const E4M3_OVERFLOW_BITS = 1087 << 20; // 480.0f: at and above this (and inf/NaN) the result is NaN
const E4M3_NORMAL_MIN_BITS = 121 << 23; // 2^-6: below this the subnormal path
const E4M3_DENORM_MASK_BITS = 141 << 23; // 2^14: adding it rounds to the subnormal grid (RNE)
const E4M3_DENORM_MASK = floatOf(E4M3_DENORM_MASK_BITS);

const E5M2_OVERFLOW_BITS = 143 << 23; // 65536.0f
const F32_INF_BITS = 255 << 23;
const E5M2_NORMAL_MIN_BITS = 113 << 23; // 2^-14
const E5M2_DENORM_MASK_BITS = 134 << 23; // 2^7
const E5M2_DENORM_MASK = floatOf(E5M2_DENORM_MASK_BITS);

/** Encode one float32 value (given as a JS number already rounded to float32) to an E4M3 code. */
export function encodeE4m3Scalar(x: number): number {
  const bits = bitsOf(x);
  const sign = bits & 0x80000000;
  const magnitudeBits = (bits ^ sign) >>> 0;
  let code: number;
  if (magnitudeBits >= E4M3_OVERFLOW_BITS) {
    code = 0x7f;
  } else if (magnitudeBits < E4M3_NORMAL_MIN_BITS) {
    // float32 addition, rounded to float32, exactly as the C++ does it.
    const shifted = Math.fround(floatOf(magnitudeBits) + E4M3_DENORM_MASK);
    code = (bitsOf(shifted) - E4M3_DENORM_MASK_BITS) & 0xff;
  } else {
    const mantissaOdd = (magnitudeBits >>> 20) & 1;
    const rounded = (magnitudeBits + (((7 - 127) << 23) >>> 0) + 0x7ffff + mantissaOdd) >>> 0;
    code = (rounded >>> 20) & 0xff;
  }
  return code | (sign >>> 24);
}

/** Encode one float32 value to an E5M2 code. */
export function encodeE5m2Scalar(x: number): number {
  const bits = bitsOf(x);
  const sign = bits & 0x80000000;
  const magnitudeBits = (bits ^ sign) >>> 0;
  let code: number;
  if (magnitudeBits >= E5M2_OVERFLOW_BITS) {
    code = magnitudeBits > F32_INF_BITS ? 0x7f : 0x7c;
  } else if (magnitudeBits < E5M2_NORMAL_MIN_BITS) {
    const shifted = Math.fround(floatOf(magnitudeBits) + E5M2_DENORM_MASK);
    code = (bitsOf(shifted) - E5M2_DENORM_MASK_BITS) & 0xff;
  } else {
    const mantissaOdd = (magnitudeBits >>> 21) & 1;
    const rounded = (magnitudeBits + (((15 - 127) << 23) >>> 0) + 0xfffff + mantissaOdd) >>> 0;
    code = (rounded >>> 21) & 0xff;
  }
  return code | (sign >>> 24);
}

export interface EncodeFp8Options {
  /** Clamp finite values to ±max before the cast (NaN stays NaN). Default false: PyTorch's cast, overflow included. */
  saturate?: boolean;
}

export function encodeFp8(x: Float32Array, format: Fp8Format, opts: EncodeFp8Options = {}): Uint8Array {
  if (!(x instanceof Float32Array)) throw new TypeError("encodeFp8: x must be a Float32Array");
  const info = fp8Info(format);
  const encode = format === "e4m3" ? encodeE4m3Scalar : encodeE5m2Scalar;
  const out = new Uint8Array(x.length);
  const max = info.max;
  if (opts.saturate) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      out[i] = encode(v > max ? max : v < -max ? -max : v);
    }
  } else {
    for (let i = 0; i < x.length; i++) out[i] = encode(x[i]);
  }
  return out;
}

function buildDecodeTable(format: Fp8Format): Float32Array {
  const info = FP8_FORMATS[format];
  const table = new Float32Array(256);
  const mantissaScale = 2 ** info.mantissaBits;
  const exponentMask = (1 << info.exponentBits) - 1;
  for (let code = 0; code < 256; code++) {
    const negative = (code & 0x80) !== 0;
    const exponent = (code >> info.mantissaBits) & exponentMask;
    const mantissa = code & (mantissaScale - 1);
    let value: number;
    if (format === "e4m3" && exponent === exponentMask && mantissa === mantissaScale - 1) {
      value = NaN;
    } else if (format === "e5m2" && exponent === exponentMask) {
      value = mantissa === 0 ? Infinity : NaN;
    } else if (exponent === 0) {
      value = (mantissa / mantissaScale) * 2 ** (1 - info.bias);
    } else {
      value = (1 + mantissa / mantissaScale) * 2 ** (exponent - info.bias);
    }
    table[code] = negative ? -value : value;
  }
  return table;
}

/** Code → float32 value, one table per format (256 entries). */
export const FP8_DECODE_TABLES: Readonly<Record<Fp8Format, Float32Array>> = Object.freeze({
  e4m3: buildDecodeTable("e4m3"),
  e5m2: buildDecodeTable("e5m2"),
});

export function decodeFp8(codes: Uint8Array, format: Fp8Format): Float32Array {
  if (!(codes instanceof Uint8Array)) throw new TypeError("decodeFp8: codes must be a Uint8Array");
  const table = FP8_DECODE_TABLES[fp8Info(format).name];
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]];
  return out;
}

/**
 * Round a float32 value to bfloat16 bits, nearest even. Every NaN becomes 0xFFFF, as PyTorch's tensor cast
 * `x.to(torch.bfloat16)` does on the CPU (its vectorized conversion; checked against PyTorch 2.11 in
 * formats.test.ts). PyTorch's scalar c10::BFloat16 gives 0x7FC0 and CUDA's __float2bfloat16 0x7FFF: all NaN.
 */
export function encodeBf16Scalar(x: number): number {
  if (Number.isNaN(x)) return 0xffff;
  const bits = bitsOf(x);
  const roundingBias = ((bits >>> 16) & 1) + 0x7fff;
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

export function encodeBf16(x: Float32Array): Uint16Array {
  if (!(x instanceof Float32Array)) throw new TypeError("encodeBf16: x must be a Float32Array");
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = encodeBf16Scalar(x[i]);
  return out;
}

export function decodeBf16(bits: Uint16Array): Float32Array {
  if (!(bits instanceof Uint16Array)) throw new TypeError("decodeBf16: bits must be a Uint16Array");
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** Round every element of x to bfloat16 precision in place (encode then decode), returning x. */
export function roundToBf16InPlace(x: Float32Array): Float32Array {
  const xBits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) xBits[i] = encodeBf16Scalar(x[i]) << 16;
  return x;
}

/** float32 bit helpers shared by the quantizers. */
export const float32Bits = { bitsOf, floatOf };
