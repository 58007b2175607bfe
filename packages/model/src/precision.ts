// Recipes: how a Linear layer's three GEMMs are computed.
//   Fprop: y  [T,out] = x  [T,in]  · W [out,in]ᵀ
//   Dgrad: dx [T,in]  = dy [T,out] · (Wᵀ [in,out])ᵀ
//   Wgrad: dW [out,in] = dyᵀ [out,T] · (xᵀ [in,T])ᵀ
// The GEMM kernel is always a·bᵀ with K contiguous in both operands, so each operand is laid out (and, under
// FP8, quantized) in the layout it is contracted in: the tokens contracted in Wgrad mean 1x128 tiles of the
// transposes. What Wgrad needs from the forward pass (the "saved input") is kept in the recipe's format:
// FP32 for fp32, BF16 for bf16, FP8 (xᵀ, 1x128 tiles) for the fp8 recipes — DeepSeek-V3 caches the
// activations for Wgrad in FP8.
//
//   fp32         reference: FP32 operands, FP32 accumulation
//   bf16         operands rounded to BF16, FP32 accumulation
//   fp8          DeepSeek-V3: E4M3, 1x128 activation/gradient tiles, 128x128 weight blocks, FP32 promotion
//                every 128 (RECIPES.deepseekV3 of @octet/numerics)
//   fp8-delayed  Transformer Engine's per-tensor delayed scaling from an amax history (RECIPES.delayed)

import { DelayedScaler, RECIPES, type OperandScaling, type ScalingRecipe, blockFor } from "@octet/numerics";
import type { Backend, GemmState, GroupedGemms, QuantizedTensor, TensorHandle } from "./backend/backend.js";
import type { RecipeName } from "./config.js";

/** One Linear's GEMMs under a recipe (with its own scaler state under delayed scaling); tensors [rows, features]. */
export interface LinearGemms {
  /** y [T,out] = x [T,in] · Wᵀ; keeps what Wgrad will need unless save is false (the caller then calls saveInput later). */
  fprop(x: TensorHandle, w: TensorHandle, save?: boolean): TensorHandle;
  /** False when a second fprop would change state (delayed scaling records amax history): no recomputation. */
  readonly canRecompute: boolean;
  /** dx [T,in] from dy [T,out] and W [out,in]. */
  dgrad(dy: TensorHandle, w: TensorHandle): TensorHandle;
  /** dW [out,in] from dy [T,out] and the saved input. */
  wgrad(dy: TensorHandle): TensorHandle;
  /** Replace the saved input by this one (for recomputation in the backward pass). */
  saveInput(x: TensorHandle): void;
  release(): void;
  exportState(): GemmState;
  importState(state: GemmState): void;
}

export interface Precision {
  readonly name: RecipeName;
  /** The @octet/numerics scaling recipe behind an fp8 recipe (null for fp32/bf16). */
  readonly scaling: ScalingRecipe | null;
  forLinear(name: string): LinearGemms;
  /** The GEMMs of a MoE layer's experts of one kind, as one grouped op (the backend's). */
  forExperts(names: readonly string[]): GroupedGemms;
}

export function makePrecision(name: RecipeName, backend: Backend): Precision {
  const make = (scaling: ScalingRecipe | null, forLinear: () => LinearGemms): Precision => ({
    name,
    scaling,
    forLinear,
    forExperts(names) {
      return backend.groupedGemms(this, names);
    },
  });
  switch (name) {
    case "fp32":
      return make(null, () => new Fp32Gemms(backend));
    case "bf16":
      return make(null, () => new Bf16Gemms(backend));
    case "fp8":
      return make(RECIPES.deepseekV3, () => new CurrentScalingGemms(backend, RECIPES.deepseekV3));
    case "fp8-delayed":
      return make(RECIPES.delayed, () => new DelayedScalingGemms(backend, RECIPES.delayed));
  }
}

class Fp32Gemms implements LinearGemms {
  readonly canRecompute = true;
  private saved: TensorHandle | null = null; // xᵀ [in, T]
  constructor(private readonly be: Backend) {}
  fprop(x: TensorHandle, w: TensorHandle, save = true) {
    if (save) this.saveInput(x);
    return this.be.matmul(x, w);
  }
  dgrad(dy: TensorHandle, w: TensorHandle) {
    return this.be.matmul(dy, this.be.transpose(w));
  }
  wgrad(dy: TensorHandle) {
    return this.be.matmul(this.be.transpose(dy), this.saved!);
  }
  saveInput(x: TensorHandle) {
    this.saved = this.be.transpose(x);
  }
  release() {
    this.saved = null;
  }
  exportState() {
    return {};
  }
  importState() {}
}

class Bf16Gemms implements LinearGemms {
  readonly canRecompute = true;
  private saved: TensorHandle | null = null; // bf16 xᵀ [in, T]
  private w16: TensorHandle | null = null; // bf16 W [out, in] from the last fprop (weights fixed until the optimizer step)
  private dy16: TensorHandle | null = null; // bf16 dy [T, out] from wgrad, for dgrad
  constructor(private readonly be: Backend) {}
  fprop(x: TensorHandle, w: TensorHandle, save = true) {
    if (save) this.saveInput(x);
    this.w16 = this.be.toBf16(w);
    return this.be.matmulBf16(this.be.toBf16(x), this.w16);
  }
  dgrad(dy: TensorHandle, w: TensorHandle) {
    // Rounding commutes with transposition: bf16(Wᵀ) = bf16(W)ᵀ, so the forward pass's bf16 W serves.
    const wT = this.w16 ? this.be.transpose(this.w16) : this.be.toBf16(this.be.transpose(w)); // [in, out]
    const dy16 = this.dy16 ?? this.be.toBf16(dy);
    this.w16 = this.dy16 = null;
    return this.be.matmulBf16(dy16, wT);
  }
  wgrad(dy: TensorHandle) {
    this.dy16 = this.be.toBf16(dy); // [T, out], Dgrad's operand too
    return this.be.matmulBf16(this.be.transpose(this.dy16), this.saved!);
  }
  saveInput(x: TensorHandle) {
    this.saved = this.be.transpose(this.be.toBf16(x));
  }
  release() {
    this.saved = null;
  }
  exportState() {
    return {};
  }
  importState() {}
}

/** Two operands quantized the same way: FP8 format, scale kind and granularity. */
function sameScaling(a: OperandScaling, b: OperandScaling): boolean {
  return a.format === b.format && a.scale === b.scale && JSON.stringify(a.granularity) === JSON.stringify(b.granularity);
}

function isTile1x128(op: OperandScaling): boolean {
  return op.granularity.kind === "block" && op.granularity.block[0] === 1 && op.granularity.block[1] === 128;
}

/** [rows, cols] of a Linear operand. */
function dims(x: TensorHandle): [number, number] {
  return [x.shape[0], x.shape[1]];
}

/**
 * Current (just-in-time) scaling with the recipe's formats and granularities (DeepSeek-V3's fine-grained).
 * Under DeepSeek-V3's recipe each activation and gradient is read once for both of its layouts (x for
 * Fprop and xᵀ for Wgrad, dy for Dgrad and dyᵀ for Wgrad: quantizeTiles), and Dgrad's Wᵀ in 128x128
 * blocks is the forward pass's quantized W transposed — the same blocks, so the same scales and codes.
 */
class CurrentScalingGemms implements LinearGemms {
  readonly canRecompute = true;
  private saved: QuantizedTensor | null = null; // FP8 xᵀ [in, T], the recipe's wgrad.input granularity
  private qw: QuantizedTensor | null = null; // W [out, in] from the last fprop (weights fixed until the optimizer step)
  private qdy: QuantizedTensor | null = null; // dy [T, out] from wgrad, for dgrad
  private readonly inputBoth: boolean;
  private readonly gradBoth: boolean;
  private readonly weightT: boolean;
  constructor(
    private readonly be: Backend,
    private readonly recipe: ScalingRecipe,
  ) {
    const r = recipe;
    this.inputBoth = isTile1x128(r.fprop.input) && sameScaling(r.fprop.input, r.wgrad.input);
    this.gradBoth = isTile1x128(r.dgrad.gradOutput) && sameScaling(r.dgrad.gradOutput, r.wgrad.gradOutput);
    const wg = r.fprop.weight.granularity;
    this.weightT = sameScaling(r.fprop.weight, r.dgrad.weight) && wg.kind === "block" && wg.block[0] === wg.block[1];
  }
  private q(x: TensorHandle, op: OperandScaling): QuantizedTensor {
    return this.be.quantize(x, blockFor(op.granularity, dims(x)), op.format, op.scale);
  }
  fprop(x: TensorHandle, w: TensorHandle, save = true) {
    const r = this.recipe.fprop;
    let qx: QuantizedTensor;
    if (save && this.inputBoth) {
      const both = this.be.quantizeTiles(x, r.input.format, r.input.scale);
      qx = both.q; // [T, in]
      this.saved = both.qT; // [in, T]
    } else {
      if (save) this.saveInput(x);
      qx = this.q(x, r.input);
    }
    const qw = this.q(w, r.weight);
    this.qw = this.weightT ? qw : null;
    return this.be.scaledMatmul(qx, qw, this.recipe.promoteEvery);
  }
  dgrad(dy: TensorHandle, w: TensorHandle) {
    const r = this.recipe.dgrad;
    const qwT = this.qw ? this.be.transposeQuantized(this.qw) : this.q(this.be.transpose(w), r.weight); // [in, out]
    const qdy = this.qdy ?? this.q(dy, r.gradOutput);
    this.qw = this.qdy = null;
    return this.be.scaledMatmul(qdy, qwT, this.recipe.promoteEvery);
  }
  wgrad(dy: TensorHandle) {
    const r = this.recipe.wgrad;
    let qdyT: QuantizedTensor;
    if (this.gradBoth) {
      const both = this.be.quantizeTiles(dy, r.gradOutput.format, r.gradOutput.scale);
      this.qdy = both.q; // [T, out], Dgrad's operand
      qdyT = both.qT; // [out, T]
    } else {
      qdyT = this.q(this.be.transpose(dy), r.gradOutput);
    }
    return this.be.scaledMatmul(qdyT, this.saved!, this.recipe.promoteEvery);
  }
  saveInput(x: TensorHandle) {
    this.saved = this.inputBoth
      ? this.be.transposeQuantized(this.q(x, { ...this.recipe.wgrad.input, granularity: { kind: "block", block: [128, 1] } }))
      : this.q(this.be.transpose(x), this.recipe.wgrad.input);
  }
  release() {
    this.saved = null;
  }
  exportState() {
    return {};
  }
  importState() {}
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Per-tensor delayed scaling: one amax history per operand of each GEMM (six per Linear). */
class DelayedScalingGemms implements LinearGemms {
  readonly canRecompute = false;
  private saved: QuantizedTensor | null = null;
  private readonly scalers: Record<string, DelayedScaler>;
  constructor(
    private readonly be: Backend,
    private readonly recipe: ScalingRecipe,
  ) {
    const cfg = recipe.delayed!;
    const mk = (op: OperandScaling) => new DelayedScaler(op.format, cfg, op.scale);
    this.scalers = {
      "fprop.input": mk(recipe.fprop.input),
      "fprop.weight": mk(recipe.fprop.weight),
      "dgrad.gradOutput": mk(recipe.dgrad.gradOutput),
      "dgrad.weight": mk(recipe.dgrad.weight),
      "wgrad.gradOutput": mk(recipe.wgrad.gradOutput),
      "wgrad.input": mk(recipe.wgrad.input),
    };
  }
  private gemm(a: QuantizedTensor, b: QuantizedTensor): TensorHandle {
    // One scale per tensor: any promotion interval that divides K is the same arithmetic.
    return this.be.scaledMatmul(a, b, gcd(a.shape[1], this.recipe.promoteEvery));
  }
  private q(x: TensorHandle, op: string): QuantizedTensor {
    return this.be.quantizeDelayed(x, this.scalers[op]);
  }
  fprop(x: TensorHandle, w: TensorHandle, save = true) {
    if (save) this.saveInput(x);
    return this.gemm(this.q(x, "fprop.input"), this.q(w, "fprop.weight"));
  }
  dgrad(dy: TensorHandle, w: TensorHandle) {
    const wT = this.be.transpose(w);
    return this.gemm(this.q(dy, "dgrad.gradOutput"), this.q(wT, "dgrad.weight"));
  }
  wgrad(dy: TensorHandle) {
    const dyT = this.be.transpose(dy);
    return this.gemm(this.q(dyT, "wgrad.gradOutput"), this.saved!);
  }
  saveInput(x: TensorHandle) {
    this.saved = this.q(this.be.transpose(x), "wgrad.input");
  }
  release() {
    this.saved = null;
  }
  exportState() {
    const out: GemmState = {};
    for (const [k, s] of Object.entries(this.scalers)) out[k] = s.exportState();
    return out;
  }
  importState(state: GemmState) {
    for (const [k, s] of Object.entries(this.scalers)) if (state[k]) s.importState(state[k]);
  }
}
