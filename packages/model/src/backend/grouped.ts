// The grouped expert GEMMs as every backend runs them today: each expert's rows through that expert's own recipe
// GEMMs (the same objects and calls a Linear makes), expert by expert, on row views of the grouped buffers and of
// the stacked weights; an expert without rows is skipped. A backend supplies where each expert's rows lie (on the
// host) and how to copy a result into a row range; a single-launch grouped kernel would replace this class.

import type { LinearGemms, Precision } from "../precision.js";
import type { Backend, GemmState, GroupedGemms, Routing, TensorHandle } from "./backend.js";

/** What the per-expert loop needs from its backend. */
export interface PerExpertHost {
  readonly be: Pick<Backend, "rows" | "zeros" | "addInPlace">;
  /** Checks the routing is this backend's; returns it. */
  routing(r: Routing, what: string): Routing;
  /** expertOffsets [E + 1] of a routing on the host: expert e owns rows [o[e], o[e+1]). */
  offsets(r: Routing): ArrayLike<number>;
  /** dst (a row view) = src, same shape. */
  copyInto(dst: TensorHandle, src: TensorHandle): void;
}

/** 2-D shape of a tensor, or a RangeError naming `what`. */
export function mat(t: TensorHandle, what: string): [number, number] {
  if (t.shape.length !== 2) throw new RangeError(`${what}: expected a 2-D tensor, got [${t.shape.join(", ")}]`);
  return t.shape as [number, number];
}

export class PerExpertGroupedGemms implements GroupedGemms {
  private readonly experts: LinearGemms[];
  private routing: Routing | null = null;
  readonly canRecompute: boolean;

  constructor(private readonly host: PerExpertHost, precision: Precision, names: readonly string[]) {
    if (names.length === 0) throw new RangeError("groupedGemms: no experts");
    this.experts = names.map((n) => precision.forLinear(n));
    this.canRecompute = this.experts.every((g) => g.canRecompute);
  }

  /** Expert e's rows [offset, offset + count) for each expert with rows. */
  private *groups(routing: Routing): Generator<[number, number, number]> {
    if (routing.experts !== this.experts.length) throw new RangeError(`groupedGemms: the routing has ${routing.experts} experts, the group ${this.experts.length}`);
    const o = this.host.offsets(routing);
    for (let e = 0; e < routing.experts; e++) if (o[e + 1] > o[e]) yield [e, o[e], o[e + 1] - o[e]];
  }

  private outFeatures(w: TensorHandle): number {
    const [stacked] = mat(w, "groupedGemms: w");
    if (stacked % this.experts.length !== 0) throw new RangeError(`groupedGemms: ${stacked} weight rows are not ${this.experts.length} experts' stack`);
    return stacked / this.experts.length;
  }

  fprop(x: TensorHandle, w: TensorHandle, routing: Routing, save = true): TensorHandle {
    const r = (this.routing = this.host.routing(routing, "groupedGemms.fprop"));
    const [rows] = mat(x, "groupedGemms.fprop: x");
    if (rows !== r.rows) throw new RangeError(`groupedGemms.fprop: x has ${rows} rows, the routing ${r.rows}`);
    const { be } = this.host;
    const outF = this.outFeatures(w);
    const y = be.zeros([rows, outF]); // [rows, out]
    for (const [e, off, n] of this.groups(r)) {
      this.host.copyInto(be.rows(y, off, n), this.experts[e].fprop(be.rows(x, off, n), be.rows(w, e * outF, outF), save));
    }
    return y;
  }

  saveInput(x: TensorHandle, routing: Routing): void {
    const r = (this.routing = this.host.routing(routing, "groupedGemms.saveInput"));
    for (const [e, off, n] of this.groups(r)) this.experts[e].saveInput(this.host.be.rows(x, off, n));
  }

  backward(dy: TensorHandle, w: TensorHandle, grad: TensorHandle): TensorHandle {
    const r = this.routing;
    if (!r) throw new Error("groupedGemms.backward needs a fprop first");
    const { be } = this.host;
    const outF = this.outFeatures(w);
    const [rows] = mat(dy, "groupedGemms.backward: dy");
    const inF = w.shape[1];
    const dx = be.zeros([rows, inF]); // [rows, in]
    for (const [e, off, n] of this.groups(r)) {
      const g = this.experts[e];
      const dye = be.rows(dy, off, n);
      be.addInPlace(be.rows(grad, e * outF, outF), g.wgrad(dye));
      g.release();
      this.host.copyInto(be.rows(dx, off, n), g.dgrad(dye, be.rows(w, e * outF, outF)));
    }
    this.routing = null;
    return dx;
  }

  exportState(expert: number): GemmState {
    return this.experts[expert].exportState();
  }

  importState(expert: number, state: GemmState): void {
    this.experts[expert].importState(state);
  }
}
