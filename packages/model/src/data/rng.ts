// A small seeded generator (xoshiro128**, seeded through splitmix32) whose whole state is four
// uint32 words, so it can be written into a checkpoint as JSON and restored exactly.

/** The generator's state: four uint32 words (not all zero). JSON-serializable. */
export type RngState = [number, number, number, number];

function splitmix32(x: number): () => number {
  let s = x >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Checks that `seed` is a non-negative safe integer; `what` names the caller in the error. */
export function checkSeed(seed: unknown, what: string): number {
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new TypeError(`${what}: seed must be a non-negative safe integer, got ${String(seed)}`);
  }
  return seed;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** `seed`: any non-negative safe integer (all 53 bits matter). */
  constructor(seed: number) {
    checkSeed(seed, "Rng");
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const mix = splitmix32(lo ^ Math.imul(hi, 0x9e3779b1));
    const mix2 = splitmix32(hi + 0x632be5ab);
    this.s0 = (mix() ^ mix2()) >>> 0;
    this.s1 = (mix() ^ mix2()) >>> 0;
    this.s2 = (mix() ^ mix2()) >>> 0;
    this.s3 = (mix() ^ mix2()) >>> 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  setState(state: unknown): void {
    if (!Array.isArray(state) || state.length !== 4) {
      throw new TypeError(`Rng.setState: state must be an array of 4 uint32 words, got ${JSON.stringify(state)}`);
    }
    for (const w of state) {
      if (typeof w !== "number" || !Number.isInteger(w) || w < 0 || w > 0xffffffff) {
        throw new RangeError(`Rng.setState: state words must be integers in [0, 2^32), got ${JSON.stringify(state)}`);
      }
    }
    if (state.every((w) => w === 0)) throw new RangeError("Rng.setState: the all-zero state is not a valid xoshiro128** state");
    [this.s0, this.s1, this.s2, this.s3] = state as RngState;
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased, for 1 ≤ n ≤ 2^32. */
  nextInt(n: number): number {
    if (n === 1) return 0;
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Box–Muller). */
  nextNormal(): number {
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) variate (Marsaglia–Tsang; shape < 1 via the boost U^(1/shape)). */
  nextGamma(shape: number): number {
    if (shape < 1) {
      let u = 0;
      while (u === 0) u = this.nextFloat();
      return this.nextGamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.nextNormal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.nextFloat();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
