// Cancellation (a running job checkpoints and ends failed with CANCELLED_REASON, not retried; a job cancelled
// before it starts never trains) and plain-BullMQ submissions with an invalid spec (failed at once, no retries).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CANCELLED_REASON, JOB_NAME, type JobResult, keysFor } from "@octet/jobs";
import { Redis } from "ioredis";
import {
  SHARED_REDIS,
  type Services,
  type TrainerProc,
  cleanupPrefix,
  jobState,
  microSpec,
  openQueue,
  progressOf,
  startServices,
  startTrainer,
  submit,
  uniquePrefix,
  waitFinished,
  waitFor,
} from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
const prefix = uniquePrefix("cancel");
const keys = keysFor(prefix);
let services: Services;
let redis: Redis;
let trainer: TrainerProc;

before(async () => {
  services = await startServices("cancel");
  redis = new Redis(SHARED_REDIS);
  trainer = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-w` });
});

after(async () => {
  await trainer.kill("SIGKILL");
  redis.disconnect();
  await cleanupPrefix(SHARED_REDIS, prefix);
  await services.close();
});

test("cancelling a running job: it finishes the step, checkpoints, and fails with CANCELLED_REASON without a retry", async () => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    await submit(queue, microSpec("cancelled", { steps: 400, checkpoint: { every: 1000, keep: 2 }, retries: 3 }), "c-1");
    await waitFor(async () => ((progressOf((await jobState(queue, "c-1")).job)?.step ?? 0) >= 5 ? true : null), "step 5", 60_000, 20);
    // As the orchestrator's CancelJob does: the key, then the message.
    await redis.set(keys.cancel("c-1"), "1", "EX", 600);
    await redis.publish(keys.cancelChannel(), "c-1");
    const f = await waitFinished(queue, "c-1", 60_000);
    assert.equal(f.state, "failed");
    assert.equal(f.job.failedReason, CANCELLED_REASON);
    assert.equal(f.job.attemptsMade, 1, "not retried although retries were left");
    const p = progressOf(f.job)!;
    assert.ok(p.step > 0 && p.step < 400, `stopped at step ${p.step}`);
    // The checkpoint written at the cancel is the run's latest, at the step it stopped.
    const listed = await services.checkpointer.store.list("cancelled");
    assert.deepEqual(listed.map((c) => c.step), [p.step]);
    assert.deepEqual(p.lastCheckpoint, { step: p.step, path: `runs/cancelled/step-${String(p.step).padStart(12, "0")}` });
    // The job ended: its last progress says so, not the "stopping" of its last moments.
    assert.equal(p.phase, "done");
    const ended = trainer.logs.find((l) => l.msg === "job ended" && l.jobId === "c-1");
    assert.equal(ended?.outcome, "cancelled");
  } finally {
    await queue.close();
  }
});

test("a job cancelled before it starts never trains", async () => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    await redis.set(keys.cancel("c-2"), "1", "EX", 600);
    await submit(queue, microSpec("never", { steps: 10 }), "c-2");
    const f = await waitFinished(queue, "c-2", 30_000);
    assert.equal(f.state, "failed");
    assert.equal(f.job.failedReason, CANCELLED_REASON);
    assert.equal(progressOf(f.job)?.step ?? 0, 0);
    assert.deepEqual(await services.checkpointer.store.list("never"), []);
  } finally {
    await queue.close();
  }
});

test("plain BullMQ submissions: an invalid spec or job name fails at once with the reason, without retries; a valid one runs", async () => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    await queue.add(JOB_NAME, { config: "micro", steps: -3 }, { jobId: "bad-1", attempts: 4, backoff: { type: "fixed", delay: 100 } });
    await queue.add(JOB_NAME, { config: "micro", bogus: true }, { jobId: "bad-2", attempts: 4 });
    await queue.add("not-train", { config: "micro" }, { jobId: "bad-3", attempts: 4 });
    // A job submitted without a run name trains run "job-<id>".
    await queue.add(JOB_NAME, { config: "micro", steps: 6, checkpoint: { every: 3 }, ema: { enabled: false } }, { jobId: "plain-ok", attempts: 2 });
    const [b1, b2, b3, ok] = await Promise.all(["bad-1", "bad-2", "bad-3", "plain-ok"].map((id) => waitFinished(queue, id, 60_000)));
    assert.equal(b1.state, "failed");
    assert.match(b1.job.failedReason, /^invalid job spec: steps: /);
    assert.equal(b1.job.attemptsMade, 1);
    assert.match(b2.job.failedReason, /invalid job spec: .*bogus/);
    assert.equal(b2.job.attemptsMade, 1);
    assert.match(b3.job.failedReason, /invalid job: name "not-train"/);
    assert.equal(b3.job.attemptsMade, 1);
    assert.equal(ok.state, "completed", ok.job.failedReason);
    const r = ok.job.returnvalue as JobResult;
    assert.equal(r.run, "job-plain-ok");
    assert.equal(r.step, 6);
    assert.equal(r.emaStep, null);
    assert.ok(Number.isFinite(r.loss) && r.entropyRate! > 0 && r.unigramEntropy! > r.entropyRate!);
    assert.deepEqual((await services.checkpointer.store.list("job-plain-ok")).map((c) => c.step), [3, 6]);
  } finally {
    await queue.close();
  }
});
