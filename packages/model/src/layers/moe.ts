// DeepSeekMoE: shared experts that see every token plus fine-grained routed experts chosen per token by
// @octet/router's gate (sigmoid affinities, group-limited top-K, auxiliary-loss-free bias for the choice).
//   y_t = shared(x_t) + Σ_k w_{t,k} · expert_{i_{t,k}}(x_t)
// The gate's GEMM stays in FP32 (DeepSeek-V3 keeps the MoE gate in high precision); the experts' Linears
// run through the recipe. Tokens are permuted into one contiguous block per expert (the backend's route op:
// the router's dispatch plan), the experts run as grouped GEMMs over the blocks, and the outputs are
// unpermuted back with the combine weights. The balancer (bias and step) lives on the host: the trainer reads
// the loads with the step's other scalars and updates it; its bias goes to the backend for the next choice.

import { AuxFreeBalancer } from "@octet/router";
import type { Backend, Routing, TensorHandle } from "../backend/backend.js";
import type { ModelConfig } from "../config.js";
import type { Parameter, ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import { RoutedExperts, SwiGLU } from "./ffn.js";
import type { LinearState } from "./linear.js";

export class MoE {
  readonly gate: Parameter; // [E, C]
  readonly shared: SwiGLU | null; // hidden nShared · expertHidden
  readonly experts: RoutedExperts;
  /** F32 [E]: the balancer's bias, as the backend's route op reads it. */
  readonly bias: TensorHandle;
  /** I32 [E]: rows each expert received in the last forward pass (read with the step's scalars for the bias update). */
  loads: TensorHandle;
  private readonly be: Backend;
  private currentBalancer: AuxFreeBalancer;
  private saved: { xn: TensorHandle; T: number; routing: Routing; expertOut: TensorHandle } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number) {
    const m = cfg.moe;
    const C = cfg.dModel;
    this.be = store.be;
    this.gate = store.create(`${name}.gate.weight`, [m.nRoutedExperts, C], { kind: "normal", std: cfg.initStd });
    this.shared = m.nSharedExperts > 0
      ? new SwiGLU(store, `${name}.shared`, C, m.nSharedExperts * m.expertHidden, precision, cfg.initStd, outStd)
      : null;
    this.experts = new RoutedExperts(store, `${name}.experts`, m.nRoutedExperts, C, m.expertHidden, precision, cfg.initStd, outStd);
    this.currentBalancer = new AuxFreeBalancer({ experts: m.nRoutedExperts, gamma: m.biasUpdateSpeed });
    this.bias = this.be.fromHost(this.currentBalancer.bias, [m.nRoutedExperts]);
    this.loads = this.be.zeros([m.nRoutedExperts], "I32");
  }

  /** The auxiliary-loss-free balancer (host state: bias and step); setting it (state import) updates the bias tensor. */
  get balancer(): AuxFreeBalancer {
    return this.currentBalancer;
  }

  set balancer(b: AuxFreeBalancer) {
    this.currentBalancer = b;
    this.be.copyFromHost(this.bias, b.bias);
  }

  get canRecompute(): boolean {
    return this.experts.canRecompute;
  }

  /** xn [T, C] → y [T, C]. */
  forward(xn: TensorHandle, save = true): TensorHandle {
    const m = this.cfg.moe;
    const T = xn.shape[0];
    const logits = this.be.matmul(xn, this.gate.value); // [T, E]
    const routing = this.be.route(logits, this.bias, {
      experts: m.nRoutedExperts, topK: m.topK, nGroup: m.nGroup, topkGroup: m.topkGroup,
      normTopkProb: m.normTopkProb, routedScalingFactor: m.routedScalingFactor,
    });
    this.loads = routing.expertCounts;
    const xd = this.be.permuteRows(xn, routing.tokenOfRow); // [rows, C] grouped by expert
    const expertOut = this.experts.forward(xd, routing, save); // [rows, C]
    const y = this.shared ? this.shared.forward(xn, save) : this.be.zeros([T, this.cfg.dModel]); // [T, C]
    this.be.unpermuteAdd(expertOut, routing.tokenOfRow, y, routing.combineWeights);
    this.saved = { xn, T, routing, expertOut };
    return y;
  }

  provideInput(xn: TensorHandle): void {
    const s = this.saved!;
    s.xn = xn;
    this.shared?.provideInput(xn);
    this.experts.provideInput(this.be.permuteRows(xn, s.routing.tokenOfRow), s.routing);
  }

  /** dy [T, C] → dxn [T, C]; adds the gate's, experts' and shared experts' gradients. */
  backward(dy: TensorHandle): TensorHandle {
    const { xn, T, routing, expertOut } = this.saved!;
    this.saved = null;
    const dxn = this.shared ? this.shared.backward(dy) : this.be.zeros([T, this.cfg.dModel]); // [T, C]
    const dyd = this.be.permuteRows(dy, routing.tokenOfRow); // [rows, C] ∂L/∂y of each row's token
    // ∂L/∂w_{t,k} = ⟨∂L/∂y_t, expert output of that assignment⟩; then scale rows by their weights.
    const gradWeights = this.be.rowDots(dyd, expertOut, routing.assignmentOfRow, T * routing.topK); // [T·topK]
    this.be.scaleRows(dyd, routing.combineWeights);
    const dxd = this.experts.backward(dyd); // [rows, C]
    this.be.unpermuteAdd(dxd, routing.tokenOfRow, dxn);
    // Gate: through the normalized sigmoid weights (never through the choice or the bias).
    const dLogits = this.be.routeBackward(routing, gradWeights); // [T, E]
    this.be.addInPlace(dxn, this.be.matmul(dLogits, this.be.transpose(this.gate.value)));
    const dGate = this.be.matmul(this.be.transpose(dLogits), this.be.transpose(xn)); // [E, C]
    this.be.addInPlace(this.gate.grad, dGate);
    return dxn;
  }

  /** After the optimizer step: the auxiliary-loss-free bias update from this step's loads (read from `loads`). */
  updateBias(loads: ArrayLike<number>): void {
    this.currentBalancer.update(loads);
    this.be.copyFromHost(this.bias, this.currentBalancer.bias);
  }

  linears(): LinearState[] {
    return [...(this.shared ? this.shared.linears() : []), ...this.experts.linears()];
  }
}
