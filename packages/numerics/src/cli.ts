#!/usr/bin/env node
// octet-numerics: serves the NumericsService (quantize / dequantize for clients in any language). Options come
// from flags or the environment (OCTET_NUMERICS_HOST, _PORT, _TLS_CERT, _TLS_KEY, _TLS_CA,
// _TLS_REQUIRE_CLIENT_CERT, _MAX_MESSAGE_BYTES, _SHUTDOWN_GRACE_MS, _MAX_ELEMENTS); flags win.
// SIGTERM/SIGINT shut down gracefully.

import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import { startNumericsServer } from "./service/index.js";
import { numericsBackend } from "./backend.js";

const program = new Command()
  .name("octet-numerics")
  .description("Octet NumericsService: FP8 quantization and dequantization over gRPC")
  .option("--host <host>", "interface to listen on (env OCTET_NUMERICS_HOST)")
  .option("--port <port>", "port, 0 for any (env OCTET_NUMERICS_PORT)")
  .option("--tls-cert <file>", "server certificate; enables TLS (env OCTET_NUMERICS_TLS_CERT)")
  .option("--tls-key <file>", "server key (env OCTET_NUMERICS_TLS_KEY)")
  .option("--tls-ca <file>", "CA for client certificates (env OCTET_NUMERICS_TLS_CA)")
  .option("--tls-require-client-cert <bool>", "require client certificates (env OCTET_NUMERICS_TLS_REQUIRE_CLIENT_CERT)")
  .option("--max-message-bytes <n>", "per-message limit (env OCTET_NUMERICS_MAX_MESSAGE_BYTES)")
  .option("--shutdown-grace-ms <n>", "grace period for in-flight calls (env OCTET_NUMERICS_SHUTDOWN_GRACE_MS)")
  .option("--max-elements <n>", "largest tensor accepted, in elements (env OCTET_NUMERICS_MAX_ELEMENTS)")
  .allowUnknownOption(false);

async function main(): Promise<void> {
  program.parse(process.argv);
  const rawMax = program.opts<{ maxElements?: string }>().maxElements ?? process.env.OCTET_NUMERICS_MAX_ELEMENTS;
  const maxElements = rawMax === undefined ? undefined : Number(rawMax);
  if (maxElements !== undefined && (!Number.isInteger(maxElements) || maxElements <= 0)) {
    throw new RangeError(`--max-elements must be a positive integer, got "${rawMax}"`);
  }
  const argv = process.argv.slice(2).filter((a, i, all) => a !== "--max-elements" && all[i - 1] !== "--max-elements" && !a.startsWith("--max-elements="));
  const options = serviceOptionsFromEnv("OCTET_NUMERICS", { argv });
  const { address } = await startNumericsServer({ ...options, handleSignals: true, service: { maxElements } });
  process.stderr.write(`octet-numerics listening on ${address} (kernels: ${numericsBackend().path})\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`octet-numerics: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
