// Training batches (seeded random windows, resumable exactly) and evaluation batches (deterministic,
// non-overlapping windows).

import { Rng, checkSeed, type RngState } from "../rng.js";

export interface Batch {
  /** Rows in this batch (evaluation's last batch may have fewer than asked). */
  batchSize: number;
  seqLen: number;
  /** [batchSize·seqLen], row-major: row b is tokens[s_b .. s_b + seqLen). */
  inputs: Int32Array;
  /** [batchSize·seqLen]: inputs shifted by one, tokens[s_b + 1 .. s_b + seqLen]. */
  targets: Int32Array;
}

export interface BatchLoaderOptions {
  batchSize: number;
  seqLen: number;
  seed: number;
}

/** Where a BatchLoader stands: plain JSON, for checkpoints. */
export interface BatchLoaderPosition {
  kind: "octet.batch-loader/v1";
  seed: number;
  batchSize: number;
  seqLen: number;
  /** Length of the token array, checked on restore (restoring onto other data would not resume). */
  tokens: number;
  /** Batches handed out so far. */
  step: number;
  rng: RngState;
}

function positiveInt(what: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`${what}: ${name} must be an integer, got ${String(v)}`);
  if (v < 1) throw new RangeError(`${what}: ${name} must be at least 1, got ${v}`);
  return v;
}

function fillWindow(tokens: Uint16Array, start: number, seqLen: number, inputs: Int32Array, targets: Int32Array, row: number): void {
  const o = row * seqLen;
  for (let t = 0; t < seqLen; t++) {
    inputs[o + t] = tokens[start + t];
    targets[o + t] = tokens[start + t + 1];
  }
}

/**
 * Random training windows: each row starts at a uniform offset in [0, n − seqLen − 1], drawn from a
 * seeded xoshiro128** generator. `position()` / `restore()` resume the exact sequence of batches.
 */
export class BatchLoader {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly seed: number;
  private readonly tokens: Uint16Array;
  private readonly rng: Rng;
  private step = 0;

  constructor(tokens: Uint16Array, options: BatchLoaderOptions) {
    if (!(tokens instanceof Uint16Array)) throw new TypeError("BatchLoader: tokens must be a Uint16Array");
    if (options === null || typeof options !== "object") throw new TypeError("BatchLoader: options { batchSize, seqLen, seed } are required");
    this.batchSize = positiveInt("BatchLoader", "batchSize", options.batchSize);
    this.seqLen = positiveInt("BatchLoader", "seqLen", options.seqLen);
    this.seed = checkSeed(options.seed, "BatchLoader");
    if (tokens.length < this.seqLen + 1) {
      throw new RangeError(`BatchLoader: ${tokens.length} tokens are too few for one window of seqLen + 1 = ${this.seqLen + 1}`);
    }
    this.tokens = tokens;
    this.rng = new Rng(this.seed);
  }

  /** Batches handed out so far. */
  get steps(): number {
    return this.step;
  }

  next(): Batch {
    const { batchSize: B, seqLen: T, tokens } = this;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const starts = tokens.length - T; // offsets 0 .. n − T − 1
    for (let b = 0; b < B; b++) fillWindow(tokens, this.rng.nextInt(starts), T, inputs, targets, b);
    this.step++;
    return { batchSize: B, seqLen: T, inputs, targets };
  }

  position(): BatchLoaderPosition {
    return {
      kind: "octet.batch-loader/v1",
      seed: this.seed,
      batchSize: this.batchSize,
      seqLen: this.seqLen,
      tokens: this.tokens.length,
      step: this.step,
      rng: this.rng.state(),
    };
  }

  /** Continues from `position` (from this loader or one built with the same data and options). */
  restore(position: BatchLoaderPosition): void {
    if (position === null || typeof position !== "object") throw new TypeError("BatchLoader.restore: position must be an object from position()");
    if (position.kind !== "octet.batch-loader/v1") throw new TypeError(`BatchLoader.restore: unknown position kind ${JSON.stringify(position.kind)}`);
    for (const key of ["seed", "batchSize", "seqLen", "tokens"] as const) {
      const mine = key === "tokens" ? this.tokens.length : this[key];
      if (position[key] !== mine) {
        throw new RangeError(`BatchLoader.restore: position has ${key} ${String(position[key])} but this loader has ${mine}`);
      }
    }
    if (typeof position.step !== "number" || !Number.isInteger(position.step) || position.step < 0) {
      throw new RangeError(`BatchLoader.restore: step must be a non-negative integer, got ${String(position.step)}`);
    }
    this.rng.setState(position.rng);
    this.step = position.step;
  }
}

export interface EvalBatchOptions {
  batchSize: number;
  seqLen: number;
  /** Stop after this many batches; default all. */
  maxBatches?: number;
}

/** Number of non-overlapping windows in `n` tokens: ⌊(n − 1) / seqLen⌋. */
export function evalWindowCount(n: number, seqLen: number): number {
  return n < 1 ? 0 : Math.floor((n - 1) / seqLen);
}

/**
 * Evaluation batches over `tokens`: windows i = 0, 1, … start at i·seqLen (inputs) and their targets
 * reach i·seqLen + seqLen, so every token after the first is a target exactly once, up to the last
 * full window. The last batch holds the remaining windows (fewer than batchSize). Deterministic.
 */
export function* evalBatches(tokens: Uint16Array, options: EvalBatchOptions): Generator<Batch> {
  if (!(tokens instanceof Uint16Array)) throw new TypeError("evalBatches: tokens must be a Uint16Array");
  if (options === null || typeof options !== "object") throw new TypeError("evalBatches: options { batchSize, seqLen } are required");
  const B = positiveInt("evalBatches", "batchSize", options.batchSize);
  const T = positiveInt("evalBatches", "seqLen", options.seqLen);
  const maxBatches = options.maxBatches ?? Infinity;
  if (typeof maxBatches !== "number" || !(maxBatches >= 0) || (maxBatches !== Infinity && !Number.isInteger(maxBatches))) {
    throw new RangeError(`evalBatches: maxBatches must be a non-negative integer, got ${String(maxBatches)}`);
  }
  const windows = evalWindowCount(tokens.length, T);
  if (windows === 0) throw new RangeError(`evalBatches: ${tokens.length} tokens are too few for one window of seqLen + 1 = ${T + 1}`);
  let w = 0;
  for (let b = 0; b < maxBatches && w < windows; b++) {
    const rows = Math.min(B, windows - w);
    const inputs = new Int32Array(rows * T);
    const targets = new Int32Array(rows * T);
    for (let r = 0; r < rows; r++, w++) fillWindow(tokens, w * T, T, inputs, targets, r);
    yield { batchSize: rows, seqLen: T, inputs, targets };
  }
}
