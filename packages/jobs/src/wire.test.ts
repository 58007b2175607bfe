// JobService's codec (wire.ts): specs, jobs and watch events survive the trip through the proto messages, as
// encoded and decoded bytes, in both directions the orchestrator and JobClient use.
import assert from "node:assert/strict";
import { test } from "node:test";
import { octet } from "@octet/proto";
import { validateJobSpec } from "./index.js";
import type { JobView, WatchEvent } from "./view.js";
import { eventFromProto, eventToProto, fitsTypedSpec, jobFromProto, jobToProto, specInputFromRequest, specToProto, stateFromProto, stateToProto, statesFromProto } from "./wire.js";

test("typed proto specs round-trip to the same validated spec; unset fields take the defaults", () => {
  const input = {
    run: "r",
    config: "tiny",
    recipe: "bf16" as const,
    seed: 9,
    steps: 12,
    batchSize: 4,
    evalEvery: 3,
    data: { kind: "text" as const, path: "/d.txt", valFraction: 0.2 },
    checkpoint: { every: 4 },
    ema: { enabled: false },
    gpus: 2,
    device: "cuda" as const,
    priority: 5,
    retries: 0,
  };
  assert.ok(fitsTypedSpec(input));
  const wire = octet.orchestrator.v1.SubmitJobRequest.decode(octet.orchestrator.v1.SubmitJobRequest.encode({ spec: specToProto(input) }).finish());
  assert.deepEqual(validateJobSpec(specInputFromRequest(wire)), validateJobSpec(input));
  const empty = octet.orchestrator.v1.SubmitJobRequest.decode(octet.orchestrator.v1.SubmitJobRequest.encode({ spec: {} }).finish());
  assert.deepEqual(specInputFromRequest(empty), {});
  const custom = { config: { model: { dModel: 64 } } };
  assert.deepEqual(specInputFromRequest({ spec: specToProto(custom) }), custom);
  assert.ok(!fitsTypedSpec({ steps: -1 }));
  assert.throws(() => specInputFromRequest({ specJson: "{" }), /spec_json: not valid JSON/);
});

test("JobView → Job message → JobView is lossless for what the proto carries", () => {
  const view: JobView = {
    id: "7",
    name: "train",
    state: "completed",
    cancelRequested: false,
    spec: validateJobSpec({ run: "x" }),
    specError: null,
    data: { run: "x" },
    run: "x",
    priority: 10,
    attemptsMade: 2,
    maxAttempts: 4,
    createdAt: 1000,
    startedAt: 2000,
    finishedAt: 3000,
    progress: {
      phase: "done", step: 9, totalSteps: 9, loss: 1.5, valLoss: null, tokensPerSec: 10, lastCheckpoint: { step: 9, path: "/c" }, resumedFrom: 4, attempt: 2, workerId: "w",
      device: { kind: "cuda", gpus: [{ index: 3, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 }] },
      stats: { stepMs: 12.5, memoryBytes: 2 ** 33, peakMemoryBytes: 2 ** 34, emaStallMs: 1.5, checkpointStallMs: 20 },
      ema: { step: 8, failedPushes: 2, coalescedPushes: 1, outages: 1, gapSteps: 4 },
    },
    result: {
      run: "x", step: 9, loss: 1.5, valLoss: 1.6, tokensPerSec: 10, recipe: "fp8", entropyRate: null, unigramEntropy: 2, checkpoints: [{ step: 9, path: "/c" }], emaStep: null, resumedFrom: 4, seconds: 3,
      device: { kind: "cpu", gpus: [] },
      ema: { step: null, failedPushes: 0, coalescedPushes: 0, outages: 0, gapSteps: 0 },
    },
    failedReason: "worker died",
    stacktrace: ["Error: x"],
    checkpoints: [{ step: 9, path: "/c" }],
    curve: [{ step: 1, loss: 3, valLoss: 3.1 }],
    waitingReason: null,
  };
  const wire = octet.orchestrator.v1.Job.decode(octet.orchestrator.v1.Job.encode(jobToProto(view)).finish());
  assert.deepEqual(jobFromProto(wire), view);
});

test("job states and watch events round-trip; an unspecified or unknown state in a ListJobs filter is a RangeError", () => {
  for (const s of ["waiting", "delayed", "active", "completed", "failed", "cancelled", "unknown"] as const) assert.equal(stateFromProto(stateToProto(s)), s);
  assert.deepEqual(statesFromProto([stateToProto("active"), stateToProto("cancelled")]), ["active", "cancelled"]);
  assert.throws(() => statesFromProto([stateToProto("unknown")]), RangeError);
  assert.throws(() => statesFromProto([99]), /states\[0\]: not a job state \(99\)/);

  const progress = { phase: "running" as const, step: 3, totalSteps: 9, loss: 2.5, valLoss: null, tokensPerSec: 100, lastCheckpoint: null, resumedFrom: null, attempt: 1, workerId: "w" };
  const job: JobView = {
    id: "4",
    name: "train",
    state: "active",
    cancelRequested: true,
    spec: validateJobSpec({ run: "y" }),
    specError: null,
    data: { run: "y" },
    run: "y",
    priority: 0,
    attemptsMade: 0,
    maxAttempts: 1,
    createdAt: 5,
    startedAt: 6,
    finishedAt: null,
    progress,
    result: null,
    failedReason: null,
    stacktrace: [],
    checkpoints: [],
    waitingReason: "needs 2 GPUs; the largest worker has 1",
  };
  const trip = (e: WatchEvent) => eventFromProto(octet.orchestrator.v1.JobEvent.decode(octet.orchestrator.v1.JobEvent.encode(eventToProto(e)).finish()));
  for (const e of [
    { kind: "snapshot", state: "active", job, progress, time: 7 },
    { kind: "state", state: "active", job, progress: null, time: 8 },
    { kind: "progress", state: "active", progress, time: 9 },
  ] satisfies WatchEvent[]) {
    assert.deepEqual(trip(e), e);
  }
});
