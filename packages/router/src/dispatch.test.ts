import { test } from "node:test";
import assert from "node:assert/strict";
import { combineRows, dispatchRows, planDispatch } from "./dispatch.js";
import { routeTokens } from "./route.js";
import { randomLogits } from "./testing/random.js";

// 4 tokens, topK 2, 3 experts.
//   token 0 → e2 (0.7), e0 (0.3)
//   token 1 → e0 (0.6), e1 (0.4)
//   token 2 → e0 (0.9), e2 (0.1)
//   token 3 → e1 (0.5), e0 (0.5)
const indices = new Int32Array([2, 0, 0, 1, 0, 2, 1, 0]);
const weights = new Float32Array([0.7, 0.3, 0.6, 0.4, 0.9, 0.1, 0.5, 0.5]);

test("plan groups tokens by expert, in token order, with counts, offsets and the inverse", () => {
  const plan = planDispatch(indices, weights, { tokens: 4, experts: 3, topK: 2 });
  assert.deepEqual(Array.from(plan.expertCounts), [4, 2, 2]);
  assert.deepEqual(Array.from(plan.expertOffsets), [0, 4, 6, 8]);
  assert.deepEqual(Array.from(plan.tokenOfRow), [0, 1, 2, 3, 1, 3, 0, 2]);
  assert.deepEqual(Array.from(plan.assignmentOfRow), [1, 2, 4, 7, 3, 6, 0, 5]);
  for (let a = 0; a < 8; a++) assert.equal(plan.assignmentOfRow[plan.rowOfAssignment[a]], a);
  assert.equal(plan.dropped, 0);
  assert.equal(plan.capacity, null);
  assert.deepEqual(Array.from(plan.combineWeights), [0.3, 0.6, 0.9, 0.5, 0.4, 0.5, 0.7, 0.1].map(Math.fround));
});

test("capacity factor drops the lowest-weight assignments (probs) or the latest tokens (position)", () => {
  // capacity = ceil(8 / 3 · 0.75) = 2. Expert 0 has 4 assignments: weights 0.3 (t0), 0.6 (t1), 0.9 (t2), 0.5 (t3).
  const byProbs = planDispatch(indices, weights, { tokens: 4, experts: 3, topK: 2, capacityFactor: 0.75 });
  assert.equal(byProbs.capacity, 2);
  assert.equal(byProbs.dropped, 2);
  assert.deepEqual(Array.from(byProbs.droppedPerExpert), [2, 0, 0]);
  assert.deepEqual(Array.from(byProbs.tokenOfRow.subarray(0, 2)), [1, 2]);
  assert.equal(byProbs.rowOfAssignment[1], -1); // token 0's e0 (0.3) dropped
  assert.equal(byProbs.rowOfAssignment[7], -1); // token 3's e0 (0.5) dropped
  const byPosition = planDispatch(indices, weights, { tokens: 4, experts: 3, topK: 2, capacityFactor: 0.75, dropPolicy: "position" });
  assert.deepEqual(Array.from(byPosition.tokenOfRow.subarray(0, 2)), [0, 1]);
  assert.equal(byPosition.rows, 6);
});

test("dispatch then combine with identity experts reproduces Σ_k w·x per token", () => {
  const tokens = 50;
  const experts = 16;
  const topK = 4;
  const hidden = 3;
  const routed = routeTokens(randomLogits(tokens, experts, 9), {
    tokens, experts, topK, nGroup: 4, topkGroup: 2, bias: new Float32Array(experts), normTopkProb: true, routedScalingFactor: 1,
  });
  const plan = planDispatch(routed.indices, routed.weights, { tokens, experts, topK });
  const input = Float32Array.from({ length: tokens * hidden }, (_, i) => i % 7 - 3);
  // Expert e multiplies by (e + 1), so the combine must route each row back to the right token.
  const grouped = dispatchRows(input, plan, hidden);
  for (let e = 0; e < experts; e++) {
    for (let row = plan.expertOffsets[e]; row < plan.expertOffsets[e + 1]; row++) {
      for (let h = 0; h < hidden; h++) grouped[row * hidden + h] *= e + 1;
    }
  }
  const output = combineRows(grouped, plan, hidden);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < hidden; h++) {
      let expected = 0;
      for (let k = 0; k < topK; k++) expected += routed.weights[t * topK + k] * (routed.indices[t * topK + k] + 1) * input[t * hidden + h];
      assert.ok(Math.abs(output[t * hidden + h] - expected) < 1e-5);
    }
  }
});

test("bad dispatch input throws RangeError naming it", () => {
  assert.throws(() => planDispatch(indices.subarray(1), weights, { tokens: 4, experts: 3, topK: 2 }), { name: "RangeError", message: /indices has length 7/ });
  assert.throws(() => planDispatch(new Int32Array([0, 3, 0, 0, 0, 0, 0, 0]), weights, { tokens: 4, experts: 3, topK: 2 }), { name: "RangeError", message: /indices\[1\] = 3/ });
  assert.throws(() => planDispatch(indices, weights, { tokens: 4, experts: 3, topK: 2, capacityFactor: 0 }), { name: "RangeError", message: /capacityFactor/ });
});
