// Helpers shared by the tests and the benchmark (not exported from the package).
import { decayAt, type DecayPolicy } from "../decay.js";
import { emaUpdateF32 } from "../kernel.js";

/** Deterministic pseudo-random float32 parameters (xorshift32), values in [-1, 1). */
export function params(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/** The EMA computed sequentially over the given steps: init to the first, then the update. */
export function sequentialEma(policy: DecayPolicy, steps: number[], paramAt: (step: number) => Float32Array): Float32Array {
  let ema: Float32Array | undefined;
  for (const s of steps) {
    const p = paramAt(s);
    if (!ema) ema = p.slice();
    else emaUpdateF32(ema, p, decayAt(policy, s));
  }
  if (!ema) throw new Error("no steps");
  return ema;
}
