// Test harness: a real orchestrator on ephemeral ports over the shared local Redis, under a BullMQ prefix of its
// own (tests of other packages run against the same Redis at the same time), and cleanup of every key under it.
import { randomBytes } from "node:crypto";
import { Queue, Worker, type Processor } from "bullmq";
import { Redis } from "ioredis";
import { QUEUE_NAME, keysFor, type OctetKeys } from "@octet/jobs";
import { createLogger } from "@octet/proto";
import { JobClient } from "@octet/jobs/client";
import { startOrchestrator, type Orchestrator } from "../orchestrator.js";

export const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

/** ioredis options for REDIS_URL, for BullMQ objects that own (and close) their connections. */
export function redisOptions(url = REDIS_URL): { host: string; port: number; password?: string; db?: number } {
  const u = new URL(url);
  const o: { host: string; port: number; password?: string; db?: number } = { host: u.hostname, port: Number(u.port || 6379) };
  if (u.password) o.password = decodeURIComponent(u.password);
  if (u.pathname.length > 1) o.db = Number(u.pathname.slice(1));
  return o;
}

export function uniquePrefix(tag: string): string {
  return `t-orch-${tag}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

/** Deletes every key under the prefix (BullMQ's "<prefix>:octet-gpu:…" and Octet's "<prefix>:octet:…"). */
export async function cleanupPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
}

export interface TestBed {
  prefix: string;
  keys: OctetKeys;
  orch: Orchestrator;
  client: JobClient;
  /** A plain BullMQ queue on the same prefix (what another program would use). */
  queue: Queue;
  redis: Redis;
  /** A plain BullMQ worker on the prefix (stands in for a trainer); closed by close(). */
  worker(processor: Processor, opts?: { concurrency?: number }): Worker;
  close(): Promise<void>;
}

export async function startTestBed(tag: string, opts: { refreshMs?: number } = {}): Promise<TestBed> {
  const prefix = uniquePrefix(tag);
  const orch = await startOrchestrator({
    redisUrl: REDIS_URL,
    prefix,
    host: "127.0.0.1",
    port: 0,
    httpPort: 0,
    logger: createLogger("octet-orchestrator-test", "silent"),
    refreshMs: opts.refreshMs ?? 200,
    shutdownGraceMs: 2000,
  });
  const client = new JobClient(orch.grpcAddress);
  const redis = new Redis(REDIS_URL);
  const queue = new Queue(QUEUE_NAME, { connection: redisOptions(), prefix });
  const workers: Worker[] = [];
  return {
    prefix,
    keys: keysFor(prefix),
    orch,
    client,
    queue,
    redis,
    worker(processor, wopts = {}) {
      const w = new Worker(QUEUE_NAME, processor, {
        connection: redisOptions(),
        prefix,
        concurrency: wopts.concurrency ?? 1,
      });
      w.on("error", () => undefined);
      workers.push(w);
      return w;
    },
    async close() {
      client.close();
      for (const w of workers) await w.close();
      await orch.close();
      await queue.close();
      await cleanupPrefix(redis, prefix);
      redis.disconnect();
    },
  };
}

/** Polls until fn returns a truthy value (the deadline only bounds a hang; nothing is asserted on time). */
export async function eventually<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 20_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A promise with its resolve, for handing control between a test and a worker's processor. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
