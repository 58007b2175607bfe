// /metrics content and the JSON API, over a real HTTP socket.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Job } from "bullmq";
import { JOB_NAME, type CurvePoint, type WorkerInfo } from "@octet/jobs";
import { deferred, eventually, startTestBed, type TestBed } from "./testing/harness.js";

let bed: TestBed;
before(async () => {
  bed = await startTestBed("http");
});
after(async () => {
  await bed.close();
});

/** Prometheus text → { 'name{labels}': value }. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function metrics(): Promise<Map<string, number>> {
  const res = await fetch(`${bed.orch.httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  return parseMetrics(await res.text());
}

function announce(w: Partial<WorkerInfo> & { id: string }): Promise<unknown> {
  const info: WorkerInfo = { host: "h", pid: 1, kind: "gpu", slots: 1, busy: 0, gpus: [], jobs: [], at: Date.now(), ...w };
  return bed.redis.set(bed.keys.worker(w.id), JSON.stringify(info), "EX", 60);
}

test("/metrics: queue depth, running jobs, GPU slots from announcements, step rate, submissions, default metrics", async () => {
  await announce({ id: "gpu-host", kind: "gpu", slots: 8, busy: 3, gpus: [{ index: 0, name: "H100", memoryMiB: 81559 }] });
  await announce({ id: "laptop", kind: "cpu", slots: 2, busy: 1 });
  await bed.redis.set(bed.keys.worker("broken"), "{not json", "EX", 60);
  for (let i = 0; i < 3; i++) await bed.client.submit({ run: `m-${i}` });
  await bed.queue.add(JOB_NAME, { run: "m-plain" });

  let m = await metrics();
  assert.equal(m.get("octet_queue_depth"), 4);
  assert.equal(m.get('octet_jobs{state="waiting"}'), 4);
  assert.equal(m.get("octet_jobs_running"), 0);
  assert.equal(m.get('octet_jobs_submitted_total{via="grpc"}'), 3);
  assert.equal(m.get('octet_gpu_slots{kind="gpu"}'), 8);
  assert.equal(m.get('octet_gpu_slots_in_use{kind="gpu"}'), 3);
  assert.equal(m.get('octet_gpu_slots{kind="cpu"}'), 2);
  assert.equal(m.get('octet_gpu_slots_in_use{kind="cpu"}'), 1);
  assert.equal(m.get('octet_workers{kind="gpu"}'), 1);
  assert.equal(m.get("octet_redis_up"), 1);
  assert.ok(m.has("process_cpu_user_seconds_total"), "default metrics");
  assert.ok(m.has("nodejs_eventloop_lag_seconds"), "default metrics");
  // every add is counted, from any client (QueueEvents)
  await eventually(async () => (await metrics()).get("octet_jobs_added_total") === 4, "added counter to reach 4");

  // a running job reporting steps: running 1, step rate > 0, tokens/s summed
  const release = deferred();
  const stepping = deferred();
  const w = bed.worker(async (j: Job) => {
    for (let s = 1; s <= 6; s++) {
      await j.updateProgress({ phase: "running", step: s, totalSteps: 6, loss: 3 - s * 0.1, valLoss: null, tokensPerSec: 500, lastCheckpoint: null, resumedFrom: null, attempt: 1, workerId: "w" });
      await new Promise((r) => setTimeout(r, 20));
    }
    stepping.resolve();
    await release.promise;
    return null;
  });
  await stepping.promise;
  m = await eventually(async () => {
    const x = await metrics();
    return (x.get("octet_step_rate") ?? 0) > 0 ? x : null;
  }, "a positive step rate");
  assert.equal(m.get("octet_jobs_running"), 1);
  assert.equal(m.get("octet_queue_depth"), 3);
  assert.equal(m.get("octet_tokens_per_second"), 500);
  release.resolve();
  await eventually(async () => (await metrics()).get('octet_jobs_finished_total{outcome="completed"}') === 1, "completion counted");
  await w.pause(); // leave the rest waiting
  await w.close();
  await bed.redis.del(bed.keys.worker("gpu-host"), bed.keys.worker("laptop"), bed.keys.worker("broken"));
  assert.equal((await metrics()).get('octet_gpu_slots{kind="gpu"}'), 0);
});

test("JSON API: /api/jobs lists with state filter and paging, /api/jobs/<id> has the curve; errors are 400/404", async () => {
  const { job } = await bed.client.submit({ run: "api-1" });
  const points: CurvePoint[] = [
    { step: 1, loss: 3.2 },
    { step: 2, loss: 3.0 },
    { step: 3, loss: 2.9, valLoss: 3.05 },
  ];
  await bed.redis.rpush(bed.keys.curve(job.id), ...points.map((p) => JSON.stringify(p)), "garbage");
  // a resumed attempt repeats step 3: the latest entry wins
  await bed.redis.rpush(bed.keys.curve(job.id), JSON.stringify({ step: 3, loss: 2.8, valLoss: 3.0 }));

  const one = (await (await fetch(`${bed.orch.httpUrl}/api/jobs/${job.id}`)).json()) as { id: string; state: string; run: string; curve: CurvePoint[] };
  assert.equal(one.id, job.id);
  assert.equal(one.state, "waiting");
  assert.equal(one.run, "api-1");
  assert.deepEqual(one.curve, [points[0], points[1], { step: 3, loss: 2.8, valLoss: 3.0 }]);
  const thin = (await (await fetch(`${bed.orch.httpUrl}/api/jobs/${job.id}?maxPoints=2`)).json()) as { curve: CurvePoint[] };
  assert.deepEqual(
    thin.curve.map((p) => p.step),
    [1, 3],
  );
  const noCurve = (await (await fetch(`${bed.orch.httpUrl}/api/jobs/${job.id}?curve=0`)).json()) as { curve?: unknown };
  assert.equal(noCurve.curve, undefined);
  // the same curve through gRPC
  const viaGrpc = await bed.client.get(job.id, { curve: true });
  assert.deepEqual(viaGrpc.curve, one.curve);

  const list = (await (await fetch(`${bed.orch.httpUrl}/api/jobs?state=waiting&limit=2`)).json()) as { jobs: { id: string; state: string }[]; nextPageToken: string; counts: { waiting: number } };
  assert.equal(list.jobs.length, 2);
  assert.ok(list.jobs.every((j) => j.state === "waiting"));
  assert.ok(list.counts.waiting >= 3);
  assert.notEqual(list.nextPageToken, "");
  const next = (await (await fetch(`${bed.orch.httpUrl}/api/jobs?state=waiting&limit=2&pageToken=${list.nextPageToken}`)).json()) as { jobs: { id: string }[] };
  assert.ok(next.jobs.length >= 1);
  assert.ok(!next.jobs.some((j) => list.jobs.some((k) => k.id === j.id)));

  const missing = await fetch(`${bed.orch.httpUrl}/api/jobs/nope`);
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { error: string }).error, /no job "nope"/);
  const bad = await fetch(`${bed.orch.httpUrl}/api/jobs?state=sleeping`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /state: unknown state "sleeping"/);
  assert.equal((await fetch(`${bed.orch.httpUrl}/jobs/nope`)).status, 404);

  const svg = await fetch(`${bed.orch.httpUrl}/jobs/${job.id}/curve.svg`);
  assert.match(svg.headers.get("content-type") ?? "", /image\/svg\+xml/);
  assert.match(await svg.text(), /<path class="loss" data-points="3"/);
});
