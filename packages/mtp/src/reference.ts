// Plain implementations of the shared interfaces on the CPU (HostTensors, @octet/mtp's own kernels): a table
// embedding and a linear head (optionally with a final RMSNorm). Good for tests and small models; a model
// brings its own on its backend.

import { HostTensor, type TensorHandle } from "@octet/numerics";
import type { NamedParam, SharedEmbedding, SharedHead } from "./interfaces.js";
import { cpuMtpKernels as k } from "./kernels.js";
import { RMS_NORM_EPS } from "./ops.js";

export class TableEmbedding implements SharedEmbedding {
  readonly weight: NamedParam;
  constructor(readonly vocabSize: number, readonly dim: number, weight?: Float32Array) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || !Number.isInteger(dim) || dim < 1) {
      throw new RangeError(`TableEmbedding: vocabSize and dim must be positive integers, got ${vocabSize} and ${dim}`);
    }
    const w = weight ?? new Float32Array(vocabSize * dim);
    if (w.length !== vocabSize * dim) throw new RangeError(`TableEmbedding: weight has ${w.length} elements, want ${vocabSize * dim}`);
    this.weight = { name: "embed.weight", value: new HostTensor("F32", [vocabSize, dim], w), grad: new HostTensor("F32", [vocabSize, dim]) };
  }
  private tokens(t: TensorHandle): Int32Array {
    const h = HostTensor.of(t, "TableEmbedding: tokens");
    if (h.dtype !== "I32" || h.shape.length !== 1) throw new TypeError(`TableEmbedding: tokens must be an I32 tensor [n], got ${h.dtype} [${h.shape.join(", ")}]`);
    const tokens = h.data as Int32Array;
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < this.vocabSize)) throw new RangeError(`TableEmbedding: token ${tokens[i]} at ${i} is outside [0, ${this.vocabSize})`);
    }
    return tokens;
  }
  lookup(t: TensorHandle): TensorHandle {
    const tokens = this.tokens(t);
    const d = this.dim;
    const w = (this.weight.value as HostTensor<"F32">).data;
    const out = new Float32Array(tokens.length * d);
    for (let i = 0; i < tokens.length; i++) out.set(w.subarray(tokens[i] * d, tokens[i] * d + d), i * d);
    return new HostTensor("F32", [tokens.length, d], out);
  }
  accumulateGrad(t: TensorHandle, dEmb: TensorHandle): void {
    const tokens = this.tokens(t);
    const d = this.dim;
    const dE = HostTensor.of(dEmb, "TableEmbedding: dEmb").data as Float32Array;
    if (dE.length !== tokens.length * d) throw new RangeError(`TableEmbedding: dEmb has ${dE.length} elements, want ${tokens.length * d}`);
    const g = (this.weight.grad as HostTensor<"F32">).data;
    for (let i = 0; i < tokens.length; i++) for (let j = 0; j < d; j++) g[tokens[i] * d + j] += dE[i * d + j];
  }
}

interface HeadCache {
  h: TensorHandle;
  x: TensorHandle;
  rstd: TensorHandle | null;
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
    this.weight = { name: "lm_head.weight", value: new HostTensor("F32", [vocabSize, dim], w), grad: new HostTensor("F32", [vocabSize, dim]) };
    this.norm = options.finalNorm === false
      ? null
      : { name: "norm.weight", value: new HostTensor("F32", [dim], new Float32Array(dim).fill(1)), grad: new HostTensor("F32", [dim]) };
  }
  params(): NamedParam[] {
    return this.norm ? [this.norm, this.weight] : [this.weight];
  }
  forward(h: TensorHandle, rows: number): { logits: TensorHandle; cache: unknown } {
    if (h.shape.length !== 2 || h.shape[0] !== rows || h.shape[1] !== this.dim) {
      throw new RangeError(`LinearHead: h is [${h.shape.join(", ")}], want [rows, dim] = [${rows}, ${this.dim}]`);
    }
    let x = h;
    let rstd: TensorHandle | null = null;
    if (this.norm) ({ y: x, rstd } = k.rmsnormForward(h, this.norm.value, RMS_NORM_EPS));
    const cache: HeadCache = { h, x, rstd };
    return { logits: k.linearForward(x, this.weight.value), cache };
  }
  backward(dLogits: TensorHandle, cache: unknown): TensorHandle {
    const { h, x, rstd } = cache as HeadCache;
    const dx = k.linearBackward(dLogits, x, this.weight.value, this.weight.grad);
    return this.norm && rstd ? k.rmsnormBackward(dx, h, this.norm.value, rstd, this.norm.grad) : dx;
  }
}
