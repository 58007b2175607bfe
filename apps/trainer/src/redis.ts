// Redis connections: a bounded reachability check at start (ioredis itself retries forever), and the
// long-lived connections, which retry and queue commands across a Redis restart.

import { Redis, type RedisOptions } from "ioredis";

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
}

/**
 * Connects once and PINGs, within `timeoutMs`; rejects with "cannot reach Redis at <url>: <reason>".
 * No retries: this is the start-up check that turns an unreachable Redis into a clear, prompt error.
 */
export async function pingRedis(url: string, timeoutMs = 3000): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    reconnectOnError: () => false,
  });
  let lastError: Error | undefined;
  client.on("error", (e: Error) => (lastError = e));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        const pong = await client.ping();
        if (pong !== "PONG") throw new Error(`unexpected PING reply ${JSON.stringify(pong)}`);
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    // ioredis rejects connect() with "Connection is closed."; the cause (ECONNREFUSED, ENOTFOUND, …) came as an event.
    const reason = lastError?.message || (e as Error).message || String(e);
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${reason}`);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/** A long-lived connection: reconnects forever, queues commands while disconnected (BullMQ's requirement). */
export function createRedis(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra });
}
