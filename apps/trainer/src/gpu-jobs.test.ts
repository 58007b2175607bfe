// GPU jobs on a machine without a GPU, with real Redis, real trainer processes and real services: which worker
// takes which job, the training process pinned to its GPU (CUDA_VISIBLE_DEVICES), the device named in progress
// and result, and the faults — a GPU that cannot create a context (the job goes back to the queue, the worker
// stops offering the GPU, retries end with the reason), a config too large for the GPU and a CUDA out-of-memory
// error (failed at once, with the estimate). The CUDA backend itself is @octet/model's; where a test needs a
// working "GPU" it uses testing/fake-cuda.mjs, the CPU backend behind the same seam.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JobResult, type WorkerInfo, keysFor } from "@octet/jobs";
import { Redis } from "ioredis";
import {
  SHARED_REDIS,
  type Services,
  type TrainerProc,
  cleanupPrefix,
  fakeCudaModule,
  jobState,
  microSpec,
  openQueue,
  progressOf,
  sleep,
  startServices,
  startTrainer,
  submit,
  uniquePrefix,
  waitFinished,
  waitFor,
} from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
let services: Services;
let redis: Redis;
const procs: TrainerProc[] = [];
const prefixes: string[] = [];

function prefix(tag: string): string {
  const p = uniquePrefix(tag);
  prefixes.push(p);
  return p;
}

before(async () => {
  services = await startServices("gpu");
  redis = new Redis(SHARED_REDIS);
});

after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  redis.disconnect();
  for (const p of prefixes) await cleanupPrefix(SHARED_REDIS, p);
  await services.close();
});

async function trainer(p: string, workerId: string, opts: { gpus?: number; env?: NodeJS.ProcessEnv; cpuSlots?: number } = {}): Promise<TrainerProc> {
  const t = await startTrainer({ redis: SHARED_REDIS, prefix: p, services, workerId, ...opts });
  procs.push(t);
  return t;
}

const fake = (mode = "ok"): NodeJS.ProcessEnv => ({ OCTET_TRAINER_TEST_CUDA_BACKEND: fakeCudaModule, OCTET_TEST_FAKE_CUDA: mode });

test("a CPU worker never takes a cuda job, and trains auto and cpu jobs on the CPU", async () => {
  const p = prefix("cpuonly");
  const queue = openQueue(SHARED_REDIS, p);
  try {
    const t = await trainer(p, "cpu-w", { cpuSlots: 2 });
    await submit(queue, microSpec("g-cuda", { device: "cuda", steps: 10 }), "g-cuda");
    await submit(queue, microSpec("g-auto", { steps: 10 }), "g-auto");
    await submit(queue, microSpec("g-cpu", { device: "cpu", steps: 10 }), "g-cpu");
    for (const id of ["g-auto", "g-cpu"]) {
      const f = await waitFinished(queue, id, 60_000);
      assert.equal(f.state, "completed", id);
      assert.deepEqual((f.job.returnvalue as JobResult).device, { kind: "cpu", gpus: [] }, id);
      assert.equal(progressOf(f.job)!.phase, "done", `${id}: a completed job shows no stale phase`);
    }
    await sleep(1500);
    const { state, job } = await jobState(queue, "g-cuda");
    assert.ok(state === "waiting" || state === "delayed" || state === "prioritized", `cuda job is ${state}`);
    assert.equal(job.attemptsMade, 0);
    assert.equal(t.logs.filter((l) => l.msg === "job started" && l.jobId === "g-cuda").length, 0, "the CPU worker never started the cuda job");
    const left = t.logs.find((l) => l.jobId === "g-cuda" && l.msg === "job cannot run on this worker: left for another");
    assert.match(String(left?.why), /asks for 1 GPU \(device cuda\) and this worker has none/);
  } finally {
    await queue.close();
  }
});

test("a GPU worker trains each cuda job in its own process pinned to one GPU, and names the device", async () => {
  const p = prefix("pinned");
  const queue = openQueue(SHARED_REDIS, p);
  try {
    const t = await trainer(p, "gpu-w", { gpus: 2, env: fake() });
    await submit(queue, microSpec("p-a", { device: "cuda", steps: 30 }), "p-a");
    await submit(queue, microSpec("p-b", { steps: 30 }), "p-b"); // auto → the GPUs of a GPU worker
    const visible = new Map<string, unknown>();
    for (const id of ["p-a", "p-b"]) {
      const f = await waitFinished(queue, id, 90_000);
      assert.equal(f.state, "completed", `${id}: ${f.job.failedReason}`);
      const r = f.job.returnvalue as JobResult;
      assert.equal(r.device?.kind, "cuda");
      assert.equal(r.device?.gpus.length, 1);
      const pr = progressOf(f.job)!;
      assert.equal(pr.phase, "done");
      const gpu = r.device!.gpus[0].index;
      // The stand-in reports 1000 × (first visible device + 1) bytes in use: the process saw only its GPU.
      assert.equal(pr.stats?.memoryBytes, 1000 * (gpu + 1), `${id} on GPU ${gpu}`);
      assert.ok((pr.stats?.stepMs ?? 0) > 0);
      const ready = t.logs.find((l) => l.msg === "training ready" && l.jobId === id);
      assert.equal(ready?.backend, "cuda");
      visible.set(id, ready?.visibleDevices);
      assert.equal(ready?.visibleDevices, String(gpu));
    }
    // Both ran at once (two slots): each on its own GPU.
    assert.deepEqual(new Set(visible.values()), new Set(["0", "1"]));
    // A cpu job on the GPU worker trains on the CPU backend in its thread.
    await submit(queue, microSpec("p-cpu", { device: "cpu", steps: 5 }), "p-cpu");
    const f = await waitFinished(queue, "p-cpu", 60_000);
    assert.deepEqual((f.job.returnvalue as JobResult).device, { kind: "cpu", gpus: [] });
    assert.equal(t.logs.find((l) => l.msg === "training ready" && l.jobId === "p-cpu")?.backend, "cpu");
  } finally {
    await queue.close();
  }
});

test("a GPU without a context: the job goes back to the queue, the worker stops offering the GPU, and the last retry fails with the reason", async () => {
  const p = prefix("nogpu");
  const keys = keysFor(p);
  const queue = openQueue(SHARED_REDIS, p);
  try {
    // The real @octet/model CUDA path: this machine has no GPU (and no CUDA addon), so backendFor("cuda") throws.
    const w1 = await trainer(p, "lost-1", { gpus: 1 });
    await submit(queue, microSpec("n-1", { device: "cuda", retries: 1 }), "n-1");
    await waitFor(async () => (await jobState(queue, "n-1")).job.attemptsMade === 1, "the first attempt to fail", 30_000);
    const first = (await jobState(queue, "n-1")).job;
    assert.match(String(first.failedReason), /no usable GPU/);
    const info = await waitFor(async () => {
      const raw = await redis.get(keys.worker("lost-1"));
      const w = raw ? (JSON.parse(raw) as WorkerInfo) : null;
      return w && w.slots === 0 ? w : null;
    }, "the worker to stop offering its GPU", 10_000);
    assert.deepEqual(info.lostGpus, [0]);
    // Back in the queue, not failed; this worker does not take it again.
    await sleep(1500);
    const mid = await jobState(queue, "n-1");
    assert.ok(["waiting", "delayed", "prioritized"].includes(mid.state), mid.state);
    assert.equal(mid.job.attemptsMade, 1);
    assert.equal(w1.logs.filter((l) => l.msg === "job started" && l.jobId === "n-1").length, 1);
    // Another GPU worker takes it; its GPU fails the same way; with no retry left the job fails, with the reason.
    await trainer(p, "lost-2", { gpus: 1 });
    const f = await waitFinished(queue, "n-1", 30_000);
    assert.equal(f.state, "failed");
    assert.equal(f.job.attemptsMade, 2);
    assert.match(String(f.job.failedReason), /GPU 0: cannot train on it: .*no usable GPU/);
  } finally {
    await queue.close();
  }
});

test("a config too large for the GPU, and a CUDA out-of-memory error, fail the job at once with the estimate", async () => {
  const p = prefix("oom");
  const queue = openQueue(SHARED_REDIS, p);
  try {
    await trainer(p, "small-gpu", { gpus: 1, env: fake("small") });
    await submit(queue, microSpec("o-fit", { device: "cuda", retries: 3 }), "o-fit");
    const f = await waitFinished(queue, "o-fit", 30_000);
    assert.equal(f.state, "failed");
    assert.equal(f.job.attemptsMade, 1, "not retried: a retry would fail the same way");
    assert.match(String(f.job.failedReason), /^config micro \(fp8, \d+ × 32 tokens a step\) needs about [\d.]+ GiB of device memory .*the GPU has 0\.0 GiB free/);

    const p2 = prefix("oom2");
    const q2 = openQueue(SHARED_REDIS, p2);
    try {
      await trainer(p2, "oom-gpu", { gpus: 1, env: fake("oom") });
      await submit(q2, microSpec("o-oom", { device: "cuda", retries: 3 }), "o-oom");
      const g = await waitFinished(q2, "o-oom", 30_000);
      assert.equal(g.state, "failed");
      assert.equal(g.job.attemptsMade, 1, "not retried");
      assert.match(String(g.job.failedReason), /cudaErrorMemoryAllocation: out of memory; config micro \(fp8, .*\) needs about [\d.]+ GiB of device memory \(GiB: .*\); the GPU had 80\.0 GiB free of 80\.0 at the start/);
    } finally {
      await q2.close();
    }
  } finally {
    await queue.close();
  }
});
