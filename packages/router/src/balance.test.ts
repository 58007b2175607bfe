import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AuxFreeBalancer,
  loadStats,
  sequenceBalanceLoss,
  updatedBias,
  totalLoads,
} from "./balance.js";
import { gammaAt, parseGammaSchedule } from "./schedule.js";
import { routeTokens } from "./route.js";
import { randomLogits } from "./testing/random.js";
import { runSkewedBalanceDemo } from "./testing/skewed-demo.js";

test("bias moves by γ toward balance: down when overloaded, up when underloaded, still at the mean", () => {
  const bias = new Float32Array([0.1, 0, 0, 0]);
  // mean = 10: expert 0 overloaded, 1 at the mean, 2 and 3 underloaded
  const next = updatedBias(bias, [22, 10, 5, 3], 0.001);
  assert.deepEqual(Array.from(next), [Math.fround(0.1 - 0.001), 0, Math.fround(0.001), Math.fround(0.001)]);
  assert.equal(bias[0], Math.fround(0.1), "the input bias is not modified");
});

test("per-rank loads are summed before the update (data-parallel ranks count together)", () => {
  // Rank 0 alone would say expert 0 is overloaded; summed over ranks expert 1 is.
  const perRank = [
    [6, 0, 2],
    [0, 10, 0],
  ];
  assert.deepEqual(Array.from(totalLoads(perRank, 3)), [6, 10, 2]);
  const next = updatedBias(new Float32Array(3), perRank, 0.5);
  assert.deepEqual(Array.from(next), [0, -0.5, 0.5]);
});

test("bad loads are rejected with RangeError/TypeError naming the element", () => {
  assert.throws(() => updatedBias(new Float32Array(3), [1, 2], 0.1), { name: "RangeError", message: /loads has length 2/ });
  assert.throws(() => updatedBias(new Float32Array(3), [1, -2, 0], 0.1), { name: "RangeError", message: /loads\[1\]/ });
  assert.throws(() => updatedBias(new Float32Array(3), [[1, 2, 3], [1, 2]], 0.1), { name: "RangeError", message: /loads\[1\] has length 2/ });
  assert.throws(() => updatedBias(new Float32Array(3), [1, "2", 3] as unknown as number[], 0.1), { name: "TypeError", message: /loads\[1\]/ });
  assert.throws(() => updatedBias(new Float32Array(3), [1, 2, 3], -1), { name: "RangeError", message: /gamma/ });
});

test("γ schedules: constant, piecewise (DeepSeek-V3 sets γ to 0 late), validated into RangeError/TypeError", () => {
  const schedule = parseGammaSchedule({ kind: "piecewise", points: [[0, 0.001], [14300, 0]] });
  assert.equal(gammaAt(schedule, 0), 0.001);
  assert.equal(gammaAt(schedule, 14299), 0.001);
  assert.equal(gammaAt(schedule, 14300), 0);
  assert.equal(gammaAt(parseGammaSchedule({ kind: "constant", value: 0.01 }), 5), 0.01);
  assert.throws(() => parseGammaSchedule({ kind: "piecewise", points: [[5, 0.001]] }), { name: "RangeError", message: /gamma.points.0.0: the first point must be at step 0/ });
  assert.throws(() => parseGammaSchedule({ kind: "piecewise", points: [[0, 0.1], [0, 0.2]] }), { name: "RangeError", message: /increase strictly/ });
  assert.throws(() => parseGammaSchedule({ kind: "piecewise", points: [] }), { name: "RangeError", message: /gamma.points: points must not be empty/ });
  assert.throws(() => parseGammaSchedule(-0.5), { name: "RangeError" });
  assert.throws(() => parseGammaSchedule("fast"), { name: "TypeError" });
  assert.throws(() => parseGammaSchedule({ kind: "constant", value: "x" }), { name: "TypeError", message: /gamma.value/ });

  const balancer = new AuxFreeBalancer({ experts: 2, gamma: { kind: "piecewise", points: [[0, 0.25], [2, 0]] } });
  balancer.update([3, 1]);
  balancer.update([3, 1]);
  balancer.update([3, 1]); // γ = 0 from step 2 on
  assert.deepEqual(Array.from(balancer.bias), [-0.5, 0.5]);
  assert.equal(balancer.step, 3);
});

test("balancer state round-trips, and a bad update leaves it untouched", () => {
  const balancer = new AuxFreeBalancer({ experts: 3, gamma: 0.125 });
  balancer.update([5, 0, 1]);
  const restored = AuxFreeBalancer.fromState(JSON.parse(JSON.stringify(balancer.toState())));
  assert.deepEqual(restored.toState(), balancer.toState());
  assert.throws(() => restored.update([1, 2]), RangeError);
  assert.deepEqual(restored.toState(), balancer.toState());
  restored.update([0, 5, 1]);
  assert.deepEqual(Array.from(restored.bias), [0, 0, 0.25]);
});

test("loadStats: per-expert load, max/mean ratio, distinct tokens per group", () => {
  // 2 tokens, topK 2, 4 experts in 2 groups. Token 0 → e0, e1 (both group 0); token 1 → e0, e3.
  const indices = new Int32Array([0, 1, 0, 3]);
  const stats = loadStats(indices, { tokens: 2, experts: 4, topK: 2, nGroup: 2 });
  assert.deepEqual(Array.from(stats.expertLoad), [2, 1, 0, 1]);
  assert.equal(stats.maxOverMean, 2);
  assert.deepEqual(Array.from(stats.groupTokens), [2, 1]);
  assert.deepEqual(Array.from(stats.groupLoad), [3, 1]);
  assert.throws(() => loadStats(new Int32Array([0, 9, 0, 3]), { tokens: 2, experts: 4, topK: 2 }), { name: "RangeError", message: /indices\[1\] = 9/ });
});

test("sequence-wise balance loss: value by hand, and uniform routing gives α", () => {
  // One sequence, 2 tokens, 2 experts, topK 1. s = sigmoid(0) = 0.5 everywhere → s' = 0.5.
  // Token 0 picks e0, token 1 picks e0: f = [2·2/(1·2), 0] = [2, 0]; P = [0.5, 0.5]; L = α·1.
  const scores = new Float32Array([0.5, 0.5, 0.5, 0.5]);
  const same = sequenceBalanceLoss(scores, new Int32Array([0, 0]), { tokens: 2, experts: 2, topK: 1, alpha: 0.3 });
  assert.ok(Math.abs(same.loss - 0.3) < 1e-12);
  // Skewed affinities and skewed picks cost more than balanced ones.
  const skewed = new Float32Array([0.9, 0.1, 0.9, 0.1]);
  const bad = sequenceBalanceLoss(skewed, new Int32Array([0, 0]), { tokens: 2, experts: 2, topK: 1, alpha: 1 });
  assert.ok(Math.abs(bad.loss - 2 * 0.9) < 1e-6);
  assert.throws(() => sequenceBalanceLoss(scores, new Int32Array([0, 0]), { tokens: 2, experts: 2, topK: 1, alpha: 1, sequenceLength: 3 }), { name: "RangeError", message: /multiple of sequenceLength/ });
});

for (const scoreFunction of ["sigmoid", "softmax"] as const) {
  test(`sequence-wise balance loss gradient matches finite differences (${scoreFunction})`, () => {
    const tokens = 8;
    const experts = 8;
    const topK = 2;
    const route = { tokens, experts, topK, nGroup: 2, topkGroup: 1, bias: new Float32Array(experts), normTopkProb: true, routedScalingFactor: 1, scoreFunction };
    const logits = randomLogits(tokens, experts, 5, 1.5);
    const { scores, indices } = routeTokens(logits, route);
    const opts = { tokens, experts, topK, alpha: 1, sequenceLength: 4, scoreFunction };
    const { gradLogits } = sequenceBalanceLoss(scores, indices, opts);
    const h = 1e-2;
    for (let i = 0; i < logits.length; i++) {
      const plus = Float32Array.from(logits);
      const minus = Float32Array.from(logits);
      plus[i] += h;
      minus[i] -= h;
      // f (the picks) is held constant: reuse `indices`.
      const lossPlus = sequenceBalanceLoss(routeTokens(plus, route).scores, indices, opts).loss;
      const lossMinus = sequenceBalanceLoss(routeTokens(minus, route).scores, indices, opts).loss;
      const numeric = (lossPlus - lossMinus) / (2 * h);
      assert.ok(Math.abs(numeric - gradLogits[i]) < 1e-4 + 1e-2 * Math.abs(numeric), `logit ${i}: ${gradLogits[i]} vs ${numeric}`);
    }
    assert.ok(gradLogits.some((g) => Math.abs(g) > 1e-3), "gradient is not trivially zero");
  });
}

test("skewed router trained with the bias update alone reaches max/mean < 1.2 within a few hundred steps", () => {
  const result = runSkewedBalanceDemo({ steps: 400, tokensPerStep: 4096, stopBelow: 1.2 });
  const first = result.history[0].maxOverMean;
  assert.ok(first > 2, `the starting point is really skewed (max/mean ${first})`);
  assert.ok(result.finalMaxOverMean < 1.2, `final max/mean ${result.finalMaxOverMean}`);
  assert.ok(result.stepsTaken <= 400);
});
