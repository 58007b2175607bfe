// Test harness: real processes and servers — the built octet-trainer CLI as child processes, the checkpointer
// and EMA keeper as in-process gRPC servers on ephemeral ports, a private redis-server when a test restarts it.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCheckpointServer, type RunningCheckpointServer } from "@octet/checkpointer/service";
import { startEmaServer } from "@octet/ema-keeper/service";
import { type JobProgress, type JobSpecInput, JOB_NAME, QUEUE_NAME, jobOptions, validateJobSpec } from "@octet/jobs";
import { type Job, Queue } from "bullmq";
import { Redis } from "ioredis";

export const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const cliPath = join(pkgDir, "dist", "cli.js");
export const SHARED_REDIS = process.env.OCTET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, what: string, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ""}`);
    await sleep(everyMs);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `octet-trainer-${tag}-`));
}

export function uniquePrefix(tag: string): string {
  return `t-trainer-${tag}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

/** Deletes every key under the BullMQ prefix (the queue and Octet's keys beside it, keysFor(prefix)). */
export async function cleanupPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  r.on("error", () => undefined);
  try {
    await r.connect();
    let cursor = "0";
    do {
      const [next, found] = await r.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (found.length) await r.del(...found);
    } while (cursor !== "0");
  } catch {
    // a private Redis may be gone already
  } finally {
    r.disconnect();
  }
}

export interface Services {
  checkpointer: RunningCheckpointServer;
  checkpointerAddress: string;
  emaAddress: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A real checkpointer (on a temporary data dir) and EMA keeper, as gRPC servers on loopback. */
export async function startServices(tag: string): Promise<Services> {
  const dataDir = tempDir(`${tag}-ckpt`);
  const checkpointer = await startCheckpointServer({ host: "127.0.0.1", port: 0, dataDir });
  const ema = await startEmaServer({ host: "127.0.0.1", port: 0 });
  return {
    checkpointer,
    checkpointerAddress: `127.0.0.1:${checkpointer.port}`,
    emaAddress: `127.0.0.1:${ema.port}`,
    dataDir,
    close: async () => {
      await Promise.allSettled([checkpointer.close(), ema.server.shutdown()]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface LogLine {
  level: string;
  time: number;
  msg: string;
  [k: string]: unknown;
}

export interface TrainerProc {
  proc: ChildProcess;
  workerId: string;
  ready: { event: string; workerId: string; slots: number; kind: string };
  logs: LogLine[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface TrainerArgs {
  redis: string;
  prefix: string;
  services: Services;
  workerId: string;
  cpuSlots?: number;
  lockMs?: number;
  stalledMs?: number;
  heartbeatMs?: number;
  ema?: boolean;
  extra?: string[];
  /** GPUs offered (--gpus; default 0: CPU slots only). */
  gpus?: number;
  /** Extra environment (e.g. OCTET_TRAINER_TEST_CUDA_BACKEND: fakeCudaModule). */
  env?: NodeJS.ProcessEnv;
}

/** The stand-in for the CUDA backend (testing/fake-cuda.mjs; see there). */
export const fakeCudaModule = join(pkgDir, "src", "testing", "fake-cuda.mjs");

/** Spawns the built octet-trainer and waits for its ready line. */
export async function startTrainer(a: TrainerArgs): Promise<TrainerProc> {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build first (npx turbo run build --filter=@octet/trainer...)`);
  const args = [
    cliPath,
    "--redis", a.redis,
    "--redis-prefix", a.prefix,
    "--checkpointer", a.services.checkpointerAddress,
    "--worker-id", a.workerId,
    "--cpu-slots", String(a.cpuSlots ?? 1),
    "--gpus", String(a.gpus ?? 0),
    "--lock-ms", String(a.lockMs ?? 3000),
    "--stalled-ms", String(a.stalledMs ?? 1000),
    "--heartbeat-ms", String(a.heartbeatMs ?? 500),
    "--fit-delay-ms", "300",
    "--progress-ms", "100",
    ...(a.ema === false ? [] : ["--ema-keeper", a.services.emaAddress]),
    ...(a.extra ?? []),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, OCTET_LOG_LEVEL: process.env.OCTET_TRAINER_LOG_LEVEL ?? "info", ...a.env };
  delete env.REDIS_URL;
  const proc = spawn(process.execPath, args, { cwd: pkgDir, env, stdio: ["ignore", "pipe", "pipe"] });
  return attach(proc, a.workerId);
}

function attach(proc: ChildProcess, workerId: string): Promise<TrainerProc> {
  let out = "";
  let err = "";
  let errLine = "";
  const logs: LogLine[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (d: string) => {
    err += d;
    errLine += d;
    let nl;
    while ((nl = errLine.indexOf("\n")) >= 0) {
      const line = errLine.slice(0, nl);
      errLine = errLine.slice(nl + 1);
      if (line.startsWith("{")) {
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`trainer ${workerId} not ready in 30 s: ${err}`)), 30_000);
    proc.stdout!.setEncoding("utf8");
    proc.stdout!.on("data", (d: string) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          const ready = JSON.parse(out.slice(0, nl)) as TrainerProc["ready"];
          resolve({
            proc,
            workerId,
            ready,
            logs,
            stderr: () => err,
            exited,
            kill: async (signal: NodeJS.Signals = "SIGTERM") => {
              if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
              return exited;
            },
          });
        } catch (e) {
          reject(new Error(`bad ready line ${JSON.stringify(out)}: ${(e as Error).message}`));
        }
      }
    });
    void exited.then((r) => {
      clearTimeout(timer);
      reject(new Error(`trainer ${workerId} exited before ready (${JSON.stringify(r)}): ${err}`));
    });
  });
}

/** Runs the CLI to its end (for start-up failures); resolves with its exit and output. */
export function runTrainerToExit(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, OCTET_LOG_LEVEL: "info" };
  const proc = spawn(process.execPath, [cliPath, ...args], { cwd: pkgDir, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  proc.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`octet-trainer did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export interface PrivateRedis {
  port: number;
  url: string;
  dir: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A private redis-server with an append-only file in a temporary dir (never the shared one on 6379). */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = tempDir("redis");
  const r: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc: undefined as unknown as ChildProcess,
    stop: async () => {
      const p = r.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((res) => p.once("exit", res));
      p.kill("SIGTERM");
      await exited;
    },
    start: async () => {
      r.proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", dir], { stdio: "ignore" });
      await waitFor(async () => {
        const c = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        c.on("error", () => undefined);
        try {
          await c.connect();
          // Loading the AOF answers -LOADING; wait for a real PONG.
          return (await c.ping()) === "PONG";
        } finally {
          c.disconnect();
        }
      }, `redis-server on port ${port}`, 15_000, 50);
    },
  };
  await r.start();
  return r;
}

/** The queue, with the spec validated (and its options) as the orchestrator would submit it. */
export function openQueue(url: string, prefix: string): Queue {
  const q = new Queue(QUEUE_NAME, { connection: { url, maxRetriesPerRequest: null } as never, prefix });
  q.on("error", () => undefined);
  return q;
}

export async function submit(queue: Queue, spec: JobSpecInput, jobId: string): Promise<Job> {
  const valid = validateJobSpec(spec);
  return queue.add(JOB_NAME, spec, { ...jobOptions(valid), jobId, backoff: { type: "fixed", delay: 200 } });
}

export async function jobState(queue: Queue, id: string): Promise<{ state: string; job: Job }> {
  const job = await queue.getJob(id);
  if (!job) throw new Error(`job ${id} not found`);
  return { state: await job.getState(), job };
}

export function progressOf(job: Job): JobProgress | null {
  const p = job.progress as unknown;
  return p && typeof p === "object" ? (p as JobProgress) : null;
}

/** Waits until the job is completed or failed; returns the job. */
export async function waitFinished(queue: Queue, id: string, timeoutMs = 120_000): Promise<{ state: string; job: Job }> {
  return waitFor(async () => {
    const s = await jobState(queue, id);
    if (s.state !== "completed" && s.state !== "failed") return null;
    // Read the job again: the copy read before getState may predate its move to completed/failed.
    return { state: s.state, job: (await queue.getJob(id))! };
  }, `job ${id} to finish`, timeoutMs, 100);
}

/** A micro-preset job spec for the tests: a few dozen steps on the CPU, deterministic. */
export function microSpec(run: string, over: Partial<JobSpecInput> = {}): JobSpecInput {
  return { run, config: "micro", recipe: "fp8", seed: 7, steps: 40, evalEvery: 20, checkpoint: { every: 5, keep: 2 }, ema: { enabled: true, every: 4, decay: 0.9 }, gpus: 1, retries: 3, ...over };
}
