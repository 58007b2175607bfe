// RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, in FP32 (DeepSeek-V3 keeps normalization in high precision).
// It keeps a reference to its input (the residual stream, alive anyway) and rstd [T], never its output:
// the output is recomputed when the backward pass needs it again (DeepSeek-V3's RMSNorm recomputation).

import type { Backend } from "../backend/backend.js";
import type { Parameter, ParameterStore } from "../params.js";

export class RMSNorm {
  readonly weight: Parameter; // [C]
  private x: Float32Array | null = null; // [T, C]
  private rstd: Float32Array | null = null; // [T]
  private T = 0;

  constructor(
    store: ParameterStore,
    name: string,
    readonly dim: number,
    private readonly eps: number,
    private readonly be: Backend,
  ) {
    this.weight = store.create(`${name}.weight`, [dim], { kind: "ones" }, false);
  }

  /** x [T, C] → y [T, C]. */
  forward(x: Float32Array, T: number): Float32Array {
    const { y, rstd } = this.be.rmsnormForward(x, this.weight.data, T, this.dim, this.eps);
    this.x = x;
    this.rstd = rstd;
    this.T = T;
    return y;
  }

  /** The forward output again, from the kept input and rstd (bit-identical to forward's). */
  recompute(): Float32Array {
    return this.be.rmsnormForward(this.x!, this.weight.data, this.T, this.dim, this.eps).y;
  }

  /** dy [T, C] → dx [T, C]; adds dweight. */
  backward(dy: Float32Array): Float32Array {
    const dx = this.be.rmsnormBackward(dy, this.x!, this.weight.data, this.rstd!, this.T, this.dim, this.weight.grad);
    this.x = this.rstd = null;
    return dx;
  }
}
