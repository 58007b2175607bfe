// The orchestrator listens on loopback by default, and with a token only its read-only methods answer without it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { JobClient } from "@octet/jobs/client";
import { createLogger, status } from "@octet/proto";
import { startOrchestrator, type Orchestrator } from "./orchestrator.js";
import { REDIS_URL, cleanupPrefix, uniquePrefix } from "./testing/harness.js";

const TOKEN = "orchestrator-test-token-0123456789";
const prefix = uniquePrefix("auth");
let orch: Orchestrator;
let anonymous: JobClient;
let trusted: JobClient;

before(async () => {
  // No host: the default.
  orch = await startOrchestrator({ redisUrl: REDIS_URL, prefix, port: 0, httpPort: 0, authToken: TOKEN, logger: createLogger("t", "silent"), shutdownGraceMs: 1000 });
  anonymous = new JobClient(orch.grpcAddress);
  trusted = new JobClient(orch.grpcAddress, { authToken: TOKEN });
});

after(async () => {
  anonymous.close();
  trusted.close();
  await orch.close();
  const redis = new Redis(REDIS_URL);
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});

const fails = (code: number, re: RegExp) => (err: unknown) => {
  const e = err as { code?: number; details?: string };
  assert.equal(e.code, code, e.details);
  assert.match(e.details ?? "", re);
  return true;
};

test("gRPC and HTTP listen on 127.0.0.1 unless told otherwise", () => {
  assert.match(orch.grpcAddress, /^127\.0\.0\.1:\d+$/);
  assert.match(orch.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
});

test("SubmitJob and CancelJob need the bearer token; GetJob, ListJobs and WatchJob do not", async () => {
  await assert.rejects(anonymous.submit({ run: "auth-a", steps: 2 }), fails(status.UNAUTHENTICATED, /SubmitJob needs a bearer token/));
  const wrong = new JobClient(orch.grpcAddress, { authToken: `${TOKEN}-x` });
  try {
    await assert.rejects(wrong.submit({ run: "auth-a", steps: 2 }), fails(status.UNAUTHENTICATED, /not valid/));
  } finally {
    wrong.close();
  }
  assert.equal((await anonymous.list()).jobs.length, 0, "refused submissions queued nothing");

  const { job } = await trusted.submit({ run: "auth-a", steps: 2 });
  assert.equal((await anonymous.get(job.id)).run, "auth-a");
  assert.deepEqual((await anonymous.list()).jobs.map((j) => j.id), [job.id]);
  const controller = new AbortController();
  const seen: string[] = [];
  for await (const e of anonymous.watch(job.id, { signal: controller.signal })) {
    seen.push(e.state);
    controller.abort();
  }
  assert.deepEqual(seen, ["waiting"], "the watch opened with the job's snapshot");

  await assert.rejects(anonymous.cancel(job.id), fails(status.UNAUTHENTICATED, /CancelJob/));
  assert.equal((await anonymous.get(job.id)).state, "waiting");
  assert.equal((await trusted.cancel(job.id)).outcome, "cancelled-now");
});
