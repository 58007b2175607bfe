// octet-up end to end: the real binary starts a private redis-server, the EMA keeper, the checkpointer, the
// orchestrator and a trainer, trains `micro` for a few steps through gRPC, reports, and leaves no process behind —
// on success, on a service that fails to start, and on Ctrl-C.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { JobClient, status } from "@octet/jobs/client";
import { groupMembers } from "./children.js";
import { findExecutable, pingRedis } from "./redis.js";

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "..", "dist", "cli.js");
const haveRedis = Boolean(findExecutable("redis-server"));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  stderr: string;
  json: Record<string, unknown>[];
}

/** Runs octet-up with JSON lines, without REDIS_URL (so it starts its own redis-server). */
function octetUp(args: string[], opts: { env?: NodeJS.ProcessEnv; onLine?: (obj: Record<string, unknown>, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {}): Promise<Run> {
  const env = { ...process.env, ...opts.env };
  delete env.REDIS_URL;
  delete env.OCTET_ORCHESTRATOR_ADDR;
  delete env.OCTET_EMA_ADDR;
  delete env.OCTET_CHECKPOINTER_ADDR;
  if (opts.env && "REDIS_URL" in opts.env) env.REDIS_URL = opts.env.REDIS_URL;
  const child = spawn(process.execPath, [cli, "--json", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const json: Record<string, unknown>[] = [];
  let stderr = "";
  let buf = "";
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (line.startsWith("{")) {
        const obj = JSON.parse(line) as Record<string, unknown>;
        json.push(obj);
        opts.onLine?.(obj, child);
      }
    }
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`octet-up did not finish within ${opts.timeoutMs ?? 120_000} ms\nstdout:\n${lines.join("\n")}\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (buf) lines.push(buf);
      resolve({ code, signal, lines, stderr, json });
    });
  });
}

/** The process ids octet-up reported starting (each the leader of its own process group). */
const startedPids = (r: Run) => r.json.filter((o) => o.event === "service" && typeof o.pid === "number").map((o) => o.pid as number);

async function assertAllGone(pids: number[]): Promise<void> {
  // Give the kernel a moment to finish tearing down after octet-up's own exit.
  for (let i = 0; i < 50 && pids.some((p) => groupMembers(p).length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids) assert.deepEqual(groupMembers(pid), [], `nothing left of process group ${pid}`);
}

test("octet-up trains micro end to end through every service, reports, and stops everything it started", { skip: !haveRedis && "redis-server not installed", timeout: 150_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-e2e-"));
  try {
    const r = await octetUp(["--config", "micro", "--steps", "20", "--out", out]);
    assert.equal(r.code, 0, `exit code\nstdout:\n${r.lines.join("\n")}\nstderr:\n${r.stderr}`);
    const last = JSON.parse(r.lines[r.lines.length - 1]) as Record<string, unknown>;
    assert.equal(last.config, "micro");
    assert.equal(last.recipe, "fp8");
    assert.equal(last.steps, 20);
    assert.ok(Number.isFinite(last.finalLoss), "finite final loss");
    assert.ok(Number.isFinite(last.valLoss), "finite validation loss");
    assert.ok(typeof last.entropyRate === "number" && last.entropyRate > 0 && (last.valLoss as number) > last.entropyRate, "loss above the entropy floor");
    assert.ok(typeof last.checkpoint === "string" && existsSync(last.checkpoint), `checkpoint ${last.checkpoint} exists`);
    assert.ok(readdirSync(last.checkpoint as string).some((f) => f === "manifest.json"), "checkpoint has a manifest");
    assert.ok(typeof last.plot === "string" && existsSync(last.plot));
    const svg = readFileSync(last.plot as string, "utf8");
    assert.match(svg, /^<svg /);
    assert.match(svg, /<path data-points="[1-9]\d*" d="M/); // a drawn curve: a path with points
    assert.match(svg, /entropy floor/);
    assert.match(String(last.web), /^http:\/\/127\.0\.0\.1:\d+\/jobs\//);
    assert.ok(!("relDiff" in last));
    // What it printed on the way: each service, the submission, progress.
    const names = r.json.filter((o) => o.event === "service").map((o) => o.name).sort();
    assert.deepEqual(names, ["checkpointer", "ema-keeper", "orchestrator", "redis", "trainer"]);
    assert.ok(r.json.some((o) => o.event === "submitted"));
    assert.ok(r.json.some((o) => o.event === "progress" && o.step === 20));
    assert.ok(r.lines.some((l) => /entropy floor of the data/.test(l)), "the human report");
    // Nothing left: every process group is empty, the private Redis is closed, logs were written.
    await assertAllGone(startedPids(r));
    const redisUrl = r.json.find((o) => o.name === "redis")!.url as string;
    assert.equal((await pingRedis(redisUrl, 1000)).ok, false, "the private redis is gone");
    for (const svc of ["redis", "ema-keeper", "checkpointer", "orchestrator", "trainer"]) assert.ok(existsSync(join(out, "logs", `${svc}.log`)), `${svc}.log`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("a service that cannot start: the error names it, exit 1, and the services already started are stopped", { skip: !haveRedis && "redis-server not installed", timeout: 60_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-fail-"));
  // The web port is taken, so the orchestrator cannot bind it.
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const r = await octetUp(["--config", "micro", "--steps", "5", "--out", out, "--web-port", String(port)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /orchestrator/);
    const last = JSON.parse(r.lines[r.lines.length - 1]) as Record<string, unknown>;
    assert.equal(last.service, "orchestrator");
    assert.ok(r.json.some((o) => o.event === "service" && o.name === "redis"));
    await assertAllGone(startedPids(r));
  } finally {
    blocker.close();
    rmSync(out, { recursive: true, force: true });
  }
});

test("without redis-server and REDIS_URL: a clear error with the install hint, nothing started", async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-noredis-"));
  try {
    const r = await octetUp(["--config", "micro", "--steps", "5", "--out", out], { env: { OCTET_REDIS_SERVER: "octet-no-such-redis-server" }, timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /redis-server was not found/);
    assert.match(r.stderr, /apt-get install -y redis-server/);
    assert.match(r.stderr, /brew install redis/);
    assert.equal(startedPids(r).length, 0);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("REDIS_URL that does not answer: a clear error naming it", async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-badredis-"));
  try {
    const r = await octetUp(["--config", "micro", "--out", out], { env: { REDIS_URL: "redis://127.0.0.1:1" }, timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Redis at redis:\/\/127\.0\.0\.1:1 \(REDIS_URL\) does not answer/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("bad flags are rejected before anything starts", async () => {
  const r = await octetUp(["--config", "huge"], { timeoutMs: 30_000 });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--config: .*unknown config "huge"/);
  const r2 = await octetUp(["--steps", "0"], { timeoutMs: 30_000 });
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--steps must be an integer/);
});

test("Ctrl-C in the middle of the job: the job is cancelled, every service stopped, exit 130", { skip: !haveRedis && "redis-server not installed", timeout: 120_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-sigint-"));
  try {
    let sent = false;
    const r = await octetUp(["--config", "micro", "--steps", "100000", "--out", out], {
      onLine: (o, child) => {
        if (!sent && o.event === "progress" && o.phase === "running") {
          sent = true;
          child.kill("SIGINT");
        }
      },
    });
    assert.ok(sent, `progress was seen\n${r.lines.join("\n")}\n${r.stderr}`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.lines[r.lines.length - 1], /"error":"interrupted by SIGINT"/);
    await assertAllGone(startedPids(r));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("--keep-open: the web view stays up after the report until Ctrl-C, then everything stops and the summary is printed; the services want the given token", { skip: !haveRedis && "redis-server not installed", timeout: 120_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "octet-up-keep-"));
  const token = "launcher-e2e-token-0123456789";
  try {
    const pages: Record<string, number> = {};
    const refusals: number[] = [];
    let listed = -1;
    let grpc = "";
    let checked: Promise<void> | undefined;
    const r = await octetUp(["--config", "micro", "--steps", "5", "--out", out, "--keep-open"], {
      env: { OCTET_AUTH_TOKEN: token },
      onLine: (o, child) => {
        if (o.event === "service" && o.name === "orchestrator") grpc = String(o.grpc);
        if (o.event !== "keep-open" || checked) return;
        const web = String(o.web);
        const base = web.replace(/\/jobs\/.*$/, "");
        checked = (async () => {
          try {
            for (const url of [web, `${base}/`, `${base}/queues`, `${base}/metrics`]) pages[url.slice(base.length) || "/"] = (await fetch(url)).status;
            // The orchestrator it started answers reads to anyone, and submissions only with the token it was given.
            const anonymous = new JobClient(grpc);
            try {
              await anonymous.submit({ config: "micro", steps: 1 }).catch((e: { code?: number }) => refusals.push(e.code ?? -1));
              await anonymous.submit({ config: "micro", steps: 1 }, { asJson: true }).catch((e: { code?: number }) => refusals.push(e.code ?? -1));
              listed = (await anonymous.list()).jobs.length;
            } finally {
              anonymous.close();
            }
          } finally {
            child.kill("SIGINT");
          }
        })();
      },
    });
    await checked;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Object.values(pages), [200, 200, 200, 200], JSON.stringify(pages));
    assert.deepEqual(refusals, [status.UNAUTHENTICATED, status.UNAUTHENTICATED], "anonymous submissions are refused");
    assert.equal(listed, 1, "reads are open: the run's one job");
    const last = JSON.parse(r.lines[r.lines.length - 1]) as Record<string, unknown>;
    assert.ok(Number.isFinite(last.finalLoss));
    await assertAllGone(startedPids(r));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
