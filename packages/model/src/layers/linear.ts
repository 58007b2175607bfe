// Linear layer y = x · Wᵀ (no bias, as DeepSeek-V3), its three GEMMs run through the recipe.

import type { Parameter, ParameterStore } from "../params.js";
import type { LinearGemms, Precision } from "../precision.js";

export class Linear {
  readonly weight: Parameter; // [out, in]
  private readonly gemms: LinearGemms;

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
  }

  /** Whether this Linear can run its forward again in the backward pass (recomputation). */
  get canRecompute(): boolean {
    return this.gemms.canRecompute;
  }

  /** x [T, in] → y [T, out]. With save false the caller must call provideInput before backward. */
  forward(x: Float32Array, T: number, save = true): Float32Array {
    return this.gemms.fprop(x, this.weight.data, T, this.inFeatures, this.outFeatures, save);
  }

  /** Hand the (recomputed) input to Wgrad. */
  provideInput(x: Float32Array, T: number): void {
    this.gemms.saveInput(x, T, this.inFeatures);
  }

  /** dy [T, out] → dx [T, in]; adds dW into weight.grad. */
  backward(dy: Float32Array, T: number): Float32Array {
    const dW = this.gemms.wgrad(dy, T, this.inFeatures, this.outFeatures); // [out, in]
    const g = this.weight.grad;
    for (let i = 0; i < g.length; i++) g[i] += dW[i];
    this.gemms.release();
    return this.gemms.dgrad(dy, this.weight.data, T, this.inFeatures, this.outFeatures);
  }

  exportState() {
    return this.gemms.exportState();
  }

  importState(s: Record<string, { history: number[]; recorded: number }>) {
    this.gemms.importState(s);
  }
}
