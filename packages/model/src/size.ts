// What a config costs before anything is allocated: its parameter count (the same count as the built model's
// ParameterStore, checked by size.test.ts) and an estimate of the device memory a training step needs, so that a
// config that cannot fit is refused before training with the estimate and the free memory side by side.

import type { Config, ModelConfig, RecipeName } from "./config.js";

/** Parameters of one attention block (MLA or MHA) with its two norms. */
function blockAttentionParams(m: ModelConfig): number {
  const C = m.dModel;
  const H = m.nHeads;
  const a = m.attention;
  if (a.kind === "mha") return 4 * C * H * a.headDim + 2 * C;
  const q = a.qLoraRank > 0
    ? C * a.qLoraRank + a.qLoraRank + a.qLoraRank * H * (a.qkNopeHeadDim + a.qkRopeHeadDim)
    : C * H * (a.qkNopeHeadDim + a.qkRopeHeadDim);
  const kv = C * (a.kvLoraRank + a.qkRopeHeadDim) + a.kvLoraRank + a.kvLoraRank * H * (a.qkNopeHeadDim + a.vHeadDim);
  return q + kv + H * a.vHeadDim * C + 2 * C;
}

function ffnParams(m: ModelConfig, kind: "dense" | "moe"): number {
  const C = m.dModel;
  if (kind === "dense") return 3 * C * m.ffnHidden;
  const e = m.moe;
  return e.nRoutedExperts * C + 3 * C * e.nSharedExperts * e.expertHidden + e.nRoutedExperts * 3 * C * e.expertHidden;
}

export interface ParameterCount {
  total: number;
  /** Parameters a token passes through (topK routed experts of each MoE block, the MTP modules' included), embedding excluded. */
  activePerToken: number;
  embedding: number;
  mtp: number;
}

/** The parameters of a model config, as Transformer builds them (embedding, blocks, norm, head, MTP modules). */
export function parameterCount(m: ModelConfig): ParameterCount {
  const C = m.dModel;
  const V = m.vocabSize;
  const moeLayers = m.nLayers - m.nDenseLayers;
  const attn = blockAttentionParams(m);
  const blocks = m.nDenseLayers * (attn + ffnParams(m, "dense")) + moeLayers * (attn + ffnParams(m, "moe"));
  const lastKind = moeLayers > 0 ? "moe" : "dense";
  const mtp = m.mtp.depth * (attn + ffnParams(m, lastKind) + 2 * C + 2 * C * C);
  const embedding = V * C;
  const total = embedding + blocks + C + V * C + mtp;
  const e = m.moe;
  const mtpMoe = lastKind === "moe" ? m.mtp.depth : 0;
  const inactive = (moeLayers + mtpMoe) * (e.nRoutedExperts - e.topK) * 3 * C * e.expertHidden;
  return { total, activePerToken: total - embedding - inactive, embedding, mtp };
}

export interface MemoryEstimate {
  bytes: number;
  parts: { weights: number; gradients: number; optimizer: number; fp8Weights: number; activations: number; logits: number };
}

/**
 * Device bytes of one training step of `config` under `recipe`, from the tensors the CUDA backend keeps:
 * FP32 master weights and gradients, the AdamW moments (BF16 or FP32), FP8 copies of the weights (fp8 recipes:
 * the operand and its transpose), the activations saved for the backward of every block (the main model's and
 * the MTP modules'), and the head's logits with their gradient in FP32. An estimate: it leaves out workspaces and
 * the allocator's rounding, which the 10% margin covers.
 */
export function trainingMemoryEstimate(config: Config, recipe: RecipeName): MemoryEstimate {
  const m = config.model;
  const P = parameterCount(m).total;
  const tokens = config.train.batchSize * m.seqLen;
  const C = m.dModel;
  const H = m.nHeads;
  const a = m.attention;
  const [qk, v] = a.kind === "mha" ? [a.headDim, a.headDim] : [a.qkNopeHeadDim + a.qkRopeHeadDim, a.vHeadDim];
  const lowRank = a.kind === "mla" ? a.qLoraRank + a.kvLoraRank + a.qkRopeHeadDim : 0;
  // Per token of one block, FP32 elements kept for the backward: the input and its two normed copies, the
  // low-rank latents, q, k, v, the attention output, its log-sum-exp, and the FFN's.
  const attnKept = 3 * C + lowRank + H * (2 * qk + 2 * v) + H;
  const e = m.moe;
  const denseKept = 3 * m.ffnHidden + C;
  const moeKept = e.nRoutedExperts + 2 * e.topK + e.topK * (C + 3 * e.expertHidden + C) + 3 * e.nSharedExperts * e.expertHidden + C;
  const moeLayers = m.nLayers - m.nDenseLayers;
  const blocksKept = m.nDenseLayers * (attnKept + denseKept) + (moeLayers + m.mtp.depth) * (attnKept + (moeLayers > 0 ? moeKept : denseKept));
  const activations = 4 * tokens * (blocksKept + (m.mtp.depth + 1) * 2 * C);
  const parts = {
    weights: 4 * P,
    gradients: 4 * P,
    optimizer: (config.train.bf16Moments ? 4 : 8) * P,
    fp8Weights: recipe.startsWith("fp8") ? 2 * P : recipe === "bf16" ? 2 * P : 0,
    activations,
    logits: 2 * 4 * tokens * m.vocabSize,
  };
  const sum = Object.values(parts).reduce((x, y) => x + y, 0);
  return { bytes: Math.ceil(sum * 1.1), parts };
}

const GiB = 2 ** 30;

/**
 * A RangeError when `config` under `recipe` cannot fit `freeBytes` of device memory: the estimate, its largest
 * parts and the free memory, side by side (before training starts, not as an out-of-memory error mid-step).
 */
export function checkFitsDevice(config: Config, recipe: RecipeName, freeBytes: number, totalBytes = freeBytes): void {
  const e = trainingMemoryEstimate(config, recipe);
  if (e.bytes <= freeBytes) return;
  const parts = Object.entries(e.parts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / GiB).toFixed(2)}`).join(", ");
  throw new RangeError(
    `config ${config.name} (${recipe}, ${config.train.batchSize} × ${config.model.seqLen} tokens a step) needs about ` +
      `${(e.bytes / GiB).toFixed(1)} GiB of device memory (GiB: ${parts}; +10% margin), and the GPU has ` +
      `${(freeBytes / GiB).toFixed(1)} GiB free of ${(totalBytes / GiB).toFixed(1)}: lower train.batchSize or model.seqLen`,
  );
}

/**
 * Model FLOPs of one training step (issue 14's utilisation figure): 6 · active parameters · tokens (forward and
 * backward of every weight a token passes through, MTP included, the embedding lookup excluded) plus causal
 * attention, 3 × its forward B·H·T²·(qk + v) per attention block (QKᵀ and PV, each 2·T²·d/2 under the causal
 * mask; the backward counted as twice the forward).
 */
export function modelFlopsPerStep(config: Config): number {
  const m = config.model;
  const tokens = config.train.batchSize * m.seqLen;
  const a = m.attention;
  const [qk, v] = a.kind === "mha" ? [a.headDim, a.headDim] : [a.qkNopeHeadDim + a.qkRopeHeadDim, a.vHeadDim];
  const attentionBlocks = m.nLayers + m.mtp.depth;
  const attention = 3 * attentionBlocks * config.train.batchSize * m.nHeads * m.seqLen * m.seqLen * (qk + v);
  return 6 * parameterCount(m).activePerToken * tokens + attention;
}
