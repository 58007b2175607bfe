// Redis connections. ioredis reconnects and retries forever by default, which turns "Redis is not there" into a
// hang; the orchestrator first pings once with a bounded timeout and no retries, and fails with a clear error.
import { Redis, type RedisOptions } from "ioredis";

export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/** The URL with any password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

export class RedisUnreachableError extends Error {
  override name = "RedisUnreachableError";
}

/** Connects once, without retries, and PINGs; rejects with RedisUnreachableError within about timeoutMs. */
export async function probeRedis(url: string, timeoutMs = 3000): Promise<void> {
  const where = redactUrl(url);
  let client: Redis;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      reconnectOnError: () => false,
    });
  } catch (err) {
    throw new RedisUnreachableError(`cannot reach Redis at ${where}: ${(err as Error).message}`);
  }
  let lastError: Error | undefined;
  client.on("error", (err: Error) => (lastError = err));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        const pong = await client.ping();
        if (pong !== "PONG") throw new Error(`PING answered ${JSON.stringify(pong)}`);
      })(),
      deadline,
    ]);
  } catch (err) {
    const e = err as Error;
    const reason = e.message && !/Connection is closed/i.test(e.message) ? e.message : (lastError?.message ?? e.message);
    throw new RedisUnreachableError(`cannot reach Redis at ${where}: ${reason}`);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/**
 * A command connection: reconnects forever in the background, but a command fails after one retry instead of
 * waiting for Redis (so RPCs answer UNAVAILABLE while Redis is down).
 */
export function commandClient(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, ...extra });
  client.on("error", () => undefined); // reported through failing commands; ioredis logs unhandled ones otherwise
  return client;
}

/** A blocking connection for BullMQ's QueueEvents/Worker (BullMQ requires maxRetriesPerRequest: null). */
export function blockingClient(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on("error", () => undefined);
  return client;
}
