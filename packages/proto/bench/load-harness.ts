// The load test harness every Octet gRPC service's bench/load.ts runs on (issue 17): the service's own binary as
// a child process on loopback, N concurrent clients (each its own connection) sending a weighted mix of valid,
// oversized and malformed requests for a fixed time, a separate health-check client polling throughout, then
// the scenario's comparison of the service's final state with a sequential replay of the requests it accepted.
// It reports p50/p99 latency and throughput per request kind to bench/LOAD.md and exits non-zero when the
// service stopped answering health checks, answered any request other than as expected, died, or ended in a
// state the replay does not give.
//
// It lives here, beside the shared gRPC scaffolding, because all four services use it; it is development code
// (not in the package's files) that the services' bench scripts import by relative path.
//
// Flags (every service's `npm run bench:load -w <pkg> -- …`):
//   --duration <s>   load phase length in seconds (default 60)
//   --clients <n>    concurrent clients, one connection each (default 64)
//   --seed <n>       seeds the clients' request choices and payloads (default 1)
//   --out <file>     where the report goes (default bench/LOAD.md of the package; "-" prints it only)
//   --skip <kinds>   request kinds to leave out, comma-separated (the report names them): to measure the rest
//                    while one kind is known to knock the service over
// OCTET_AUTH_TOKEN (or OCTET_AUTH_TOKEN_FILE) set: the service is started with it (it inherits the environment)
// and every client sends it, except the "unauthenticated" request kinds, which must get UNAUTHENTICATED.

import { spawn, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createRequire } from "node:module";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";
import { authTokenFromEnv, createClient, statusName, type ClientConstructor } from "@octet/proto";

// ---------------------------------------------------------------------------------------------------- flags

export interface LoadFlags {
  durationS: number;
  clients: number;
  seed: number;
  /** Report file, or undefined to print only. */
  out: string | undefined;
  /** Request kinds left out. */
  skip: string[];
}

export function parseLoadFlags(argv: string[], packageDir: string): LoadFlags {
  const { values } = parseArgs({
    args: argv,
    options: { duration: { type: "string" }, clients: { type: "string" }, seed: { type: "string" }, out: { type: "string" }, skip: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  const positive = (flag: string, raw: string | undefined, fallback: number, integer: boolean): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new RangeError(`--${flag} must be a positive ${integer ? "integer" : "number"}, got "${raw}"`);
    }
    return n;
  };
  const out = values.out ?? join(packageDir, "bench", "LOAD.md");
  return {
    durationS: positive("duration", values.duration, 60, false),
    clients: positive("clients", values.clients, 64, true),
    seed: positive("seed", values.seed, 1, true),
    out: out === "-" ? undefined : out,
    skip: (values.skip ?? "").split(",").map((k) => k.trim()).filter(Boolean),
  };
}

// ----------------------------------------------------------------------------------------- random numbers

/** A small seeded generator (mulberry32): the same seed gives the same request mix and payloads. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  /** n float32 values, normal-ish around 0 with the given spread. */
  floats(n: number, spread = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() + this.next() + this.next() - 1.5) * spread;
    return out;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Bytes that are not a protobuf message: a field header announcing a length-delimited field far past the end. */
export function garbageMessage(rng: Rng): Uint8Array {
  const tail = rng.bytes(8 + rng.int(56));
  return Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, ...tail]);
}

/** Little-endian bytes of a typed array (a view, no copy). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

// ------------------------------------------------------------------------------------------- the service

export interface ServiceChild {
  /** host:port the service printed in its "listening" log line. */
  address: string;
  pid: number;
  /** True while the process runs. */
  alive(): boolean;
  /** Highest resident set size seen (sampled every 250 ms from /proc), in bytes; 0 where /proc is missing. */
  peakRssBytes(): number;
  /** Log lines at level error or fatal (pino 50, 60). */
  errorLines(): string[];
  /** The last 8 KiB of its stderr. */
  stderrTail(): string;
  /** SIGTERM, then the exit; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** The file of the package's one bin (package.json "bin"). */
function binFile(packageDir: string): { name: string; file: string } {
  const pj = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { bin?: Record<string, string> };
  const bins = Object.entries(pj.bin ?? {});
  if (bins.length !== 1) throw new TypeError(`${packageDir}/package.json must have exactly one bin, has ${bins.length}`);
  return { name: bins[0][0], file: join(packageDir, bins[0][1]) };
}

/** Starts the package's bin with `--host 127.0.0.1 --port 0 …args`; resolves once it logs "listening". */
export async function startServiceBin(packageDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServiceChild> {
  const bin = binFile(packageDir);
  const started = Date.now();
  const proc = spawn(process.execPath, [bin.file, "--host", "127.0.0.1", "--port", "0", ...args], {
    cwd: packageDir,
    env: { ...process.env, OCTET_LOG_LEVEL: process.env.OCTET_LOG_LEVEL ?? "info", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let tail = "";
  let partial = "";
  const errors: string[] = [];
  let peak = 0;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  const sampleRss = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      // the process is gone, or no /proc
    }
  };
  const sampler = setInterval(sampleRss, 250);
  sampler.unref();
  void exited.then(() => clearInterval(sampler));

  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin.name} did not log "listening" within 30 s:\n${tail}`)), 30_000);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (d: string) => {
      tail = (tail + d).slice(-8192);
      const lines = (partial + d).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        let entry: { level?: number; msg?: string; address?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          continue;
        }
        if ((entry.level ?? 0) >= 50) errors.push(line.slice(0, 2000));
        if (entry.msg === "listening" && entry.address) {
          clearTimeout(timer);
          resolve(entry.address);
        }
      }
    });
    void exited.then((r) => {
      clearTimeout(timer);
      reject(new Error(`${bin.name} exited (${JSON.stringify(r)}) before listening:\n${tail}`));
    });
  });
  process.stderr.write(`load: ${bin.name} (pid ${proc.pid}) listening on ${address} after ${Date.now() - started} ms\n`);
  return {
    address,
    pid: proc.pid!,
    alive: () => exit === undefined,
    peakRssBytes: () => (sampleRss(), peak),
    errorLines: () => errors,
    stderrTail: () => tail,
    async stop(graceMs = 30_000) {
      const t0 = Date.now();
      if (exit === undefined) proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const r = await exited;
      clearTimeout(killer);
      return { ...r, ms: Date.now() - t0 };
    },
  };
}

// ----------------------------------------------------------------------------------------------- clients

/** The bearer token the clients send: OCTET_AUTH_TOKEN_FILE / OCTET_AUTH_TOKEN, as the services read it. */
export const AUTH_TOKEN = authTokenFromEnv();

/** Largest message the load clients send or receive: above the services' 4 MiB, so that oversized requests reach them. */
export const CLIENT_MAX_MESSAGE_BYTES = 64 << 20;

/**
 * A client on a connection of its own (grpc-js shares one connection between clients of the same address and
 * options unless told not to), sending the bearer token when one is set and `withToken` is not false.
 */
export function connect<C extends grpc.Client>(Ctor: ClientConstructor<C> | typeof grpc.Client, address: string, withToken = true): C {
  return createClient(Ctor as ClientConstructor<C>, address, {
    maxMessageBytes: CLIENT_MAX_MESSAGE_BYTES,
    authToken: withToken ? AUTH_TOKEN : undefined,
    channelOptions: { "grpc.use_local_subchannel_pool": 1 },
  });
}

export function waitReady(client: grpc.Client, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => client.waitForReady(Date.now() + ms, (err) => (err ? reject(err) : resolve())));
}

/**
 * A load test's connections: `count` clients with the bearer token and, when a token is configured, `count`
 * without it (the unauthenticated requests), all ready before the load starts.
 */
export async function connectClients<C extends grpc.Client>(Ctor: ClientConstructor<C> | typeof grpc.Client, address: string, count: number): Promise<{ clients: C[]; anonymous: C[] }> {
  const clients = Array.from({ length: count }, () => connect<C>(Ctor, address));
  const anonymous = AUTH_TOKEN ? Array.from({ length: count }, () => connect<C>(Ctor, address, false)) : [];
  await Promise.all([...clients, ...anonymous].map((c) => waitReady(c)));
  return { clients, anonymous };
}

/** Closes what connectClients opened. */
export function closeClients(pool: { clients: grpc.Client[]; anonymous: grpc.Client[] }): void {
  for (const c of [...pool.clients, ...pool.anonymous]) c.close();
}

export interface CallTimeout {
  deadline: number;
}

/** Options for a call that must end within `ms`. */
export function within(ms: number): CallTimeout {
  return { deadline: Date.now() + ms };
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** A unary call as a promise: `unaryCall((o, cb) => client.getBias(req, o, cb), 5000)`. */
export function unaryCall<T>(start: (options: CallTimeout, cb: Callback<T>) => unknown, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    start(within(ms), (err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

interface WritableCall<M> {
  write(message: M): boolean;
  end(): void;
  once(event: "drain", listener: () => void): unknown;
  cancel(): void;
}

async function writeAll<M>(call: WritableCall<M>, messages: Iterable<M>, failed: () => boolean): Promise<void> {
  for (const m of messages) {
    if (failed()) return;
    if (!call.write(m)) await new Promise<void>((resolve) => call.once("drain", resolve));
  }
  call.end();
}

/** A client-streaming call: writes `messages` (honouring back-pressure), ends, resolves with the reply. */
export function clientStreamCall<M, T>(start: (options: CallTimeout, cb: Callback<T>) => WritableCall<M>, messages: Iterable<M>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const call = start(within(ms), (err, value) => {
      done = true;
      if (err) reject(err);
      else resolve(value as T);
    });
    writeAll(call, messages, () => done).catch(reject);
  });
}

interface ReadableCall<T> {
  on(event: "data", listener: (m: T) => void): unknown;
  on(event: "error", listener: (e: grpc.ServiceError) => void): unknown;
  on(event: "end", listener: () => void): unknown;
}

/** A server-streaming call: every message until the end. */
export function serverStreamCall<T>(start: (options: CallTimeout) => ReadableCall<T>, ms: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    const call = start(within(ms));
    call.on("data", (m) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  });
}

/** A bidirectional call: writes `messages`, ends, and collects every reply until the end. */
export function bidiCall<M, T>(start: (options: CallTimeout) => WritableCall<M> & ReadableCall<T>, messages: Iterable<M>, ms: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    let failed = false;
    const call = start(within(ms));
    call.on("data", (m) => out.push(m));
    call.on("error", (e) => {
      failed = true;
      reject(e);
    });
    call.on("end", () => resolve(out));
    writeAll(call, messages, () => failed).catch(reject);
  });
}

const identity = (b: Buffer | Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A unary call of `path` ("/pkg.Service/Method") with a body that is sent as is (e.g. garbageMessage()). */
export function rawUnaryCall(client: grpc.Client, path: string, body: Uint8Array, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, new grpc.Metadata(), within(ms), (err, value) => (err ? reject(err) : resolve(value!)));
  });
}

/** A client-streaming call of `path` whose messages are sent as they are. */
export function rawClientStreamCall(client: grpc.Client, path: string, bodies: Uint8Array[], ms: number): Promise<Buffer> {
  return clientStreamCall<Uint8Array, Buffer>(
    (options, cb) => client.makeClientStreamRequest(path, identity, identity, new grpc.Metadata(), options, cb) as unknown as WritableCall<Uint8Array>,
    bodies,
    ms,
  );
}

/** A bidirectional call of `path` whose messages are sent as they are. */
export function rawBidiCall(client: grpc.Client, path: string, bodies: Uint8Array[], ms: number): Promise<Buffer[]> {
  return bidiCall<Uint8Array, Buffer>(
    (options) => client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), options) as unknown as WritableCall<Uint8Array> & ReadableCall<Buffer>,
    bodies,
    ms,
  );
}

/** Thrown by a request kind whose call succeeded but whose answer is wrong; recorded as WRONG_ANSWER. */
export class WrongAnswer extends Error {
  override name = "WrongAnswer";
}

// ---------------------------------------------------------------------------------------- health checking

export interface HealthReport {
  checks: number;
  failures: { atS: number; what: string }[];
  latencies: number[];
  /** Longest time between two answered checks, in ms. */
  longestGapMs: number;
}

// The health checker runs in a worker thread: its own event loop and its own grpc-js (so its own connection),
// so that what it measures is the service, not this process' clients building their requests. CommonJS source,
// given the path of @grpc/grpc-js. It sends grpc.health.v1.HealthCheckRequest { service } by hand (field 1,
// length-delimited) and reads HealthCheckResponse.status (field 1, varint; 1 = SERVING).
const HEALTH_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const grpc = require(workerData.grpcPath);
const { address, serviceName, intervalMs, deadlineMs } = workerData;
const client = new grpc.Client(address, grpc.credentials.createInsecure(), {});
const id = (b) => b;
const request = (service) => {
  const name = Buffer.from(service, "utf8");
  return name.length === 0 ? Buffer.alloc(0) : Buffer.from([0x0a, name.length, ...name]);
};
const report = { checks: 0, failures: [], latencies: [], longestGapMs: 0 };
const t0 = performance.now();
let lastAnswer = t0;
let running = true;
parentPort.on("message", () => { running = false; });
(async () => {
  for (let i = 0; running; i++) {
    const started = performance.now();
    const service = i % 2 === 0 ? "" : serviceName;
    await new Promise((resolve) => {
      client.makeUnaryRequest("/grpc.health.v1.Health/Check", id, id, request(service), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) => {
        const at = (started - t0) / 1000;
        if (err) report.failures.push({ atS: at, what: (grpc.status[err.code] || err.code) + ": " + (err.details || err.message) });
        else if (!(reply.length >= 2 && reply[0] === 0x08 && reply[1] === 1)) report.failures.push({ atS: at, what: "not SERVING for " + JSON.stringify(service) });
        else {
          const now = performance.now();
          report.longestGapMs = Math.max(report.longestGapMs, now - lastAnswer);
          lastAnswer = now;
        }
        resolve();
      });
    });
    report.checks++;
    report.latencies.push(performance.now() - started);
    const wait = intervalMs - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  report.longestGapMs = Math.max(report.longestGapMs, performance.now() - lastAnswer);
  client.close();
  parentPort.postMessage(report);
})();
`;

/**
 * Polls grpc.health.v1.Health/Check (the server as a whole, "", and `serviceName`, alternately) every
 * `intervalMs` from a worker thread; a check that is not SERVING within `deadlineMs` is a failure.
 */
export function monitorHealth(address: string, serviceName: string, intervalMs = 100, deadlineMs = 2000): { stop(): Promise<HealthReport> } {
  const grpcPath = createRequire(import.meta.url).resolve("@grpc/grpc-js");
  const worker = new Worker(HEALTH_WORKER, { eval: true, workerData: { grpcPath, address, serviceName, intervalMs, deadlineMs } });
  const done = new Promise<HealthReport>((resolve, reject) => {
    worker.once("message", (r: HealthReport) => resolve(r));
    worker.once("error", reject);
  });
  return {
    async stop() {
      worker.postMessage("stop");
      const report = await done;
      await worker.terminate();
      return report;
    },
  };
}

// --------------------------------------------------------------------------------------------- the load

/** What a request is, for the report: a valid read or write, or one the service must refuse. */
export type RequestClass = "valid" | "oversized" | "malformed" | "unauthenticated";

export interface RequestKind<Ctx> {
  name: string;
  class: RequestClass;
  /** Relative frequency in the mix. */
  weight: number;
  /** Outcomes that are right for this request ("OK" or status names such as "INVALID_ARGUMENT"). */
  expect: readonly string[];
  /** One line for the report: what is sent and what must come back. */
  what: string;
  /** Sends one request with client `client`; throws the grpc error, or WrongAnswer. */
  send(ctx: Ctx, client: number, rng: Rng): Promise<void>;
}

interface KindStats {
  latencies: number[];
  outcomes: Map<string, number>;
  unexpected: string[];
}

export interface VerifyResult {
  /** What was compared, one line each, for the report. */
  compared: string[];
  /** Differences between the service's state and the replay; empty when they agree. */
  problems: string[];
}

export interface LoadScenario<Ctx> {
  /** "router", as in the report's title. */
  title: string;
  /** The package directory (its bin is started, its bench/LOAD.md written). */
  packageDir: string;
  /** Full gRPC service name, for the per-service health check. */
  serviceName: string;
  /** Extra arguments for the bin (e.g. a data directory). */
  binArgs?: string[];
  /** Opens the clients and prepares what the requests need (e.g. registers runs). */
  setup(address: string, clients: number, flags: LoadFlags): Promise<Ctx>;
  kinds: RequestKind<Ctx>[];
  /** After the load: waits for the service's background work (durable saves, applied steps). */
  settle?(ctx: Ctx): Promise<void>;
  /** Compares the service's state with a sequential replay of the accepted mutating requests. */
  verify(ctx: Ctx): Promise<VerifyResult>;
  /** Runs after the service stopped (e.g. checks what it left on disk). */
  afterStop?(ctx: Ctx): Promise<VerifyResult>;
  close(ctx: Ctx): void | Promise<void>;
  /** Lines of prose for the report (the state kept, how the replay works). */
  notes: string[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function outcomeOf(e: unknown): string {
  if (e instanceof WrongAnswer) return "WRONG_ANSWER";
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "number") return statusName(code);
  return "CLIENT_ERROR";
}

const ms = (x: number) => (Number.isNaN(x) ? "–" : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} logical CPUs, load average ${loadavg()[0].toFixed(1)} at start; Node ${process.version}`;
}

function commit(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim() !== "";
    return dirty ? `${sha} (with uncommitted changes in the working tree)` : sha;
  } catch {
    return "unknown";
  }
}

/** Runs the scenario with the command line's flags; writes the report and sets process.exitCode. */
export async function runLoadTest<Ctx>(scenario: LoadScenario<Ctx>, argv: string[] = process.argv.slice(2)): Promise<void> {
  const flags = parseLoadFlags(argv, scenario.packageDir);
  const unknown = flags.skip.filter((k) => !scenario.kinds.some((x) => x.name === k));
  if (unknown.length > 0) throw new RangeError(`--skip: no request kind ${unknown.join(", ")} (there are ${scenario.kinds.map((k) => k.name).join(", ")})`);
  const kinds = scenario.kinds.filter((k) => !flags.skip.includes(k.name));
  const machineLine = machine();
  const failures: string[] = [];
  const child = await startServiceBin(scenario.packageDir, scenario.binArgs ?? []);
  let ctx: Ctx | undefined;
  try {
    ctx = await scenario.setup(child.address, flags.clients, flags);
    const health = monitorHealth(child.address, scenario.serviceName);
    const stats = new Map<string, KindStats>(kinds.map((k) => [k.name, { latencies: [], outcomes: new Map(), unexpected: [] }]));
    const totalWeight = kinds.reduce((s, k) => s + k.weight, 0);
    const choose = (rng: Rng): RequestKind<Ctx> => {
      let r = rng.next() * totalWeight;
      for (const k of kinds) if ((r -= k.weight) < 0) return k;
      return kinds[kinds.length - 1];
    };
    process.stderr.write(`load: ${flags.clients} clients for ${flags.durationS} s\n`);
    const t0 = performance.now();
    const end = t0 + flags.durationS * 1000;
    const c = ctx;
    await Promise.all(
      Array.from({ length: flags.clients }, async (_, client) => {
        const rng = new Rng(flags.seed * 1_000_003 + client);
        while (performance.now() < end) {
          const kind = choose(rng);
          const s = stats.get(kind.name)!;
          const started = performance.now();
          let outcome = "OK";
          let detail = "";
          try {
            await kind.send(c, client, rng);
          } catch (e) {
            outcome = outcomeOf(e);
            detail = e instanceof Error ? ((e as grpc.ServiceError).details ?? e.message) : String(e);
          }
          s.latencies.push(performance.now() - started);
          s.outcomes.set(outcome, (s.outcomes.get(outcome) ?? 0) + 1);
          if (!kind.expect.includes(outcome) && s.unexpected.length < 5) s.unexpected.push(`${outcome}: ${detail.slice(0, 300)}`);
        }
      }),
    );
    const loadS = (performance.now() - t0) / 1000;
    process.stderr.write(`load: load phase over after ${loadS.toFixed(1)} s; settling\n`);
    const settleT0 = performance.now();
    await scenario.settle?.(c);
    const settleS = (performance.now() - settleT0) / 1000;
    const verify = await scenario.verify(c);
    const healthReport = await health.stop();
    const alive = child.alive();
    const peakRss = child.peakRssBytes();
    await scenario.close(c);
    const stopped = await child.stop();
    const after = (await scenario.afterStop?.(c)) ?? { compared: [], problems: [] };

    // Judge.
    if (!alive) failures.push("the service died during the test");
    if (healthReport.failures.length > 0) failures.push(`${healthReport.failures.length} health checks failed (first: ${healthReport.failures[0].what} at ${healthReport.failures[0].atS.toFixed(1)} s)`);
    for (const k of kinds) {
      const s = stats.get(k.name)!;
      const bad = [...s.outcomes].filter(([o]) => !k.expect.includes(o));
      if (bad.length > 0) failures.push(`${k.name}: unexpected ${bad.map(([o, n]) => `${o} ×${n}`).join(", ")} — ${s.unexpected[0]}`);
      if (s.latencies.length === 0) failures.push(`${k.name}: never sent (raise --duration)`);
    }
    for (const p of [...verify.problems, ...after.problems]) failures.push(`state: ${p}`);
    if (stopped.code !== 0) failures.push(`SIGTERM: exit ${stopped.code ?? stopped.signal} after ${stopped.ms} ms`);

    // Report.
    const lines: string[] = [];
    lines.push(`# Load test: ${scenario.title}`, "");
    const service = basename(scenario.packageDir);
    lines.push(`Written by \`npm run bench:load -- --only ${service}\` (packages/${service}/bench/load.ts on the harness in`);
    lines.push("packages/proto/bench/load-harness.ts); do not edit by hand.", "");
    lines.push(`- **Result: ${failures.length === 0 ? "PASS" : "FAIL"}**`);
    for (const f of failures) lines.push(`  - ${f}`);
    lines.push(`- ${new Date().toISOString().slice(0, 10)}, commit ${commit()}`);
    lines.push(`- ${machineLine}; the clients and the service share it (on few cores they compete for them)`);
    if (flags.skip.length > 0) lines.push(`- **Left out (--skip): ${flags.skip.join(", ")}**`);
    lines.push(`- ${flags.clients} concurrent clients (one connection each) for ${flags.durationS} s (${loadS.toFixed(1)} s measured), seed ${flags.seed}; bearer token ${AUTH_TOKEN ? "set (OCTET_AUTH_TOKEN)" : "not set"}`);
    lines.push(`- The service: its bin as a child process on 127.0.0.1, default limits; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB; SIGTERM → exit ${stopped.code ?? stopped.signal} in ${stopped.ms} ms`);
    lines.push(`- Health: ${healthReport.checks} checks every 100 ms on a connection of their own (deadline 2 s), ${healthReport.failures.length} failed; latency p50 ${ms(percentile([...healthReport.latencies].sort((a, b) => a - b), 50))} ms, p99 ${ms(percentile([...healthReport.latencies].sort((a, b) => a - b), 99))} ms; longest time without an answer ${ms(healthReport.longestGapMs)} ms`);
    lines.push(`- Settling after the load (background work finishing): ${settleS.toFixed(1)} s`);
    const errorMessages = new Map<string, number>();
    for (const line of child.errorLines()) {
      const msg = String((JSON.parse(line) as { msg?: unknown }).msg ?? "").replace(/\d+/g, "N");
      errorMessages.set(msg, (errorMessages.get(msg) ?? 0) + 1);
    }
    lines.push(
      `- Service log: ${child.errorLines().length} lines at level error or above${errorMessages.size > 0 ? ": " + [...errorMessages].map(([m, n]) => `"${m.slice(0, 160)}" ×${n}`).join("; ") : ""}`,
      "",
    );
    lines.push("| request | class | sent | req/s | p50 ms | p99 ms | max ms | outcomes |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let total = 0;
    for (const k of kinds) {
      const s = stats.get(k.name)!;
      const sorted = [...s.latencies].sort((a, b) => a - b);
      total += sorted.length;
      const outcomes = [...s.outcomes].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${k.expect.includes(o) ? "" : "**unexpected** "}${o} ${n}`).join(", ");
      lines.push(`| ${k.name} | ${k.class} | ${sorted.length} | ${(sorted.length / loadS).toFixed(1)} | ${ms(percentile(sorted, 50))} | ${ms(percentile(sorted, 99))} | ${ms(sorted[sorted.length - 1] ?? Number.NaN)} | ${outcomes} |`);
    }
    lines.push(`| all | | ${total} | ${(total / loadS).toFixed(1)} | | | | |`, "");
    lines.push("Request kinds:", "");
    for (const k of kinds) lines.push(`- \`${k.name}\` (${k.class}, weight ${k.weight}; right answers: ${k.expect.join(", ")}): ${k.what}`);
    lines.push("", "State check:", "");
    for (const n of scenario.notes) lines.push(n);
    lines.push("");
    for (const c2 of [...verify.compared, ...after.compared]) lines.push(`- ${c2}`);
    const problems = [...verify.problems, ...after.problems];
    lines.push(problems.length === 0 ? "- The service's state equals the replay." : `- ${problems.length} differences from the replay (first 20 above and here):`);
    for (const p of problems.slice(0, 20)) lines.push(`  - ${p}`);
    lines.push("");
    const text = lines.join("\n");
    process.stdout.write(text);
    if (flags.out) {
      writeFileSync(flags.out, text);
      process.stderr.write(`load: wrote ${flags.out}\n`);
    }
    if (failures.length > 0) {
      process.stderr.write(`load: FAIL\n${failures.map((f) => `  ${f}`).join("\n")}\n`);
      if (!alive || stopped.code !== 0) process.stderr.write(`service stderr (tail):\n${child.stderrTail()}\n`);
      process.exitCode = 1;
    }
  } catch (e) {
    if (ctx !== undefined) await Promise.resolve(scenario.close(ctx)).catch(() => undefined);
    await child.stop(5000);
    process.stderr.write(`load: ${e instanceof Error ? e.stack : String(e)}\nservice stderr (tail):\n${child.stderrTail()}\n`);
    process.exitCode = 1;
  }
}
