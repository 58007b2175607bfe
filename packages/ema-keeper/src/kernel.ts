// The EMA update kernels: ema ← d · ema + (1 − d) · param over a Float32Array.
//
// Arithmetic: each element is computed in float64 (d and 1 − d are float64 constants hoisted out of the loop;
// the product of two float32-representable values is exact in float64) and rounded once to float32 on store.
// The result is a pure function of (ema, param, d), so a sequential replay with these kernels reproduces the
// keeper's EMA bit for bit.

/** ema[i] ← d · ema[i] + (1 − d) · param[i] for i in [start, end). */
export function emaUpdateF32(
  ema: Float32Array,
  param: Float32Array,
  decay: number,
  start = 0,
  end = ema.length,
): void {
  const d = decay;
  const c = 1 - decay;
  let i = start;
  // Unrolled by four: measured ~15% faster than the plain loop on V8 (bench/results.md).
  for (; i + 4 <= end; i += 4) {
    ema[i] = d * ema[i] + c * param[i];
    ema[i + 1] = d * ema[i + 1] + c * param[i + 1];
    ema[i + 2] = d * ema[i + 2] + c * param[i + 2];
    ema[i + 3] = d * ema[i + 3] + c * param[i + 3];
  }
  for (; i < end; i++) ema[i] = d * ema[i] + c * param[i];
}

/** The plain (not unrolled) loop, kept as the readable specification and for the benchmark. */
export function emaUpdateF32Plain(ema: Float32Array, param: Float32Array, decay: number, start = 0, end = ema.length): void {
  const d = decay;
  const c = 1 - decay;
  for (let i = start; i < end; i++) ema[i] = d * ema[i] + c * param[i];
}

const BF16_BLOCK = 1 << 14;
const scratch = new Float32Array(BF16_BLOCK);
const scratchBits = new Uint32Array(scratch.buffer);

/**
 * The same update with bfloat16 parameters given as their 16-bit patterns (bf16 → f32 is exact: bits << 16).
 * Decodes a block at a time into a scratch buffer, then runs the f32 loop.
 */
export function emaUpdateBf16(
  ema: Float32Array,
  paramBits: Uint16Array,
  decay: number,
  start = 0,
  end = ema.length,
): void {
  const d = decay;
  for (let base = start; base < end; base += BF16_BLOCK) {
    const n = Math.min(BF16_BLOCK, end - base);
    for (let j = 0; j < n; j++) scratchBits[j] = paramBits[base + j] << 16;
    emaUpdateF32(ema.subarray(base, base + n), scratch, d, 0, n);
  }
}

/** Copies parameters into the EMA (the first update initializes the EMA to the parameters). */
export function emaInitF32(ema: Float32Array, param: Float32Array, start = 0, end = ema.length): void {
  ema.set(param.subarray(start, end), start);
}

export function emaInitBf16(ema: Float32Array, paramBits: Uint16Array, start = 0, end = ema.length): void {
  const emaBits = new Uint32Array(ema.buffer, ema.byteOffset, ema.length);
  for (let i = start; i < end; i++) emaBits[i] = paramBits[i] << 16;
}

/** Index of the first NaN or ±Infinity, or −1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v - v !== 0) return i;
  }
  return -1;
}

/** The same over bfloat16 bit patterns: exponent bits all ones means Inf or NaN. */
export function firstNonFiniteBf16(bits: Uint16Array): number {
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f80) === 0x7f80) return i;
  return -1;
}
