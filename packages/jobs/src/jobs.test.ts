import assert from "node:assert/strict";
import { test } from "node:test";
import { type WorkerInfo, deviceLabel, jobOptions, resolveConfig, runName, validateJobSpec, waitingReason } from "./index.js";

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
  assert.throws(() => validateJobSpec({ run: "a..b" }), (e: Error) => e instanceof RangeError && /run: invalid run name "a\.\.b"/.test(e.message));
  assert.throws(() => validateJobSpec({ config: "nope" }), /config: unknown config/);
  assert.throws(() => validateJobSpec({ recipe: "fp4" }), /recipe/);
  // an fp8 config whose model dimension is not a multiple of the quantization block
  const tiny = resolveConfig(validateJobSpec({ recipe: "fp32" }));
  const bad = { ...tiny, model: { ...tiny.model, dModel: 96 } };
  assert.throws(() => validateJobSpec({ config: bad, recipe: "fp8" }), /config: .*dModel/);
  assert.doesNotThrow(() => validateJobSpec({ config: bad, recipe: "fp32" }));
});

test("a spec's data replaces the config's; without it the config's data stays", () => {
  const custom = { ...resolveConfig(validateJobSpec({})), data: { kind: "synthetic", seed: 5 } };
  assert.deepEqual(resolveConfig(validateJobSpec({ config: custom })).data, { kind: "synthetic", seed: 5 });
  assert.deepEqual(resolveConfig(validateJobSpec({})).data, { kind: "synthetic", seed: 1 });
  assert.equal(validateJobSpec({}).data, undefined);
  const text = validateJobSpec({ config: custom, data: { kind: "text", path: "corpus.txt" } });
  assert.deepEqual(text.data, { kind: "text", path: "corpus.txt", valFraction: 0.1 });
  assert.deepEqual(resolveConfig(text).data, { kind: "text", path: "corpus.txt", valFraction: 0.1 });
  assert.deepEqual(resolveConfig(validateJobSpec({ data: { kind: "synthetic" } })).data, { kind: "synthetic", seed: 1 });
  const llmc = { kind: "llmc", train: "/d/train.bin", val: "/d/val.bin" } as const;
  assert.deepEqual(resolveConfig(validateJobSpec({ config: "micro", data: llmc })).data, llmc);
});

test("a spec's data is validated by the config's data schema, with the field named", () => {
  assert.throws(() => validateJobSpec({ data: { kind: "text", path: "" } }), (e: Error) => e instanceof RangeError && /data\.path/.test(e.message));
  assert.throws(() => validateJobSpec({ data: { kind: "text", path: "a.txt", valFraction: 1 } }), /data\.valFraction/);
  assert.throws(() => validateJobSpec({ data: { kind: "llmc", train: "t.bin" } }), /data\.val/);
  assert.throws(() => validateJobSpec({ data: { kind: "parquet" } }), /data\.kind/);
  assert.throws(() => validateJobSpec({ data: { kind: "synthetic", seed: 1, extra: 2 } }), /extra|Unrecognized/);
  // Text is byte-level: a model whose vocabulary is not 256 is refused at submission, not by the trainer.
  assert.throws(() => validateJobSpec({ config: "micro", data: { kind: "text", path: "a.txt" } }), /config: .*model\.vocabSize: must be 256/);
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

test("device: auto by default, cpu or cuda when asked; anything else names the field", () => {
  assert.equal(validateJobSpec({}).device, "auto");
  assert.equal(validateJobSpec({ device: "cuda", gpus: 2 }).device, "cuda");
  assert.throws(() => validateJobSpec({ device: "gpu" }), (e: Error) => e instanceof RangeError && /device/.test(e.message));
});

test("waitingReason: a job larger than every worker says so; one that fits some worker has none", () => {
  const w = (id: string, kind: "gpu" | "cpu", slots: number, busy = 0): WorkerInfo => ({ id, host: "h", pid: 1, kind, slots, busy, gpus: [], jobs: [], at: 0 });
  const spec = (gpus: number, device: "auto" | "cpu" | "cuda") => ({ gpus, device });
  assert.equal(waitingReason(spec(2, "cuda"), [w("a", "gpu", 1), w("b", "cpu", 8)]), "needs 2 GPUs; the largest worker has 1");
  assert.equal(waitingReason(spec(2, "auto"), [w("a", "gpu", 1)]), "needs 2 GPUs; the largest worker has 1");
  assert.equal(waitingReason(spec(1, "cuda"), [w("b", "cpu", 8)]), "needs 1 GPU; no worker has a GPU (1 worker, CPU only)");
  assert.equal(waitingReason(spec(1, "cuda"), []), "needs 1 GPU; no worker is running");
  assert.equal(waitingReason(spec(3, "cpu"), [w("b", "cpu", 2)]), "needs 3 slots; the largest worker has 2 (CPU slots)");
  assert.equal(waitingReason(spec(2, "cuda"), [w("a", "gpu", 2, 1)]), "needs 2 free GPUs on one worker; every worker that has 2 is busy");
  // A CPU job fits the CPU worker's 8 slots: nothing to explain.
  assert.equal(waitingReason(spec(2, "cpu"), [w("a", "gpu", 1), w("b", "cpu", 8)]), null);
  assert.equal(waitingReason(spec(1, "cuda"), [w("a", "gpu", 1)]), null);
});

test("deviceLabel names the GPUs or the CPU", () => {
  assert.equal(deviceLabel({ kind: "cuda", gpus: [{ index: 1, name: "NVIDIA H100", memoryMiB: 1 }] }), "GPU 1 (NVIDIA H100)");
  assert.equal(deviceLabel({ kind: "cuda", gpus: [{ index: 2, name: "A", memoryMiB: 1 }, { index: 3, name: "A", memoryMiB: 1 }] }), "GPUs 2, 3 (A)");
  assert.equal(deviceLabel({ kind: "cpu", gpus: [] }), "CPU");
  assert.equal(deviceLabel(undefined), "unknown");
});
