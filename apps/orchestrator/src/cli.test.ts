// The real octet-orchestrator binary: the ready line, serving, SIGTERM; a clear, quick failure without Redis.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { Redis } from "ioredis";
import { JobClient } from "@octet/jobs/client";
import { status } from "@octet/proto";
import { REDIS_URL, cleanupPrefix, deferred, uniquePrefix } from "./testing/harness.js";

const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", cli, ...args], {
    env: { ...process.env, OCTET_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out.stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out.stderr += d));
  return { child, out };
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return port;
}

test("Redis unreachable at start: a clear error naming the URL and a non-zero exit, not a hang", async () => {
  const port = await closedPort();
  const { child, out } = run(["--port", "0", "--http-port", "0", "--redis", `redis://127.0.0.1:${port}`, "--redis-timeout-ms", "2000"]);
  const [code] = (await once(child, "exit")) as [number | null];
  assert.equal(code, 1);
  assert.match(out.stderr, new RegExp(`octet-orchestrator: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
  assert.match(out.stderr, /ECONNREFUSED/);
  assert.match(out.stderr, /--redis \/ REDIS_URL/);
  assert.equal(out.stdout, "", "no ready line");
});

test("a server that accepts but never answers (not Redis, or hung) is a bounded failure too", async () => {
  const silent = createServer(() => undefined);
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  const port = (silent.address() as { port: number }).port;
  try {
    const { child, out } = run(["--port", "0", "--http-port", "0", "--redis", `redis://127.0.0.1:${port}`, "--redis-timeout-ms", "800"]);
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 1);
    assert.match(out.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/?: no answer within 800 ms/);
  } finally {
    silent.close();
  }
});

test("REDIS_URL is read when --redis is absent; a bad flag exits 2 naming it", async () => {
  const port = await closedPort();
  const a = run(["--port", "0", "--http-port", "0"], { REDIS_URL: `redis://127.0.0.1:${port}` });
  await once(a.child, "exit");
  assert.match(a.out.stderr, new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
  const b = run(["--http-port", "eighty"]);
  const [code] = (await once(b.child, "exit")) as [number | null];
  assert.equal(code, 2);
  assert.match(b.out.stderr, /--http-port must be an integer in \[0, 65535\], got "eighty"/);
});

test("octet-orchestrator prints one ready line, serves gRPC and HTTP there, and exits 0 on SIGTERM", async () => {
  const prefix = uniquePrefix("cli");
  const { child, out } = run(["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--redis", REDIS_URL, "--redis-prefix", prefix]);
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", () => {
      const nl = out.stdout.indexOf("\n");
      if (nl >= 0) resolve(out.stdout.slice(0, nl));
    });
    child.once("exit", (c) => reject(new Error(`exited ${c}: ${out.stderr}`)));
  });
  const ready = JSON.parse(line) as { event: string; grpc: string; http: string };
  assert.equal(ready.event, "ready");
  assert.match(ready.grpc, /^127\.0\.0\.1:\d+$/);
  assert.match(ready.http, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = new JobClient(ready.grpc);
  const { job } = await client.submit({ run: "cli-job" });
  assert.equal((await client.get(job.id)).run, "cli-job");
  const api = (await (await fetch(`${ready.http}/api/jobs/${job.id}`)).json()) as { run: string };
  assert.equal(api.run, "cli-job");
  // the prefix separates: the job is under it, not under BullMQ's default
  const redis = new Redis(REDIS_URL);
  assert.equal(await redis.exists(`${prefix}:octet-gpu:${job.id}`), 1);
  // a WatchJob stream open at shutdown ends with UNAVAILABLE (so a client watches again elsewhere), at once
  const events: string[] = [];
  const snapshot = deferred();
  const watching = (async () => {
    for await (const e of client.watch(job.id)) {
      events.push(`${e.kind}:${e.state}`);
      snapshot.resolve();
    }
  })();
  await snapshot.promise;
  child.kill("SIGTERM");
  await assert.rejects(watching, (e: { code?: number; details?: string }) => e.code === status.UNAVAILABLE && /shutting down/.test(e.details ?? ""));
  assert.deepEqual(events, ["snapshot:waiting"]);
  const [code] = (await once(child, "exit")) as [number | null];
  assert.equal(code, 0);
  client.close();
  assert.equal(out.stdout.trim().split("\n").length, 1, "exactly one line on stdout");
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});
