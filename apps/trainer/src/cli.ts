#!/usr/bin/env node
// octet-trainer: a BullMQ worker taking training jobs from the Octet GPU queue until SIGTERM/SIGINT.

import { Command, InvalidArgumentError } from "commander";
import { authTokenFromEnv } from "@octet/proto";
import { createLogger } from "./log.js";
import { TrainerWorker } from "./worker.js";

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
}

function envInt(env: string, min: number): number | undefined {
  const v = process.env[env];
  if (v === undefined || v === "") return undefined;
  try {
    return intArg(env, min)(v);
  } catch (e) {
    process.stderr.write(`octet-trainer: ${(e as Error).message}\n`);
    process.exit(2);
  }
}

export function buildCommand(): Command {
  return new Command("octet-trainer")
    .description("Runs Octet training jobs from the BullMQ queue \"octet-gpu\" on this machine's GPUs (or CPU slots).")
    .option("--redis <url>", "Redis URL (env REDIS_URL)", process.env.REDIS_URL || "redis://127.0.0.1:6379")
    .option("--redis-prefix <prefix>", "BullMQ key prefix; Octet's keys follow it (env OCTET_REDIS_PREFIX)", process.env.OCTET_REDIS_PREFIX || "bull")
    .option("--checkpointer <host:port>", "checkpointer address (env OCTET_CHECKPOINTER_ADDR; required)", process.env.OCTET_CHECKPOINTER_ADDR)
    .option("--ema-keeper <host:port>", "EMA keeper address (env OCTET_EMA_ADDR; without it EMA is skipped)", process.env.OCTET_EMA_ADDR)
    .option(
      "--auth-token-file <file>",
      "bearer token for the checkpointer's and the EMA keeper's mutating calls (env OCTET_AUTH_TOKEN_FILE or OCTET_AUTH_TOKEN; default none)",
    )
    .option("--cpu-slots <n>", "CPU slots offered when no GPU is used (env OCTET_CPU_SLOTS)", intArg("--cpu-slots", 1), envInt("OCTET_CPU_SLOTS", 1) ?? 1)
    .option("--gpus <n>", "GPUs offered: overrides nvidia-smi; 0 = CPU slots only (env OCTET_GPUS)", intArg("--gpus", 0), envInt("OCTET_GPUS", 0))
    .option("--worker-id <id>", "worker id (env OCTET_WORKER_ID; default <host>-<pid>)", process.env.OCTET_WORKER_ID)
    .option("--lock-ms <ms>", "BullMQ job lock duration; must exceed a training step (env OCTET_LOCK_MS)", intArg("--lock-ms", 100), envInt("OCTET_LOCK_MS", 100) ?? 30_000)
    .option("--stalled-ms <ms>", "BullMQ stalled-job check interval (env OCTET_STALLED_MS)", intArg("--stalled-ms", 100), envInt("OCTET_STALLED_MS", 100) ?? 30_000)
    .option("--heartbeat-ms <ms>", "announcement refresh interval; it expires after 3 (env OCTET_HEARTBEAT_MS)", intArg("--heartbeat-ms", 100), envInt("OCTET_HEARTBEAT_MS", 100) ?? 5_000)
    .option("--fit-delay-ms <ms>", "how long a job that does not fit now is put back before this worker looks again", intArg("--fit-delay-ms", 1), 1_000)
    .option("--progress-ms <ms>", "least time between two progress updates of a job", intArg("--progress-ms", 1), 250)
    .option("--redis-timeout-ms <ms>", "start-up Redis check deadline", intArg("--redis-timeout-ms", 1), 3_000)
    .option("--shutdown-timeout-ms <ms>", "on SIGTERM/SIGINT, exit 1 if jobs are not released within this", intArg("--shutdown-timeout-ms", 1), 120_000)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
}

async function main(): Promise<void> {
  const cmd = buildCommand();
  try {
    cmd.parse(process.argv);
  } catch (e) {
    const err = e as { code?: string };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") process.exit(0);
    process.exit(2);
  }
  const o = cmd.opts<{
    redis: string;
    redisPrefix: string;
    checkpointer?: string;
    emaKeeper?: string;
    authTokenFile?: string;
    cpuSlots: number;
    gpus?: number;
    workerId?: string;
    lockMs: number;
    stalledMs: number;
    heartbeatMs: number;
    fitDelayMs: number;
    progressMs: number;
    redisTimeoutMs: number;
    shutdownTimeoutMs: number;
  }>();
  if (!o.checkpointer) {
    process.stderr.write("octet-trainer: --checkpointer <host:port> (or OCTET_CHECKPOINTER_ADDR) is required\n");
    process.exit(2);
  }
  let authToken: string | undefined;
  try {
    authToken = authTokenFromEnv({ file: o.authTokenFile });
  } catch (e) {
    process.stderr.write(`octet-trainer: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ base: { name: "octet-trainer" } });
  let worker: TrainerWorker;
  try {
    worker = await TrainerWorker.start({
      redisUrl: o.redis,
      prefix: o.redisPrefix,
      checkpointer: o.checkpointer,
      emaKeeper: o.emaKeeper || null,
      authToken,
      workerId: o.workerId,
      cpuSlots: o.cpuSlots,
      gpus: o.gpus,
      lockMs: o.lockMs,
      stalledMs: o.stalledMs,
      heartbeatMs: o.heartbeatMs,
      fitDelayMs: o.fitDelayMs,
      progressIntervalMs: o.progressMs,
      redisTimeoutMs: o.redisTimeoutMs,
      logger: log,
    });
  } catch (e) {
    log.error("cannot start", { err: e });
    process.stderr.write(`octet-trainer: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ event: "ready", workerId: worker.id, slots: worker.offer.slots, kind: worker.offer.kind })}\n`);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn("second signal: exiting now (running jobs will be recovered as stalled)", { signal });
      process.exit(1);
    }
    log.info("signal: finishing the current steps, checkpointing, releasing the jobs", { signal });
    const timer = setTimeout(() => {
      log.error("shutdown timed out: exiting (running jobs will be recovered as stalled)", { timeoutMs: o.shutdownTimeoutMs });
      process.exit(1);
    }, o.shutdownTimeoutMs);
    timer.unref();
    worker.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error("shutdown failed", { err: e });
        process.exit(1);
      },
    );
  };
  // A stray rejection must not kill a worker whose other jobs are fine (a dead worker's jobs stall and restart).
  process.on("unhandledRejection", (e) => log.error("unhandled rejection", { err: e }));
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

void main();
