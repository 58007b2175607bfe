import { test } from "node:test";
import assert from "node:assert/strict";
import { deepseekV3LambdaSchedule, lambdaAt, parseLambdaSchedule } from "./schedule.js";

test("λ schedule: DeepSeek-V3's 0.3 then 0.1, constants and plain numbers", () => {
  const s = deepseekV3LambdaSchedule(1000);
  assert.equal(lambdaAt(s, 0), 0.3);
  assert.equal(lambdaAt(s, 999), 0.3);
  assert.equal(lambdaAt(s, 1000), 0.1);
  assert.equal(lambdaAt(s, 10 ** 9), 0.1);
  assert.equal(lambdaAt(parseLambdaSchedule({ kind: "constant", value: 0.2 }), 5), 0.2);
  assert.equal(lambdaAt(parseLambdaSchedule(0.5), 5), 0.5);
  const three = parseLambdaSchedule({ kind: "piecewise", points: [[0, 1], [10, 0.5], [20, 0]] });
  assert.deepEqual([0, 9, 10, 19, 20].map((t) => lambdaAt(three, t)), [1, 1, 0.5, 0.5, 0]);
});

test("λ schedule: invalid schedules are refused naming the field", () => {
  assert.throws(() => parseLambdaSchedule(-0.1), (e: Error) => e instanceof RangeError && /lambda/.test(e.message));
  assert.throws(() => parseLambdaSchedule("0.3"), TypeError);
  assert.throws(() => parseLambdaSchedule({ kind: "piecewise", points: [[5, 0.3]] }), /lambda\.points\.0\.0: the first point must be at step 0/);
  assert.throws(() => parseLambdaSchedule({ kind: "piecewise", points: [[0, 0.3], [0, 0.1]] }), /lambda\.points\.1\.0: steps must increase strictly/);
  assert.throws(() => parseLambdaSchedule({ kind: "piecewise", points: [] }), /points must not be empty/);
  assert.throws(() => parseLambdaSchedule({ kind: "constant", value: 0.1, extra: 1 }), RangeError);
  assert.throws(() => deepseekV3LambdaSchedule(0), /steps must increase strictly/);
  assert.throws(() => lambdaAt(0.3, -1), /step must be a non-negative integer/);
});
