// Command-line flags and OCTET_CHECKPOINTER_* environment variables of the octet-checkpointer binary.

import { Command } from "commander";
import { serviceOptionsFromEnv } from "@octet/proto";
import type { CheckpointServerOptions } from "./server.js";

export const ENV_PREFIX = "OCTET_CHECKPOINTER";

/** Store settings: flag → environment variable suffix. Server settings come from serviceOptionsFromEnv. */
const STORE_VARS = {
  "data-dir": "DATA_DIR",
  "max-staged-bytes": "MAX_STAGED_BYTES",
  "max-checkpoint-bytes": "MAX_CHECKPOINT_BYTES",
  "shard-max-bytes": "SHARD_MAX_BYTES",
  "keep-last": "KEEP_LAST",
  "keep-every": "KEEP_EVERY",
} as const;

export function buildCommand(): Command {
  return new Command("octet-checkpointer")
    .description("gRPC CheckpointService: safetensors checkpoints, atomic, verified, asynchronous")
    .option("--host <host>", `interface to listen on (${ENV_PREFIX}_HOST; default 127.0.0.1, loopback only; 0.0.0.0 for every interface)`)
    .option("--port <port>", `port, 0 = ephemeral (${ENV_PREFIX}_PORT; default 0)`)
    .option("--data-dir <dir>", `where checkpoints live (${ENV_PREFIX}_DATA_DIR; default ./checkpoints)`)
    .option("--tls-cert <file>", `server certificate, PEM (${ENV_PREFIX}_TLS_CERT)`)
    .option("--tls-key <file>", `server key, PEM (${ENV_PREFIX}_TLS_KEY)`)
    .option("--tls-ca <file>", `CA for client certificates (${ENV_PREFIX}_TLS_CA)`)
    .option("--tls-require-client-cert <bool>", `mutual TLS (${ENV_PREFIX}_TLS_REQUIRE_CLIENT_CERT)`)
    .option("--max-message-bytes <n>", `per-message limit (${ENV_PREFIX}_MAX_MESSAGE_BYTES; default 4194304)`)
    .option("--shutdown-grace-ms <n>", `grace for in-flight calls on SIGTERM (${ENV_PREFIX}_SHUTDOWN_GRACE_MS; default 10000)`)
    .option(
      "--auth-token-file <file>",
      `bearer token that SaveCheckpoint, DeleteCheckpoint and ImportSafetensors require (${ENV_PREFIX}_AUTH_TOKEN_FILE, ${ENV_PREFIX}_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN; default none)`,
    )
    .option("--max-staged-bytes <n>", `memory for saves not yet durable (${ENV_PREFIX}_MAX_STAGED_BYTES; default half of RAM)`)
    .option("--max-checkpoint-bytes <n>", `largest checkpoint (${ENV_PREFIX}_MAX_CHECKPOINT_BYTES; default max-staged-bytes)`)
    .option("--shard-max-bytes <n>", `shard size target (${ENV_PREFIX}_SHARD_MAX_BYTES; default 1073741824)`)
    .option("--keep-last <n>", `retention: newest N per run, 0 = keep all (${ENV_PREFIX}_KEEP_LAST; default 0)`)
    .option("--keep-every <k>", `retention: also every step divisible by K (${ENV_PREFIX}_KEEP_EVERY; default 0)`)
    .allowExcessArguments(false);
}

function int(value: string, what: string, min: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n < min) throw new RangeError(`${what} must be an integer >= ${min}, got "${value}"`);
  return n;
}

/** Parses flags (argv without node and script) over the environment; throws RangeError naming a bad value. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): CheckpointServerOptions {
  const cmd = buildCommand().exitOverride();
  cmd.parse(argv, { from: "user" });
  const flags = cmd.opts<Record<string, string | undefined>>();
  const get = (flag: keyof typeof STORE_VARS): [string, string] | undefined => {
    const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const v = flags[camel];
    if (v !== undefined) return [v, `--${flag}`];
    const name = `${ENV_PREFIX}_${STORE_VARS[flag]}`;
    const e = env[name];
    return e !== undefined && e !== "" ? [e, name] : undefined;
  };
  const out: CheckpointServerOptions = { ...serviceOptionsFromEnv(ENV_PREFIX, { env, argv }), dataDir: get("data-dir")?.[0] ?? "./checkpoints" };
  const staged = get("max-staged-bytes");
  if (staged) out.maxStagedBytes = int(staged[0], staged[1], 1);
  const ck = get("max-checkpoint-bytes");
  if (ck) out.maxCheckpointBytes = int(ck[0], ck[1], 1);
  const shard = get("shard-max-bytes");
  if (shard) out.shardMaxBytes = int(shard[0], shard[1], 1);
  const keepLast = get("keep-last");
  const keepEvery = get("keep-every");
  out.retention = {
    keepLast: keepLast ? int(keepLast[0], keepLast[1], 0) : 0,
    keepEvery: keepEvery ? int(keepEvery[0], keepEvery[1], 0) : 0,
  };
  return out;
}
