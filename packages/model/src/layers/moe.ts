// DeepSeekMoE: shared experts that see every token plus fine-grained routed experts chosen per token by
// @octet/router's gate (sigmoid affinities, group-limited top-K, auxiliary-loss-free bias for the choice).
//   y_t = shared(x_t) + Σ_k w_{t,k} · expert_{i_{t,k}}(x_t)
// The gate's GEMM stays in FP32 (DeepSeek-V3 keeps the MoE gate in high precision); the experts' Linears
// run through the recipe. Tokens are permuted into one contiguous block per expert (planDispatch), each
// expert runs its GEMMs on its block, and the outputs are unpermuted back with the combine weights.

import { AuxFreeBalancer, type DispatchPlan, type RouteResult, planDispatch, routeTokens, routeTokensBackward } from "@octet/router";
import type { Backend } from "../backend/backend.js";
import type { ModelConfig } from "../config.js";
import type { Parameter, ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import type { Linear } from "./linear.js";
import { SwiGLU } from "./ffn.js";

export class MoE {
  readonly gate: Parameter; // [E, C]
  readonly shared: SwiGLU | null; // hidden nShared · expertHidden
  readonly experts: SwiGLU[];
  balancer: AuxFreeBalancer;
  /** Tokens each expert received in the last forward pass (for the bias update and load statistics). */
  lastLoads: Int32Array;
  private saved: { xn: Float32Array; T: number; route: RouteResult; plan: DispatchPlan; expertOut: Float32Array } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number, private readonly be: Backend) {
    const m = cfg.moe;
    const C = cfg.dModel;
    this.gate = store.create(`${name}.gate.weight`, [m.nRoutedExperts, C], { kind: "normal", std: cfg.initStd });
    this.shared = m.nSharedExperts > 0
      ? new SwiGLU(store, `${name}.shared`, C, m.nSharedExperts * m.expertHidden, precision, cfg.initStd, outStd, be)
      : null;
    this.experts = [];
    for (let e = 0; e < m.nRoutedExperts; e++) {
      this.experts.push(new SwiGLU(store, `${name}.experts.${e}`, C, m.expertHidden, precision, cfg.initStd, outStd, be));
    }
    this.balancer = new AuxFreeBalancer({ experts: m.nRoutedExperts, gamma: m.biasUpdateSpeed });
    this.lastLoads = new Int32Array(m.nRoutedExperts);
  }

  get canRecompute(): boolean {
    return this.experts[0].canRecompute;
  }

  /** xn [T, C] → y [T, C]. */
  forward(xn: Float32Array, T: number, save = true): Float32Array {
    const m = this.cfg.moe;
    const C = this.cfg.dModel;
    const E = m.nRoutedExperts;
    const logits = this.be.matmul(xn, this.gate.data, T, E, C); // [T, E]
    const route = routeTokens(logits, {
      tokens: T, experts: E, topK: m.topK, nGroup: m.nGroup, topkGroup: m.topkGroup,
      bias: this.balancer.bias, normTopkProb: m.normTopkProb, routedScalingFactor: m.routedScalingFactor,
    });
    const plan = planDispatch(route.indices, route.weights, { tokens: T, experts: E, topK: m.topK });
    this.lastLoads = Int32Array.from(plan.expertCounts);
    const xd = this.be.permuteRows(xn, plan.tokenOfRow, C); // [rows, C] grouped by expert
    const expertOut = new Float32Array(plan.rows * C); // [rows, C]
    for (let e = 0; e < E; e++) {
      const n = plan.expertCounts[e];
      if (n === 0) continue;
      const off = plan.expertOffsets[e];
      expertOut.set(this.experts[e].forward(xd.subarray(off * C, (off + n) * C), n, save), off * C);
    }
    const y = this.shared ? this.shared.forward(xn, T, save) : new Float32Array(T * C); // [T, C]
    this.be.unpermuteAdd(expertOut, plan.tokenOfRow, C, y, plan.combineWeights);
    this.saved = { xn, T, route, plan, expertOut };
    return y;
  }

  provideInput(xn: Float32Array): void {
    const s = this.saved!;
    const C = this.cfg.dModel;
    s.xn = xn;
    this.shared?.provideInput(xn);
    const xd = this.be.permuteRows(xn, s.plan.tokenOfRow, C);
    for (let e = 0; e < this.experts.length; e++) {
      const n = s.plan.expertCounts[e];
      if (n === 0) continue;
      const off = s.plan.expertOffsets[e];
      this.experts[e].provideInput(xd.subarray(off * C, (off + n) * C));
    }
  }

  /** dy [T, C] → dxn [T, C]; adds the gate's, experts' and shared experts' gradients. */
  backward(dy: Float32Array): Float32Array {
    const { xn, T, route, plan, expertOut } = this.saved!;
    this.saved = null;
    const m = this.cfg.moe;
    const C = this.cfg.dModel;
    const E = m.nRoutedExperts;
    const dxn = this.shared ? this.shared.backward(dy) : new Float32Array(T * C); // [T, C]
    const dyd = this.be.permuteRows(dy, plan.tokenOfRow, C); // [rows, C] ∂L/∂y of each row's token
    // ∂L/∂w_{t,k} = ⟨∂L/∂y_t, expert output of that assignment⟩; then scale rows by their weights.
    const gradWeights = new Float32Array(T * m.topK); // [T, topK]
    for (let r = 0; r < plan.rows; r++) {
      let dot = 0;
      for (let c = 0; c < C; c++) dot += dyd[r * C + c] * expertOut[r * C + c];
      gradWeights[plan.assignmentOfRow[r]] = dot;
      const w = plan.combineWeights[r];
      for (let c = 0; c < C; c++) dyd[r * C + c] *= w;
    }
    const dxd = new Float32Array(plan.rows * C); // [rows, C]
    for (let e = 0; e < E; e++) {
      const n = plan.expertCounts[e];
      if (n === 0) continue;
      const off = plan.expertOffsets[e];
      dxd.set(this.experts[e].backward(dyd.subarray(off * C, (off + n) * C)), off * C);
    }
    this.be.unpermuteAdd(dxd, plan.tokenOfRow, C, dxn);
    // Gate: through the normalized sigmoid weights (never through the choice or the bias).
    const dLogits = routeTokensBackward(route, gradWeights, {
      tokens: T, experts: E, topK: m.topK, normTopkProb: m.normTopkProb, routedScalingFactor: m.routedScalingFactor,
    }); // [T, E]
    this.be.addInPlace(dxn, this.be.matmul(dLogits, this.be.transpose(this.gate.data, E, C), T, C, E));
    const dGate = this.be.matmul(this.be.transpose(dLogits, T, E), this.be.transpose(xn, T, C), E, C, T); // [E, C]
    this.be.addInPlace(this.gate.grad, dGate);
    return dxn;
  }

  /** After the optimizer step: the auxiliary-loss-free bias update from this step's loads. */
  updateBias(): void {
    this.balancer.update(this.lastLoads);
  }

  linears(): Linear[] {
    return [...(this.shared ? this.shared.linears() : []), ...this.experts.flatMap((e) => e.linears())];
  }
}
