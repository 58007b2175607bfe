// SwiGLU feed-forward: y = W2 · (silu(W1 x) ⊙ W3 x). The dense layers use one; each DeepSeekMoE expert
// (routed or shared) is one too, with a small hidden size.

import type { Backend } from "../backend/backend.js";
import type { ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import { Linear } from "./linear.js";

export class SwiGLU {
  readonly w1: Linear; // gate  [F, C]
  readonly w3: Linear; // up    [F, C]
  readonly w2: Linear; // down  [C, F]
  private gate: Float32Array | null = null; // [T, F]
  private up: Float32Array | null = null; // [T, F]
  private T = 0;

  constructor(store: ParameterStore, name: string, dim: number, hidden: number, precision: Precision, std: number, outStd: number, private readonly be: Backend) {
    this.w1 = new Linear(store, `${name}.w1`, dim, hidden, precision, std);
    this.w3 = new Linear(store, `${name}.w3`, dim, hidden, precision, std);
    this.w2 = new Linear(store, `${name}.w2`, hidden, dim, precision, outStd);
  }

  get canRecompute(): boolean {
    return this.w1.canRecompute && this.w3.canRecompute;
  }

  /** x [T, C] → y [T, C]. With save false, provideInput(x) must come before backward. */
  forward(x: Float32Array, T: number, save = true): Float32Array {
    this.T = T;
    this.gate = this.w1.forward(x, T, save);
    this.up = this.w3.forward(x, T, save);
    const h = this.be.swigluForward(this.gate, this.up); // [T, F]
    return this.w2.forward(h, T);
  }

  provideInput(x: Float32Array): void {
    this.w1.provideInput(x, this.T);
    this.w3.provideInput(x, this.T);
  }

  /** dy [T, C] → dx [T, C]. */
  backward(dy: Float32Array): Float32Array {
    const T = this.T;
    const dh = this.w2.backward(dy, T); // [T, F]
    const { dGate, dUp } = this.be.swigluBackward(dh, this.gate!, this.up!);
    this.gate = this.up = null;
    const dx = this.w1.backward(dGate, T);
    this.be.addInPlace(dx, this.w3.backward(dUp, T));
    return dx;
  }

  linears(): Linear[] {
    return [this.w1, this.w3, this.w2];
  }
}
