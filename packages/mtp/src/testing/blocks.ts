// Tiny concrete MtpBlock implementations for tests (not built into dist).
import type { MtpBlock, NamedParam, SeqShape } from "../interfaces.js";
import { normalStream } from "../mtp.js";

/**
 * out_i = x_i + tanh(W x_i + U x_{i−1}) within each sequence (x_{−1} = 0): a residual, nonlinear,
 * causal block that mixes the previous position, so it sees the batch/sequence layout.
 */
export class CausalMixBlock implements MtpBlock {
  readonly w: NamedParam;
  readonly u: NamedParam;
  constructor(readonly dim: number, seed = 1, std = 0.3) {
    const n = normalStream(seed);
    const mk = (name: string) => {
      const value = new Float32Array(dim * dim);
      for (let i = 0; i < value.length; i++) value[i] = n() * std;
      return { name, value, grad: new Float32Array(dim * dim) };
    };
    this.w = mk("w");
    this.u = mk("u");
  }
  params(): NamedParam[] {
    return [this.w, this.u];
  }
  forward(x: Float32Array, shape: SeqShape): { out: Float32Array; cache: unknown } {
    const d = this.dim;
    const { batch, seqLen } = shape;
    const a = new Float32Array(x.length); // tanh(pre-activation)
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < seqLen; i++) {
        const r = b * seqLen + i;
        for (let o = 0; o < d; o++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += this.w.value[o * d + j] * x[r * d + j];
          if (i > 0) for (let j = 0; j < d; j++) s += this.u.value[o * d + j] * x[(r - 1) * d + j];
          a[r * d + o] = Math.tanh(s);
        }
      }
    }
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + a[i];
    return { out, cache: { x, a, shape } };
  }
  backward(dOut: Float32Array, cache: unknown): Float32Array {
    const { x, a, shape } = cache as { x: Float32Array; a: Float32Array; shape: SeqShape };
    const d = this.dim;
    const dx = Float32Array.from(dOut);
    for (let b = 0; b < shape.batch; b++) {
      for (let i = 0; i < shape.seqLen; i++) {
        const r = b * shape.seqLen + i;
        for (let o = 0; o < d; o++) {
          const g = dOut[r * d + o] * (1 - a[r * d + o] * a[r * d + o]);
          for (let j = 0; j < d; j++) {
            this.w.grad[o * d + j] += g * x[r * d + j];
            dx[r * d + j] += g * this.w.value[o * d + j];
            if (i > 0) {
              this.u.grad[o * d + j] += g * x[(r - 1) * d + j];
              dx[(r - 1) * d + j] += g * this.u.value[o * d + j];
            }
          }
        }
      }
    }
    return dx;
  }
}

/** out = x (no parameters). */
export class IdentityBlock implements MtpBlock {
  forward(x: Float32Array): { out: Float32Array; cache: unknown } {
    return { out: Float32Array.from(x), cache: null };
  }
  backward(dOut: Float32Array): Float32Array {
    return Float32Array.from(dOut);
  }
  params(): NamedParam[] {
    return [];
  }
}
