// Redis going away after start (a private redis-server, not the shared one): RPCs answer UNAVAILABLE quickly
// instead of hanging, /metrics says redis_up 0, and everything works again once Redis is back.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger, status } from "@octet/proto";
import { JobClient } from "@octet/jobs/client";
import { startOrchestrator } from "./orchestrator.js";
import { eventually } from "./testing/harness.js";

async function freePort(): Promise<number> {
  const srv = createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return port;
}

async function redisServer(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", ""], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (/Ready to accept connections/.test(out)) resolve();
    });
    child.once("exit", (c) => reject(new Error(`redis-server exited ${c}: ${out}`)));
  });
  return child;
}

test("Redis restarting under the orchestrator: UNAVAILABLE while it is down, served again after, jobs kept", async () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-orch-redis-"));
  const port = await freePort();
  let redis = await redisServer(port, dir);
  const orch = await startOrchestrator({ redisUrl: `redis://127.0.0.1:${port}`, host: "127.0.0.1", port: 0, httpPort: 0, logger: createLogger("t", "silent"), shutdownGraceMs: 1000 });
  const client = new JobClient(orch.grpcAddress);
  try {
    const { job } = await client.submit({ run: "outage" });
    redis.kill("SIGKILL");
    await once(redis, "exit");
    await assert.rejects(client.get(job.id, { deadlineMs: 20_000 }), (e: { code?: number; details?: string }) => e.code === status.UNAVAILABLE && /Redis unavailable/.test(e.details ?? ""));
    await assert.rejects(client.submit({ run: "during" }, { deadlineMs: 20_000 }), (e: { code?: number }) => e.code === status.UNAVAILABLE);
    const m = await (await fetch(`${orch.httpUrl}/metrics`)).text();
    assert.match(m, /^octet_redis_up 0$/m);

    redis = await redisServer(port, dir);
    const back = await eventually(async () => client.get(job.id).catch(() => null), "the job to be served again");
    assert.equal(back.run, "outage");
    assert.equal(back.state, "waiting");
    const again = await client.submit({ run: "after" });
    assert.equal(again.job.run, "after");
    await eventually(async () => /^octet_redis_up 1$/m.test(await (await fetch(`${orch.httpUrl}/metrics`)).text()), "redis_up 1");
  } finally {
    client.close();
    await orch.close();
    redis.kill("SIGTERM");
    if (redis.exitCode === null) await once(redis, "exit");
    rmSync(dir, { recursive: true, force: true });
  }
});
