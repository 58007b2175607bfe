// Redis restarting under load (a private redis-server with an append-only file; the shared one is never
// touched): jobs running during the restart continue (or are retried and resume); none is lost.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { type CurvePoint, type JobResult, keysFor } from "@octet/jobs";
import { Redis } from "ioredis";
import {
  type PrivateRedis,
  type Services,
  type TrainerProc,
  jobState,
  microSpec,
  openQueue,
  progressOf,
  sleep,
  startPrivateRedis,
  startServices,
  startTrainer,
  submit,
  waitFinished,
  waitFor,
} from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
const prefix = "t-trainer-restart";
const keys = keysFor(prefix);
let services: Services;
let redisServer: PrivateRedis;
const procs: TrainerProc[] = [];

before(async () => {
  redisServer = await startPrivateRedis();
  services = await startServices("restart");
});

after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  await redisServer.stop();
  rmSync(redisServer.dir, { recursive: true, force: true });
  await services.close();
});

test("Redis restarts while jobs run: they continue or are retried, and every job completes", async (t) => {
  const url = redisServer.url;
  const w = await startTrainer({ redis: url, prefix, services, workerId: "restart-w", cpuSlots: 2, lockMs: 8000, stalledMs: 1000 });
  procs.push(w);
  const queue = openQueue(url, prefix);
  const ids = ["r-1", "r-2", "r-3", "r-4"];
  try {
    for (const [i, id] of ids.entries()) await submit(queue, microSpec(`restart-${id}`, { steps: 30, checkpoint: { every: 5, keep: 2 }, seed: 20 + i }), id);
    // Two jobs under way.
    const running = await waitFor(async () => {
      const r: { id: string; step: number }[] = [];
      for (const id of ids) {
        const s = await jobState(queue, id);
        const step = progressOf(s.job)?.step ?? 0;
        if (s.state === "active" && step >= 3 && step < 25) r.push({ id, step });
      }
      return r.length >= 2 ? r : null;
    }, "two jobs running", 60_000, 50);

    await redisServer.stop();
    await sleep(1500);
    await redisServer.start(); // same port, same dir: the append-only file restores the queue
    const done = await Promise.all(ids.map((id) => waitFinished(queue, id, 150_000)));

    for (const d of done) {
      assert.equal(d.state, "completed", `${d.job.id}: ${d.job.failedReason}`);
      assert.equal((d.job.returnvalue as JobResult).step, 30);
    }
    // The running ones went on past the restart: on the same attempt, or retried from their checkpoint.
    for (const r of running) {
      const d = done[ids.indexOf(r.id)];
      const res = d.job.returnvalue as JobResult;
      const continued = d.job.stalledCounter === 0 && d.job.attemptsMade === 1 && res.resumedFrom === null;
      const resumed = res.resumedFrom !== null && res.resumedFrom > 0;
      t.diagnostic(`${r.id}: step ${r.step} at the restart; ${continued ? "continued on the same attempt" : `retried, resumed from ${res.resumedFrom}`}`);
      assert.ok(continued || resumed, `${r.id}: continued or resumed (stalled ${d.job.stalledCounter}, resumedFrom ${res.resumedFrom})`);
    }
    // Every step of every job is on its curve.
    const c = new Redis(url);
    try {
      for (const id of ids) {
        const steps = new Set((await c.lrange(keys.curve(id), 0, -1)).map((s) => (JSON.parse(s) as CurvePoint).step));
        assert.deepEqual([...steps].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1), `${id}'s curve`);
      }
    } finally {
      c.disconnect();
    }
    // The worker saw the outage, stayed up, and still exits cleanly.
    assert.ok(w.logs.some((l) => l.msg === "redis connection error"), "the outage was noticed");
    assert.equal(w.proc.exitCode, null);
    assert.deepEqual(await w.kill("SIGTERM"), { code: 0, signal: null });
  } finally {
    await queue.close();
  }
});

test("an outage longer than the lock: the job is recovered as stalled and resumes from its checkpoint", async (t) => {
  const url = redisServer.url;
  const w = await startTrainer({ redis: url, prefix, services, workerId: "restart-long", cpuSlots: 2, lockMs: 1500, stalledMs: 500 });
  procs.push(w);
  const queue = openQueue(url, prefix);
  try {
    await submit(queue, microSpec("restart-long", { steps: 40, checkpoint: { every: 5, keep: 2 }, seed: 31 }), "long-1");
    await waitFor(async () => ((progressOf((await jobState(queue, "long-1")).job)?.lastCheckpoint?.step ?? 0) >= 5 ? true : null), "a checkpoint", 60_000, 20);
    await redisServer.stop();
    await sleep(3000); // the lock (1.5 s) expires meanwhile
    await redisServer.start();
    const d = await waitFinished(queue, "long-1", 120_000);
    assert.equal(d.state, "completed", d.job.failedReason);
    const res = d.job.returnvalue as JobResult;
    t.diagnostic(`stalled ${d.job.stalledCounter} time(s); resumed from ${res.resumedFrom}`);
    assert.equal(res.step, 40);
    assert.ok(d.job.stalledCounter >= 1, "the job stalled (its lock expired during the outage)");
    assert.ok(res.resumedFrom !== null && res.resumedFrom >= 5, `resumed from ${res.resumedFrom}`);
    // How the first attempt learnt that its lock was gone depends on where it was when Redis came back: still
    // training (two failed renewals, or the job handed to this worker again), or already done with its last step
    // (its completion is refused and the job is recovered as stalled, then resumes from its final checkpoint).
    const noticed = [
      "lost the job's lock: stopping it without writing anything more",
      "job taken again",
      "could not record the job's end",
    ];
    assert.ok(
      w.logs.some((l) => l.jobId === "long-1" && noticed.some((m) => l.msg.startsWith(m))),
      "the first attempt's lost lock shows in the log",
    );
    const c = new Redis(url);
    try {
      // Exactly steps 1..40 in order: the resumed attempt rebuilt the list from the curve saved in its checkpoint.
      const steps = (await c.lrange(keys.curve("long-1"), 0, -1)).map((s) => (JSON.parse(s) as CurvePoint).step);
      assert.deepEqual(steps, Array.from({ length: 40 }, (_, i) => i + 1));
    } finally {
      c.disconnect();
    }
    assert.deepEqual(await w.kill("SIGTERM"), { code: 0, signal: null });
  } finally {
    await queue.close();
  }
});
