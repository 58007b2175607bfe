// Linear layer y = x · Wᵀ (no bias, as DeepSeek-V3), its three GEMMs run through the recipe.

import type { Backend, GemmState, TensorHandle } from "../backend/backend.js";
import type { Parameter, ParameterStore } from "../params.js";
import type { LinearGemms, Precision } from "../precision.js";

/** A Linear's recipe state by its name (delayed scaling's amax histories): what state export keeps per Linear. */
export interface LinearState {
  readonly name: string;
  exportState(): GemmState;
  importState(state: GemmState): void;
}

export class Linear implements LinearState {
  readonly weight: Parameter; // [out, in]
  private readonly gemms: LinearGemms;
  private readonly be: Backend;

  constructor(
    store: ParameterStore,
    readonly name: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    precision: Precision,
    std: number,
  ) {
    this.weight = store.create(`${name}.weight`, [outFeatures, inFeatures], { kind: "normal", std });
    this.gemms = precision.forLinear(name);
    this.be = store.be;
  }

  /** Whether this Linear can run its forward again in the backward pass (recomputation). */
  get canRecompute(): boolean {
    return this.gemms.canRecompute;
  }

  /** x [T, in] → y [T, out]. With save false the caller must call provideInput before backward. */
  forward(x: TensorHandle, save = true): TensorHandle {
    return this.gemms.fprop(x, this.weight.value, save);
  }

  /** Hand the (recomputed) input to Wgrad. */
  provideInput(x: TensorHandle): void {
    this.gemms.saveInput(x);
  }

  /** dy [T, out] → dx [T, in]; adds dW into weight.grad. */
  backward(dy: TensorHandle): TensorHandle {
    this.be.addInPlace(this.weight.grad, this.gemms.wgrad(dy)); // [out, in]
    this.gemms.release();
    return this.gemms.dgrad(dy, this.weight.value);
  }

  exportState(): GemmState {
    return this.gemms.exportState();
  }

  importState(s: GemmState): void {
    this.gemms.importState(s);
  }
}
