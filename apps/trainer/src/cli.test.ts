// The CLI's start-up failures: unreachable Redis, missing or bad flags — a clear message and a non-zero exit.
import assert from "node:assert/strict";
import { test } from "node:test";
import { freePort, runTrainerToExit } from "./testing/harness.js";

test("Redis unreachable at start: a clear error and a non-zero exit within seconds, not a hang", async () => {
  const port = await freePort(); // nothing listens there
  const r = await runTrainerToExit(["--redis", `redis://127.0.0.1:${port}`, "--checkpointer", "127.0.0.1:1", "--gpus", "0"], 20_000);
  assert.notEqual(r.code, 0);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
  assert.match(r.stderr, /ECONNREFUSED/);
  assert.equal(r.stdout, "", "no ready line");
  assert.ok(r.ms < 15_000, `exited after ${r.ms} ms`);
});

test("an unroutable Redis address: the bounded start-up check gives up with the address", async () => {
  // 10.255.255.1 is not routable: connecting fails at once or hangs until the check's 1 s deadline.
  const r = await runTrainerToExit(["--redis", "redis://10.255.255.1:6379", "--redis-timeout-ms", "1000", "--checkpointer", "127.0.0.1:1", "--gpus", "0"], 20_000);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot reach Redis at redis:\/\/10\.255\.255\.1:6379/);
});

test("flags: --checkpointer is required, bad numbers are refused naming the flag", async () => {
  const env = { ...process.env };
  delete env.OCTET_CHECKPOINTER_ADDR;
  const a = await runTrainerToExit(["--gpus", "0"]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--checkpointer <host:port> .* is required/);
  const b = await runTrainerToExit(["--checkpointer", "x:1", "--cpu-slots", "0"]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /--cpu-slots must be an integer >= 1/);
  const c = await runTrainerToExit(["--checkpointer", "x:1", "--lock-ms", "soon"]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--lock-ms must be an integer/);
  const h = await runTrainerToExit(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--redis-prefix/);
  assert.match(h.stdout, /--stalled-ms/);
});
