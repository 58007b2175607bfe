import { test } from "node:test";
import assert from "node:assert/strict";
import { routeTokens, routeTokensBackward, type RouteOptions } from "./route.js";
import { routeTokensReference } from "./route-reference.js";
import { logit, randomLogits, seededRandom } from "./testing/random.js";

const f32 = Math.fround;
const sig = (z: number) => f32(1 / (1 + Math.exp(-z)));

function options(overrides: Partial<RouteOptions> & { experts: number; tokens: number }): RouteOptions {
  return {
    topK: 2,
    nGroup: 1,
    topkGroup: 1,
    bias: new Float32Array(overrides.experts),
    normTopkProb: true,
    routedScalingFactor: 1,
    ...overrides,
  };
}

// 8 experts in 4 groups of 2. Affinities (after sigmoid):
//   group:   g0          g1          g2          g3
//   s:       0.9  0.05   0.6  0.6    0.5  0.3    0.2  0.2
const handAffinities = [0.9, 0.05, 0.6, 0.6, 0.5, 0.3, 0.2, 0.2];
const handLogits = Float32Array.from(handAffinities, logit);
const handScores = Array.from(handLogits, sig);

test("hand case without bias: best two groups are g1 then g0; tie between equal experts goes to the lower index", () => {
  // Group scores: g0 0.95, g1 1.2, g2 0.8, g3 0.4 → groups {g1, g0}. Eligible experts 0..3:
  // 0.9 (e0) and 0.6 for e2 and e3, which tie → e2.
  const opts = options({ tokens: 1, experts: 8, topK: 2, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 });
  const { indices, weights } = routeTokens(handLogits, opts);
  assert.deepEqual(Array.from(indices), [0, 2]);
  const denominator = f32(handScores[0] + handScores[2]);
  assert.equal(weights[0], f32(f32(handScores[0] / denominator) * 2.5));
  assert.equal(weights[1], f32(f32(handScores[2] / denominator) * 2.5));
  assert.ok(Math.abs(weights[0] - 1.5) < 1e-6 && Math.abs(weights[1] - 1.0) < 1e-6);
});

test("hand case: a bias changes the group choice, and the weights stay the unbiased affinities", () => {
  // +0.3/+0.2 on g2 makes its score 0.8 + 0.5 = 1.3 > g1's 1.2, so groups {g2, g1}; candidates
  // e4 0.8, e2 0.6, e3 0.6, e5 0.5 → e4 then e2. Without the bias e4 was not even eligible.
  const bias = new Float32Array([0, 0, 0, 0, 0.3, 0.2, 0, 0]);
  const opts = options({ tokens: 1, experts: 8, topK: 2, nGroup: 4, topkGroup: 2, bias });
  const { indices, weights } = routeTokens(handLogits, opts);
  assert.deepEqual(Array.from(indices), [4, 2]);
  const denominator = f32(handScores[4] + handScores[2]);
  assert.ok(Math.abs(weights[0] - 0.5 / 1.1) < 1e-6, `weight ${weights[0]}`);
  assert.equal(weights[1], f32(handScores[2] / denominator));
  // Without normalization the weight is exactly the unbiased sigmoid, not sigmoid + bias.
  const raw = routeTokens(handLogits, { ...opts, normTopkProb: false });
  assert.equal(raw.weights[0], handScores[4]);
});

test("hand case: with every biased score negative, the picks still come only from the selected groups (-inf masking)", () => {
  // bias −0.8 everywhere: choice = [0.1, −0.75, −0.2, −0.2, −0.3, −0.5, −0.6, −0.6]; groups g1 (−0.4)
  // and g0 (−0.65) are eligible. transformers 5.x masks the others with -inf, so the second pick is e2
  // (eligible, −0.2); 4.x's 0.0 fill would have picked e4 from a masked group.
  const bias = new Float32Array(8).fill(-0.8);
  const opts = options({ tokens: 1, experts: 8, topK: 2, nGroup: 4, topkGroup: 2, bias });
  const { indices, weights } = routeTokens(handLogits, opts);
  assert.deepEqual(Array.from(indices), [0, 2]);
  const denominator = f32(handScores[0] + handScores[2]);
  assert.equal(weights[1], f32(handScores[2] / denominator));
  assert.deepEqual(Array.from(routeTokensReference(handLogits, opts).indices), [0, 2]);
});

test("hand case: equal scores tie by index", () => {
  // All affinities 0.5. choice = [0.5, 0, −0.5, −0.5, 0.7, 0, −0.5, −0.5]; groups g2 (0.7) and g0 (0.5).
  // Picks: e4 (0.7), e0 (0.5), then the zeros by index: e1 before e5; e2 and e3 (g1) are masked.
  const logits = new Float32Array(8);
  const bias = new Float32Array([0, -0.5, -1, -1, 0.2, -0.5, -1, -1]);
  const opts = options({ tokens: 1, experts: 8, topK: 4, nGroup: 4, topkGroup: 2, bias, normTopkProb: false, routedScalingFactor: 2.5 });
  const { indices, weights } = routeTokens(logits, opts);
  assert.deepEqual(Array.from(indices), [4, 0, 1, 5]);
  assert.deepEqual(Array.from(weights), [1.25, 1.25, 1.25, 1.25]);
});

test("nGroup = 1, topkGroup = 1 is plain top-K by biased score", () => {
  const opts = options({ tokens: 1, experts: 8, topK: 3, bias: new Float32Array([0, 0, 0, 0, 0, 0, 0.5, 0]) });
  const { indices } = routeTokens(handLogits, opts);
  // choice: 0.9, 0.05, 0.6, 0.6, 0.5, 0.3, 0.7, 0.2
  assert.deepEqual(Array.from(indices), [0, 6, 2]);
});

test("softmax score function: affinities sum to 1 per token, weights are normalized affinities", () => {
  const logits = randomLogits(4, 16, 7);
  const opts = options({ tokens: 4, experts: 16, topK: 4, nGroup: 4, topkGroup: 2, scoreFunction: "softmax" });
  const { scores, weights } = routeTokens(logits, opts);
  for (let t = 0; t < 4; t++) {
    const rowSum = scores.subarray(t * 16, (t + 1) * 16).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(rowSum - 1) < 1e-5);
    const weightSum = weights.subarray(t * 4, (t + 1) * 4).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(weightSum - 1) < 1e-5);
  }
  assert.deepEqual(routeTokens(logits, opts), routeTokensReference(logits, opts));
});

test("fast path equals the literal HF transcription, bit for bit, across group configurations", () => {
  const configs = [
    { experts: 256, topK: 8, nGroup: 8, topkGroup: 4 },
    { experts: 64, topK: 6, nGroup: 8, topkGroup: 3 },
    { experts: 16, topK: 4, nGroup: 4, topkGroup: 1 },
    { experts: 16, topK: 2, nGroup: 1, topkGroup: 1 },
    { experts: 32, topK: 8, nGroup: 4, topkGroup: 4 },
    { experts: 12, topK: 3, nGroup: 6, topkGroup: 2 },
  ];
  for (const [c, config] of configs.entries()) {
    for (const biasScale of [0, 0.05, 1.5]) {
      const random = seededRandom(100 + c);
      // Coarse logits (multiples of 1/4) produce many exact ties; the strongly negative biases push
      // eligible scores below 0.
      const tokens = 64;
      const logits = Float32Array.from({ length: tokens * config.experts }, () => Math.round((random() * 8 - 4) * 4) / 4);
      const bias = Float32Array.from({ length: config.experts }, () => (random() - 0.7) * biasScale);
      for (const normTopkProb of [true, false]) {
        const opts = options({ tokens, ...config, bias, normTopkProb, routedScalingFactor: 2.5 });
        const fast = routeTokens(logits, opts);
        const reference = routeTokensReference(logits, opts);
        assert.deepEqual(fast.indices, reference.indices, JSON.stringify({ config, biasScale }));
        assert.deepEqual(fast.weights, reference.weights);
        assert.deepEqual(fast.scores, reference.scores);
        if (config.topkGroup < config.nGroup) {
          const groupSize = config.experts / config.nGroup;
          for (let t = 0; t < tokens; t++) {
            const groups = new Set<number>();
            for (let k = 0; k < config.topK; k++) groups.add(Math.floor(fast.indices[t * config.topK + k] / groupSize));
            assert.ok(groups.size <= config.topkGroup, `token ${t} picked from ${groups.size} groups`);
          }
        }
      }
    }
  }
});

test("out buffers are reused and give the same result", () => {
  const logits = randomLogits(8, 32, 3);
  const opts = options({ tokens: 8, experts: 32, topK: 4, nGroup: 4, topkGroup: 2 });
  const out = { indices: new Int32Array(32), weights: new Float32Array(32), scores: new Float32Array(256) };
  const returned = routeTokens(logits, opts, out);
  assert.equal(returned, out);
  assert.deepEqual(out, routeTokens(logits, opts));
});

test("bad input throws a RangeError that says what is wrong", () => {
  const good = options({ tokens: 2, experts: 8, topK: 2, nGroup: 4, topkGroup: 2 });
  const logits = new Float32Array(16);
  assert.throws(() => routeTokens(new Float32Array(15), good), { name: "RangeError", message: /logits has length 15.*needs 16/ });
  assert.throws(() => routeTokens(logits, { ...good, topK: 5 }), { name: "RangeError", message: /topK \(5\) is larger than the eligible experts/ });
  assert.throws(() => routeTokens(logits, { ...good, nGroup: 3, topkGroup: 1 }), { name: "RangeError", message: /divisible by nGroup/ });
  const nan = new Float32Array(16);
  nan[9] = NaN;
  assert.throws(() => routeTokens(nan, good), { name: "RangeError", message: /logits\[1, 1\] is NaN/ });
  assert.throws(() => routeTokens(logits, { ...good, bias: new Float32Array(7) }), { name: "RangeError", message: /bias has length 7/ });
  assert.throws(() => routeTokens(logits, { ...good, topkGroup: 5 }), { name: "RangeError", message: /topkGroup/ });
  assert.throws(() => routeTokens(logits, { ...good, tokens: 2.5 }), { name: "RangeError", message: /tokens must be a positive integer/ });
  assert.throws(() => routeTokens([1, 2] as unknown as Float32Array, good), { name: "TypeError", message: /logits must be a Float32Array/ });
  assert.throws(() => routeTokens(logits, { ...good, scoreFunction: "relu" as "sigmoid" }), { name: "RangeError", message: /scoreFunction/ });
});

/** L(logits) = Σ g·w with the choice held fixed; used for the finite-difference checks. */
function weightedSum(weights: Float32Array, upstream: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i] * upstream[i];
  return sum;
}

for (const scoreFunction of ["sigmoid", "softmax"] as const) {
  for (const normTopkProb of [true, false]) {
    test(`backward matches finite differences (${scoreFunction}, normTopkProb=${normTopkProb})`, () => {
      const tokens = 3;
      const experts = 16;
      const opts = options({ tokens, experts, topK: 4, nGroup: 4, topkGroup: 2, normTopkProb, routedScalingFactor: 2.5, scoreFunction });
      const logits = randomLogits(tokens, experts, 11, 2);
      const upstream = Float32Array.from({ length: tokens * 4 }, (_, i) => Math.sin(i + 1));
      const forward = routeTokens(logits, opts);
      const grad = routeTokensBackward(forward, upstream, opts);
      const h = 1e-2;
      let checked = 0;
      for (let i = 0; i < logits.length; i++) {
        const plus = Float32Array.from(logits);
        const minus = Float32Array.from(logits);
        plus[i] += h;
        minus[i] -= h;
        const up = routeTokens(plus, opts);
        const down = routeTokens(minus, opts);
        // Finite differences are only meaningful where the perturbation does not change the choice.
        if (!sameArray(up.indices, forward.indices) || !sameArray(down.indices, forward.indices)) continue;
        const numeric = (weightedSum(up.weights, upstream) - weightedSum(down.weights, upstream)) / (2 * h);
        assert.ok(Math.abs(numeric - grad[i]) < 2e-3 + 1e-2 * Math.abs(numeric), `logit ${i}: analytic ${grad[i]} vs numeric ${numeric}`);
        checked++;
      }
      assert.ok(checked > logits.length / 2);
      // Sigmoid: no gradient reaches experts that were not picked. Softmax without normalization: it
      // does (through the softmax's denominator). Softmax with normalization: the denominator cancels,
      // so it vanishes again (up to rounding).
      const picked = new Set<number>();
      for (let t = 0; t < tokens; t++) for (let k = 0; k < 4; k++) picked.add(t * experts + forward.indices[t * 4 + k]);
      const largestUnpicked = grad.reduce((m, g, i) => (picked.has(i) ? m : Math.max(m, Math.abs(g))), 0);
      if (scoreFunction === "sigmoid") assert.equal(largestUnpicked, 0);
      else if (normTopkProb) assert.ok(largestUnpicked < 1e-6, `${largestUnpicked}`);
      else assert.ok(largestUnpicked > 1e-4, `${largestUnpicked}`);
    });
  }
}

function sameArray(a: Int32Array, b: Int32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
