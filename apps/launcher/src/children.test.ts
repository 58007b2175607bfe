import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ServiceError, Supervisor, groupAlive } from "./children.js";
import { findExecutable, pingRedis, startPrivateRedis } from "./redis.js";

const node = process.execPath;
const script = (js: string) => ["-e", js];
const readyLine = (line: string) => (line.startsWith("{") && JSON.parse(line).event === "ready" ? (JSON.parse(line) as { port: number }) : undefined);

test("start waits for the ready line and tees output to the log file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-up-test-"));
  const sup = new Supervisor();
  try {
    const { proc, ready } = await sup.start({
      name: "svc",
      command: node,
      args: script(`console.error("warming up"); setTimeout(() => console.log(JSON.stringify({ event: "ready", port: 1234 })), 100); setInterval(() => {}, 1000);`),
      ready: readyLine,
      readyTimeoutMs: 10_000,
      logFile: join(dir, "svc.log"),
    });
    assert.equal(ready.port, 1234);
    assert.ok(groupAlive(proc.pid));
    await sup.stopAll();
    assert.ok(proc.hasExited());
    assert.ok(!groupAlive(proc.pid));
    const log = readFileSync(join(dir, "svc.log"), "utf8");
    assert.match(log, /warming up/);
    assert.match(log, /"event":"ready"/);
  } finally {
    await sup.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a service that exits before it is ready is a ServiceError naming it, with its stderr tail", async () => {
  const sup = new Supervisor();
  await assert.rejects(
    sup.start({ name: "broken", command: node, args: script(`console.error("bad flag --frobnicate"); process.exit(3);`), ready: readyLine, readyTimeoutMs: 10_000 }),
    (e: unknown) => {
      assert.ok(e instanceof ServiceError);
      assert.equal(e.service, "broken");
      assert.match(e.message, /broken exited with code 3 before it was ready/);
      assert.match(e.message, /bad flag --frobnicate/);
      return true;
    },
  );
  await sup.stopAll();
});

test("a service that never gets ready times out, is killed, and the error says so", async () => {
  const sup = new Supervisor();
  let pid = 0;
  const started = Date.now();
  await assert.rejects(
    sup.start({ name: "slow", command: node, args: script(`console.error("still loading"); process.on("SIGTERM", () => {}); setInterval(() => {}, 1000);`), ready: readyLine, readyTimeoutMs: 500 }),
    (e: unknown) => {
      assert.ok(e instanceof ServiceError);
      assert.match(e.message, /slow did not become ready within 1 s|slow did not become ready within 0 s/);
      assert.match(e.message, /still loading/);
      return true;
    },
  );
  pid = sup.pids[0];
  // It ignored SIGTERM: the supervisor killed it after the grace period.
  assert.ok(Date.now() - started < 8000);
  assert.ok(!groupAlive(pid));
  await sup.stopAll();
});

test("stopAll stops the services in reverse order, grandchildren too, and SIGKILLs one that ignores SIGTERM", async () => {
  const sup = new Supervisor();
  const order: string[] = [];
  const grandchild = `require("child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });`;
  const a = await sup.start({
    name: "a",
    command: node,
    args: script(`${grandchild} console.log(JSON.stringify({ event: "ready", port: 1 })); setInterval(() => {}, 1000);`),
    ready: readyLine,
    readyTimeoutMs: 10_000,
  });
  const b = await sup.start({
    name: "b",
    command: node,
    args: script(`process.on("SIGTERM", () => {}); console.log(JSON.stringify({ event: "ready", port: 2 })); setInterval(() => {}, 1000);`),
    ready: readyLine,
    readyTimeoutMs: 10_000,
    stopGraceMs: 300,
  });
  void a.proc.exited.then(() => order.push("a"));
  void b.proc.exited.then(() => order.push("b"));
  let unexpected = 0;
  sup.onUnexpectedExit(() => unexpected++);
  await sup.stopAll();
  assert.deepEqual(order, ["b", "a"]);
  assert.equal(b.proc.child.signalCode, "SIGKILL");
  assert.ok(!groupAlive(a.proc.pid), "a's grandchild is gone");
  assert.ok(!groupAlive(b.proc.pid));
  assert.equal(unexpected, 0);
});

test("a service dying after it was ready is reported", async () => {
  const sup = new Supervisor();
  const died = new Promise<string>((resolve) => sup.onUnexpectedExit((r, code) => resolve(`${r.name}:${code}`)));
  await sup.start({
    name: "flaky",
    command: node,
    args: script(`console.log(JSON.stringify({ event: "ready", port: 1 })); setTimeout(() => process.exit(7), 200);`),
    ready: readyLine,
    readyTimeoutMs: 10_000,
  });
  assert.equal(await died, "flaky:7");
  await sup.stopAll();
});

test("a missing executable is a clear error", async () => {
  const sup = new Supervisor();
  await assert.rejects(
    sup.start({ name: "ghost", command: "/nonexistent/octet-ghost", args: [], ready: readyLine, readyTimeoutMs: 1000 }),
    /could not start ghost \(\/nonexistent\/octet-ghost\): .*ENOENT/,
  );
  await sup.stopAll();
});

test("private redis: starts on a free port, answers PING, and is gone with its directory after stopAll", { skip: !findExecutable("redis-server") && "redis-server not installed" }, async () => {
  const sup = new Supervisor();
  const redis = await startPrivateRedis(sup);
  assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(await pingRedis(redis.url), { ok: true, detail: "PONG" });
  await sup.stopAll();
  redis.cleanup();
  assert.ok(!groupAlive(redis.proc.pid));
  assert.equal((await pingRedis(redis.url, 1000)).ok, false);
});

test("without redis-server, the error names the binary and how to install it", async () => {
  const sup = new Supervisor();
  await assert.rejects(startPrivateRedis(sup, { binary: "octet-no-such-redis-server" }), (e: unknown) => {
    assert.ok(e instanceof ServiceError);
    assert.match(e.message, /not found on PATH/);
    assert.match(e.message, /apt-get install -y redis-server/);
    assert.match(e.message, /brew install redis/);
    assert.match(e.message, /REDIS_URL/);
    return true;
  });
  await sup.stopAll();
});

test("pingRedis: a closed port is not Redis", async () => {
  const r = await pingRedis("redis://127.0.0.1:1", 1000);
  assert.equal(r.ok, false);
  assert.match(r.detail, /ECONNREFUSED/);
});
