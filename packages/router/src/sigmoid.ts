// A fast float32 sigmoid for the routing hot path.
//
// Math.exp costs ~18 ns per call on the build machine, which alone would cap routing at ~200k tokens/s
// for 256 experts. This computes exp in float64 by table-driven range reduction (x = k·ln2/32 + r,
// |r| ≤ ln2/64, exp(x) = 2^(k>>5) · 2^((k&31)/32) · p(r) with a degree-5 Taylor polynomial whose
// truncation error is ≈2e-15 relative), then rounds 1/(1+e) to float32 once. The float64 result is
// within a few 1e-15 of the exact value, so the float32 rounding agrees with the correctly rounded
// sigmoid except when the exact value lies within ~1e-15 (relative) of a rounding midpoint — about
// 1 value in 10^7, and then by one ulp. That is tighter than torch's own float32 exp (≤ 1 ulp).

const STEPS_PER_OCTAVE = 32;
const INV_STEP = STEPS_PER_OCTAVE / Math.LN2;
// ln2/32 split in two so that k·STEP_HI is exact for the |k| this function sees (< 2^13).
const STEP_HI = Math.fround(Math.LN2 / STEPS_PER_OCTAVE);
const STEP_LO = Math.LN2 / STEPS_PER_OCTAVE - STEP_HI;

// 2^(j/32) for j = 0..31
const FRACTION_POWERS = Float64Array.from({ length: STEPS_PER_OCTAVE }, (_, j) => Math.pow(2, j / STEPS_PER_OCTAVE));

// 2^m for the octaves reachable from the clamped range below
const MIN_OCTAVE = -64;
const OCTAVE_POWERS = Float64Array.from({ length: 256 }, (_, i) => Math.pow(2, i + MIN_OCTAVE));

// Beyond these, float32 sigmoid is exactly 1 (z > 30: e^-z < 2^-43) or exactly 0 (z < -110:
// e^-z > 2^158, so 1/(1+e) underflows below float32's smallest subnormal).
const SATURATE_HIGH = 30;
const SATURATE_LOW = -110;

/** float32(1 / (1 + exp(-z))). NaN in, NaN out. */
export function sigmoidF32(z: number): number {
  if (z > SATURATE_HIGH) return 1;
  if (z < SATURATE_LOW) return 0;
  const x = -z;
  const k = Math.round(x * INV_STEP);
  const r = x - k * STEP_HI - k * STEP_LO;
  const polynomial = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120)))));
  const exp = OCTAVE_POWERS[(k >> 5) - MIN_OCTAVE] * FRACTION_POWERS[k & 31] * polynomial;
  return Math.fround(1 / (1 + exp));
}
