// Tiny concrete MtpBlock implementations for tests (not built into dist), on HostTensors.
import { HostTensor, type TensorHandle } from "@octet/numerics";
import type { MtpBlock, NamedParam, SeqShape } from "../interfaces.js";
import { normalStream } from "../mtp.js";

/** The F32 array of a host tensor. */
export function host(t: TensorHandle): Float32Array {
  const h = HostTensor.of(t);
  if (h.dtype !== "F32") throw new TypeError(`expected an F32 tensor, got ${h.dtype}`);
  return h.data as Float32Array;
}

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
      return { name, value: new HostTensor("F32", [dim, dim], value), grad: new HostTensor("F32", [dim, dim]) };
    };
    this.w = mk("w");
    this.u = mk("u");
  }
  params(): NamedParam[] {
    return [this.w, this.u];
  }
  forward(xt: TensorHandle, shape: SeqShape): { out: TensorHandle; cache: unknown } {
    const x = host(xt);
    const w = host(this.w.value);
    const u = host(this.u.value);
    const d = this.dim;
    const { batch, seqLen } = shape;
    const a = new Float32Array(x.length); // tanh(pre-activation)
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < seqLen; i++) {
        const r = b * seqLen + i;
        for (let o = 0; o < d; o++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += w[o * d + j] * x[r * d + j];
          if (i > 0) for (let j = 0; j < d; j++) s += u[o * d + j] * x[(r - 1) * d + j];
          a[r * d + o] = Math.tanh(s);
        }
      }
    }
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + a[i];
    return { out: new HostTensor("F32", xt.shape, out), cache: { x, a, shape } };
  }
  backward(dOutT: TensorHandle, cache: unknown): TensorHandle {
    const { x, a, shape } = cache as { x: Float32Array; a: Float32Array; shape: SeqShape };
    const dOut = host(dOutT);
    const [w, u, wGrad, uGrad] = [this.w.value, this.u.value, this.w.grad, this.u.grad].map(host);
    const d = this.dim;
    const dx = Float32Array.from(dOut);
    for (let b = 0; b < shape.batch; b++) {
      for (let i = 0; i < shape.seqLen; i++) {
        const r = b * shape.seqLen + i;
        for (let o = 0; o < d; o++) {
          const g = dOut[r * d + o] * (1 - a[r * d + o] * a[r * d + o]);
          for (let j = 0; j < d; j++) {
            wGrad[o * d + j] += g * x[r * d + j];
            dx[r * d + j] += g * w[o * d + j];
            if (i > 0) {
              uGrad[o * d + j] += g * x[(r - 1) * d + j];
              dx[(r - 1) * d + j] += g * u[o * d + j];
            }
          }
        }
      }
    }
    return new HostTensor("F32", dOutT.shape, dx);
  }
}

/** out = x (no parameters). */
export class IdentityBlock implements MtpBlock {
  forward(x: TensorHandle): { out: TensorHandle; cache: unknown } {
    return { out: new HostTensor("F32", x.shape, Float32Array.from(host(x))), cache: null };
  }
  backward(dOut: TensorHandle): TensorHandle {
    return new HostTensor("F32", dOut.shape, Float32Array.from(host(dOut)));
  }
  params(): NamedParam[] {
    return [];
  }
}
