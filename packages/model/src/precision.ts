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

import { DelayedScaler, RECIPES, type OperandScaling, type Quantized, type ScalingRecipe, blockFor } from "@octet/numerics";
import type { Backend } from "./backend/backend.js";
import type { RecipeName } from "./config.js";


/** One Linear's GEMMs under a recipe (with its own scaler state under delayed scaling). */
export interface LinearGemms {
  /** y [T,out]; keeps what Wgrad will need unless save is false (the caller then calls saveInput later). */
  fprop(x: Float32Array, w: Float32Array, T: number, inF: number, outF: number, save?: boolean): Float32Array;
  /** False when a second fprop would change state (delayed scaling records amax history): no recomputation. */
  readonly canRecompute: boolean;
  /** dx [T,in]. */
  dgrad(dy: Float32Array, w: Float32Array, T: number, inF: number, outF: number): Float32Array;
  /** dW [out,in] from dy and the saved input. */
  wgrad(dy: Float32Array, T: number, inF: number, outF: number): Float32Array;
  /** Replace the saved input by this one (for recomputation in the backward pass). */
  saveInput(x: Float32Array, T: number, inF: number): void;
  release(): void;
  exportState(): Record<string, { history: number[]; recorded: number }>;
  importState(state: Record<string, { history: number[]; recorded: number }>): void;
}

export interface Precision {
  readonly name: RecipeName;
  /** The @octet/numerics scaling recipe behind an fp8 recipe (null for fp32/bf16). */
  readonly scaling: ScalingRecipe | null;
  forLinear(name: string): LinearGemms;
}

export function makePrecision(name: RecipeName, backend: Backend): Precision {
  switch (name) {
    case "fp32":
      return { name, scaling: null, forLinear: () => new Fp32Gemms(backend) };
    case "bf16":
      return { name, scaling: null, forLinear: () => new Bf16Gemms(backend) };
    case "fp8":
      return { name, scaling: RECIPES.deepseekV3, forLinear: () => new CurrentScalingGemms(backend, RECIPES.deepseekV3) };
    case "fp8-delayed":
      return { name, scaling: RECIPES.delayed, forLinear: () => new DelayedScalingGemms(backend, RECIPES.delayed) };
  }
}

class Fp32Gemms implements LinearGemms {
  readonly canRecompute = true;
  private saved: Float32Array | null = null; // xᵀ [in, T]
  constructor(private readonly be: Backend) {}
  fprop(x: Float32Array, w: Float32Array, T: number, inF: number, outF: number, save = true) {
    if (save) this.saveInput(x, T, inF);
    return this.be.matmul(x, w, T, outF, inF);
  }
  dgrad(dy: Float32Array, w: Float32Array, T: number, inF: number, outF: number) {
    return this.be.matmul(dy, this.be.transpose(w, outF, inF), T, inF, outF);
  }
  wgrad(dy: Float32Array, T: number, inF: number, outF: number) {
    return this.be.matmul(this.be.transpose(dy, T, outF), this.saved!, outF, inF, T);
  }
  saveInput(x: Float32Array, T: number, inF: number) {
    this.saved = this.be.transpose(x, T, inF);
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
  private saved: Uint16Array | null = null; // bf16 xᵀ [in, T]
  private w16: Uint16Array | null = null; // bf16 W [out, in] from the last fprop (weights fixed until the optimizer step)
  private dy16: Uint16Array | null = null; // bf16 dy [T, out] from wgrad, for dgrad
  constructor(private readonly be: Backend) {}
  fprop(x: Float32Array, w: Float32Array, T: number, inF: number, outF: number, save = true) {
    if (save) this.saveInput(x, T, inF);
    this.w16 = this.be.toBf16(w);
    return this.be.matmulBf16(this.be.toBf16(x), this.w16, T, outF, inF);
  }
  dgrad(dy: Float32Array, w: Float32Array, T: number, inF: number, outF: number) {
    // Rounding commutes with transposition: bf16(Wᵀ) = bf16(W)ᵀ, so the forward pass's bf16 W serves.
    const wT = this.w16 ? this.be.transpose(this.w16, outF, inF) : this.be.toBf16(this.be.transpose(w, outF, inF)); // [in, out]
    const dy16 = this.dy16 ?? this.be.toBf16(dy);
    this.w16 = this.dy16 = null;
    return this.be.matmulBf16(dy16, wT, T, inF, outF);
  }
  wgrad(dy: Float32Array, T: number, inF: number, outF: number) {
    this.dy16 = this.be.toBf16(dy); // [T, out], Dgrad's operand too
    return this.be.matmulBf16(this.be.transpose(this.dy16, T, outF), this.saved!, outF, inF, T);
  }
  saveInput(x: Float32Array, T: number, inF: number) {
    this.saved = this.be.transpose(this.be.toBf16(x), T, inF);
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

/**
 * Current (just-in-time) scaling with the recipe's formats and granularities (DeepSeek-V3's fine-grained).
 * Under DeepSeek-V3's recipe each activation and gradient is read once for both of its layouts (x for
 * Fprop and xᵀ for Wgrad, dy for Dgrad and dyᵀ for Wgrad: quantizeTiles), and Dgrad's Wᵀ in 128x128
 * blocks is the forward pass's quantized W transposed — the same blocks, so the same scales and codes.
 */
class CurrentScalingGemms implements LinearGemms {
  readonly canRecompute = true;
  private saved: Quantized | null = null; // FP8 xᵀ [in, T], the recipe's wgrad.input granularity
  private qw: Quantized | null = null; // W [out, in] from the last fprop (weights fixed until the optimizer step)
  private qdy: Quantized | null = null; // dy [T, out] from wgrad, for dgrad
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
  private q(x: Float32Array, rows: number, cols: number, op: OperandScaling): Quantized {
    return this.be.quantize(x, rows, cols, blockFor(op.granularity, [rows, cols]), op.format, op.scale);
  }
  fprop(x: Float32Array, w: Float32Array, T: number, inF: number, outF: number, save = true) {
    const r = this.recipe.fprop;
    let qx: Quantized;
    if (save && this.inputBoth) {
      const both = this.be.quantizeTiles(x, T, inF, r.input.format, r.input.scale);
      qx = both.q; // [T, in]
      this.saved = both.qT; // [in, T]
    } else {
      if (save) this.saveInput(x, T, inF);
      qx = this.q(x, T, inF, r.input);
    }
    const qw = this.q(w, outF, inF, r.weight);
    this.qw = this.weightT ? qw : null;
    return this.be.scaledMatmul(qx, qw, this.recipe.promoteEvery);
  }
  dgrad(dy: Float32Array, w: Float32Array, T: number, inF: number, outF: number) {
    const r = this.recipe.dgrad;
    const qwT = this.qw ? this.be.transposeQuantized(this.qw) : this.q(this.be.transpose(w, outF, inF), inF, outF, r.weight); // [in, out]
    const qdy = this.qdy ?? this.q(dy, T, outF, r.gradOutput);
    this.qw = this.qdy = null;
    return this.be.scaledMatmul(qdy, qwT, this.recipe.promoteEvery);
  }
  wgrad(dy: Float32Array, T: number, inF: number, outF: number) {
    const r = this.recipe.wgrad;
    let qdyT: Quantized;
    if (this.gradBoth) {
      const both = this.be.quantizeTiles(dy, T, outF, r.gradOutput.format, r.gradOutput.scale);
      this.qdy = both.q; // [T, out], Dgrad's operand
      qdyT = both.qT; // [out, T]
    } else {
      qdyT = this.q(this.be.transpose(dy, T, outF), outF, T, r.gradOutput);
    }
    return this.be.scaledMatmul(qdyT, this.saved!, this.recipe.promoteEvery);
  }
  saveInput(x: Float32Array, T: number, inF: number) {
    this.saved = this.inputBoth
      ? this.be.transposeQuantized(this.q(x, T, inF, { ...this.recipe.wgrad.input, granularity: { kind: "block", block: [128, 1] } }))
      : this.q(this.be.transpose(x, T, inF), inF, T, this.recipe.wgrad.input);
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
  private saved: Quantized | null = null;
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
  private gemm(a: Quantized, b: Quantized): Float32Array {
    // One scale per tensor: any promotion interval that divides K is the same arithmetic.
    return this.be.scaledMatmul(a, b, gcd(a.shape[1], this.recipe.promoteEvery));
  }
  fprop(x: Float32Array, w: Float32Array, T: number, inF: number, outF: number, save = true) {
    if (save) this.saveInput(x, T, inF);
    return this.gemm(this.scalers["fprop.input"].quantize(x, [T, inF]), this.scalers["fprop.weight"].quantize(w, [outF, inF]));
  }
  dgrad(dy: Float32Array, w: Float32Array, T: number, inF: number, outF: number) {
    const wT = this.be.transpose(w, outF, inF);
    return this.gemm(this.scalers["dgrad.gradOutput"].quantize(dy, [T, outF]), this.scalers["dgrad.weight"].quantize(wT, [inF, outF]));
  }
  wgrad(dy: Float32Array, T: number, inF: number, outF: number) {
    const dyT = this.be.transpose(dy, T, outF);
    return this.gemm(this.scalers["wgrad.gradOutput"].quantize(dyT, [outF, T]), this.saved!);
  }
  saveInput(x: Float32Array, T: number, inF: number) {
    this.saved = this.scalers["wgrad.input"].quantize(this.be.transpose(x, T, inF), [inF, T]);
  }
  release() {
    this.saved = null;
  }
  exportState() {
    const out: Record<string, { history: number[]; recorded: number }> = {};
    for (const [k, s] of Object.entries(this.scalers)) out[k] = s.exportState();
    return out;
  }
  importState(state: Record<string, { history: number[]; recorded: number }>) {
    for (const [k, s] of Object.entries(this.scalers)) if (state[k]) s.importState(state[k]);
  }
}
