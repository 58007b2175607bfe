// Load balancing: DeepSeek-V3's auxiliary-loss-free bias update, the complementary sequence-wise
// balance loss, and the load statistics a trainer logs each step.

import { gammaAt, parseGammaSchedule, DEEPSEEK_V3_GAMMA, type GammaSchedule } from "./schedule.js";
import type { ScoreFunction } from "./route.js";
import {
  requireFiniteNumber,
  requireFloat32Array,
  requireInt32Array,
  requireLength,
  requireNonNegativeInteger,
  requirePositiveInteger,
} from "./validate.js";

/** Per-expert loads: one array of E token counts, or one per data-parallel rank (summed here). */
export type ExpertLoads = ArrayLike<number> | ReadonlyArray<ArrayLike<number>>;

/**
 * Sums per-rank loads (or copies already-summed loads) into one Float64Array of length `experts`,
 * checking that every load is a finite, non-negative number.
 */
export function totalLoads(loads: ExpertLoads, experts: number): Float64Array {
  if (loads === null || typeof loads !== "object" || typeof (loads as ArrayLike<unknown>).length !== "number") {
    throw new TypeError("loads must be an array of numbers or an array of per-rank arrays");
  }
  const ranks: ArrayLike<number>[] =
    loads.length > 0 && typeof (loads as ArrayLike<unknown>)[0] === "object"
      ? Array.from(loads as ReadonlyArray<ArrayLike<number>>)
      : [loads as ArrayLike<number>];
  if (ranks.length === 0) throw new RangeError("loads must not be empty");
  const total = new Float64Array(experts);
  ranks.forEach((rank, r) => {
    const label = ranks.length > 1 ? `loads[${r}]` : "loads";
    if (rank === null || typeof rank !== "object") throw new TypeError(`${label} must be an array of numbers`);
    requireLength(label, rank.length, experts, `[experts=${experts}]`);
    for (let e = 0; e < experts; e++) {
      const load = rank[e];
      if (typeof load !== "number") throw new TypeError(`${label}[${e}] must be a number`);
      if (!Number.isFinite(load) || load < 0) throw new RangeError(`${label}[${e}] must be a finite non-negative number, got ${load}`);
      total[e] += load;
    }
  });
  return total;
}

/**
 * The DeepSeek-V3 update: b_i ← b_i + γ · sign(mean − load_i). Overloaded experts (load above the
 * mean) move down by γ, underloaded ones up by γ, experts exactly at the mean stay. It uses the sign,
 * not the size, of the imbalance (DeepSeek-V3 §2.1.2), so the bias moves at a fixed speed. The bias
 * is float32 (HF keeps e_score_correction_bias in float32), so each step is rounded to float32.
 * Returns a new array; `bias` is not modified.
 */
export function updatedBias(bias: Float32Array, loads: ExpertLoads, gamma: number): Float32Array {
  requireFloat32Array("bias", bias);
  requireFiniteNumber("gamma", gamma);
  if (gamma < 0) throw new RangeError(`gamma must be non-negative, got ${gamma}`);
  const total = totalLoads(loads, bias.length);
  let sum = 0;
  for (const load of total) sum += load;
  const mean = sum / bias.length;
  const next = new Float32Array(bias.length);
  for (let e = 0; e < bias.length; e++) next[e] = Math.fround(bias[e] + gamma * Math.sign(mean - total[e]));
  return next;
}

export interface LoadSummary {
  /** Per-expert load (token–expert assignments). */
  expertLoad: Float64Array;
  meanLoad: number;
  maxLoad: number;
  /** max/mean load; 1 is perfect balance (defined as 1 when nothing was routed). */
  maxOverMean: number;
}

export function summarizeLoads(expertLoad: Float64Array): LoadSummary {
  let sum = 0;
  let maxLoad = 0;
  for (const load of expertLoad) {
    sum += load;
    if (load > maxLoad) maxLoad = load;
  }
  const meanLoad = sum / expertLoad.length;
  return { expertLoad, meanLoad, maxLoad, maxOverMean: meanLoad > 0 ? maxLoad / meanLoad : 1 };
}

export interface LoadStats extends LoadSummary {
  /** Per group (node): how many distinct tokens were sent to it (a token routed to two experts of
   *  the same node is sent once, which is what node-limited routing bounds). */
  groupTokens: Int32Array;
  /** Per group (node): token–expert assignments it received. */
  groupLoad: Float64Array;
}

/** Statistics of one routing result: per-expert load, max/mean ratio, per-group traffic. */
export function loadStats(indices: Int32Array, opts: { tokens: number; experts: number; topK: number; nGroup?: number }): LoadStats {
  requireInt32Array("indices", indices);
  const tokens = requirePositiveInteger("tokens", opts.tokens);
  const experts = requirePositiveInteger("experts", opts.experts);
  const topK = requirePositiveInteger("topK", opts.topK);
  const nGroup = requirePositiveInteger("nGroup", opts.nGroup ?? 1);
  if (experts % nGroup !== 0) throw new RangeError(`experts (${experts}) must be divisible by nGroup (${nGroup})`);
  requireLength("indices", indices.length, tokens * topK, `[tokens=${tokens}, topK=${topK}]`);
  const groupSize = experts / nGroup;
  const expertLoad = new Float64Array(experts);
  const groupLoad = new Float64Array(nGroup);
  const groupTokens = new Int32Array(nGroup);
  const lastTokenSeen = new Int32Array(nGroup).fill(-1);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < topK; k++) {
      const expert = indices[t * topK + k];
      if (expert < 0 || expert >= experts) throw new RangeError(`indices[${t * topK + k}] = ${expert} is not an expert in [0, ${experts})`);
      expertLoad[expert]++;
      const group = (expert / groupSize) | 0;
      groupLoad[group]++;
      if (lastTokenSeen[group] !== t) {
        lastTokenSeen[group] = t;
        groupTokens[group]++;
      }
    }
  }
  return { ...summarizeLoads(expertLoad), groupLoad, groupTokens };
}

export interface BalancerOptions {
  experts: number;
  /** γ: a number, { kind: "constant", value } or { kind: "piecewise", points: [[step, γ], …] }.
   *  Defaults to DeepSeek-V3's 0.001. */
  gamma?: GammaSchedule;
  /** Starting bias (defaults to zeros). */
  bias?: Float32Array;
  /** Steps already taken (when resuming). */
  step?: number;
}

export interface BalancerState {
  experts: number;
  step: number;
  gamma: GammaSchedule;
  bias: number[];
}

export interface BalancerStepReport extends LoadSummary {
  /** The step this update belonged to (before incrementing). */
  step: number;
  /** γ used for this step. */
  gamma: number;
}

/**
 * The auxiliary-loss-free balancer for one MoE layer: holds the correction bias and applies
 * `updatedBias` after each step with γ from the schedule. Pass the loads counted over the whole
 * batch — already summed across data-parallel ranks, or as a list of per-rank loads to be summed.
 */
export class AuxFreeBalancer {
  readonly experts: number;
  readonly gamma: GammaSchedule;
  private currentBias: Float32Array;
  private currentStep: number;

  constructor(opts: BalancerOptions) {
    this.experts = requirePositiveInteger("experts", opts.experts);
    this.gamma = parseGammaSchedule(opts.gamma ?? DEEPSEEK_V3_GAMMA);
    this.currentStep = requireNonNegativeInteger("step", opts.step ?? 0);
    if (opts.bias !== undefined) {
      requireFloat32Array("bias", opts.bias);
      requireLength("bias", opts.bias.length, this.experts, `[experts=${this.experts}]`);
      for (let e = 0; e < opts.bias.length; e++) {
        if (!Number.isFinite(opts.bias[e])) throw new RangeError(`bias[${e}] must be finite, got ${opts.bias[e]}`);
      }
    }
    this.currentBias = opts.bias ? Float32Array.from(opts.bias) : new Float32Array(this.experts);
  }

  /** The current bias (a live view; copy it if you keep it across updates). */
  get bias(): Float32Array {
    return this.currentBias;
  }

  get step(): number {
    return this.currentStep;
  }

  /** Applies one step's loads. On bad input throws and leaves the state untouched. */
  update(loads: ExpertLoads): BalancerStepReport {
    const total = totalLoads(loads, this.experts);
    const gamma = gammaAt(this.gamma, this.currentStep);
    this.currentBias = updatedBias(this.currentBias, total, gamma);
    const report = { ...summarizeLoads(total), step: this.currentStep, gamma };
    this.currentStep++;
    return report;
  }

  toState(): BalancerState {
    return { experts: this.experts, step: this.currentStep, gamma: this.gamma, bias: Array.from(this.currentBias) };
  }

  static fromState(state: BalancerState): AuxFreeBalancer {
    if (state === null || typeof state !== "object") throw new TypeError("state must be an object");
    if (!Array.isArray(state.bias)) throw new TypeError("state.bias must be an array of numbers");
    return new AuxFreeBalancer({
      experts: state.experts,
      gamma: state.gamma,
      step: state.step,
      bias: Float32Array.from(state.bias),
    });
  }
}

/** DeepSeek-V3's weight α for the sequence-wise balance loss. */
export const DEEPSEEK_V3_ALPHA = 0.0001;

export interface SequenceBalanceLossOptions {
  tokens: number;
  experts: number;
  topK: number;
  /** Weight α (DeepSeek-V3: 0.0001). */
  alpha: number;
  /** Tokens per sequence; `tokens` must be a multiple. Defaults to one sequence of all tokens. */
  sequenceLength?: number;
  scoreFunction?: ScoreFunction;
}

export interface SequenceBalanceLoss {
  /** The loss, averaged over the sequences. */
  loss: number;
  /** ∂loss/∂logits [tokens, experts]; f_i is treated as a constant (it is a count). */
  gradLogits: Float32Array;
}

/**
 * DeepSeek-V3's complementary sequence-wise balance loss (eqs. 17–20), for each sequence of T tokens:
 *   f_i = N_r / (K_r · T) · Σ_t 1(token t selects expert i)
 *   s'_{i,t} = s_{i,t} / Σ_j s_{j,t}           (normalized over ALL experts, not just the picks)
 *   P_i = (1/T) Σ_t s'_{i,t}
 *   L_Bal = α Σ_i f_i P_i
 * and the mean over sequences (as DeepSeek-V2's HF implementation averages over the batch).
 * `scores` are the unbiased affinities from routeTokens and `indices` its picks.
 */
export function sequenceBalanceLoss(
  scores: Float32Array,
  indices: Int32Array,
  opts: SequenceBalanceLossOptions,
): SequenceBalanceLoss {
  requireFloat32Array("scores", scores);
  requireInt32Array("indices", indices);
  const tokens = requirePositiveInteger("tokens", opts.tokens);
  const experts = requirePositiveInteger("experts", opts.experts);
  const topK = requirePositiveInteger("topK", opts.topK);
  const alpha = requireFiniteNumber("alpha", opts.alpha);
  const sequenceLength = requirePositiveInteger("sequenceLength", opts.sequenceLength ?? tokens);
  if (tokens % sequenceLength !== 0) throw new RangeError(`tokens (${tokens}) must be a multiple of sequenceLength (${sequenceLength})`);
  requireLength("scores", scores.length, tokens * experts, `[tokens=${tokens}, experts=${experts}]`);
  requireLength("indices", indices.length, tokens * topK, `[tokens=${tokens}, topK=${topK}]`);
  const scoreFunction = opts.scoreFunction ?? "sigmoid";
  if (scoreFunction !== "sigmoid" && scoreFunction !== "softmax") {
    throw new RangeError(`scoreFunction must be "sigmoid" or "softmax", got ${String(scoreFunction)}`);
  }
  const sequences = tokens / sequenceLength;
  const gradLogits = new Float32Array(tokens * experts);
  const fraction = new Float64Array(experts);
  const rowSum = new Float64Array(sequenceLength);
  let loss = 0;
  for (let q = 0; q < sequences; q++) {
    const firstToken = q * sequenceLength;
    fraction.fill(0);
    for (let i = firstToken * topK; i < (firstToken + sequenceLength) * topK; i++) {
      const expert = indices[i];
      if (expert < 0 || expert >= experts) throw new RangeError(`indices[${i}] = ${expert} is not an expert in [0, ${experts})`);
      fraction[expert] += experts / (topK * sequenceLength);
    }
    let sequenceLoss = 0;
    for (let t = 0; t < sequenceLength; t++) {
      const rowBase = (firstToken + t) * experts;
      let sum = 0;
      for (let e = 0; e < experts; e++) sum += scores[rowBase + e];
      if (!(sum > 0)) throw new RangeError(`scores row ${firstToken + t} sums to ${sum}; affinities must be positive`);
      rowSum[t] = sum;
      for (let e = 0; e < experts; e++) sequenceLoss += fraction[e] * (scores[rowBase + e] / sum);
    }
    loss += (alpha * sequenceLoss) / sequenceLength;
    // ∂L/∂s'_{i,t} = α f_i / (T · sequences); through s' = s / Σs: ∂L/∂s_j = (G_j − Σ_i G_i s'_i) / Σs.
    const scale = alpha / (sequenceLength * sequences);
    for (let t = 0; t < sequenceLength; t++) {
      const rowBase = (firstToken + t) * experts;
      const sum = rowSum[t];
      let dot = 0;
      for (let e = 0; e < experts; e++) dot += fraction[e] * (scores[rowBase + e] / sum);
      if (scoreFunction === "sigmoid") {
        for (let e = 0; e < experts; e++) {
          const s = scores[rowBase + e];
          const gradScore = (scale * (fraction[e] - dot)) / sum;
          gradLogits[rowBase + e] = gradScore * s * (1 - s);
        }
      } else {
        // Softmax: ∂L/∂z_j = s_j (∂L/∂s_j − Σ_i s_i ∂L/∂s_i).
        let softmaxDot = 0;
        for (let e = 0; e < experts; e++) softmaxDot += scores[rowBase + e] * ((scale * (fraction[e] - dot)) / sum);
        for (let e = 0; e < experts; e++) {
          const s = scores[rowBase + e];
          gradLogits[rowBase + e] = s * ((scale * (fraction[e] - dot)) / sum - softmaxDot);
        }
      }
    }
  }
  return { loss: loss / sequences, gradLogits };
}
