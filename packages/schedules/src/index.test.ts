import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStepSchedule, stepScheduleSchema, valueAt } from "./index.js";
import { z } from "zod";

test("schedules: piecewise from step 0, constants and plain numbers", () => {
  const s = parseStepSchedule({ kind: "piecewise", points: [[0, 0.3], [1000, 0.1]] }, "lambda");
  assert.deepEqual([0, 999, 1000, 10 ** 9].map((t) => valueAt(s, t)), [0.3, 0.3, 0.1, 0.1]);
  assert.equal(valueAt(parseStepSchedule({ kind: "constant", value: 0.2 }, "x"), 5), 0.2);
  assert.equal(valueAt(parseStepSchedule(0.5, "x"), 5), 0.5);
  const three = parseStepSchedule({ kind: "piecewise", points: [[0, 1], [10, 0.5], [20, 0]] }, "x");
  assert.deepEqual([0, 9, 10, 19, 20].map((t) => valueAt(three, t)), [1, 1, 0.5, 0.5, 0]);
});

test("schedules: invalid schedules are refused naming the field and the path inside it", () => {
  assert.throws(() => parseStepSchedule(-0.1, "gamma"), (e: Error) => e instanceof RangeError && /^gamma: /.test(e.message));
  assert.throws(() => parseStepSchedule("0.3", "gamma"), TypeError);
  assert.throws(() => parseStepSchedule({ kind: "constant", value: "x" }, "gamma"), { name: "TypeError", message: /gamma\.value/ });
  assert.throws(() => parseStepSchedule({ kind: "piecewise", points: [[5, 0.3]] }, "lambda"), { name: "RangeError", message: /lambda\.points\.0\.0: the first point must be at step 0/ });
  assert.throws(() => parseStepSchedule({ kind: "piecewise", points: [[0, 0.3], [0, 0.1]] }, "lambda"), /lambda\.points\.1\.0: steps must increase strictly/);
  assert.throws(() => parseStepSchedule({ kind: "piecewise", points: [] }, "gamma"), /gamma\.points: points must not be empty/);
  assert.throws(() => parseStepSchedule({ kind: "constant", value: 0.1, extra: 1 }, "x"), RangeError);
  assert.throws(() => valueAt(0.3, -1), /step must be a non-negative integer/);
  assert.throws(() => valueAt(0.3, 1.5), RangeError);
});

test("schedules: a caller's own value range", () => {
  const unit = stepScheduleSchema(z.number().min(0).max(1));
  assert.equal(valueAt(parseStepSchedule({ kind: "piecewise", points: [[0, 1]] }, "p", unit), 3), 1);
  assert.throws(() => parseStepSchedule({ kind: "piecewise", points: [[0, 2]] }, "p", unit), { name: "RangeError", message: /^p\.points\.0\.1/ });
});
