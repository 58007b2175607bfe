#!/usr/bin/env node
// octet-orchestrator: JobService (gRPC), the BullMQ GPU queue, metrics and the web view.
import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import { DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, startOrchestrator } from "./orchestrator.js";
import { DEFAULT_REDIS_URL, RedisUnreachableError } from "./redis.js";

const program = new Command()
  .name("octet-orchestrator")
  .description(
    "gRPC JobService over Octet's BullMQ GPU queue (queue \"octet-gpu\"), with Prometheus metrics, bull-board and loss-curve pages over HTTP. " +
      "Flags override OCTET_ORCHESTRATOR_* variables. When ready, prints one JSON line on stdout: " +
      '{"event":"ready","grpc":"<host>:<port>","http":"http://<host>:<port>"}.',
  )
  .option("--host <host>", "interface for gRPC and HTTP (OCTET_ORCHESTRATOR_HOST, default 127.0.0.1: loopback only; 0.0.0.0 for every interface)")
  .option("--port <port>", `gRPC port, 0 = ephemeral (OCTET_ORCHESTRATOR_PORT, default ${DEFAULT_GRPC_PORT})`)
  .option("--http-port <port>", `HTTP port, 0 = ephemeral (OCTET_ORCHESTRATOR_HTTP_PORT, default ${DEFAULT_HTTP_PORT})`)
  .option("--redis <url>", `Redis URL, redis:// or rediss:// (REDIS_URL, default ${DEFAULT_REDIS_URL})`)
  .option("--redis-prefix <prefix>", "BullMQ key prefix; Octet's keys beside the queue follow it (OCTET_REDIS_PREFIX, default bull)")
  .option("--redis-timeout-ms <ms>", "bound on the start-up Redis check (OCTET_ORCHESTRATOR_REDIS_TIMEOUT_MS, default 3000)")
  .option("--refresh-ms <ms>", "re-read period of WatchJob and of unfinished job pages (OCTET_ORCHESTRATOR_REFRESH_MS, default 1000)")
  .option("--tls-cert <file>", "server certificate, PEM (OCTET_ORCHESTRATOR_TLS_CERT)")
  .option("--tls-key <file>", "server key, PEM (OCTET_ORCHESTRATOR_TLS_KEY)")
  .option("--tls-ca <file>", "CA for client certificates (OCTET_ORCHESTRATOR_TLS_CA)")
  .option("--tls-require-client-cert <bool>", "require client certificates (OCTET_ORCHESTRATOR_TLS_REQUIRE_CLIENT_CERT)")
  .option("--max-message-bytes <n>", "gRPC message limit (OCTET_ORCHESTRATOR_MAX_MESSAGE_BYTES, default 4 MiB)")
  .option("--shutdown-grace-ms <n>", "graceful shutdown time (OCTET_ORCHESTRATOR_SHUTDOWN_GRACE_MS, default 10000)")
  .option(
    "--auth-token-file <file>",
    "bearer token that SubmitJob and CancelJob require (OCTET_ORCHESTRATOR_AUTH_TOKEN_FILE, OCTET_ORCHESTRATOR_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN; default none)",
  )
  .showHelpAfterError();

function intOption(value: string | undefined, what: string, min: number, max: number): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${what} must be an integer in [${min}, ${max}], got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Record<string, string | undefined>>();
  const env = process.env;
  const server = serviceOptionsFromEnv("OCTET_ORCHESTRATOR", { argv: process.argv.slice(2) });
  const httpPort = intOption(o.httpPort ?? env.OCTET_ORCHESTRATOR_HTTP_PORT, o.httpPort !== undefined ? "--http-port" : "OCTET_ORCHESTRATOR_HTTP_PORT", 0, 65535);
  const redisTimeoutMs = intOption(o.redisTimeoutMs ?? env.OCTET_ORCHESTRATOR_REDIS_TIMEOUT_MS, "--redis-timeout-ms", 1, 600_000);
  const refreshMs = intOption(o.refreshMs ?? env.OCTET_ORCHESTRATOR_REFRESH_MS, "--refresh-ms", 50, 600_000);
  const redisUrl = o.redis ?? (env.REDIS_URL || DEFAULT_REDIS_URL);
  const prefix = o.redisPrefix ?? (env.OCTET_REDIS_PREFIX || undefined);

  const orch = await startOrchestrator({
    redisUrl,
    prefix,
    host: server.host,
    port: server.port ?? DEFAULT_GRPC_PORT,
    httpPort: httpPort ?? DEFAULT_HTTP_PORT,
    tls: server.tls,
    maxMessageBytes: server.maxMessageBytes,
    shutdownGraceMs: server.shutdownGraceMs,
    authToken: server.authToken,
    redisTimeoutMs,
    refreshMs,
  });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      orch.logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    orch.logger.info({ signal }, "signal received, shutting down");
    orch.close().then(
      () => process.exit(0),
      (err: unknown) => {
        orch.logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  // One line on stdout for the launcher and scripts.
  process.stdout.write(`${JSON.stringify({ event: "ready", grpc: orch.grpcAddress, http: orch.httpUrl })}\n`);
}

main().catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`octet-orchestrator: ${msg}\n`);
  if (err instanceof RedisUnreachableError) process.stderr.write("octet-orchestrator: start Redis or point --redis / REDIS_URL at one\n");
  process.exit(err instanceof RangeError ? 2 : 1);
});
