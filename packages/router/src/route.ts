// DeepSeek-V3's gate (node-limited, bias-corrected top-K routing) and its backward pass.
//
// Behaviour matched: Hugging Face transformers' `DeepseekV3TopkRouter.forward` as of transformers 5.17
// (checked against that version's own output in route.golden.test.ts; golden/generate.py regenerates it):
//
//   scores            = sigmoid(logits)                                   (float32)
//   scores_for_choice = scores + e_score_correction_bias
//   group_scores      = scores_for_choice.view(T, n_group, E/n_group).topk(2).values.sum(-1)
//   group_idx         = topk(group_scores, topk_group)
//   scores_for_choice = scores_for_choice.masked_fill(~group_mask, -inf)
//   topk_indices      = topk(scores_for_choice, top_k)
//   topk_weights      = scores.gather(topk_indices)
//   if norm_topk_prob: topk_weights /= topk_weights.sum(-1) + 1e-20
//   topk_weights     *= routed_scaling_factor
//
// Details that matter for matching it exactly:
// - Experts of groups that were not selected are masked with -inf, so every pick comes from the
//   `topkGroup` selected groups, even when biases push every eligible score below 0. (transformers 4.x
//   filled them with 0.0 instead, which let a masked expert beat an eligible one with a negative score;
//   5.x changed that, and the golden case "negative_bias_masking" pins the difference.)
// - Ties are broken lowest index first, everywhere (within a group's top-2, between groups, between
//   experts). torch.topk on CPU behaves this way in
//   practice but does not promise it; we promise it.
// - Arithmetic is float32 where torch's is: s + bias, the sum of a group's two best, the sum of the
//   top-K weights (summed left to right, best first), the + 1e-20, the division and the scaling are
//   each rounded to float32 with Math.fround. The sigmoid itself is computed in float64 and rounded
//   once, so it is correctly rounded in almost all cases; torch's vectorised float32 exp may differ
//   from it by one ulp. Given equal scores, the choice is exact.
// - `indices` are returned best first (by biased score, ties lowest index). HF uses sorted=False, whose
//   order is unspecified, so compare with HF as sets per token (the weights follow their indices).
// - With nGroup = 1 (or topkGroup = nGroup) group limiting is a no-op and this is plain top-K.
// - scoreFunction "softmax" (DeepSeek-V2 style) replaces the sigmoid by a softmax over the experts
//   of each token; the rest is unchanged.

import {
  requireFloat32Array,
  requireLength,
  requirePositiveInteger,
  requireFiniteNumber,
  requireNoNaN,
} from "./validate.js";
import { sigmoidF32 } from "./sigmoid.js";
import { nativeRouteKernel } from "./native.js";

export type ScoreFunction = "sigmoid" | "softmax";

export interface RouteOptions {
  /** Number of tokens T (rows of `logits`). */
  tokens: number;
  /** Number of routed experts E (columns of `logits`). */
  experts: number;
  /** Experts chosen per token. */
  topK: number;
  /** Expert groups (DeepSeek-V3: one per node). Must divide `experts`. */
  nGroup: number;
  /** Groups eligible per token (node-limited routing). */
  topkGroup: number;
  /** Per-expert correction bias, used only for the choice (length E). */
  bias: Float32Array;
  /** Normalize the chosen weights to sum to 1 before scaling. */
  normTopkProb: boolean;
  /** Multiplies the (normalized) weights. */
  routedScalingFactor: number;
  /** Affinity function; DeepSeek-V3 uses "sigmoid" (the default). */
  scoreFunction?: ScoreFunction;
}

export interface RouteResult {
  /** [tokens, topK] chosen experts, best first. */
  indices: Int32Array;
  /** [tokens, topK] combine weights of the chosen experts. */
  weights: Float32Array;
  /** [tokens, experts] unbiased affinities s = sigmoid(logits) (or softmax). */
  scores: Float32Array;
}

/** Validated numbers derived from RouteOptions, shared by the fast path and the reference. */
export interface RouteShape {
  tokens: number;
  experts: number;
  topK: number;
  nGroup: number;
  topkGroup: number;
  groupSize: number;
  /** Whether some groups are excluded per token (false when nGroup = 1 or topkGroup = nGroup). */
  limitsGroups: boolean;
  scoreFunction: ScoreFunction;
  routedScalingFactor: number;
}

export function validateRouteOptions(logits: Float32Array, opts: RouteOptions): RouteShape {
  requireFloat32Array("logits", logits);
  if (opts === null || typeof opts !== "object") throw new TypeError("options must be an object");
  const tokens = requirePositiveInteger("tokens", opts.tokens);
  const experts = requirePositiveInteger("experts", opts.experts);
  const topK = requirePositiveInteger("topK", opts.topK);
  const nGroup = requirePositiveInteger("nGroup", opts.nGroup);
  const topkGroup = requirePositiveInteger("topkGroup", opts.topkGroup);
  requireLength("logits", logits.length, tokens * experts, `[tokens=${tokens}, experts=${experts}]`);
  if (experts % nGroup !== 0) {
    throw new RangeError(`experts (${experts}) must be divisible by nGroup (${nGroup})`);
  }
  if (topkGroup > nGroup) throw new RangeError(`topkGroup (${topkGroup}) must not exceed nGroup (${nGroup})`);
  const groupSize = experts / nGroup;
  const eligible = topkGroup * groupSize;
  if (topK > eligible) {
    throw new RangeError(
      `topK (${topK}) is larger than the eligible experts (topkGroup ${topkGroup} × ${groupSize} per group = ${eligible})`,
    );
  }
  const limitsGroups = nGroup > 1 && topkGroup < nGroup;
  // HF scores a group by its two best experts (topk(2)), which fails for groups of one expert.
  if (limitsGroups && groupSize < 2) {
    throw new RangeError(`group-limited routing needs at least 2 experts per group, got ${groupSize}`);
  }
  requireFloat32Array("bias", opts.bias);
  requireLength("bias", opts.bias.length, experts, `[experts=${experts}]`);
  requireNoNaN("bias", opts.bias, false);
  if (typeof opts.normTopkProb !== "boolean") throw new TypeError("normTopkProb must be a boolean");
  const routedScalingFactor = requireFiniteNumber("routedScalingFactor", opts.routedScalingFactor);
  const scoreFunction = opts.scoreFunction ?? "sigmoid";
  if (scoreFunction !== "sigmoid" && scoreFunction !== "softmax") {
    throw new RangeError(`scoreFunction must be "sigmoid" or "softmax", got ${String(scoreFunction)}`);
  }
  return { tokens, experts, topK, nGroup, topkGroup, groupSize, limitsGroups, scoreFunction, routedScalingFactor };
}

/** Reusable per-call scratch so that the per-token loop allocates nothing. */
class RouteScratch {
  readonly choice: Float32Array;
  readonly groupScore: Float64Array;
  readonly groupEligible: Uint8Array;
  readonly bestValue: Float64Array;
  readonly bestIndex: Int32Array;
  constructor(experts: number, nGroup: number, topK: number) {
    this.choice = new Float32Array(experts);
    this.groupScore = new Float64Array(nGroup);
    this.groupEligible = new Uint8Array(nGroup);
    this.bestValue = new Float64Array(topK);
    this.bestIndex = new Int32Array(topK);
  }
}

/**
 * Routes each token to `topK` experts (DeepSeek-V3 gate). See the file comment for the exact
 * semantics. `out`, when given, is filled instead of allocating new arrays (it must have the right
 * lengths).
 */
export function routeTokens(logits: Float32Array, opts: RouteOptions, out?: RouteResult): RouteResult {
  const shape = validateRouteOptions(logits, opts);
  const { tokens, experts, topK } = shape;
  const result = out ?? {
    indices: new Int32Array(tokens * topK),
    weights: new Float32Array(tokens * topK),
    scores: new Float32Array(tokens * experts),
  };
  if (out) {
    requireLength("out.indices", out.indices.length, tokens * topK, "[tokens, topK]");
    requireLength("out.weights", out.weights.length, tokens * topK, "[tokens, topK]");
    requireLength("out.scores", out.scores.length, tokens * experts, "[tokens, experts]");
  }
  // Native kernel (native/route.cc), bit for bit this file's sigmoid path; the TypeScript below stays the
  // specification and the fallback (no addon, OCTET_ROUTER_BACKEND=typescript, softmax).
  const kernel = shape.scoreFunction === "sigmoid" ? nativeRouteKernel() : null;
  if (kernel) {
    const firstNaN = kernel.routeSigmoid(
      logits, tokens, experts, topK, shape.nGroup, shape.topkGroup, opts.bias, opts.normTopkProb,
      shape.routedScalingFactor, result.indices, result.weights, result.scores,
    );
    if (firstNaN >= 0) throw new RangeError(`logits[${Math.floor(firstNaN / experts)}, ${firstNaN % experts}] is NaN`);
    return result;
  }
  const scratch = new RouteScratch(experts, shape.nGroup, topK);
  const scaling = Math.fround(shape.routedScalingFactor);
  for (let t = 0; t < tokens; t++) {
    const rowBase = t * experts;
    if (shape.scoreFunction === "sigmoid") {
      scoreRowSigmoid(logits, result.scores, rowBase, t, opts.bias, shape, scratch);
    } else {
      scoreRowSoftmax(logits, result.scores, rowBase, t, opts.bias, shape, scratch);
    }
    if (shape.limitsGroups) selectGroups(shape, scratch);
    selectExperts(shape, scratch);
    writeWeights(result, t, rowBase, topK, opts.normTopkProb, scaling, scratch);
  }
  return result;
}

/** s = sigmoid(z), choice = fround(s + bias), and each group's top-2 sum, in one pass over the row. */
function scoreRowSigmoid(
  logits: Float32Array,
  scores: Float32Array,
  rowBase: number,
  token: number,
  bias: Float32Array,
  shape: RouteShape,
  scratch: RouteScratch,
): void {
  const { choice, groupScore } = scratch;
  const { nGroup, groupSize } = shape;
  for (let g = 0; g < nGroup; g++) {
    let first = -Infinity;
    let second = -Infinity;
    const start = g * groupSize;
    const end = start + groupSize;
    for (let e = start; e < end; e++) {
      const z = logits[rowBase + e];
      if (z !== z) throw new RangeError(`logits[${token}, ${e}] is NaN`);
      const s = sigmoidF32(z);
      scores[rowBase + e] = s;
      const c = Math.fround(s + bias[e]);
      choice[e] = c;
      if (c > first) {
        second = first;
        first = c;
      } else if (c > second) {
        second = c;
      }
    }
    groupScore[g] = Math.fround(first + second);
  }
}

function scoreRowSoftmax(
  logits: Float32Array,
  scores: Float32Array,
  rowBase: number,
  token: number,
  bias: Float32Array,
  shape: RouteShape,
  scratch: RouteScratch,
): void {
  const { experts, nGroup, groupSize } = shape;
  let max = -Infinity;
  for (let e = 0; e < experts; e++) {
    const z = logits[rowBase + e];
    if (z !== z) throw new RangeError(`logits[${token}, ${e}] is NaN`);
    if (z > max) max = z;
  }
  if (max === Infinity || max === -Infinity) {
    throw new RangeError(`logits row ${token} has max ${max}; softmax is undefined`);
  }
  let sum = 0;
  for (let e = 0; e < experts; e++) sum += Math.exp(logits[rowBase + e] - max);
  const { choice, groupScore } = scratch;
  for (let g = 0; g < nGroup; g++) {
    let first = -Infinity;
    let second = -Infinity;
    for (let e = g * groupSize; e < (g + 1) * groupSize; e++) {
      const s = Math.fround(Math.exp(logits[rowBase + e] - max) / sum);
      scores[rowBase + e] = s;
      const c = Math.fround(s + bias[e]);
      choice[e] = c;
      if (c > first) {
        second = first;
        first = c;
      } else if (c > second) {
        second = c;
      }
    }
    groupScore[g] = Math.fround(first + second);
  }
}

/** Marks the `topkGroup` best groups eligible (ties: lower group index wins). */
function selectGroups(shape: RouteShape, scratch: RouteScratch): void {
  const { groupScore, groupEligible } = scratch;
  const { nGroup, topkGroup } = shape;
  groupEligible.fill(0);
  for (let picked = 0; picked < topkGroup; picked++) {
    let best = -1;
    let bestScore = -Infinity;
    for (let g = 0; g < nGroup; g++) {
      // Strict ">" keeps the lowest index among equal scores; the "best < 0" arm admits -Infinity.
      if (groupEligible[g] === 0 && (groupScore[g] > bestScore || best < 0)) {
        best = g;
        bestScore = groupScore[g];
      }
    }
    groupEligible[best] = 1;
  }
}

/**
 * Partial selection of the topK best (choice, index) pairs: a sorted insertion list of length topK,
 * where most candidates are rejected by one comparison against the current worst.
 */
function selectExperts(shape: RouteShape, scratch: RouteScratch): void {
  const { choice, groupEligible, bestValue, bestIndex } = scratch;
  const { nGroup, groupSize, topK, limitsGroups } = shape;
  let filled = 0;
  for (let g = 0; g < nGroup; g++) {
    if (limitsGroups && groupEligible[g] === 0) continue;
    const end = (g + 1) * groupSize;
    // Experts arrive in increasing index order, so a strict ">" keeps lower indices ahead on ties.
    for (let e = g * groupSize; e < end; e++) {
      const c = choice[e];
      if (filled < topK) {
        let j = filled++;
        while (j > 0 && bestValue[j - 1] < c) {
          bestValue[j] = bestValue[j - 1];
          bestIndex[j] = bestIndex[j - 1];
          j--;
        }
        bestValue[j] = c;
        bestIndex[j] = e;
      } else if (c > bestValue[topK - 1]) {
        let j = topK - 1;
        while (j > 0 && bestValue[j - 1] < c) {
          bestValue[j] = bestValue[j - 1];
          bestIndex[j] = bestIndex[j - 1];
          j--;
        }
        bestValue[j] = c;
        bestIndex[j] = e;
      }
    }
  }
}

function writeWeights(
  result: RouteResult,
  token: number,
  rowBase: number,
  topK: number,
  normTopkProb: boolean,
  scaling: number,
  scratch: RouteScratch,
): void {
  const { bestIndex } = scratch;
  const outBase = token * topK;
  let sum = 0;
  for (let k = 0; k < topK; k++) {
    const expert = bestIndex[k];
    result.indices[outBase + k] = expert;
    const w = result.scores[rowBase + expert];
    result.weights[outBase + k] = w;
    sum = Math.fround(sum + w);
  }
  const denominator = normTopkProb ? Math.fround(sum + 1e-20) : 1;
  for (let k = 0; k < topK; k++) {
    let w = result.weights[outBase + k];
    if (normTopkProb) w = Math.fround(w / denominator);
    result.weights[outBase + k] = Math.fround(w * scaling);
  }
}

export interface RouteBackwardOptions {
  tokens: number;
  experts: number;
  topK: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
  scoreFunction?: ScoreFunction;
}

/**
 * Backward pass of the gate. The MoE output is y_t = Σ_k w_{t,k} · expert_{i_{t,k}}(x_t), so the
 * caller's upstream gradient reaches the gate as gradWeights[t,k] = ⟨∂L/∂y_t, expert_{i_{t,k}}(x_t)⟩.
 * Returns ∂L/∂logits [tokens, experts], through the normalization and the sigmoid (or softmax).
 * Nothing flows through the choice or the bias: the indices are treated as constants. Computed in
 * float64 and rounded once to float32.
 */
export function routeTokensBackward(
  forward: RouteResult,
  gradWeights: Float32Array,
  opts: RouteBackwardOptions,
): Float32Array {
  const tokens = requirePositiveInteger("tokens", opts.tokens);
  const experts = requirePositiveInteger("experts", opts.experts);
  const topK = requirePositiveInteger("topK", opts.topK);
  if (topK > experts) throw new RangeError(`topK (${topK}) must not exceed experts (${experts})`);
  requireFloat32Array("gradWeights", gradWeights);
  requireLength("gradWeights", gradWeights.length, tokens * topK, "[tokens, topK]");
  requireLength("forward.indices", forward.indices.length, tokens * topK, "[tokens, topK]");
  requireLength("forward.scores", forward.scores.length, tokens * experts, "[tokens, experts]");
  requireNoNaN("gradWeights", gradWeights);
  const scaling = requireFiniteNumber("routedScalingFactor", opts.routedScalingFactor);
  const scoreFunction = opts.scoreFunction ?? "sigmoid";
  if (scoreFunction !== "sigmoid" && scoreFunction !== "softmax") {
    throw new RangeError(`scoreFunction must be "sigmoid" or "softmax", got ${String(scoreFunction)}`);
  }
  const { indices, scores } = forward;
  const gradLogits = new Float32Array(tokens * experts);
  const gradScoreOfPick = new Float64Array(topK);
  for (let t = 0; t < tokens; t++) {
    const rowBase = t * experts;
    const pickBase = t * topK;
    // ∂L/∂s for each picked expert. With normalization w_k = c·s_k/S, S = Σ_j s_j:
    // ∂L/∂s_m = c/S · (g_m − Σ_k g_k s_k / S).
    let sumPicked = 0;
    let weightedGrad = 0;
    for (let k = 0; k < topK; k++) {
      const expert = indices[pickBase + k];
      if (expert < 0 || expert >= experts) throw new RangeError(`forward.indices[${pickBase + k}] = ${expert} is out of range`);
      const s = scores[rowBase + expert];
      sumPicked += s;
      weightedGrad += gradWeights[pickBase + k] * s;
    }
    const denominator = sumPicked + 1e-20;
    for (let k = 0; k < topK; k++) {
      const g = gradWeights[pickBase + k];
      gradScoreOfPick[k] = opts.normTopkProb
        ? (scaling / denominator) * (g - weightedGrad / denominator)
        : scaling * g;
    }
    if (scoreFunction === "sigmoid") {
      for (let k = 0; k < topK; k++) {
        const expert = indices[pickBase + k];
        const s = scores[rowBase + expert];
        gradLogits[rowBase + expert] = gradScoreOfPick[k] * s * (1 - s);
      }
    } else {
      // Softmax Jacobian: ∂L/∂z_e = s_e (G_e − Σ_m G_m s_m), with G nonzero only on the picks.
      let dot = 0;
      for (let k = 0; k < topK; k++) dot += gradScoreOfPick[k] * scores[rowBase + indices[pickBase + k]];
      for (let e = 0; e < experts; e++) gradLogits[rowBase + e] = -scores[rowBase + e] * dot;
      for (let k = 0; k < topK; k++) {
        const expert = indices[pickBase + k];
        const s = scores[rowBase + expert];
        gradLogits[rowBase + expert] = s * (gradScoreOfPick[k] - dot);
      }
    }
  }
  return gradLogits;
}
