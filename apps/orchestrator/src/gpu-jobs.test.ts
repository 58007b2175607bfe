// GPU jobs as the orchestrator shows them, over real gRPC, HTTP and the shared local Redis: why a job larger than
// every worker waits (GetJob, ListJobs, the job page), the device that trained a job, the per-GPU metrics and the
// EMA's gaps in /metrics, and no stale phase once a job has ended. A plain BullMQ worker stands in for a trainer,
// reporting what octet-trainer reports.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Job } from "bullmq";
import type { JobProgress, JobResult, WorkerInfo } from "@octet/jobs";
import { deferred, eventually, startTestBed, type TestBed } from "./testing/harness.js";

let bed: TestBed;
before(async () => {
  bed = await startTestBed("gpujobs");
});
after(async () => {
  await bed.close();
});

function announce(w: Partial<WorkerInfo> & { id: string }): Promise<unknown> {
  const info: WorkerInfo = { host: "h", pid: 1, kind: "gpu", slots: 1, busy: 0, gpus: [], jobs: [], at: Date.now(), ...w };
  return bed.redis.set(bed.keys.worker(w.id), JSON.stringify(info), "EX", 60);
}

async function metricsText(): Promise<string> {
  const res = await fetch(`${bed.orch.httpUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** The value of the first sample of `name` whose labels include every `label="value"` given. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

test("a job asking for more GPUs than any worker has stays waiting, and GetJob says why", async () => {
  await announce({ id: "one-gpu", slots: 1, gpus: [{ index: 0, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 }] });
  await announce({ id: "laptop", kind: "cpu", slots: 4 });
  const { job } = await bed.client.submit({ run: "two-gpus", device: "cuda", gpus: 2 });
  const got = await bed.client.get(job.id);
  assert.equal(got.state, "waiting");
  assert.equal(got.waitingReason, "needs 2 GPUs; the largest worker has 1");
  const listed = await bed.client.list({ states: ["waiting"] });
  assert.equal(listed.jobs.find((j) => j.id === job.id)?.waitingReason, "needs 2 GPUs; the largest worker has 1");
  const page = await (await fetch(`${bed.orch.httpUrl}/jobs/${job.id}`)).text();
  assert.match(page, /data-field="waiting-reason">needs 2 GPUs; the largest worker has 1</);
  // A worker with two GPUs joins: nothing left to explain.
  await announce({ id: "two-gpu", slots: 2 });
  assert.equal((await bed.client.get(job.id)).waitingReason, null);
  await bed.client.cancel(job.id);
  await bed.redis.del(bed.keys.worker("one-gpu"), bed.keys.worker("laptop"), bed.keys.worker("two-gpu"));
  // Without any worker, a CPU job says so too.
  const { job: lonely } = await bed.client.submit({ run: "nobody", device: "cpu" });
  assert.equal((await bed.client.get(lonely.id)).waitingReason, "needs 1 slot; no worker is running");
  await bed.client.cancel(lonely.id);
});

test("a GPU job's page names its GPU; /metrics exports per-GPU step time, memory, EMA and checkpoint stalls and the EMA's gaps; an ended job shows no stale phase", async () => {
  const gpu = { index: 3, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 };
  const device = { kind: "cuda" as const, gpus: [gpu] };
  const { job } = await bed.client.submit({ run: "on-gpu", device: "cuda", steps: 6 });
  const release = deferred();
  const reported = deferred();
  const w = bed.worker(async (j: Job) => {
    const base: JobProgress = { phase: "running", step: 0, totalSteps: 6, loss: 3, valLoss: null, tokensPerSec: 100, lastCheckpoint: null, resumedFrom: null, attempt: 1, workerId: "gpu-host", device };
    const stats = { stepMs: 250, memoryBytes: 3 * 2 ** 30, peakMemoryBytes: 4 * 2 ** 30, emaStallMs: 1500, checkpointStallMs: 2500 };
    await j.updateProgress({ ...base, step: 2, stats, ema: { step: 2, failedPushes: 0, coalescedPushes: 0, outages: 0, gapSteps: 0 } });
    // The keeper went away and came back: 1 outage, 4 steps missing from the EMA.
    await j.updateProgress({ ...base, step: 5, stats, ema: { step: 3, failedPushes: 2, coalescedPushes: 1, outages: 1, gapSteps: 4 } });
    reported.resolve();
    await release.promise;
    // What an older trainer left behind: the final save's phase beside a completed job.
    await j.updateProgress({ ...base, phase: "checkpointing", step: 6, stats, ema: { step: 6, failedPushes: 2, coalescedPushes: 1, outages: 1, gapSteps: 4 } });
    const result: JobResult = { run: "on-gpu", step: 6, loss: 2, valLoss: 2.1, tokensPerSec: 100, recipe: "fp8", entropyRate: null, unigramEntropy: null, checkpoints: [], emaStep: 6, resumedFrom: null, seconds: 1, device, ema: { step: 6, failedPushes: 2, coalescedPushes: 1, outages: 1, gapSteps: 4 } };
    return result;
  });
  try {
    await reported.promise;
    const labels = { job: job.id, device: "cuda:3", gpu_name: gpu.name, worker: "gpu-host" };
    const text = await eventually(async () => {
      const t = await metricsText();
      return sample(t, "octet_job_step_seconds", labels) !== undefined && sample(t, "octet_ema_gap_steps_total") === 4 ? t : null;
    }, "per-GPU metrics of the running job");
    assert.equal(sample(text, "octet_job_step_seconds", labels), 0.25);
    assert.equal(sample(text, "octet_job_device_memory_bytes", labels), 3 * 2 ** 30);
    assert.equal(sample(text, "octet_job_device_memory_peak_bytes", labels), 4 * 2 ** 30);
    assert.equal(sample(text, "octet_job_ema_stall_seconds", labels), 1.5);
    assert.equal(sample(text, "octet_job_checkpoint_stall_seconds", labels), 2.5);
    assert.equal(sample(text, "octet_job_ema_lag_steps", labels), 2);
    assert.equal(sample(text, "octet_ema_outages_total"), 1);
    assert.equal(sample(text, "octet_ema_failed_pushes_total"), 2);
    assert.equal(sample(text, "octet_ema_coalesced_pushes_total"), 1);
    const running = await (await fetch(`${bed.orch.httpUrl}/jobs/${job.id}`)).text();
    assert.match(running, /data-field="device">GPU 3 \(NVIDIA H100 80GB HBM3\)</);
    assert.match(running, /data-field="ema-gap">4</);
    release.resolve();
    const done = await eventually(async () => {
      const j = await bed.client.get(job.id);
      return j.state === "completed" ? j : null;
    }, "the job to complete");
    assert.equal(done.progress?.phase, "done", "a completed job shows no stale phase");
    assert.deepEqual(done.result?.device, device);
    const page = await (await fetch(`${bed.orch.httpUrl}/jobs/${job.id}`)).text();
    assert.match(page, /data-field="phase">done</);
    assert.match(page, /data-field="device">GPU 3 \(NVIDIA H100 80GB HBM3\)</);
    // The job's gauges go with it; the EMA's gap stays counted.
    const after = await eventually(async () => {
      const t = await metricsText();
      return sample(t, "octet_job_step_seconds", { job: job.id }) === undefined ? t : null;
    }, "the finished job's gauges to go");
    assert.equal(sample(after, "octet_ema_gap_steps_total"), 4);
    assert.equal(sample(after, "octet_ema_outages_total"), 1);
  } finally {
    release.resolve();
    await w.close();
  }
});
