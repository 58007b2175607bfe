import assert from "node:assert/strict";
import { test } from "node:test";
import { jobOptions, resolveConfig, runName, validateJobSpec } from "./index.js";

test("validateJobSpec fills defaults and resolves the preset with overrides", () => {
  const spec = validateJobSpec({ run: "r1", steps: 7, batchSize: 2 });
  assert.equal(spec.config, "tiny");
  assert.equal(spec.recipe, "fp8");
  assert.equal(spec.gpus, 1);
  assert.deepEqual(spec.checkpoint, { every: 50, keep: 3 });
  const c = resolveConfig(spec);
  assert.equal(c.train.steps, 7);
  assert.equal(c.train.batchSize, 2);
  assert.equal(runName(spec, "42"), "r1");
  assert.equal(runName(validateJobSpec({}), "42"), "job-42");
  assert.equal(jobOptions(spec).attempts, 4);
});

test("validateJobSpec names the offending field", () => {
  assert.throws(() => validateJobSpec({ steps: -1 }), (e: Error) => e instanceof RangeError && /steps/.test(e.message));
  assert.throws(() => validateJobSpec({ gpus: 0 }), /gpus/);
  assert.throws(() => validateJobSpec({ bogus: 1 }), /bogus|Unrecognized/);
  assert.throws(() => validateJobSpec({ run: "../etc" }), /run/);
  assert.throws(() => validateJobSpec({ config: "nope" }), /config: unknown config/);
  assert.throws(() => validateJobSpec({ recipe: "fp4" }), /recipe/);
  // an fp8 config whose model dimension is not a multiple of the quantization block
  const tiny = resolveConfig(validateJobSpec({ recipe: "fp32" }));
  const bad = { ...tiny, model: { ...tiny.model, dModel: 96 } };
  assert.throws(() => validateJobSpec({ config: bad, recipe: "fp8" }), /config: .*dModel/);
  assert.doesNotThrow(() => validateJobSpec({ config: bad, recipe: "fp32" }));
});

test("keysFor keeps the default prefix's keys and separates other prefixes", async () => {
  const { keys, keysFor } = await import("./index.js");
  assert.equal(keys.worker("w1"), "octet:worker:w1");
  assert.equal(keysFor("bull").curve("7"), "octet:curve:7");
  const k = keysFor("t-123");
  assert.equal(k.worker("w1"), "t-123:octet:worker:w1");
  assert.equal(k.workerPattern(), "t-123:octet:worker:*");
  assert.equal(k.cancel("5"), "t-123:octet:cancel:5");
  assert.equal(k.cancelChannel(), "t-123:octet:cancel");
  assert.equal(k.curve("5"), "t-123:octet:curve:5");
  assert.throws(() => keysFor(""), RangeError);
});
