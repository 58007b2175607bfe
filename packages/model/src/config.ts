// Model and training configuration: one zod schema (strict: unknown keys are rejected), named presets,
// and the checks that depend on the recipe (FP8 block alignment). Every failure is a RangeError whose
// message lists each problem with its path, before any training starts.
//
// This module is also the package's entry point `@octet/model/config`, for programs that validate configs
// and job specs without training (the job queue's contract, the orchestrator): it depends on zod and
// @octet/schedules only, never on the model, its kernels, the router or MTP.

import { type StepSchedule, stepScheduleSchema } from "@octet/schedules";
import { z } from "zod";

export const RECIPE_NAMES = ["fp32", "bf16", "fp8", "fp8-delayed"] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().min(0);

const mhaSchema = z
  .object({
    kind: z.literal("mha"),
    headDim: posInt,
  })
  .strict();

/** Multi-head latent attention (DeepSeek-V2/V3): low-rank compressed queries and keys/values, decoupled RoPE. */
const mlaSchema = z
  .object({
    kind: z.literal("mla"),
    /** Rank of the compressed query; 0 projects queries directly (DeepSeek-V2-Lite). */
    qLoraRank: nonNegInt,
    kvLoraRank: posInt,
    qkNopeHeadDim: posInt,
    qkRopeHeadDim: posInt,
    vHeadDim: posInt,
  })
  .strict();

const moeSchema = z
  .object({
    nRoutedExperts: posInt,
    nSharedExperts: nonNegInt,
    /** Hidden size of each (fine-grained) expert, routed and shared. */
    expertHidden: posInt,
    topK: posInt,
    nGroup: posInt,
    topkGroup: posInt,
    routedScalingFactor: z.number().positive().finite(),
    normTopkProb: z.boolean(),
    /** γ of the auxiliary-loss-free balancer (bias update speed). */
    biasUpdateSpeed: z.number().min(0).finite(),
  })
  .strict();

export const modelSchema = z
  .object({
    vocabSize: posInt,
    seqLen: posInt,
    dModel: posInt,
    nLayers: posInt,
    /** The first nDenseLayers blocks use a dense SwiGLU; the rest are DeepSeekMoE. */
    nDenseLayers: nonNegInt,
    nHeads: posInt,
    attention: z.discriminatedUnion("kind", [mhaSchema, mlaSchema]),
    ffnHidden: posInt,
    moe: moeSchema,
    normEps: z.number().positive().finite(),
    ropeTheta: z.number().positive().finite(),
    initStd: z.number().positive().finite(),
    /** DeepSeek-V3's activation-memory savings: recompute in the backward pass instead of keeping. */
    recompute: z.object({ rmsnorm: z.boolean(), mlaUp: z.boolean() }).strict(),
    /**
     * Multi-token prediction (DeepSeek-V3 §2.2, @octet/mtp): D sequential modules after the main model,
     * each a projection and one transformer block of the kind of the last main block, sharing the
     * embedding and the output head. depth 0: off. DeepSeek-V3 uses depth 1.
     */
    mtp: z.object({ depth: nonNegInt }).strict().default({ depth: 0 }),
  })
  .strict();

export const trainSchema = z
  .object({
    batchSize: posInt,
    steps: posInt,
    lr: z.number().positive().finite(),
    minLr: z.number().min(0).finite(),
    warmupSteps: nonNegInt,
    schedule: z.enum(["cosine", "wsd"]),
    /** WSD: the fraction of steps at the end spent decaying to minLr. */
    decayFraction: z.number().gt(0).max(1),
    weightDecay: z.number().min(0).finite(),
    beta1: z.number().min(0).lt(1),
    beta2: z.number().min(0).lt(1),
    eps: z.number().positive().finite(),
    gradClip: z.number().min(0).finite(),
    /** Keep AdamW's moments in BF16 (DeepSeek-V3); master weights and gradients stay FP32. */
    bf16Moments: z.boolean(),
    evalEvery: posInt,
    evalBatches: posInt,
    /**
     * λ of the MTP loss, L = L_main + (λ/D)·Σ_k L_k (ignored when model.mtp.depth is 0): a number, or a
     * schedule ({ kind: "piecewise", points: [[0, 0.3], [step, 0.1]] }, DeepSeek-V3's 0.3 then 0.1).
     * Absent: DeepSeek-V3's schedule, switching at the same fraction of training (10T of 14.8T tokens).
     */
    mtpLambda: stepScheduleSchema().optional(),
  })
  .strict();

/**
 * What a run trains on (loadDataset reads it). A job spec's `data` is validated by this same schema and
 * replaces the config's. Relative paths are relative to the working directory of the process that trains.
 */
export const dataSchema = z.discriminatedUnion("kind", [
  /** The embedded synthetic Markov corpus with a known entropy rate, generated from `seed`. */
  z.object({ kind: z.literal("synthetic"), seed: nonNegInt.default(1) }).strict(),
  /** A UTF-8 text file as byte-level tokens (model.vocabSize must be 256); the last valFraction is validation. */
  z.object({ kind: z.literal("text"), path: z.string().min(1), valFraction: z.number().gt(0).lt(1).default(0.1) }).strict(),
  /** llm.c / nanoGPT uint16 token shards (llm.c header, version 1): one train shard and one val shard. */
  z.object({ kind: z.literal("llmc"), train: z.string().min(1), val: z.string().min(1) }).strict(),
]);

/** The vocabulary of text data: its tokens are the bytes of its UTF-8 encoding. */
export const TEXT_VOCAB_SIZE = 256;

export const configSchema = z
  .object({
    name: z.string().min(1),
    model: modelSchema,
    train: trainSchema,
    data: dataSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    const m = c.model;
    const moe = m.moe;
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    if (m.nDenseLayers > m.nLayers) issue(["model", "nDenseLayers"], `must not exceed nLayers (${m.nLayers})`);
    if (moe.nRoutedExperts % moe.nGroup !== 0) {
      issue(["model", "moe", "nGroup"], `nRoutedExperts (${moe.nRoutedExperts}) must be divisible by nGroup (${moe.nGroup})`);
    } else if (moe.nGroup > 1 && moe.nRoutedExperts / moe.nGroup < 2) {
      issue(["model", "moe", "nGroup"], "group-limited routing needs at least 2 experts per group");
    }
    if (moe.topkGroup > moe.nGroup) issue(["model", "moe", "topkGroup"], `must not exceed nGroup (${moe.nGroup})`);
    if (moe.nRoutedExperts % moe.nGroup === 0 && moe.topK > (moe.nRoutedExperts / moe.nGroup) * moe.topkGroup) {
      issue(["model", "moe", "topK"], `must not exceed the experts in topkGroup groups (${(moe.nRoutedExperts / moe.nGroup) * moe.topkGroup})`);
    }
    const a = m.attention;
    if (a.kind === "mha" && a.headDim % 2 !== 0) issue(["model", "attention", "headDim"], "must be even (RoPE rotates pairs)");
    if (a.kind === "mla" && a.qkRopeHeadDim % 2 !== 0) issue(["model", "attention", "qkRopeHeadDim"], "must be even (RoPE rotates pairs)");
    if (c.train.minLr > c.train.lr) issue(["train", "minLr"], `must not exceed lr (${c.train.lr})`);
    if (c.data.kind === "text" && m.vocabSize !== TEXT_VOCAB_SIZE) {
      issue(["model", "vocabSize"], `must be ${TEXT_VOCAB_SIZE} for data of kind "text" (byte-level tokens), got ${m.vocabSize}`);
    }
    if (m.mtp.depth > 0 && m.seqLen <= m.mtp.depth) {
      issue(["model", "mtp", "depth"], `must be less than seqLen (${m.seqLen}): depth k scores positions i + k + 1 inside the window`);
    }
  });

export type ModelConfig = z.infer<typeof modelSchema>;
export type TrainConfig = z.infer<typeof trainSchema>;
export type DataConfig = z.infer<typeof dataSchema>;
/** A `data` value as written in a config file or job spec (defaults not yet filled in). */
export type DataConfigInput = z.input<typeof dataSchema>;
export type Config = z.infer<typeof configSchema>;

/** DeepSeek-V3 switches λ from 0.3 to 0.1 after 10T of its 14.8T training tokens. */
export const MTP_LAMBDA_SWITCH_FRACTION = 10 / 14.8;

/** The λ schedule a config trains with: its own, or DeepSeek-V3's scaled to its steps. */
export function mtpLambdaSchedule(train: TrainConfig): StepSchedule {
  if (train.mtpLambda !== undefined) return train.mtpLambda as StepSchedule;
  const switchStep = Math.max(1, Math.round(train.steps * MTP_LAMBDA_SWITCH_FRACTION));
  return { kind: "piecewise", points: [[0, 0.3], [switchStep, 0.1]] };
}

function formatIssues(what: string, issues: z.ZodIssue[]): string {
  return `${what}: ${issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`;
}

/** The FP8 block (128): dimensions contracted in the bulk of the GEMMs must be multiples of it. */
export const FP8_BLOCK = 128;

/**
 * Validate a configuration for a recipe. Under the fp8 recipes the model dimension and the FFN / expert
 * hidden sizes must be multiples of 128: they are the contracted dimensions of every FFN GEMM and of the
 * attention output projection's Dgrad, and DeepSeek-V3's 1x128 tiles and 128x128 blocks assume whole
 * blocks there. Other dimensions (attention ranks, head sizes, expert token counts) use edge tiles: the
 * last tile covers only what is present and gets its own scale, which is exact with FP32 promotion.
 */
export function validateConfig(input: unknown, recipe?: RecipeName): Config {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) throw new RangeError(formatIssues("invalid config", parsed.error.issues));
  const c = parsed.data;
  if (recipe !== undefined && !RECIPE_NAMES.includes(recipe)) {
    throw new RangeError(`unknown recipe ${JSON.stringify(recipe)}; expected one of ${RECIPE_NAMES.join(", ")}`);
  }
  if (recipe === "fp8" || recipe === "fp8-delayed") {
    const problems: string[] = [];
    const need = (path: string, v: number) => {
      if (v % FP8_BLOCK !== 0) problems.push(`${path}: ${v} is not a multiple of ${FP8_BLOCK} (the FP8 quantization block) as the ${recipe} recipe requires`);
    };
    need("model.dModel", c.model.dModel);
    if (c.model.nDenseLayers > 0) need("model.ffnHidden", c.model.ffnHidden);
    if (c.model.nDenseLayers < c.model.nLayers) need("model.moe.expertHidden", c.model.moe.expertHidden);
    if (problems.length) throw new RangeError(`invalid config for recipe ${recipe}: ${problems.join("; ")}`);
  }
  return c;
}

const tinyModel: ModelConfig = {
  vocabSize: 256,
  seqLen: 64,
  dModel: 128,
  nLayers: 3,
  nDenseLayers: 1,
  nHeads: 4,
  attention: { kind: "mla", qLoraRank: 96, kvLoraRank: 64, qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 },
  ffnHidden: 384,
  moe: {
    nRoutedExperts: 8,
    nSharedExperts: 1,
    expertHidden: 128,
    topK: 2,
    nGroup: 4,
    topkGroup: 2,
    routedScalingFactor: 1,
    normTopkProb: true,
    biasUpdateSpeed: 0.001,
  },
  normEps: 1e-6,
  ropeTheta: 10000,
  initStd: 0.02,
  recompute: { rmsnorm: true, mlaUp: true },
  mtp: { depth: 1 },
};

const tinyTrain: TrainConfig = {
  batchSize: 16,
  steps: 300,
  lr: 3e-3,
  minLr: 3e-4,
  warmupSteps: 30,
  schedule: "cosine",
  decayFraction: 0.2,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1,
  bf16Moments: true,
  evalEvery: 50,
  evalBatches: 16,
  mtpLambda: { kind: "piecewise", points: [[0, 0.3], [200, 0.1]] }, // DeepSeek-V3's 0.3 → 0.1 at 2/3 of training
};

/** Named presets. `tiny` trains on this 2-core CPU in minutes; `micro` is for tests; `gpu-small` is for one GPU. */
export const PRESETS: Record<string, Config> = {
  tiny: { name: "tiny", model: tinyModel, train: tinyTrain, data: { kind: "synthetic", seed: 1 } },
  micro: {
    name: "micro",
    model: {
      ...tinyModel,
      vocabSize: 64,
      seqLen: 32,
      nLayers: 2,
      ffnHidden: 128,
      attention: { kind: "mla", qLoraRank: 48, kvLoraRank: 32, qkNopeHeadDim: 16, qkRopeHeadDim: 8, vHeadDim: 16 },
    },
    train: {
      ...tinyTrain, batchSize: 4, steps: 40, warmupSteps: 4, evalEvery: 20, evalBatches: 2,
      mtpLambda: { kind: "piecewise", points: [[0, 0.3], [27, 0.1]] },
    },
    data: { kind: "synthetic", seed: 1 },
  },
  // The GPU-speed preset (issue 14), exactly these values so that outside measurements compare: 2.52 B parameters,
  // 0.44 B active per token (embedding not counted), 16,384 tokens a step; DeepSeek-V2-Lite's expert proportions
  // and DeepSeek-V3's routing.
  "gpu-small": {
    name: "gpu-small",
    model: {
      vocabSize: 32768,
      seqLen: 2048,
      dModel: 2048,
      nLayers: 4,
      nDenseLayers: 1,
      nHeads: 16,
      attention: { kind: "mla", qLoraRank: 768, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 },
      ffnHidden: 5632,
      moe: {
        nRoutedExperts: 64,
        nSharedExperts: 2,
        expertHidden: 1408,
        topK: 6,
        nGroup: 8,
        topkGroup: 4,
        routedScalingFactor: 1,
        normTopkProb: true,
        biasUpdateSpeed: 0.001,
      },
      normEps: 1e-6,
      ropeTheta: 10000,
      initStd: 0.02,
      recompute: { rmsnorm: true, mlaUp: true },
      mtp: { depth: 1 },
    },
    train: {
      ...tinyTrain,
      batchSize: 8,
      steps: 1000,
      lr: 3e-4,
      minLr: 3e-5,
      warmupSteps: 100,
      weightDecay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      gradClip: 1,
      bf16Moments: true,
      evalEvery: 100,
      evalBatches: 8,
      mtpLambda: { kind: "piecewise", points: [[0, 0.3], [667, 0.1]] },
    },
    data: { kind: "synthetic", seed: 1 },
  },
};

export function presetConfig(name: string): Config {
  const preset = PRESETS[name];
  if (!preset) throw new RangeError(`unknown config ${JSON.stringify(name)}; presets: ${Object.keys(PRESETS).join(", ")}`);
  return structuredClone(preset);
}

export { checkFitsDevice, modelFlopsPerStep, parameterCount, trainingMemoryEstimate, type MemoryEstimate, type ParameterCount } from "./size.js";
