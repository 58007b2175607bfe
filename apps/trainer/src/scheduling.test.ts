// Scheduling on the shared queue: two one-slot workers and three one-slot jobs never run more than two at once;
// a two-slot worker runs a mix of one- and two-slot jobs without ever using more than its two slots, and leaves
// a job too large for it in the queue.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JobResult, type WorkerInfo, keysFor } from "@octet/jobs";
import { Redis } from "ioredis";
import {
  SHARED_REDIS,
  type LogLine,
  type Services,
  type TrainerProc,
  cleanupPrefix,
  jobState,
  microSpec,
  openQueue,
  sleep,
  startServices,
  startTrainer,
  submit,
  uniquePrefix,
  waitFinished,
} from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
const prefix = uniquePrefix("sched");
const keys = keysFor(prefix);
let services: Services;
let redis: Redis;
const procs: TrainerProc[] = [];

before(async () => {
  services = await startServices("sched");
  redis = new Redis(SHARED_REDIS);
});

after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  redis.disconnect();
  await cleanupPrefix(SHARED_REDIS, prefix);
  await services.close();
});

interface Interval {
  jobId: string;
  worker: string;
  slots: number;
  start: number;
  end: number;
}

/** Job intervals from the trainers' "job started" / "job ended" log lines. */
function intervals(trainers: TrainerProc[]): Interval[] {
  const out: Interval[] = [];
  for (const t of trainers) {
    const open = new Map<string, LogLine>();
    for (const l of t.logs) {
      if (l.msg === "job started") open.set(l.jobId as string, l);
      if (l.msg === "job ended") {
        const s = open.get(l.jobId as string)!;
        open.delete(l.jobId as string);
        out.push({ jobId: l.jobId as string, worker: t.workerId, slots: (s.cpuSlots as number[]).length, start: s.time as number, end: l.time as number });
      }
    }
    for (const [jobId, s] of open) out.push({ jobId, worker: t.workerId, slots: (s.cpuSlots as number[]).length, start: s.time as number, end: Infinity });
  }
  return out;
}

/** The most slots in use at once (overall, or on one worker). */
function peak(iv: Interval[], worker?: string): number {
  const events: [number, number][] = [];
  for (const i of iv) if (!worker || i.worker === worker) events.push([i.start, i.slots], [i.end, -i.slots]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // ends before starts at the same instant
  let cur = 0;
  let max = 0;
  for (const [, d] of events) max = Math.max(max, (cur += d));
  return max;
}

/** Polls the workers' announcements meanwhile: the largest `busy` seen per worker, and whether busy ever exceeded slots. */
function watchAnnouncements(ids: string[]): { stop: () => Promise<Map<string, { maxBusy: number; slots: number; overSlots: boolean }>> } {
  const seen = new Map<string, { maxBusy: number; slots: number; overSlots: boolean }>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const vals = await redis.mget(...ids.map((id) => keys.worker(id)));
      vals.forEach((v, i) => {
        if (!v) return;
        const w = JSON.parse(v) as WorkerInfo;
        const s = seen.get(ids[i]) ?? { maxBusy: 0, slots: w.slots, overSlots: false };
        s.maxBusy = Math.max(s.maxBusy, w.busy);
        s.overSlots ||= w.busy > w.slots || w.jobs.length > w.slots;
        seen.set(ids[i], s);
      });
      await sleep(25);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return seen;
    },
  };
}

test("two one-slot workers, three one-slot jobs: never more than two running, all three finish", async () => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    const ws = await Promise.all([1, 2].map((i) => startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-w${i}`, ema: false })));
    procs.push(...ws);
    assert.deepEqual(ws.map((w) => [w.ready.slots, w.ready.kind]), [[1, "cpu"], [1, "cpu"]]);
    const watch = watchAnnouncements(ws.map((w) => w.workerId));
    for (const i of [1, 2, 3]) await submit(queue, microSpec(`two-${i}`, { steps: 16, checkpoint: { every: 8, keep: 1 }, seed: i }), `two-${i}`);
    const done = await Promise.all([1, 2, 3].map((i) => waitFinished(queue, `two-${i}`)));
    const seen = await watch.stop();
    for (const d of done) assert.equal(d.state, "completed", d.job.failedReason);
    for (const d of done) assert.equal((d.job.returnvalue as JobResult).step, 16);

    const iv = intervals(ws);
    assert.equal(iv.length, 3, "each job started once");
    assert.ok(peak(iv) <= 2, `at most two jobs at once (saw ${peak(iv)})`);
    for (const w of ws) assert.ok(peak(iv, w.workerId) <= 1, `${w.workerId} ran at most one job at a time`);
    assert.deepEqual(new Set(iv.map((i) => i.worker)).size, 2, "both workers took jobs");
    for (const [id, s] of seen) {
      assert.equal(s.overSlots, false, `${id} never announced more jobs than slots`);
      assert.ok(s.maxBusy <= 1);
    }
    await Promise.all(ws.map((w) => w.kill("SIGTERM")));
  } finally {
    await queue.close();
  }
});

test("a two-slot worker: jobs reserve all their slots at once, never more than two in use; a three-slot job waits", async () => {
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    const w = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-big`, cpuSlots: 2, ema: false });
    procs.push(w);
    assert.equal(w.ready.slots, 2);
    const watch = watchAnnouncements([w.workerId]);
    const gpus = { "mix-a": 2, "mix-b": 1, "mix-c": 1, "mix-d": 2 } as const;
    await submit(queue, microSpec("mix-huge", { steps: 4, gpus: 3 }), "mix-huge");
    for (const [id, n] of Object.entries(gpus)) await submit(queue, microSpec(id, { steps: 10, checkpoint: { every: 10, keep: 1 }, gpus: n }), id);
    const done = await Promise.all(Object.keys(gpus).map((id) => waitFinished(queue, id)));
    const seen = await watch.stop();
    for (const d of done) assert.equal(d.state, "completed", d.job.failedReason);

    const iv = intervals([w]);
    assert.ok(peak(iv) <= 2, `never more than 2 slots in use (saw ${peak(iv)})`);
    for (const i of iv) assert.equal(i.slots, gpus[i.jobId as keyof typeof gpus], `${i.jobId} reserved exactly its slots`);
    assert.equal(seen.get(w.workerId)!.overSlots, false);
    // The two one-slot jobs can share the worker; a two-slot job never overlaps anything.
    for (const big of iv.filter((i) => i.slots === 2)) {
      for (const o of iv) if (o !== big) assert.ok(o.end <= big.start || o.start >= big.end, `${big.jobId} overlapped ${o.jobId}`);
    }
    // The job needing three slots never started here; it stays in the queue for a larger worker, attempts untouched.
    const huge = await jobState(queue, "mix-huge");
    assert.ok(["delayed", "waiting", "prioritized"].includes(huge.state), huge.state);
    assert.equal(huge.job.attemptsMade, 0);
    assert.ok(w.logs.some((l) => l.msg === "job cannot run on this worker: left for another" && l.jobId === "mix-huge" && /needs 3 slots and this worker has 2 CPU slots/.test(String(l.why))));
    assert.ok(!iv.some((i) => i.jobId === "mix-huge"));
    await w.kill("SIGTERM");
  } finally {
    await queue.close();
  }
});
