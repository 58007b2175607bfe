// SwiGLU feed-forward: y = W2 · (silu(W1 x) ⊙ W3 x). The dense layers use one, and so do DeepSeekMoE's shared
// experts; the routed experts are the same function over all experts at once (RoutedExperts: grouped GEMMs).

import type { Backend, GroupedGemms, Routing, TensorHandle } from "../backend/backend.js";
import type { Parameter, ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import { Linear, type LinearState } from "./linear.js";

export class SwiGLU {
  readonly w1: Linear; // gate  [F, C]
  readonly w3: Linear; // up    [F, C]
  readonly w2: Linear; // down  [C, F]
  private readonly be: Backend;
  private gate: TensorHandle | null = null; // [T, F]
  private up: TensorHandle | null = null; // [T, F]

  constructor(store: ParameterStore, name: string, dim: number, hidden: number, precision: Precision, std: number, outStd: number) {
    this.w1 = new Linear(store, `${name}.w1`, dim, hidden, precision, std);
    this.w3 = new Linear(store, `${name}.w3`, dim, hidden, precision, std);
    this.w2 = new Linear(store, `${name}.w2`, hidden, dim, precision, outStd);
    this.be = store.be;
  }

  get canRecompute(): boolean {
    return this.w1.canRecompute && this.w3.canRecompute;
  }

  /** x [T, C] → y [T, C]. With save false, provideInput(x) must come before backward. */
  forward(x: TensorHandle, save = true): TensorHandle {
    this.gate = this.w1.forward(x, save);
    this.up = this.w3.forward(x, save);
    const h = this.be.swigluForward(this.gate, this.up); // [T, F]
    return this.w2.forward(h);
  }

  provideInput(x: TensorHandle): void {
    this.w1.provideInput(x);
    this.w3.provideInput(x);
  }

  /** dy [T, C] → dx [T, C]. */
  backward(dy: TensorHandle): TensorHandle {
    const dh = this.w2.backward(dy); // [T, F]
    const { dGate, dUp } = this.be.swigluBackward(dh, this.gate!, this.up!);
    this.gate = this.up = null;
    const dx = this.w1.backward(dGate);
    this.be.addInPlace(dx, this.w3.backward(dUp));
    return dx;
  }

  linears(): LinearState[] {
    return [this.w1, this.w3, this.w2];
  }
}

/** One kind of expert Linear (w1, w3 or w2) of all experts: per-expert parameters over one stacked tensor. */
export class ExpertLinears {
  /** [E·out, in]: expert e's weight is rows e·out .. (e+1)·out − 1 (the parameters are views of these). */
  readonly value: TensorHandle;
  readonly grad: TensorHandle;
  readonly weights: Parameter[] = [];
  readonly names: string[] = [];
  private gemms: GroupedGemms | null = null;

  constructor(be: Backend, experts: number, readonly inFeatures: number, readonly outFeatures: number) {
    this.value = be.zeros([experts * outFeatures, inFeatures]);
    this.grad = be.zeros([experts * outFeatures, inFeatures]);
  }

  /** Expert e's Linear `name`, drawn now (parameter creation order is the RNG's order). */
  add(store: ParameterStore, name: string, std: number): void {
    const e = this.weights.length;
    const rows = (t: TensorHandle) => store.be.rows(t, e * this.outFeatures, this.outFeatures);
    this.weights.push(store.create(`${name}.weight`, [this.outFeatures, this.inFeatures], { kind: "normal", std }, true, { value: rows(this.value), grad: rows(this.grad) }));
    this.names.push(name);
  }

  /** The grouped GEMMs, once every expert is added. */
  get ops(): GroupedGemms {
    if (!this.gemms) throw new Error("ExpertLinears: the experts' GEMMs are made after the last expert is added");
    return this.gemms;
  }

  finish(precision: Precision): void {
    this.gemms = precision.forExperts(this.names);
  }

  /** Expert e's recipe state, by the Linear's name. */
  state(e: number): LinearState {
    const gemms = this.ops;
    return { name: this.names[e], exportState: () => gemms.exportState(e), importState: (s) => gemms.importState(e, s) };
  }
}

/**
 * DeepSeekMoE's routed experts: E SwiGLUs with a small hidden size, run over the routed rows grouped by
 * expert (the Routing's offsets) as three grouped GEMMs, one per kind of Linear, instead of E small calls.
 * Each expert's parameters (`{name}.experts.{e}.w1.weight`, …) are views of one stacked tensor per kind, created
 * expert by expert (w1, w3, w2) as separate SwiGLUs would be, so initialization and names are theirs.
 */
export class RoutedExperts {
  readonly w1: ExpertLinears; // gate  [E·F, C]
  readonly w3: ExpertLinears; // up    [E·F, C]
  readonly w2: ExpertLinears; // down  [E·C, F]
  private readonly be: Backend;
  private gate: TensorHandle | null = null; // [rows, F]
  private up: TensorHandle | null = null; // [rows, F]

  constructor(store: ParameterStore, name: string, readonly experts: number, dim: number, hidden: number, precision: Precision, std: number, outStd: number) {
    this.be = store.be;
    this.w1 = new ExpertLinears(this.be, experts, dim, hidden);
    this.w3 = new ExpertLinears(this.be, experts, dim, hidden);
    this.w2 = new ExpertLinears(this.be, experts, hidden, dim);
    for (let e = 0; e < experts; e++) {
      this.w1.add(store, `${name}.${e}.w1`, std);
      this.w3.add(store, `${name}.${e}.w3`, std);
      this.w2.add(store, `${name}.${e}.w2`, outStd);
    }
    for (const l of [this.w1, this.w3, this.w2]) l.finish(precision);
  }

  get canRecompute(): boolean {
    return this.w1.ops.canRecompute && this.w3.ops.canRecompute;
  }

  /** xd [rows, C] (rows grouped by expert) → [rows, C]. With save false, provideInput(xd) must come before backward. */
  forward(xd: TensorHandle, routing: Routing, save = true): TensorHandle {
    this.gate = this.w1.ops.fprop(xd, this.w1.value, routing, save);
    this.up = this.w3.ops.fprop(xd, this.w3.value, routing, save);
    const h = this.be.swigluForward(this.gate, this.up); // [rows, F]
    return this.w2.ops.fprop(h, this.w2.value, routing);
  }

  provideInput(xd: TensorHandle, routing: Routing): void {
    this.w1.ops.saveInput(xd, routing);
    this.w3.ops.saveInput(xd, routing);
  }

  /** dy [rows, C] → dx [rows, C]; adds every expert's weight gradients. */
  backward(dy: TensorHandle): TensorHandle {
    const dh = this.w2.ops.backward(dy, this.w2.value, this.w2.grad); // [rows, F]
    const { dGate, dUp } = this.be.swigluBackward(dh, this.gate!, this.up!);
    this.gate = this.up = null;
    const dx = this.w1.ops.backward(dGate, this.w1.value, this.w1.grad);
    this.be.addInPlace(dx, this.w3.ops.backward(dUp, this.w3.value, this.w3.grad));
    return dx;
  }

  /** Each expert's Linears (w1, w3, w2), expert by expert. */
  linears(): LinearState[] {
    const out: LinearState[] = [];
    for (let e = 0; e < this.experts; e++) out.push(this.w1.state(e), this.w3.state(e), this.w2.state(e));
    return out;
  }
}
