import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { callUnary, createClient, waitForReady } from "./client.js";
import { services } from "./gen/services.js";

const fixture = fileURLToPath(new URL("./testing/shutdown-server.ts", import.meta.url));

test("SIGTERM drains the in-flight call, runs the hooks, logs JSON and exits 0", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", fixture], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OCTET_LOG_LEVEL: "info" } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const t0 = Date.now();
    while (!stdout.includes("\n")) {
      if (child.exitCode !== null) assert.fail(`fixture exited early: ${stderr}`);
      if (Date.now() - t0 > 10_000) assert.fail(`fixture did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { port } = JSON.parse(stdout.split("\n")[0]!) as { port: number };
    const client = createClient(services.common.v1.EchoServiceClient, `127.0.0.1:${port}`);
    await waitForReady(client, 3000);
    const inFlight = callUnary(client, "slow", { text: "drained", delayMs: 600 }, { deadlineMs: 5000 });
    await new Promise((r) => setTimeout(r, 150));
    child.kill("SIGTERM");
    const res = await inFlight;
    assert.equal(res.text, "drained");
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    // New calls are refused once the server has gone.
    await assert.rejects(callUnary(client, "echo", { text: "late" }, { deadlineMs: 500 }), (err: grpc.ServiceError) => err.code !== grpc.status.OK);
    client.close();

    const lines = stderr
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { msg: string; level: number; signal?: string; reason?: string });
    const msgs = lines.map((l) => l.msg);
    assert.ok(lines.some((l) => l.msg === "shutting down" && l.reason === "SIGTERM"), msgs.join(" | "));
    const iFlush = msgs.indexOf("flushed state");
    const iDone = msgs.indexOf("shutdown complete");
    assert.ok(iFlush >= 0 && iDone > iFlush, `hook ran before completion: ${msgs.join(" | ")}`);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});
