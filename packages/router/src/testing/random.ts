// Deterministic pseudo-random numbers for tests, the demo and the benchmark (so runs are repeatable).

/** mulberry32: small, fast, good enough for test data. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box–Muller). */
export function seededNormal(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => {
    const u = 1 - uniform();
    const v = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function randomLogits(tokens: number, experts: number, seed: number, scale = 1): Float32Array {
  const normal = seededNormal(seed);
  const logits = new Float32Array(tokens * experts);
  for (let i = 0; i < logits.length; i++) logits[i] = normal() * scale;
  return logits;
}

/** The logit whose sigmoid is p. */
export function logit(p: number): number {
  return Math.log(p / (1 - p));
}
