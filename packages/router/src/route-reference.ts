// A literal, slow transcription of HF's DeepseekV3TopkRouter, step by step (mask-fill, then a full
// sort per token). It is the oracle the fast path is tested against and the naive baseline the
// benchmark compares with. Same float32 rounding and tie-breaking rules as route.ts.

import { sigmoidF32 } from "./sigmoid.js";
import { validateRouteOptions, type RouteOptions, type RouteResult } from "./route.js";

/** Sorts (value, index) pairs best first: larger value, then lower index. */
function byValueThenIndex(values: ArrayLike<number>): (a: number, b: number) => number {
  return (a, b) => (values[b] - values[a]) || (a - b);
}

export function routeTokensReference(logits: Float32Array, opts: RouteOptions): RouteResult {
  const shape = validateRouteOptions(logits, opts);
  const { tokens, experts, topK, nGroup, topkGroup, groupSize } = shape;
  const indices = new Int32Array(tokens * topK);
  const weights = new Float32Array(tokens * topK);
  const scores = new Float32Array(tokens * experts);
  const scaling = Math.fround(shape.routedScalingFactor);
  for (let t = 0; t < tokens; t++) {
    const row = Array.from(logits.subarray(t * experts, (t + 1) * experts));
    row.forEach((z, e) => {
      if (Number.isNaN(z)) throw new RangeError(`logits[${t}, ${e}] is NaN`);
    });
    let s: number[];
    if (shape.scoreFunction === "sigmoid") {
      s = row.map(sigmoidF32);
    } else {
      const max = Math.max(...row);
      if (!Number.isFinite(max)) throw new RangeError(`logits row ${t} has max ${max}; softmax is undefined`);
      const sum = row.reduce((acc, z) => acc + Math.exp(z - max), 0);
      s = row.map((z) => Math.fround(Math.exp(z - max) / sum));
    }
    scores.set(s, t * experts);
    const forChoice = s.map((v, e) => Math.fround(v + opts.bias[e]));
    // group_scores = topk(2) within each group, summed in float32
    const groupScores: number[] = [];
    for (let g = 0; g < nGroup; g++) {
      const members = forChoice.slice(g * groupSize, (g + 1) * groupSize).sort((a, b) => b - a);
      groupScores.push(Math.fround(members[0] + (members.length > 1 ? members[1] : -Infinity)));
    }
    const groupOrder = groupScores.map((_, g) => g).sort(byValueThenIndex(groupScores));
    const groupMask = new Array<boolean>(nGroup).fill(false);
    for (const g of groupOrder.slice(0, topkGroup)) groupMask[g] = true;
    // masked_fill(~score_mask, -inf)
    const masked = forChoice.map((v, e) => (groupMask[Math.floor(e / groupSize)] ? v : -Infinity));
    const order = masked.map((_, e) => e).sort(byValueThenIndex(masked));
    const picked = order.slice(0, topK);
    let sum = 0;
    for (const e of picked) sum = Math.fround(sum + s[e]);
    const denominator = Math.fround(sum + 1e-20);
    picked.forEach((e, k) => {
      indices[t * topK + k] = e;
      const w = opts.normTopkProb ? Math.fround(s[e] / denominator) : s[e];
      weights[t * topK + k] = Math.fround(w * scaling);
    });
  }
  return { indices, weights, scores };
}
