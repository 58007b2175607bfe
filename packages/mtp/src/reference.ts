// Plain implementations of the shared interfaces: a table embedding and a linear head (optionally
// with a final RMSNorm). Good for tests and small models; a model may bring its own.

import type { NamedParam, SharedEmbedding, SharedHead } from "./interfaces.js";
import { RMS_NORM_EPS, linearBackward, linearForward, rmsNormBackward, rmsNormForward, type RmsNormCache } from "./ops.js";

export class TableEmbedding implements SharedEmbedding {
  readonly weight: NamedParam;
  constructor(readonly vocabSize: number, readonly dim: number, weight?: Float32Array) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || !Number.isInteger(dim) || dim < 1) {
      throw new RangeError(`TableEmbedding: vocabSize and dim must be positive integers, got ${vocabSize} and ${dim}`);
    }
    const w = weight ?? new Float32Array(vocabSize * dim);
    if (w.length !== vocabSize * dim) throw new RangeError(`TableEmbedding: weight has ${w.length} elements, want ${vocabSize * dim}`);
    this.weight = { name: "embed.weight", value: w, grad: new Float32Array(w.length) };
  }
  private check(tokens: Int32Array): void {
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < this.vocabSize)) throw new RangeError(`TableEmbedding: token ${tokens[i]} at ${i} is outside [0, ${this.vocabSize})`);
    }
  }
  lookup(tokens: Int32Array): Float32Array {
    this.check(tokens);
    const d = this.dim;
    const out = new Float32Array(tokens.length * d);
    for (let i = 0; i < tokens.length; i++) out.set(this.weight.value.subarray(tokens[i] * d, tokens[i] * d + d), i * d);
    return out;
  }
  accumulateGrad(tokens: Int32Array, dEmb: Float32Array): void {
    this.check(tokens);
    const d = this.dim;
    if (dEmb.length !== tokens.length * d) throw new RangeError(`TableEmbedding: dEmb has ${dEmb.length} elements, want ${tokens.length * d}`);
    const g = this.weight.grad;
    for (let i = 0; i < tokens.length; i++) for (let j = 0; j < d; j++) g[tokens[i] * d + j] += dEmb[i * d + j];
  }
}

/** logits = RMSNorm(h) · Wᵀ (or h · Wᵀ with finalNorm false), W: [vocab, dim]. */
export class LinearHead implements SharedHead {
  readonly weight: NamedParam;
  readonly norm: NamedParam | null;
  constructor(readonly vocabSize: number, readonly dim: number, options: { weight?: Float32Array; finalNorm?: boolean } = {}) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || !Number.isInteger(dim) || dim < 1) {
      throw new RangeError(`LinearHead: vocabSize and dim must be positive integers, got ${vocabSize} and ${dim}`);
    }
    const w = options.weight ?? new Float32Array(vocabSize * dim);
    if (w.length !== vocabSize * dim) throw new RangeError(`LinearHead: weight has ${w.length} elements, want ${vocabSize * dim}`);
    this.weight = { name: "lm_head.weight", value: w, grad: new Float32Array(w.length) };
    this.norm = options.finalNorm === false ? null : { name: "norm.weight", value: new Float32Array(dim).fill(1), grad: new Float32Array(dim) };
  }
  params(): NamedParam[] {
    return this.norm ? [this.norm, this.weight] : [this.weight];
  }
  forward(h: Float32Array, rows: number): { logits: Float32Array; cache: unknown } {
    if (h.length !== rows * this.dim) throw new RangeError(`LinearHead: h has ${h.length} elements, want rows·dim = ${rows * this.dim}`);
    let x = h;
    let normCache: RmsNormCache | null = null;
    if (this.norm) {
      const r = rmsNormForward(h, this.norm.value, rows, RMS_NORM_EPS);
      x = r.y;
      normCache = r.cache;
    }
    return { logits: linearForward(x, this.weight.value, rows, this.vocabSize, this.dim), cache: { x, rows, normCache } };
  }
  backward(dLogits: Float32Array, cache: unknown): Float32Array {
    const { x, rows, normCache } = cache as { x: Float32Array; rows: number; normCache: RmsNormCache | null };
    const dx = linearBackward(dLogits, x, this.weight.value, this.weight.grad, rows, this.vocabSize, this.dim);
    return this.norm && normCache ? rmsNormBackward(dx, this.norm.value, this.norm.grad, normCache) : dx;
  }
}
