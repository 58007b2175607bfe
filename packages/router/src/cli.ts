#!/usr/bin/env node
// octet-router: serves the LoadBalancerService. Options come from flags or the environment
// (OCTET_ROUTER_HOST, _PORT, _TLS_CERT, _TLS_KEY, _TLS_CA, _TLS_REQUIRE_CLIENT_CERT, _MAX_MESSAGE_BYTES,
// _SHUTDOWN_GRACE_MS, _AUTH_TOKEN(_FILE), and the request limits _MAX_EXPERTS ... _PLACEMENT_TIMEOUT_MS); flags win.
// Listens on 127.0.0.1 unless told otherwise. SIGTERM/SIGINT shut down gracefully.

import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import { DEFAULT_ROUTER_LIMITS, LIMIT_OPTIONS, routerLimitsFromEnv, startRouterServer, type RouterLimits } from "./service/index.js";

const LIMIT_HELP: Record<keyof RouterLimits, string> = {
  maxExperts: "routed experts per layer (PlanPlacement's loads, ReportLoads' experts)",
  maxRedundantExperts: "PlanPlacement's redundant_experts",
  maxNodes: "PlanPlacement's num_nodes",
  maxGpusPerNode: "PlanPlacement's gpus_per_node",
  maxGpus: "PlanPlacement's num_nodes × gpus_per_node",
  maxLayers: "(run, layer) entries kept by the load balancer",
  maxPlacementWorkers: "large placements computed at once on worker threads",
  placementTimeoutMs: "the longest a placement may run, whatever its deadline",
};

const program = new Command()
  .name("octet-router")
  .description("Octet router LoadBalancerService: aux-loss-free bias updates per (run, layer) and expert placement")
  .option("--host <host>", "interface to listen on (env OCTET_ROUTER_HOST; default 127.0.0.1, loopback only; 0.0.0.0 for every interface)")
  .option("--port <port>", "port, 0 for any (env OCTET_ROUTER_PORT)")
  .option("--tls-cert <file>", "server certificate; enables TLS (env OCTET_ROUTER_TLS_CERT)")
  .option("--tls-key <file>", "server key (env OCTET_ROUTER_TLS_KEY)")
  .option("--tls-ca <file>", "CA for client certificates (env OCTET_ROUTER_TLS_CA)")
  .option("--tls-require-client-cert <bool>", "require client certificates (env OCTET_ROUTER_TLS_REQUIRE_CLIENT_CERT)")
  .option("--max-message-bytes <n>", "per-message limit (env OCTET_ROUTER_MAX_MESSAGE_BYTES)")
  .option("--shutdown-grace-ms <n>", "grace period for in-flight calls (env OCTET_ROUTER_SHUTDOWN_GRACE_MS)")
  .option(
    "--auth-token-file <file>",
    "bearer token that ReportLoads and ImportState require (env OCTET_ROUTER_AUTH_TOKEN_FILE, OCTET_ROUTER_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN; default none)",
  )
  .allowUnknownOption(false);
for (const [key, o] of Object.entries(LIMIT_OPTIONS) as [keyof RouterLimits, { flag: string; env: string }][]) {
  program.option(`--${o.flag} <n>`, `${LIMIT_HELP[key]} (env OCTET_ROUTER_${o.env}; default ${DEFAULT_ROUTER_LIMITS[key]})`);
}

async function main(): Promise<void> {
  program.parse(process.argv);
  // commander validates the flag names; the scaffolding parses and range-checks the values.
  const options = serviceOptionsFromEnv("OCTET_ROUTER", { argv: process.argv.slice(2) });
  const limits = routerLimitsFromEnv(process.env, program.opts<Partial<Record<keyof RouterLimits, string>>>());
  const { address } = await startRouterServer({ ...options, limits, handleSignals: true });
  process.stderr.write(`octet-router listening on ${address}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`octet-router: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
