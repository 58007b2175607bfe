// octet-up's flags, validated at the edge: every bad value is a RangeError naming the flag.

import { Command, Option } from "commander";
import { validateJobSpec } from "@octet/jobs";
import { authTokenFromEnv } from "@octet/jobs/client";

export interface LaunchOptions {
  config: string;
  recipe: string;
  steps?: number;
  seed: number;
  out: string;
  compareBf16: boolean;
  keepOpen: boolean;
  /** Redis to use; undefined: start a private redis-server. */
  redis?: string;
  /** A running orchestrator's gRPC address; undefined: start one. */
  orchestrator?: string;
  /** Its web view when the orchestrator is not ours. */
  web?: string;
  emaKeeper?: string;
  checkpointer?: string;
  /** Trainer processes to start (0: use workers already on the queue). */
  trainers: number;
  cpuSlots: number;
  grpcPort: number;
  webPort: number;
  readyTimeoutMs: number;
  /** JSON lines instead of a progress bar even on a terminal. */
  json: boolean;
  /**
   * Bearer token of the services (--auth-token-file, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN). Undefined: the
   * launcher makes one for the run; the services it starts require it, and it never leaves the launcher's
   * children. Give one to reach services started elsewhere with a token (--orchestrator and the others).
   */
  authToken?: string;
}

function intFlag(flag: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max) throw new RangeError(`${flag} must be an integer from ${min} to ${max}, got "${v}"`);
    return n;
  };
}

const hostPort = (flag: string) => (v: string): string => {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(v)) throw new RangeError(`${flag} must be host:port, got "${v}"`);
  return v;
};

export function buildCommand(): Command {
  return new Command("octet-up")
    .description(
      "Octet's main command: starts what is not already running (Redis, the EMA keeper, the checkpointer, the orchestrator, a trainer), " +
        "submits a training job through gRPC, shows its progress, reports the result, and stops everything it started.",
    )
    .option("--config <name>", "model config preset (tiny, micro)", "tiny")
    .option("--recipe <recipe>", "precision recipe: fp32 | bf16 | fp8 | fp8-delayed", "fp8")
    .option("--steps <n>", "training steps (default: the config's)", intFlag("--steps", 1, 10_000_000))
    .option("--seed <n>", "seed of the initialization and the data order", intFlag("--seed", 0, 2 ** 32 - 1), 1)
    .option("--out <dir>", "output folder: checkpoints, loss plot, service logs", "./octet-run")
    .option("--compare-bf16", "also train the same job with the bf16 recipe and report the loss difference", false)
    .option("--keep-open", "after the report, keep the services running for the web view until Ctrl-C", false)
    .addOption(new Option("--redis <url>", "use this Redis instead of starting a private redis-server").env("REDIS_URL"))
    .addOption(new Option("--orchestrator <host:port>", "use a running orchestrator (gRPC) instead of starting one").env("OCTET_ORCHESTRATOR_ADDR").argParser(hostPort("--orchestrator")))
    .addOption(new Option("--web <url>", "the running orchestrator's web view (with --orchestrator)").env("OCTET_ORCHESTRATOR_WEB"))
    .addOption(new Option("--ema-keeper <host:port>", "use a running EMA keeper").env("OCTET_EMA_ADDR").argParser(hostPort("--ema-keeper")))
    .addOption(new Option("--checkpointer <host:port>", "use a running checkpointer").env("OCTET_CHECKPOINTER_ADDR").argParser(hostPort("--checkpointer")))
    .option("--trainers <n>", "trainer workers to start (0: rely on workers already on the queue)", intFlag("--trainers", 0, 64), 1)
    .option("--cpu-slots <n>", "CPU slots of each started trainer on a machine without GPUs", intFlag("--cpu-slots", 1, 64), 1)
    .option("--grpc-port <n>", "gRPC port of the started orchestrator (0: any free port)", intFlag("--grpc-port", 0, 65535), 0)
    .option("--web-port <n>", "HTTP port of the started orchestrator's web view (0: any free port)", intFlag("--web-port", 0, 65535), 0)
    .option("--ready-timeout <s>", "seconds each service has to become ready", intFlag("--ready-timeout", 1, 3600), 60)
    .option("--json", "JSON lines instead of a progress bar, even on a terminal", false)
    .option(
      "--auth-token-file <file>",
      "bearer token of the services (env OCTET_AUTH_TOKEN_FILE or OCTET_AUTH_TOKEN; default: a new one for this run, given to the services it starts)",
    )
    .showHelpAfterError()
    .allowExcessArguments(false);
}

/** Parses argv (without node and script). Throws RangeError for values commander accepts but Octet does not. */
export function parseOptions(argv: string[], cmd: Command = buildCommand().exitOverride()): LaunchOptions {
  cmd.parse(argv, { from: "user" });
  const o = cmd.opts<{
    config: string; recipe: string; steps?: number; seed: number; out: string; compareBf16: boolean; keepOpen: boolean;
    redis?: string; orchestrator?: string; web?: string; emaKeeper?: string; checkpointer?: string;
    trainers: number; cpuSlots: number; grpcPort: number; webPort: number; readyTimeout: number; json: boolean;
    authTokenFile?: string;
  }>();
  const opts: LaunchOptions = {
    config: o.config,
    recipe: o.recipe,
    steps: o.steps,
    seed: o.seed,
    out: o.out,
    compareBf16: o.compareBf16,
    keepOpen: o.keepOpen,
    redis: o.redis || undefined,
    orchestrator: o.orchestrator || undefined,
    web: o.web || undefined,
    emaKeeper: o.emaKeeper || undefined,
    checkpointer: o.checkpointer || undefined,
    trainers: o.trainers,
    cpuSlots: o.cpuSlots,
    grpcPort: o.grpcPort,
    webPort: o.webPort,
    readyTimeoutMs: o.readyTimeout * 1000,
    json: o.json,
  };
  const authToken = authTokenFromEnv({ file: o.authTokenFile }); // RangeError naming the flag or variable
  if (authToken !== undefined) opts.authToken = authToken;
  checkOptions(opts);
  return opts;
}

export function checkOptions(o: LaunchOptions): void {
  if (o.redis !== undefined) {
    let u: URL;
    try {
      u = new URL(o.redis);
    } catch {
      throw new RangeError(`--redis / REDIS_URL must be a URL like redis://host:6379, got "${o.redis}"`);
    }
    if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new RangeError(`--redis / REDIS_URL must start with redis:// or rediss://, got "${o.redis}"`);
  }
  if (o.orchestrator && o.trainers > 0 && !o.redis) {
    throw new RangeError("with --orchestrator, the started trainer needs the orchestrator's Redis: set REDIS_URL (or --trainers 0)");
  }
  // The whole job spec through the queue contract's own validation, so a bad --config or --recipe fails here.
  for (const recipe of o.compareBf16 && o.recipe !== "bf16" ? [o.recipe, "bf16"] : [o.recipe]) {
    try {
      validateJobSpec({ config: o.config, recipe, seed: o.seed, ...(o.steps !== undefined ? { steps: o.steps } : {}) });
    } catch (e) {
      const msg = (e as Error).message.replace(/^invalid job spec: /, "");
      throw new RangeError(`${msg.startsWith("recipe") ? "--recipe" : msg.startsWith("config") ? "--config" : "--steps"}: ${msg}`);
    }
  }
}
