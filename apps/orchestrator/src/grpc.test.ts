// JobService over real sockets and the shared local Redis: submit, get, list, cancel, watch, errors.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { UnrecoverableError, type Job } from "bullmq";
import { Redis } from "ioredis";
import { CANCELLED_REASON, type JobProgress, type JobResult } from "@octet/jobs";
import { callUnary, status } from "@octet/proto";
import { REDIS_URL, deferred, eventually, startTestBed, type TestBed } from "./testing/harness.js";
import type { WatchEvent } from "@octet/jobs/view";

let bed: TestBed;
before(async () => {
  bed = await startTestBed("grpc");
});
after(async () => {
  await bed.close();
});

const code = (c: number, re?: RegExp) => (err: unknown) => {
  const e = err as { code?: number; details?: string; message?: string };
  assert.equal(e.code, c, `expected status ${c}, got ${e.code}: ${e.details ?? e.message}`);
  if (re) assert.match(e.details ?? "", re);
  return true;
};

function progress(step: number, loss: number, extra: Partial<JobProgress> = {}): JobProgress {
  return {
    phase: "running",
    step,
    totalSteps: 3,
    loss,
    valLoss: null,
    tokensPerSec: 1000 + step,
    lastCheckpoint: null,
    resumedFrom: null,
    attempt: 1,
    workerId: "test-worker",
    ...extra,
  };
}

test("submit (typed and JSON) fills defaults; get and list show the jobs; paging and state filters", async () => {
  const a = await bed.client.submit({ run: "grpc-a", steps: 5, checkpoint: { every: 2 } });
  assert.equal(a.created, true);
  assert.equal(a.job.state, "waiting");
  assert.equal(a.job.run, "grpc-a");
  assert.equal(a.job.spec?.recipe, "fp8");
  assert.equal(a.job.spec?.config, "tiny");
  assert.deepEqual(a.job.spec?.checkpoint, { every: 2, keep: 3 });
  assert.equal(a.job.spec?.gpus, 1);
  assert.equal(a.job.priority, 10);
  assert.equal(a.job.maxAttempts, 4);
  assert.equal(a.job.name, "train");

  const b = await bed.client.submit({ recipe: "bf16", priority: 1, data: { kind: "synthetic", seed: 7 } }, { asJson: true });
  assert.equal(b.job.spec?.recipe, "bf16");
  assert.deepEqual(b.job.spec?.data, { kind: "synthetic", seed: 7 });
  assert.equal(b.job.run, `job-${b.job.id}`);
  assert.equal(b.job.priority, 1);

  const got = await bed.client.get(a.job.id);
  assert.deepEqual(got.spec, a.job.spec);
  assert.equal(got.state, "waiting");

  const all = await bed.client.list();
  const ids = all.jobs.map((j) => j.id);
  assert.ok(ids.includes(a.job.id) && ids.includes(b.job.id));
  assert.ok(all.counts.waiting >= 2);
  // waiting jobs come next-to-run first: b has the more urgent priority
  assert.ok(ids.indexOf(b.job.id) < ids.indexOf(a.job.id));

  const p1 = await bed.client.list({ states: ["waiting"], pageSize: 1 });
  assert.equal(p1.jobs.length, 1);
  assert.notEqual(p1.nextPageToken, "");
  const p2 = await bed.client.list({ states: ["waiting"], pageSize: 1, pageToken: p1.nextPageToken });
  assert.equal(p2.jobs.length, 1);
  assert.notEqual(p2.jobs[0].id, p1.jobs[0].id);

  assert.deepEqual((await bed.client.list({ states: ["completed"] })).jobs, []);
  await assert.rejects(bed.client.list({ states: ["waiting"], pageToken: "garbage" }), code(status.INVALID_ARGUMENT, /page_token/));
  await assert.rejects(bed.client.list({ pageSize: 5000 }), code(status.INVALID_ARGUMENT, /page_size/));

  // idempotent submission on job_id
  const x1 = await bed.client.submit({ run: "idem" }, { jobId: "idem-1" });
  const x2 = await bed.client.submit({ run: "other" }, { jobId: "idem-1" });
  assert.equal(x1.created, true);
  assert.equal(x2.created, false);
  assert.equal(x2.job.run, "idem");
  await assert.rejects(bed.client.submit({}, { jobId: "123" }), code(status.INVALID_ARGUMENT, /job_id/));

  for (const id of [a.job.id, b.job.id, "idem-1"]) await bed.client.cancel(id);
});

test("invalid specs are INVALID_ARGUMENT naming the field, and nothing is queued", async () => {
  const before = await bed.orch.store.counts();
  const raw = bed.client.raw;
  await assert.rejects(callUnary(raw, "submitJob", { spec: { steps: 0 } }), code(status.INVALID_ARGUMENT, /invalid job spec: steps:/));
  await assert.rejects(callUnary(raw, "submitJob", { spec: { checkpoint: { every: 0 } } }), code(status.INVALID_ARGUMENT, /checkpoint\.every/));
  await assert.rejects(callUnary(raw, "submitJob", { spec: { recipe: "fp4" } }), code(status.INVALID_ARGUMENT, /recipe/));
  await assert.rejects(callUnary(raw, "submitJob", { spec: { configPreset: "huge" } }), code(status.INVALID_ARGUMENT, /config: unknown config "huge"/));
  await assert.rejects(callUnary(raw, "submitJob", { spec: { configJson: "{not json" } }), code(status.INVALID_ARGUMENT, /config_json.*not valid JSON/));
  await assert.rejects(callUnary(raw, "submitJob", { spec: { run: "../etc" } }), code(status.INVALID_ARGUMENT, /run:/));
  await assert.rejects(callUnary(raw, "submitJob", { specJson: '{"gpus": 0}' }), code(status.INVALID_ARGUMENT, /gpus/));
  await assert.rejects(callUnary(raw, "submitJob", { specJson: '{"bogus": 1}' }), code(status.INVALID_ARGUMENT, /bogus/));
  await assert.rejects(callUnary(raw, "submitJob", { specJson: "[1,2]" }), code(status.INVALID_ARGUMENT, /spec_json: must be a JSON object/));
  await assert.rejects(callUnary(raw, "submitJob", { specJson: '{"data": {"kind": "text"}}' }), code(status.INVALID_ARGUMENT, /data\.path/));
  // the typed client path too
  await assert.rejects(bed.client.submit({ batchSize: -3 }), code(status.INVALID_ARGUMENT, /batchSize/));
  assert.deepEqual(await bed.orch.store.counts(), before);
});

test("unknown jobs are NOT_FOUND for GetJob, CancelJob and WatchJob; an empty id is INVALID_ARGUMENT", async () => {
  await assert.rejects(bed.client.get("no-such-job"), code(status.NOT_FOUND, /no job "no-such-job"/));
  await assert.rejects(bed.client.cancel("no-such-job"), code(status.NOT_FOUND));
  await assert.rejects(
    (async () => {
      for await (const _ of bed.client.watch("no-such-job")) void _;
    })(),
    code(status.NOT_FOUND),
  );
  await assert.rejects(bed.client.get(""), code(status.INVALID_ARGUMENT, /id/));
});

test("watch: a snapshot, the state changes and every progress report, then the end with the result", async () => {
  const { job } = await bed.client.submit({ run: "watch-1", steps: 3 });
  const events: WatchEvent[] = [];
  const subscribed = deferred();
  const sawLast = deferred();
  const done = (async () => {
    for await (const e of bed.client.watch(job.id)) {
      events.push(e);
      if (e.kind === "snapshot") subscribed.resolve();
      if (e.kind === "progress" && e.progress.step === 3) sawLast.resolve();
    }
  })();
  await subscribed.promise;
  const result: JobResult = {
    run: "watch-1",
    step: 3,
    loss: 1.25,
    valLoss: 1.5,
    tokensPerSec: 1003,
    recipe: "fp8",
    entropyRate: 1.1,
    unigramEntropy: 2.0,
    checkpoints: [{ step: 3, path: "/ckpt/watch-1/3" }],
    emaStep: 3,
    resumedFrom: null,
    seconds: 0.1,
  };
  const w = bed.worker(async (j: Job) => {
    if (j.id !== job.id) return null;
    for (let s = 1; s <= 3; s++) await j.updateProgress(progress(s, 2 - s * 0.25, s === 3 ? { lastCheckpoint: { step: 3, path: "/ckpt/watch-1/3" } } : {}));
    await sawLast.promise; // a real step takes a while; the end arriving with the reports is tested below
    return result;
  });
  await done;
  await w.close();

  assert.equal(events[0].kind, "snapshot");
  assert.equal(events[0].state, "waiting");
  const states = events.filter((e) => e.kind !== "progress").map((e) => e.state);
  assert.ok(states.includes("active"), `states seen: ${states.join(",")}`);
  assert.equal(states[states.length - 1], "completed");
  const steps = events.filter((e) => e.kind === "progress").map((e) => e.progress!.step);
  assert.deepEqual(steps, [1, 2, 3]);
  const last = events[events.length - 1];
  assert.equal(last.kind, "state");
  if (last.kind === "state") {
    assert.equal(last.job.result?.loss, 1.25);
    assert.deepEqual(last.job.checkpoints, [{ step: 3, path: "/ckpt/watch-1/3" }]);
    assert.equal(last.job.progress?.lastCheckpoint?.path, "/ckpt/watch-1/3");
  }
  // watching a finished job: its snapshot, then the end
  const again: WatchEvent[] = [];
  for await (const e of bed.client.watch(job.id)) again.push(e);
  assert.deepEqual(
    again.map((e) => [e.kind, e.state]),
    [["snapshot", "completed"]],
  );
});

test("watch a job that reports and ends at once: every report still comes before the end", async () => {
  const { job } = await bed.client.submit({ run: "watch-fast" });
  const events: WatchEvent[] = [];
  const subscribed = deferred();
  const done = (async () => {
    for await (const e of bed.client.watch(job.id)) {
      events.push(e);
      if (e.kind === "snapshot") subscribed.resolve();
    }
  })();
  await subscribed.promise;
  const w = bed.worker(async (j: Job) => {
    for (let s = 1; s <= 5; s++) await j.updateProgress(progress(s, 3 - s * 0.1));
    return null;
  });
  await done;
  await w.close();
  assert.deepEqual(
    events.filter((e) => e.kind === "progress").map((e) => e.progress!.step),
    [1, 2, 3, 4, 5],
  );
  assert.equal(events[events.length - 1].state, "completed");
  assert.equal(events.filter((e) => e.state === "completed").length, 1);
});

test("cancel a waiting job: it moves to failed with reason cancelled, never runs, and keeps its history", async () => {
  const first = await bed.client.submit({ run: "cancel-waiting" });
  const c = await bed.client.cancel(first.job.id);
  assert.equal(c.outcome, "cancelled-now");
  assert.equal(c.job.state, "cancelled");
  assert.equal(c.job.failedReason, CANCELLED_REASON);
  assert.equal(c.job.cancelRequested, true);
  assert.equal(c.job.spec?.run, "cancel-waiting");
  assert.equal(await bed.redis.get(bed.keys.cancel(first.job.id)), "1");
  assert.equal((await bed.client.cancel(first.job.id)).outcome, "already");
  // BullMQ itself sees a failed job
  const bullJob = await bed.queue.getJob(first.job.id);
  assert.equal(await bullJob!.getState(), "failed");
  assert.equal(bullJob!.failedReason, CANCELLED_REASON);

  // a worker started now only ever sees the next job
  const processed: string[] = [];
  const second = await bed.client.submit({ run: "after-cancel" });
  const w = bed.worker(async (j: Job) => {
    processed.push(String(j.id));
    return null;
  });
  const end = await bed.client.waitFor(second.job.id);
  await w.close();
  assert.equal(end.state, "completed");
  assert.ok(!processed.includes(first.job.id), `processed ${processed.join(",")}`);
  assert.ok(processed.includes(second.job.id));
  assert.equal((await bed.client.get(first.job.id)).state, "cancelled");
  const listed = await bed.client.list({ states: ["cancelled"] });
  assert.ok(listed.jobs.some((j) => j.id === first.job.id));
  assert.ok(!(await bed.client.list({ states: ["failed"] })).jobs.some((j) => j.id === first.job.id));
  // a completed job cannot be cancelled
  await assert.rejects(bed.client.cancel(second.job.id), code(status.FAILED_PRECONDITION, /already completed/));
});

test("cancel a running job: key and message reach the trainer, which stops; the job ends cancelled, not retried", async () => {
  const { job } = await bed.client.submit({ run: "cancel-running", retries: 2 });
  const sub = new Redis(REDIS_URL);
  const messages: string[] = [];
  const gotMessage = deferred();
  await sub.subscribe(bed.keys.cancelChannel());
  sub.on("message", (_ch: string, id: string) => {
    messages.push(id);
    if (id === job.id) gotMessage.resolve();
  });
  const running = deferred();
  let keySeen: string | null = null;
  const w = bed.worker(async (j: Job) => {
    await j.updateProgress(progress(1, 2.0));
    running.resolve();
    await gotMessage.promise; // a trainer would check between steps
    keySeen = await bed.redis.get(bed.keys.cancel(String(j.id)));
    await j.updateProgress(progress(2, 1.9, { phase: "stopping", lastCheckpoint: { step: 2, path: "/ckpt/cancel-running/2" } }));
    throw new UnrecoverableError(CANCELLED_REASON);
  });
  await running.promise;
  const c = await bed.client.cancel(job.id);
  assert.equal(c.outcome, "requested");
  assert.equal(c.job.state, "active");
  assert.equal(c.job.cancelRequested, true);
  const end = await bed.client.waitFor(job.id);
  await w.close();
  await sub.quit();
  assert.equal(end.state, "cancelled", `failedReason ${end.failedReason}`);
  assert.equal(end.attemptsMade, 1);
  assert.equal(keySeen, "1");
  assert.deepEqual(messages, [job.id]);
  assert.deepEqual(end.checkpoints, [{ step: 2, path: "/ckpt/cancel-running/2" }]);
  await eventually(async () => (await bed.client.get(job.id)).state === "cancelled", "state to stay cancelled");
});

test("a failed job keeps its error and stack; a retried attempt shows delayed with the last error", async () => {
  const { job } = await bed.client.submit({ run: "fails", retries: 0 });
  const w = bed.worker(async () => {
    throw new Error("CUDA out of memory (simulated)");
  });
  const end = await bed.client.waitFor(job.id);
  await w.close();
  assert.equal(end.state, "failed");
  assert.match(end.failedReason ?? "", /CUDA out of memory/);
  assert.ok(end.stacktrace.length >= 1);
  assert.equal(end.attemptsMade, 1);
  assert.ok((await bed.client.list({ states: ["failed"] })).jobs.some((j) => j.id === job.id));

  // retries: the failed attempt waits out its backoff as "delayed", with its error, then runs again
  const retried = await bed.client.submit({ run: "retried", retries: 1 });
  const w2 = bed.worker(async (j: Job) => {
    if (j.attemptsMade === 0) throw new Error("worker lost (simulated)");
    return null;
  });
  const states: string[] = [];
  let delayedView: Awaited<ReturnType<typeof bed.client.get>> | undefined;
  const final = await bed.client.waitFor(retried.job.id, {
    onEvent: (e) => {
      if (e.kind === "progress") return;
      states.push(e.state);
      if (e.state === "delayed") delayedView = e.job;
    },
  });
  await w2.close();
  assert.ok(delayedView, `states: ${states.join(",")}`);
  assert.match(delayedView.failedReason ?? "", /worker lost/);
  assert.equal(delayedView.attemptsMade, 1);
  assert.equal(final.state, "completed");
  assert.equal(final.attemptsMade, 2);
});
