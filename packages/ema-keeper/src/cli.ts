#!/usr/bin/env node
// octet-ema-keeper: runs EmaService. Listens on 127.0.0.1 unless --host / OCTET_EMA_HOST says otherwise.
import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import { keeperOptionsFromEnv } from "./config.js";
import { startEmaServer } from "./service.js";

const program = new Command()
  .name("octet-ema-keeper")
  .description("gRPC EmaService: EMA of training parameters in CPU memory, updated in the background. Flags override OCTET_EMA_* variables.")
  .option("--host <host>", "interface to listen on (OCTET_EMA_HOST, default 127.0.0.1: loopback only; 0.0.0.0 for every interface)")
  .option("--port <port>", "port, 0 = ephemeral (OCTET_EMA_PORT, default 0)")
  .option("--tls-cert <file>", "server certificate, PEM (OCTET_EMA_TLS_CERT)")
  .option("--tls-key <file>", "server key, PEM (OCTET_EMA_TLS_KEY)")
  .option("--tls-ca <file>", "CA for client certificates (OCTET_EMA_TLS_CA)")
  .option("--tls-require-client-cert <bool>", "require client certificates (OCTET_EMA_TLS_REQUIRE_CLIENT_CERT)")
  .option("--max-message-bytes <n>", "gRPC message limit (OCTET_EMA_MAX_MESSAGE_BYTES, default 4 MiB)")
  .option("--shutdown-grace-ms <n>", "graceful shutdown time (OCTET_EMA_SHUTDOWN_GRACE_MS, default 10000)")
  .option(
    "--auth-token-file <file>",
    "bearer token that RegisterRun, PushParameters, ImportEma and DropRun require (OCTET_EMA_AUTH_TOKEN_FILE, OCTET_EMA_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN; default none)",
  )
  .option("--max-ema-bytes <n>", "fp32 EMA bytes of all runs together; larger registrations are refused (OCTET_EMA_MAX_EMA_BYTES, default half of physical memory or of the container's limit)")
  .option("--max-queued-steps <n>", "complete steps waiting for the applier before pushes are held (OCTET_EMA_MAX_QUEUED_STEPS, default 2)")
  .option("--max-pending-steps <n>", "incomplete steps kept per run (OCTET_EMA_MAX_PENDING_STEPS, default 8)")
  .option("--max-tensors-per-run <n>", "(OCTET_EMA_MAX_TENSORS_PER_RUN, default 100000)")
  .option("--max-tensor-elements <n>", "(OCTET_EMA_MAX_TENSOR_ELEMENTS, default 2^30)")
  .option("--slice-elements <n>", "elements applied between event-loop yields (OCTET_EMA_SLICE_ELEMENTS, default 2^20)")
  .option("--chunk-bytes <n>", "data bytes per streamed EMA message (OCTET_EMA_CHUNK_BYTES, default 1 MiB)")
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Record<string, string | undefined>>();
  const server = serviceOptionsFromEnv("OCTET_EMA", { argv: process.argv.slice(2) });
  const { keeper, chunkBytes } = keeperOptionsFromEnv(process.env, {
    maxEmaBytes: o.maxEmaBytes,
    maxQueuedSteps: o.maxQueuedSteps,
    maxPendingSteps: o.maxPendingSteps,
    maxTensorsPerRun: o.maxTensorsPerRun,
    maxTensorElements: o.maxTensorElements,
    sliceElements: o.sliceElements,
    chunkBytes: o.chunkBytes,
  });
  const started = await startEmaServer({ ...server, keeperOptions: keeper, chunkBytes, handleSignals: true });
  started.server.logger.info({ port: started.port, address: started.address }, "octet-ema-keeper listening");
  // One line on stdout for scripts and tests: the bound port.
  process.stdout.write(`listening ${started.address} port ${started.port}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`octet-ema-keeper: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
