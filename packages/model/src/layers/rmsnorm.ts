// RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, in FP32 (DeepSeek-V3 keeps normalization in high precision).
// It keeps a reference to its input (the residual stream, alive anyway) and rstd [T], never its output:
// the output is recomputed when the backward pass needs it again (DeepSeek-V3's RMSNorm recomputation).

import type { Backend, TensorHandle } from "../backend/backend.js";
import type { Parameter, ParameterStore } from "../params.js";

export class RMSNorm {
  readonly weight: Parameter; // [C]
  private readonly be: Backend;
  private x: TensorHandle | null = null; // [T, C]
  private rstd: TensorHandle | null = null; // [T]

  constructor(
    store: ParameterStore,
    name: string,
    readonly dim: number,
    private readonly eps: number,
  ) {
    this.weight = store.create(`${name}.weight`, [dim], { kind: "ones" }, false);
    this.be = store.be;
  }

  /** x [T, C] → y [T, C]. */
  forward(x: TensorHandle): TensorHandle {
    const { y, rstd } = this.be.rmsnormForward(x, this.weight.value, this.eps);
    this.x = x;
    this.rstd = rstd;
    return y;
  }

  /** The forward output again, from the kept input and rstd (bit-identical to forward's). */
  recompute(): TensorHandle {
    return this.be.rmsnormForward(this.x!, this.weight.value, this.eps).y;
  }

  /** dy [T, C] → dx [T, C]; adds dweight. */
  backward(dy: TensorHandle): TensorHandle {
    const dx = this.be.rmsnormBackward(dy, this.x!, this.weight.value, this.rstd!, this.weight.grad);
    this.x = this.rstd = null;
    return dx;
  }
}
