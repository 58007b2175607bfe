// Reliability with real processes: a trainer SIGKILLed mid-job (the job stalls, is taken again and resumes from
// its last checkpoint, ending with exactly the loss of an uninterrupted run), and a trainer SIGTERMed mid-job
// (it checkpoints, releases the job without using an attempt, another worker finishes it from there).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type CurvePoint, type JobResult, keysFor, resolveConfig, validateJobSpec } from "@octet/jobs";
import { Trainer } from "@octet/model";
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
const prefix = uniquePrefix("resume");
const keys = keysFor(prefix);
let services: Services;
let redis: Redis;
const procs: TrainerProc[] = [];

before(async () => {
  services = await startServices("resume");
  redis = new Redis(SHARED_REDIS);
});

after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  redis.disconnect();
  await cleanupPrefix(SHARED_REDIS, prefix);
  await services.close();
});

async function curveOf(jobId: string): Promise<CurvePoint[]> {
  return (await redis.lrange(keys.curve(jobId), 0, -1)).map((s) => JSON.parse(s) as CurvePoint);
}

test("SIGKILL mid-job: a restarted worker resumes from the last checkpoint and ends with the uninterrupted run's loss", async (t) => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    const a = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-a`, lockMs: 2000, stalledMs: 500 });
    procs.push(a);
    const spec = microSpec("killed", { steps: 60, checkpoint: { every: 5, keep: 3 } });
    await submit(queue, spec, "kill-1");
    // Kill once a checkpoint past step 10 is durable and well before the end.
    const at = await waitFor(async () => {
      const p = progressOf((await jobState(queue, "kill-1")).job);
      return p && p.lastCheckpoint && p.lastCheckpoint.step >= 10 ? p : null;
    }, "a durable checkpoint at step >= 10", 60_000, 20);
    const killed = await a.kill("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");
    assert.ok(at.step < 60, `killed at step ${at.step}, before the end`);
    assert.equal((await jobState(queue, "kill-1")).state, "active", "the dead worker's job is still active until its lock expires");

    // A restarted worker (2 slots): takes the stalled job again, and runs the uninterrupted reference beside it.
    const b = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-b`, cpuSlots: 2, lockMs: 2000, stalledMs: 500 });
    procs.push(b);
    await submit(queue, microSpec("reference", { steps: 60, checkpoint: { every: 5, keep: 3 } }), "ref-1");
    const k = await waitFinished(queue, "kill-1", 120_000);
    const r = await waitFinished(queue, "ref-1", 120_000);
    assert.equal(k.state, "completed", k.job.failedReason);
    assert.equal(r.state, "completed", r.job.failedReason);
    const kr = k.job.returnvalue as JobResult;
    const rr = r.job.returnvalue as JobResult;

    t.diagnostic(`killed at step ~${at.step} (checkpoint ${at.lastCheckpoint!.step} durable); resumed from ${kr.resumedFrom}; final loss ${kr.loss} / reference ${rr.loss}; val ${kr.valLoss} / ${rr.valLoss}`);
    assert.ok(kr.resumedFrom !== null && kr.resumedFrom >= 10, `resumed from ${kr.resumedFrom}`);
    assert.equal(kr.resumedFrom % 5, 0, "from a periodic checkpoint");
    assert.ok(kr.resumedFrom <= at.step + 5, `resumed from ${kr.resumedFrom}, killed around ${at.step}`);
    assert.equal(rr.resumedFrom, null);
    assert.equal(kr.step, 60);
    assert.equal(kr.loss, rr.loss, "same final training loss as the uninterrupted run, bit for bit");
    assert.equal(kr.valLoss, rr.valLoss, "same final validation loss");
    assert.equal(k.job.stalledCounter, 1, "the kill shows as one stall");
    assert.equal(progressOf(k.job)!.attempt, 2);
    assert.equal(progressOf(k.job)!.workerId, `${prefix}-b`);
    assert.equal(kr.emaStep, 60);
    // Retention keeps the newest 3 (a periodic checkpoint is skipped while the previous one is still staging).
    const kept = kr.checkpoints.map((c) => c.step);
    assert.equal(kept.length, 3);
    assert.equal(kept[2], 60);
    assert.ok(kept.every((s) => s % 5 === 0) && kept[0] < kept[1] && kept[1] < kept[2], String(kept));
    assert.deepEqual((await services.checkpointer.store.list("killed")).map((c) => c.step), kept);

    // The curve is the uninterrupted one: the steps the dead worker did after its checkpoint were replaced.
    const kc = await curveOf("kill-1");
    const rc = await curveOf("ref-1");
    assert.deepEqual(kc.map((p) => p.step), Array.from({ length: 60 }, (_, i) => i + 1));
    assert.deepEqual(kc.map((p) => [p.step, p.loss, p.valLoss]), rc.map((p) => [p.step, p.loss, p.valLoss]));

    // The final checkpoint holds the whole state and the EMA at step 60.
    const listed = await services.checkpointer.store.list("killed");
    const last = listed.find((c) => c.step === 60)!;
    assert.ok(last.metadata!["octet.model"] && last.metadata!["octet.ema"]);
    assert.equal(JSON.parse(last.metadata!["octet.ema"]).step, 60);
    const restoredLog = b.logs.find((l) => l.msg === "restoring" && l.jobId === "kill-1");
    assert.equal(restoredLog?.step, kr.resumedFrom);
    assert.deepEqual(await b.kill("SIGTERM"), { code: 0, signal: null });
  } finally {
    // No worker of this test may take the next test's job.
    await Promise.all(procs.map((p) => p.kill("SIGKILL")));
    await queue.close();
  }
});

test("SIGTERM mid-job: the worker checkpoints, releases the job (no attempt used) and exits 0; another worker finishes it", async (tc) => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    const a = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-c` });
    procs.push(a);
    // No periodic checkpoint before the end: the resume point is the one written at SIGTERM.
    const spec = microSpec("released", { steps: 100, checkpoint: { every: 500, keep: 2 }, seed: 11 });
    await submit(queue, spec, "term-1");
    await waitFor(async () => ((progressOf((await jobState(queue, "term-1")).job)?.step ?? 0) >= 6 ? true : null), "step 6", 60_000, 20);
    const b = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-d` });
    procs.push(b);
    const exit = await a.kill("SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null });
    const released = a.logs.find((l) => l.msg === "job ended" && l.jobId === "term-1");
    assert.equal(released?.outcome, "released");
    const releasedAt = released!.step as number;
    assert.ok(releasedAt > 0 && releasedAt < 100, `released at ${releasedAt}`);
    assert.equal(await redis.exists(keys.worker(`${prefix}-c`)), 0, "announcement removed on exit");

    const f = await waitFinished(queue, "term-1", 120_000);
    assert.equal(f.state, "completed", f.job.failedReason);
    const res = f.job.returnvalue as JobResult;
    assert.equal(res.resumedFrom, releasedAt, "resumed from the checkpoint written at SIGTERM");
    assert.equal(f.job.attemptsMade, 1, "the release did not use an attempt");
    assert.equal(f.job.stalledCounter, 0, "released, not stalled");
    assert.equal(progressOf(f.job)!.workerId, `${prefix}-d`);
    assert.equal(progressOf(f.job)!.attempt, 1);

    // The same loss as an uninterrupted run of the same seed, computed here with @octet/model directly.
    const t = new Trainer({ config: resolveConfig(validateJobSpec(spec)), recipe: "fp8", seed: 11 });
    let loss = NaN;
    while (t.step < 100) loss = t.trainStep().loss;
    tc.diagnostic(`released at step ${releasedAt}; resumed from ${res.resumedFrom}; final loss ${res.loss} / in-process reference ${loss}`);
    assert.equal(res.loss, loss);
    assert.equal(res.valLoss, t.evaluate());
  } finally {
    await queue.close();
  }
});
