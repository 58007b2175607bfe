// The MoE experts' GEMMs on the GPU as one grouped op per GEMM, with the expert offsets read on the device
// (cuda/grouped.h): nothing waits for the host between the router and the experts, so a step needs no
// device → host synchronization for its MoE layers. Per recipe, each expert's GEMMs are CpuBackend's per-expert
// ones (precision.ts) within the accumulation model:
//   fp32         FP32 operands;
//   bf16         operands rounded to BF16 (x, W, dy), FP32 accumulation;
//   fp8          DeepSeek-V3's current scaling: x and dy in 1x128 tiles along the features (rows are tiles, so
//                the grouping does not change them), W in 128x128 blocks (the stacked experts' blocks are each
//                expert's own when out is a multiple of 128), and Wgrad's xᵀ and dyᵀ in 1x128 tiles along each
//                expert's own tokens (octet_grouped_fake_quant_token_tiles). The FP8 values (codes · scales) are
//                multiplied in FP32: the recipe's products, summed in another order.
// Delayed scaling (an amax history per expert, on the host) and FP8 weights whose blocks would straddle two
// experts keep the per-expert loop (grouped.ts), which reads the offsets on the host.

import type { Fp8Format, ScaleKind, ScalingRecipe } from "@octet/numerics";
import type { ModelKernels } from "../cuda/kernels.js";
import type { Precision } from "../precision.js";
import type { GemmState, GroupedGemms, Routing, TensorHandle } from "./backend.js";
import type { CudaTensor } from "./cuda-tensor.js";
import { mat } from "./grouped.js";

/** What the grouped GEMMs need of the CUDA backend. */
export interface DeviceGroupedHost {
  readonly k: ModelKernels;
  readonly stream: bigint;
  p(t: CudaTensor): bigint | null;
  alloc(shape: readonly number[]): CudaTensor;
  f32(x: TensorHandle, what: string): CudaTensor;
  /** The routing's expert offsets, I32 [E + 1] on the device. */
  offsets(r: Routing, what: string): CudaTensor;
  /** FP32 values rounded to BF16 (nearest even), as FP32. */
  roundBf16(x: CudaTensor): CudaTensor;
  /** FP32 values quantized in `block`s (DeepSeek-V3's scale) and dequantized: codes · scale, as FP32. */
  fakeQuant(x: CudaTensor, block: readonly [number, number], format: Fp8Format, scale: ScaleKind): CudaTensor;
}

type Mode = { kind: "fp32" } | { kind: "bf16" } | { kind: "fp8"; recipe: ScalingRecipe };

/** The recipes the device-offset path serves (the others keep the per-expert loop). */
export function deviceGroupedMode(precision: Precision): Mode | null {
  if (precision.name === "fp32") return { kind: "fp32" };
  if (precision.name === "bf16") return { kind: "bf16" };
  const r = precision.scaling;
  if (!r || r.scaling !== "current") return null;
  const tile = (g: { kind: string; block?: readonly number[] }) => g.kind === "block" && g.block?.[0] === 1 && g.block?.[1] === 128;
  const block = (g: { kind: string; block?: readonly number[] }) => g.kind === "block" && g.block?.[0] === 128 && g.block?.[1] === 128;
  const ok = tile(r.fprop.input.granularity) && tile(r.dgrad.gradOutput.granularity) && tile(r.wgrad.gradOutput.granularity) &&
    tile(r.wgrad.input.granularity) && block(r.fprop.weight.granularity) && block(r.dgrad.weight.granularity) &&
    r.fprop.weight.format === r.dgrad.weight.format && r.fprop.weight.scale === r.dgrad.weight.scale;
  return ok ? { kind: "fp8", recipe: r } : null;
}

const FMT = { e4m3: 0, e5m2: 1 } as const;

export class DeviceGroupedGemms implements GroupedGemms {
  readonly canRecompute = true;
  private offsets: CudaTensor | null = null;
  private saved: CudaTensor | null = null; // x [rows, in] in the recipe's Wgrad format (FP32 values)
  private wq: CudaTensor | null = null; // W [E·out, in] in the recipe's weight format, from the last fprop

  constructor(private readonly host: DeviceGroupedHost, private readonly mode: Mode, private readonly experts: number) {}

  /** Whether the device path can take weights [E·out, in] (fp8: each expert's 128x128 blocks its own). */
  static takes(mode: Mode, experts: number, w: TensorHandle): boolean {
    const [stacked] = w.shape;
    return mode.kind !== "fp8" || (stacked / experts) % 128 === 0;
  }

  private dims(w: TensorHandle, what: string): { out: number; inF: number } {
    const [stacked, inF] = mat(w, what);
    if (stacked % this.experts !== 0) throw new RangeError(`${what}: ${stacked} weight rows are not ${this.experts} experts' stack`);
    return { out: stacked / this.experts, inF };
  }

  /** The operand a GEMM reads: FP32, BF16-rounded, or FP8 values of `op` (fp8). */
  private rowsOperand(x: CudaTensor, op: "input" | "gradOutput"): CudaTensor {
    const h = this.host;
    if (this.mode.kind === "fp32") return x;
    if (this.mode.kind === "bf16") return h.roundBf16(x);
    const s = op === "input" ? this.mode.recipe.fprop.input : this.mode.recipe.dgrad.gradOutput;
    return h.fakeQuant(x, [1, 128], s.format, s.scale);
  }

  private weight(w: CudaTensor): CudaTensor {
    const h = this.host;
    if (this.mode.kind === "fp32") return w;
    if (this.mode.kind === "bf16") return h.roundBf16(w);
    const s = this.mode.recipe.fprop.weight;
    return h.fakeQuant(w, [128, 128], s.format, s.scale);
  }

  /** Wgrad's operand: FP32, BF16-rounded, or 1x128 tiles of its transpose along each expert's tokens. */
  private tokenOperand(x: CudaTensor, op: "input" | "gradOutput"): CudaTensor {
    const h = this.host;
    if (this.mode.kind === "fp32") return x;
    if (this.mode.kind === "bf16") return h.roundBf16(x);
    const s = op === "input" ? this.mode.recipe.wgrad.input : this.mode.recipe.wgrad.gradOutput;
    const [rows, cols] = x.shape;
    const out = h.alloc([rows, cols]);
    if (x.size > 0) {
      h.k.groupedFakeQuantTokenTiles(h.p(x), h.p(out), h.p(this.offsets!), this.experts, rows, cols, FMT[s.format], s.scale === "pow2" ? 1 : 0, h.stream);
    }
    return out;
  }

  fprop(xH: TensorHandle, wH: TensorHandle, routing: Routing, save = true): TensorHandle {
    const h = this.host;
    const x = h.f32(xH, "groupedGemms.fprop: x");
    const w = h.f32(wH, "groupedGemms.fprop: w");
    const [rows, inF] = mat(x, "groupedGemms.fprop: x");
    const { out, inF: wIn } = this.dims(w, "groupedGemms.fprop: w");
    if (wIn !== inF) throw new RangeError(`groupedGemms.fprop: x has ${inF} columns, the experts' weights ${wIn}`);
    this.offsets = h.offsets(routing, "groupedGemms.fprop");
    if (save) this.saveInput(x, routing);
    this.wq = this.weight(w);
    const y = h.alloc([rows, out]); // [rows, out]
    if (rows > 0) h.k.groupedGemmRows(h.p(this.rowsOperand(x, "input")), h.p(this.wq), h.p(y), h.p(this.offsets), this.experts, rows, out, inF, 1, h.stream);
    return y;
  }

  saveInput(xH: TensorHandle, routing: Routing): void {
    this.offsets = this.host.offsets(routing, "groupedGemms.saveInput");
    this.saved = this.tokenOperand(this.host.f32(xH, "groupedGemms.saveInput: x"), "input");
  }

  backward(dyH: TensorHandle, wH: TensorHandle, gradH: TensorHandle): TensorHandle {
    const h = this.host;
    if (!this.saved || !this.offsets) throw new Error("groupedGemms.backward needs a fprop first");
    const dy = h.f32(dyH, "groupedGemms.backward: dy");
    const w = h.f32(wH, "groupedGemms.backward: w");
    const grad = h.f32(gradH, "groupedGemms.backward: grad");
    const [rows, out] = mat(dy, "groupedGemms.backward: dy");
    const { out: wOut, inF } = this.dims(w, "groupedGemms.backward: w");
    if (wOut !== out) throw new RangeError(`groupedGemms.backward: dy has ${out} columns, the experts' weights ${wOut} rows each`);
    if (grad.size !== w.size) throw new RangeError(`groupedGemms.backward: grad [${grad.shape.join(", ")}] is not w's [${w.shape.join(", ")}]`);
    // Wgrad: grad_e += dy_eᵀ · x_e (each expert's dW added into its block, as the CPU's addInPlace).
    h.k.groupedGemmWgrad(rows > 0 ? h.p(this.tokenOperand(dy, "gradOutput")) : null, rows > 0 ? h.p(this.saved) : null, h.p(grad), h.p(this.offsets), this.experts, rows, out, inF, 1, h.stream);
    // Dgrad: dx_e = dy_e · W_e (W_e [out, in] is the [K, N] operand: no transpose).
    const wq = this.wq ?? this.weight(w);
    const dx = h.alloc([rows, inF]); // [rows, in]
    if (rows > 0) h.k.groupedGemmRows(h.p(this.rowsOperand(dy, "gradOutput")), h.p(wq), h.p(dx), h.p(this.offsets), this.experts, rows, inF, out, 0, h.stream);
    this.saved = this.wq = this.offsets = null;
    return dx;
  }

  exportState(): GemmState {
    return {};
  }

  importState(): void {}
}
