// A job added with plain BullMQ (no Octet client) looks and behaves the same through JobService as one
// submitted through it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Job } from "bullmq";
import { JOB_NAME, jobOptions, validateJobSpec } from "@octet/jobs";
import { deferred, startTestBed, type TestBed } from "./testing/harness.js";
import type { JobView, WatchEvent } from "@octet/jobs/view";

let bed: TestBed;
before(async () => {
  bed = await startTestBed("bullmq");
});
after(async () => {
  await bed.close();
});

/** What must be equal between two submissions of one spec (ids, times and data as stored may differ). */
function comparable(v: JobView) {
  return {
    name: v.name,
    state: v.state,
    cancelRequested: v.cancelRequested,
    spec: v.spec && { ...v.spec, run: undefined },
    specError: v.specError,
    run: v.run?.replace(v.id, "<id>"),
    priority: v.priority,
    attemptsMade: v.attemptsMade,
    maxAttempts: v.maxAttempts,
    startedAt: v.startedAt,
    finishedAt: v.finishedAt,
    progress: v.progress,
    result: v.result,
    failedReason: v.failedReason,
    checkpoints: v.checkpoints,
  };
}

test("plain BullMQ queue.add and gRPC SubmitJob give the same job through GetJob, ListJobs and WatchJob", async () => {
  const input = { steps: 20, recipe: "fp8" as const, gpus: 2, priority: 3, checkpoint: { every: 5 } };
  // the README's plain-BullMQ recipe: raw input as data, the options jobOptions gives for the validated spec
  const plain = await bed.queue.add(JOB_NAME, input, jobOptions(validateJobSpec(input)));
  const viaGrpc = await bed.client.submit(input);

  const a = await bed.client.get(String(plain.id));
  const b = await bed.client.get(viaGrpc.job.id);
  assert.deepEqual(comparable(a), comparable(b));
  assert.equal(a.state, "waiting");
  assert.equal(a.spec?.gpus, 2);
  assert.equal(a.spec?.ema.every, 10); // defaults filled for the plain job too
  assert.equal(a.run, `job-${plain.id}`);
  assert.equal(a.priority, 3);
  assert.equal(a.maxAttempts, 4);
  assert.deepEqual(a.data, input); // what the program stored is kept as is

  const listed = await bed.client.list({ states: ["waiting"] });
  const la = listed.jobs.find((j) => j.id === String(plain.id));
  const lb = listed.jobs.find((j) => j.id === viaGrpc.job.id);
  assert.ok(la && lb);
  assert.deepEqual(comparable(la), comparable(lb));

  // watched and run the same way (the worker stands in for a trainer)
  const watch = async (id: string, seen: () => void, progressed: () => void) => {
    const events: WatchEvent[] = [];
    for await (const e of bed.client.watch(id)) {
      events.push(e);
      if (e.kind === "snapshot") seen();
      if (e.kind === "progress") progressed();
    }
    return events;
  };
  const s1 = deferred();
  const s2 = deferred();
  const reportedA = deferred();
  const reportedB = deferred();
  const wa = watch(String(plain.id), s1.resolve, reportedA.resolve);
  const wb = watch(viaGrpc.job.id, s2.resolve, reportedB.resolve);
  await Promise.all([s1.promise, s2.promise]);
  const finish = deferred();
  const w = bed.worker(async (j: Job) => {
    await j.updateProgress({ phase: "running", step: 20, totalSteps: 20, loss: 1.5, valLoss: null, tokensPerSec: 10, lastCheckpoint: { step: 20, path: "/c/20" }, resumedFrom: null, attempt: 1, workerId: "w" });
    await finish.promise; // both watchers have seen the report: the two event sequences do not depend on timing
    return { run: "r", step: 20, loss: 1.5, valLoss: 1.6, tokensPerSec: 10, recipe: "fp8", entropyRate: null, unigramEntropy: null, checkpoints: [], emaStep: null, resumedFrom: null, seconds: 1 };
  }, { concurrency: 2 });
  await Promise.all([reportedA.promise, reportedB.promise]);
  finish.resolve();
  const [ea, eb] = await Promise.all([wa, wb]);
  await w.close();
  const shape = (es: WatchEvent[]) => es.map((e) => `${e.kind}:${e.state}${e.kind === "progress" ? `@${e.progress.step}` : ""}`);
  assert.deepEqual(shape(ea), shape(eb));
  assert.deepEqual(shape(ea), ["snapshot:waiting", "state:active", "progress:active@20", "state:completed"]);
  const fa = await bed.client.get(String(plain.id));
  const fb = await bed.client.get(viaGrpc.job.id);
  assert.equal(fa.result?.loss, 1.5);
  assert.deepEqual({ ...comparable(fa), startedAt: 0, finishedAt: 0 }, { ...comparable(fb), startedAt: 0, finishedAt: 0 });
});

test("a plain BullMQ job with an invalid spec is shown with the error naming the field, and can be cancelled", async () => {
  const bad = await bed.queue.add(JOB_NAME, { steps: "many", gpus: 0 }, { priority: 1 });
  const v = await bed.client.get(String(bad.id));
  assert.equal(v.spec, null);
  assert.match(v.specError ?? "", /steps/);
  assert.match(v.specError ?? "", /gpus/);
  assert.equal(v.run, null);
  assert.deepEqual(v.data, { steps: "many", gpus: 0 });
  const c = await bed.client.cancel(String(bad.id));
  assert.equal(c.outcome, "cancelled-now");
  assert.equal(c.job.state, "cancelled");
});

test("jobs added without options (no priority, one attempt) and to a paused queue are waiting; cancel works there too", async () => {
  const j = await bed.queue.add(JOB_NAME, { run: "no-opts" });
  const v = await bed.client.get(String(j.id));
  assert.equal(v.state, "waiting");
  assert.equal(v.priority, 0);
  assert.equal(v.maxAttempts, 1);
  await bed.queue.pause();
  try {
    const p = await bed.queue.add(JOB_NAME, { run: "paused" });
    assert.equal((await bed.client.get(String(p.id))).state, "waiting");
    assert.ok((await bed.client.list({ states: ["waiting"] })).jobs.some((x) => x.id === String(p.id)));
    assert.equal((await bed.client.cancel(String(p.id))).outcome, "cancelled-now");
    assert.equal((await bed.client.cancel(String(j.id))).outcome, "cancelled-now");
    assert.equal((await bed.client.get(String(p.id))).state, "cancelled");
  } finally {
    await bed.queue.resume();
  }
});
