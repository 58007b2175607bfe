// Scaling recipes for FP8 training: which format and which scaling each GEMM operand of a linear layer gets.
//
// A linear layer y = x · Wᵀ has three GEMMs (Transformer Engine's and DeepSeek-V3's names):
//   Fprop: y  = x  · Wᵀ     operands: input x [T, in],      weight W [out, in]
//   Dgrad: dx = dy · W      operands: gradOutput dy [T, out], weight W (contracted over out)
//   Wgrad: dW = dyᵀ · x     operands: gradOutput dy, input x (both contracted over the T tokens)
// A recipe names, per operand, the FP8 format and the scaling: current (just-in-time, from this tensor's
// own amax, per tensor / row / block) or delayed (from an amax history, per tensor, as TE's DelayedScaling).
// Recipes are plain serializable objects; `validateRecipe` turns anything else into a readable error.

import { z } from "zod";
import { type Fp8Format, encodeFp8, fp8Info } from "./formats.js";
import { type Quantized, type ScaleKind, type Shape2, scaleFromAmax } from "./quantize.js";
import { quantize } from "./backend.js";

const formatSchema = z.enum(["e4m3", "e5m2"]);
const positiveInt = z.number().int().positive();

const granularitySchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("tensor") }).strict(),
  z.object({ kind: z.literal("row") }).strict(),
  z.object({ kind: z.literal("block"), block: z.tuple([positiveInt, positiveInt]) }).strict(),
]);

const operandSchema = z
  .object({
    format: formatSchema,
    granularity: granularitySchema,
    scale: z.enum(["fp32", "pow2"]).default("fp32"),
  })
  .strict();

const delayedSchema = z
  .object({
    amaxHistoryLength: z.number().int().min(1).max(1 << 16),
    amaxReduction: z.enum(["max", "most_recent"]),
    /** The scale leaves 2^margin of headroom above the history's amax. */
    margin: z.number().int().min(0).max(32).default(0),
  })
  .strict();

const recipeSchema = z
  .object({
    name: z.string().min(1),
    scaling: z.enum(["current", "delayed"]),
    fprop: z.object({ input: operandSchema, weight: operandSchema }).strict(),
    dgrad: z.object({ gradOutput: operandSchema, weight: operandSchema }).strict(),
    wgrad: z.object({ gradOutput: operandSchema, input: operandSchema }).strict(),
    promoteEvery: positiveInt.default(128),
    delayed: delayedSchema.optional(),
  })
  .strict()
  .superRefine((recipe, ctx) => {
    if (recipe.scaling === "delayed") {
      if (!recipe.delayed) ctx.addIssue({ code: "custom", path: ["delayed"], message: "delayed scaling needs { amaxHistoryLength, amaxReduction }" });
      for (const gemm of ["fprop", "dgrad", "wgrad"] as const) {
        for (const [operand, spec] of Object.entries(recipe[gemm])) {
          if (spec.granularity.kind !== "tensor") {
            ctx.addIssue({ code: "custom", path: [gemm, operand, "granularity"], message: "delayed scaling is per tensor (granularity { kind: \"tensor\" })" });
          }
        }
      }
    } else if (recipe.delayed) {
      ctx.addIssue({ code: "custom", path: ["delayed"], message: "only a recipe with scaling \"delayed\" takes a delayed block" });
    }
  });

export type Granularity = z.infer<typeof granularitySchema>;
export type OperandScaling = z.infer<typeof operandSchema>;
export type ScalingRecipe = z.infer<typeof recipeSchema>;
export type ScalingRecipeInput = z.input<typeof recipeSchema>;
export type DelayedScalingConfig = z.infer<typeof delayedSchema>;

/** Validate a recipe (e.g. parsed from JSON); throws a RangeError listing every problem with its path. */
export function validateRecipe(input: unknown): ScalingRecipe {
  const parsed = recipeSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".") || "(recipe)"}: ${issue.message}`);
    throw new RangeError(`invalid scaling recipe: ${problems.join("; ")}`);
  }
  return parsed.data;
}

const tile1x128 = { kind: "block", block: [1, 128] } as const;
const block128x128 = { kind: "block", block: [128, 128] } as const;
const perTensor = { kind: "tensor" } as const;

function fineGrained(gradFormat: Fp8Format, name: string): ScalingRecipe {
  return validateRecipe({
    name,
    scaling: "current",
    // Activations and gradients in 1x128 tiles along the contracted dimension, weights in 128x128 blocks.
    // Wgrad contracts over tokens: its operands are quantized as 1x128 tiles of their transposes
    // ([128, 1] tiles of the untransposed activations), which is why the backward pass needs both layouts.
    fprop: { input: { format: "e4m3", granularity: tile1x128 }, weight: { format: "e4m3", granularity: block128x128 } },
    dgrad: { gradOutput: { format: gradFormat, granularity: tile1x128 }, weight: { format: "e4m3", granularity: block128x128 } },
    wgrad: { gradOutput: { format: gradFormat, granularity: tile1x128 }, input: { format: "e4m3", granularity: tile1x128 } },
    promoteEvery: 128,
  });
}

/** The recipes a user starts from. */
export const RECIPES = {
  /** DeepSeek-V3: E4M3 everywhere, fine-grained current scaling, FP32 promotion every 128. */
  deepseekV3: fineGrained("e4m3", "deepseek-v3"),
  /** E4M3 forward, E5M2 gradients, with DeepSeek-V3's fine-grained blocks. */
  hybrid: fineGrained("e5m2", "hybrid"),
  /** Transformer Engine's classic DelayedScaling: per-tensor, amax history 1024, max, HYBRID formats. */
  delayed: validateRecipe({
    name: "delayed",
    scaling: "delayed",
    fprop: { input: { format: "e4m3", granularity: perTensor }, weight: { format: "e4m3", granularity: perTensor } },
    dgrad: { gradOutput: { format: "e5m2", granularity: perTensor }, weight: { format: "e4m3", granularity: perTensor } },
    wgrad: { gradOutput: { format: "e5m2", granularity: perTensor }, input: { format: "e4m3", granularity: perTensor } },
    promoteEvery: 128,
    delayed: { amaxHistoryLength: 1024, amaxReduction: "max", margin: 0 },
  }),
} as const satisfies Record<string, ScalingRecipe>;

/** The quantization block that a granularity means for a tensor of this shape. */
export function blockFor(granularity: Granularity, shape: Shape2): [number, number] {
  switch (granularity.kind) {
    case "tensor":
      return [shape[0], shape[1]];
    case "row":
      return [1, shape[1]];
    case "block":
      return [granularity.block[0], granularity.block[1]];
  }
}

/** Current (just-in-time) scaling: quantize x with the operand's format and granularity. */
export function quantizeCurrent(x: Float32Array, shape: Shape2, operand: OperandScaling): Quantized {
  return quantize(x, shape, { block: blockFor(operand.granularity, shape), format: operand.format, scale: operand.scale });
}

/**
 * Delayed scaling for one tensor: the scale comes from the amax of earlier steps (reduced over a history
 * window), so the quantization does not wait for this tensor's own amax; this step's amax joins the history
 * afterwards. Values beyond the stale range saturate to ±max (as Transformer Engine's casts do); `overflows`
 * counts them. The first call, with an empty history, scales from its own amax.
 */
export class DelayedScaler {
  private readonly history: Float32Array;
  private recorded = 0;
  private next = 0;

  constructor(
    readonly format: Fp8Format,
    readonly config: DelayedScalingConfig,
    readonly scaleKind: ScaleKind = "fp32",
  ) {
    const parsed = delayedSchema.safeParse(config);
    if (!parsed.success) throw new RangeError(`DelayedScaler: invalid config: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    fp8Info(format);
    this.history = new Float32Array(config.amaxHistoryLength);
  }

  /** The amax the next quantization will scale from, or null before any step. */
  referenceAmax(): number | null {
    if (this.recorded === 0) return null;
    if (this.config.amaxReduction === "most_recent") return this.history[(this.next - 1 + this.history.length) % this.history.length];
    let max = 0;
    for (let i = 0; i < Math.min(this.recorded, this.history.length); i++) if (this.history[i] > max) max = this.history[i];
    return max;
  }

  quantize(x: Float32Array, shape: Shape2): Quantized & { amax: number; overflows: number } {
    const info = fp8Info(this.format);
    let amax = 0;
    for (let i = 0; i < x.length; i++) {
      const a = Math.abs(x[i]);
      if (!(a <= 3.4028234663852886e38)) throw new RangeError(`DelayedScaler.quantize: non-finite input ${x[i]} at flat index ${i}`);
      if (a > amax) amax = a;
    }
    const reference = this.referenceAmax() ?? amax;
    const scale = Math.fround(scaleFromAmax(reference, this.format, this.scaleKind) * 2 ** this.config.margin);
    const inverse = Math.fround(1 / scale);
    // Saturate to ±max, then the same non-saturating cast as everywhere else.
    const scaled = new Float32Array(x.length);
    let overflows = 0;
    for (let i = 0; i < x.length; i++) {
      let v = Math.fround(x[i] * inverse);
      if (v > info.max) { v = info.max; overflows++; } else if (v < -info.max) { v = -info.max; overflows++; }
      scaled[i] = v;
    }
    const codes = encodeFp8(scaled, this.format);
    this.history[this.next] = amax;
    this.next = (this.next + 1) % this.history.length;
    this.recorded++;
    return { data: codes, scales: Float32Array.of(scale), shape: [shape[0], shape[1]], block: [shape[0], shape[1]], format: this.format, amax, overflows };
  }

  /** History as a plain array, oldest first (for checkpoints). */
  exportState(): { history: number[]; recorded: number } {
    const n = Math.min(this.recorded, this.history.length);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.history[(this.next - n + i + this.history.length) % this.history.length]);
    return { history: out, recorded: this.recorded };
  }

  importState(state: { history: number[]; recorded: number }): void {
    if (!Array.isArray(state?.history) || state.history.length > this.history.length || !Number.isInteger(state.recorded) || state.recorded < state.history.length) {
      throw new RangeError(`DelayedScaler.importState: expected at most ${this.history.length} history entries and recorded ≥ their count`);
    }
    this.history.fill(0);
    state.history.forEach((v, i) => (this.history[i] = v));
    this.next = state.history.length % this.history.length;
    this.recorded = state.recorded;
  }
}
