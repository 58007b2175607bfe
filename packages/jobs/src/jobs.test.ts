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
