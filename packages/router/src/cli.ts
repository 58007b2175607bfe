#!/usr/bin/env node
// octet-router: serves the LoadBalancerService. Options come from flags or the environment
// (OCTET_ROUTER_HOST, _PORT, _TLS_CERT, _TLS_KEY, _TLS_CA, _TLS_REQUIRE_CLIENT_CERT,
// _MAX_MESSAGE_BYTES, _SHUTDOWN_GRACE_MS); flags win. SIGTERM/SIGINT shut down gracefully.

import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import { startRouterServer } from "./service/index.js";

const program = new Command()
  .name("octet-router")
  .description("Octet router LoadBalancerService: aux-loss-free bias updates per (run, layer) and expert placement")
  .option("--host <host>", "interface to listen on (env OCTET_ROUTER_HOST)")
  .option("--port <port>", "port, 0 for any (env OCTET_ROUTER_PORT)")
  .option("--tls-cert <file>", "server certificate; enables TLS (env OCTET_ROUTER_TLS_CERT)")
  .option("--tls-key <file>", "server key (env OCTET_ROUTER_TLS_KEY)")
  .option("--tls-ca <file>", "CA for client certificates (env OCTET_ROUTER_TLS_CA)")
  .option("--tls-require-client-cert <bool>", "require client certificates (env OCTET_ROUTER_TLS_REQUIRE_CLIENT_CERT)")
  .option("--max-message-bytes <n>", "per-message limit (env OCTET_ROUTER_MAX_MESSAGE_BYTES)")
  .option("--shutdown-grace-ms <n>", "grace period for in-flight calls (env OCTET_ROUTER_SHUTDOWN_GRACE_MS)")
  .allowUnknownOption(false);

async function main(): Promise<void> {
  program.parse(process.argv);
  // commander validates the flag names; the scaffolding parses and range-checks the values.
  const options = serviceOptionsFromEnv("OCTET_ROUTER", { argv: process.argv.slice(2) });
  const { port } = await startRouterServer({ ...options, handleSignals: true });
  process.stderr.write(`octet-router listening on ${options.host ?? "0.0.0.0"}:${port}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`octet-router: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
