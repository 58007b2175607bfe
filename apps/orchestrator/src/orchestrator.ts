// startOrchestrator: Redis (checked first, bounded), the BullMQ queue, QueueEvents, the gRPC JobService and the
// HTTP server, with one graceful close for all of them.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DEFAULT_BULL_PREFIX } from "@octet/jobs";
import { DEFAULT_HOST, OctetServer, createLogger, services, type Logger, type ServiceOptions } from "@octet/proto";
import { EventHub } from "./events.js";
import { createHttpApp } from "./http.js";
import { OrchestratorMetrics } from "./metrics.js";
import { DEFAULT_REDIS_URL, blockingClient, commandClient, probeRedis } from "./redis.js";
import { JOB_READ_ONLY_METHODS, createJobService } from "./service.js";
import { JobStore } from "./store.js";

export const DEFAULT_GRPC_PORT = 50070;
export const DEFAULT_HTTP_PORT = 8080;

export interface OrchestratorOptions {
  /** Default redis://127.0.0.1:6379. */
  redisUrl?: string;
  /** BullMQ key prefix (default "bull"); Octet's keys beside the queue follow it (@octet/jobs keysFor). */
  prefix?: string;
  /** Interface for gRPC and HTTP (default 127.0.0.1: loopback only; "0.0.0.0" for every interface). */
  host?: string;
  /** gRPC port (default 50070; 0 = ephemeral). */
  port?: number;
  /** HTTP port (default 8080; 0 = ephemeral). */
  httpPort?: number;
  tls?: ServiceOptions["tls"];
  maxMessageBytes?: number;
  shutdownGraceMs?: number;
  /** Bearer token that SubmitJob and CancelJob require (ServiceOptions.authToken); GetJob, ListJobs, WatchJob stay open. */
  authToken?: string;
  logger?: Logger;
  /** Bound on the start-up Redis check (default 3000 ms). */
  redisTimeoutMs?: number;
  /** How often unfinished job pages and WatchJob re-read the job (default 1000 ms). */
  refreshMs?: number;
}

export interface Orchestrator {
  /** host:port for gRPC clients (127.0.0.1 when listening on a wildcard address). */
  grpcAddress: string;
  grpcPort: number;
  /** http://host:port (127.0.0.1 when listening on a wildcard address). */
  httpUrl: string;
  httpPort: number;
  store: JobStore;
  hub: EventHub;
  metrics: OrchestratorMetrics;
  logger: Logger;
  /** Graceful: ends WatchJob streams, drains gRPC calls, closes HTTP, QueueEvents, the queue and Redis. Idempotent. */
  close(): Promise<void>;
}

function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

export async function startOrchestrator(opts: OrchestratorOptions = {}): Promise<Orchestrator> {
  const redisUrl = opts.redisUrl ?? DEFAULT_REDIS_URL;
  const prefix = opts.prefix ?? DEFAULT_BULL_PREFIX;
  const host = opts.host ?? DEFAULT_HOST;
  const logger = opts.logger ?? createLogger("octet-orchestrator");
  await probeRedis(redisUrl, opts.redisTimeoutMs ?? 3000);

  const redis = commandClient(redisUrl);
  const eventsConnection = blockingClient(redisUrl);
  const metrics = new OrchestratorMetrics();
  const store = new JobStore({ redis, prefix });
  const hub = new EventHub(eventsConnection, prefix, metrics.counters());
  const closing = new AbortController();
  let server: OctetServer | undefined;
  let http: Server | undefined;

  const closeRedis = async () => {
    await hub.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
    eventsConnection.disconnect();
  };

  try {
    await hub.ready();
    server = new OctetServer({
      name: "octet-orchestrator",
      host,
      port: opts.port ?? DEFAULT_GRPC_PORT,
      logger,
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.maxMessageBytes ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      ...(opts.shutdownGraceMs !== undefined ? { shutdownGraceMs: opts.shutdownGraceMs } : {}),
      ...(opts.authToken !== undefined ? { authToken: opts.authToken } : {}),
    });
    const handlers = createJobService(store, hub, { onSubmit: () => metrics.submitted.inc({ via: "grpc" }), closing: closing.signal, watchPollMs: opts.refreshMs });
    server.addService(services.orchestrator.v1.JobServiceDefinition, handlers, services.orchestrator.v1.JobServiceName, { readOnly: JOB_READ_ONLY_METHODS });
    const { port } = await server.start();

    const app = createHttpApp({ store, hub, metrics, logger, refreshMs: opts.refreshMs });
    http = createServer(app);
    const h = http;
    await new Promise<void>((resolve, reject) => {
      h.once("error", reject);
      h.listen(opts.httpPort ?? DEFAULT_HTTP_PORT, host, () => {
        h.off("error", reject);
        resolve();
      });
    });
    const httpPort = (h.address() as AddressInfo).port;
    const ch = connectHost(host);

    let closed: Promise<void> | undefined;
    const srv = server;
    const close = () =>
      (closed ??= (async () => {
        closing.abort();
        await srv.shutdown("close");
        await new Promise<void>((resolve) => {
          h.close(() => resolve());
          h.closeIdleConnections();
          setTimeout(() => h.closeAllConnections(), 2000).unref();
        });
        await closeRedis();
      })());

    logger.info({ grpcPort: port, httpPort, prefix }, "orchestrator ready");
    return { grpcAddress: `${ch}:${port}`, grpcPort: port, httpUrl: `http://${ch}:${httpPort}`, httpPort, store, hub, metrics, logger, close };
  } catch (err) {
    closing.abort();
    if (server) await server.shutdown("start failed").catch(() => undefined);
    if (http?.listening) http.close();
    await closeRedis();
    throw err;
  }
}
