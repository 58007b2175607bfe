// The load-balancing demonstration shared by the test and `npm run demo:balance`: a router whose
// logits favour a few experts is trained with nothing but the auxiliary-loss-free bias update.

import { AuxFreeBalancer, loadStats, type LoadStats } from "../balance.js";
import { routeTokens, type RouteResult } from "../route.js";
import { seededNormal, seededRandom } from "./random.js";

export interface SkewedDemoOptions {
  steps?: number;
  tokensPerStep?: number;
  experts?: number;
  topK?: number;
  nGroup?: number;
  topkGroup?: number;
  /** How many experts the logits favour, and by how much (in logit units). */
  favoured?: number;
  skew?: number;
  gamma?: number;
  /** Stop as soon as max/mean falls below this (the step is recorded). */
  stopBelow?: number;
  seed?: number;
  onStep?: (step: number, stats: LoadStats) => void;
}

export interface SkewedDemoResult {
  history: Array<{ step: number; maxOverMean: number }>;
  stepsTaken: number;
  finalMaxOverMean: number;
  finalStats: LoadStats;
  bias: Float32Array;
  /** The experts the logits favour. */
  favouredExperts: number[];
}

export function runSkewedBalanceDemo(options: SkewedDemoOptions = {}): SkewedDemoResult {
  const experts = options.experts ?? 64;
  const topK = options.topK ?? 6;
  const nGroup = options.nGroup ?? 8;
  const topkGroup = options.topkGroup ?? 4;
  const tokens = options.tokensPerStep ?? 4096;
  const steps = options.steps ?? 500;
  const favoured = options.favoured ?? 8;
  const skew = options.skew ?? 1.5;
  // Gaussian noise drawn from a precomputed pool at a random offset and odd stride per step:
  // Box–Muller per element would cost more than the routing being demonstrated.
  const normal = seededNormal(options.seed ?? 2024);
  const uniform = seededRandom((options.seed ?? 2024) + 1);
  const poolMask = (1 << 20) - 1;
  const noisePool = Float32Array.from({ length: poolMask + 1 }, normal);
  // The skew is fixed (a property of the trained gate); token-to-token variation is Gaussian noise.
  const skewByExpert = new Float32Array(experts);
  for (let i = 0; i < favoured; i++) skewByExpert[(i * 7) % experts] = skew;
  const balancer = new AuxFreeBalancer({ experts, gamma: options.gamma ?? 0.001 });
  const logits = new Float32Array(tokens * experts);
  const routed: RouteResult = {
    indices: new Int32Array(tokens * topK),
    weights: new Float32Array(tokens * topK),
    scores: new Float32Array(tokens * experts),
  };
  const history: SkewedDemoResult["history"] = [];
  let stats: LoadStats | undefined;
  let step = 0;
  for (; step < steps; step++) {
    const offset = Math.floor(uniform() * poolMask);
    const stride = 2 * Math.floor(uniform() * 1000) + 1;
    for (let i = 0; i < logits.length; i++) logits[i] = noisePool[(offset + i * stride) & poolMask] + skewByExpert[i % experts];
    routeTokens(
      logits,
      { tokens, experts, topK, nGroup, topkGroup, bias: balancer.bias, normTopkProb: true, routedScalingFactor: 2.5 },
      routed,
    );
    stats = loadStats(routed.indices, { tokens, experts, topK, nGroup });
    history.push({ step, maxOverMean: stats.maxOverMean });
    options.onStep?.(step, stats);
    if (options.stopBelow !== undefined && stats.maxOverMean < options.stopBelow) break;
    balancer.update(stats.expertLoad);
  }
  return {
    history,
    stepsTaken: Math.min(step + 1, steps),
    finalMaxOverMean: stats!.maxOverMean,
    finalStats: stats!,
    bias: Float32Array.from(balancer.bias),
    favouredExperts: Array.from({ length: favoured }, (_, i) => (i * 7) % experts),
  };
}
