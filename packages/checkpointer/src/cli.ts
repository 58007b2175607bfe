#!/usr/bin/env node
// octet-checkpointer: serves CheckpointService until SIGTERM/SIGINT (then drains calls and pending saves).

import { loadConfig } from "./config.js";
import { startCheckpointServer } from "./server.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (e) {
    const err = e as Error & { code?: string; exitCode?: number };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") process.exit(0);
    if (!err.code?.startsWith("commander.")) process.stderr.write(`octet-checkpointer: ${err.message}\n`);
    process.exit(2);
  }
  const started = await startCheckpointServer({ ...config, handleSignals: true });
  // One JSON line on stdout for scripts and launchers: ready, where it listens, where the checkpoints go.
  process.stdout.write(`${JSON.stringify({ event: "ready", grpc: started.address, port: started.port, storage: started.store.storage.location })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`octet-checkpointer: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
