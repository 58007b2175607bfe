// The package's one seeded generator: xoshiro128** (32-bit state words, exact in JS integer arithmetic),
// whose whole state is four uint32 words, so it goes into a checkpoint (as JSON or a U32 tensor) and resumes
// bit for bit.
//
// Two seedings and two normal draws exist because two streams were fixed before they shared this module, and
// changing either would change every trained result:
//   - `new Rng(seed)` (the data: corpus generation, batch order): all 53 bits of the seed matter, and
//     `nextNormal` draws 53-bit uniforms;
//   - `Rng.fromU32Seed(seed)` (parameter initialisation): the low 32 bits of the seed, and `nextNormal32`
//     draws two 32-bit uniforms per value.

/** The generator's state: four uint32 words (not all zero). JSON-serializable. */
export type RngState = [number, number, number, number];

/** splitmix32 from `x`: the sequence that spreads a seed over the four state words. */
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

  /**
   * The parameter initialisation's seeding: the four words are splitmix32's first four outputs from the low
   * 32 bits of `seed` (seeds 5 and 2^32 + 5 give the same stream).
   */
  static fromU32Seed(seed: number): Rng {
    checkSeed(seed, "Rng.fromU32Seed");
    const mix = splitmix32(seed >>> 0);
    const words: RngState = [mix(), mix(), mix(), mix()];
    if (words.every((w) => w === 0)) words[0] = 1;
    return Rng.fromState(words);
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

  /** Standard normal (Box–Muller on two 53-bit uniforms, the first never 0). */
  nextNormal(): number {
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Standard normal from two words (Box–Muller on (x + 1) / (2^32 + 1), never 0, and y / 2^32): half the
   * draws of nextNormal, one value per call so the stream position is simple to reason about. Parameter
   * initialisation draws these.
   */
  nextNormal32(): number {
    const u1 = (this.nextU32() + 1) / 4294967297;
    const u2 = this.nextU32() / 4294967296;
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
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
