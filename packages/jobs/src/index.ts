// @octet/jobs — the contract of Octet's GPU job queue, shared by the orchestrator, the trainer workers
// and any program that submits with plain BullMQ: the queue's name, the validated job spec, the shapes
// of progress and results, and the Redis keys beside the queue.
//
// A job in the queue is a BullMQ job named JOB_NAME on the queue QUEUE_NAME whose data is a JobSpec
// (as JSON). Submitting with plain BullMQ:
//   new Queue("octet-gpu", { connection }).add("train", { run: "my-run", config: "tiny", recipe: "fp8" },
//     { priority: 1, attempts: 4, backoff: { type: "exponential", delay: 1000 } })
// jobOptions(spec) gives the options the orchestrator uses, so both ways behave the same.
// Programs sharing a queue under a BullMQ prefix other than the default pass it to BullMQ and to keysFor(prefix).

// Only the config entry point of @octet/model (zod + @octet/schedules): a scheduler validating specs loads
// neither the model nor its kernels, the router or MTP.
import { type Config, dataSchema, presetConfig, RECIPE_NAMES, validateConfig } from "@octet/model/config";
import { checkRunName } from "@octet/proto/names";
import { z } from "zod";

/** The BullMQ queue every training job goes through. */
export const QUEUE_NAME = "octet-gpu";
/** The BullMQ job name of a training job. */
export const JOB_NAME = "train";
/** Prefix of every Redis key Octet keeps beside BullMQ's own (BullMQ keeps its keys under "bull:"). */
export const KEY_PREFIX = "octet";

/** BullMQ's default key prefix: the queue's own keys are "bull:octet-gpu:…". */
export const DEFAULT_BULL_PREFIX = "bull";

/**
 * The Redis keys and channels beside the queue, for a BullMQ key `prefix` (the `prefix` option of BullMQ's
 * Queue/Worker/QueueEvents). Every program sharing a queue passes the same prefix to BullMQ and here.
 * The default prefix "bull" gives exactly `keys` ("octet:…"); another prefix P gives "P:octet:…", so several
 * deployments, or tests running concurrently, can share one Redis without seeing each other's jobs, workers,
 * cancellations or curves. The orchestrator's `--redis-prefix` (env OCTET_REDIS_PREFIX) is this prefix.
 */
export function keysFor(prefix: string = DEFAULT_BULL_PREFIX) {
  if (prefix === "" || prefix.includes("*")) throw new RangeError(`redis prefix must be non-empty and without '*', got ${JSON.stringify(prefix)}`);
  const ns = prefix === DEFAULT_BULL_PREFIX ? KEY_PREFIX : `${prefix}:${KEY_PREFIX}`;
  return {
    /** A worker's announcement (JSON WorkerInfo), refreshed every heartbeat, expiring when the worker dies. */
    worker: (workerId: string) => `${ns}:worker:${workerId}`,
    /** Pattern matching every worker key (for SCAN). */
    workerPattern: () => `${ns}:worker:*`,
    /** Set to "1" when a job is cancelled; a trainer that picks the job up or runs it stops. */
    cancel: (jobId: string) => `${ns}:cancel:${jobId}`,
    /** Pub/sub channel: the message is the cancelled job's id; running trainers listen so no step waits on Redis. */
    cancelChannel: () => `${ns}:cancel`,
    /** A list of JSON CurvePoint, appended by the trainer: the job's whole loss curve, kept after it ends. */
    curve: (jobId: string) => `${ns}:curve:${jobId}`,
  } as const;
}

/** The keys beside the queue under BullMQ's default prefix (keysFor("bull")). */
export type OctetKeys = ReturnType<typeof keysFor>;

/** Redis keys and channels beside the queue (BullMQ's default prefix; see keysFor for another). */
export const keys: OctetKeys = keysFor(DEFAULT_BULL_PREFIX);

// A run names checkpoint and EMA directories in the services: the one rule they all check (@octet/proto/names).
const name = z.string().superRefine((value, ctx) => {
  try {
    checkRunName(value);
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
  }
});
const posInt = z.number().int().positive();

/** What a job may ask to train on (JobSpec.device). */
export const JOB_DEVICES = ["auto", "cpu", "cuda"] as const;
export type JobDeviceRequest = (typeof JOB_DEVICES)[number];

export const jobSpecSchema = z
  .object({
    /** The run: checkpoints and the EMA are kept under this name, and a retried job resumes it. Default: "job-<id>". */
    run: name.optional(),
    /** A preset name (e.g. "tiny") or a whole @octet/model config object. */
    config: z.union([z.string().min(1), z.record(z.unknown())]).default("tiny"),
    recipe: z.enum(RECIPE_NAMES).default("fp8"),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(1),
    /** Overrides config.train.steps. */
    steps: posInt.max(10_000_000).optional(),
    /** Overrides config.train.batchSize. */
    batchSize: posInt.max(65_536).optional(),
    /** Overrides config.train.evalEvery. */
    evalEvery: posInt.optional(),
    /**
     * What to train on, as a config's `data` (@octet/model/config's dataSchema): { kind: "synthetic", seed },
     * { kind: "text", path, valFraction } or { kind: "llmc", train, val }. It replaces the config's data;
     * absent, the config's own data is used (the presets: the synthetic corpus of seed 1).
     */
    data: dataSchema.optional(),
    checkpoint: z
      .object({
        /** Save a checkpoint every this many steps, and always at the end. */
        every: posInt.default(50),
        /** Checkpoints of the run kept by the checkpointer's retention. */
        keep: posInt.max(1000).default(3),
      })
      .strict()
      .default({}),
    ema: z
      .object({
        enabled: z.boolean().default(true),
        /** Push the parameters to the EMA keeper every this many steps. */
        every: posInt.default(10),
        decay: z.number().gt(0).lt(1).default(0.999),
      })
      .strict()
      .default({}),
    /** GPUs the job needs, all on one worker (CPU slots on a worker without GPUs). */
    gpus: posInt.max(64).default(1),
    /**
     * Where it trains: "cuda" only on a worker with GPUs (the CUDA backend, one GPU per slot); "cpu" on any worker
     * (the CPU backend, GPUs or not); "auto" (default) on the GPUs of a worker that has them, else on CPU slots.
     */
    device: z.enum(JOB_DEVICES).default("auto"),
    /** BullMQ priority: 1 is the most urgent; larger numbers wait longer. */
    priority: posInt.max(2_097_152).default(10),
    /** Attempts after the first failure (a stalled or crashed worker counts as a failure). */
    retries: z.number().int().min(0).max(100).default(3),
  })
  .strict();

export type JobSpecInput = z.input<typeof jobSpecSchema>;
export type JobSpec = z.output<typeof jobSpecSchema>;

function formatIssues(issues: z.ZodIssue[]): string {
  return issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

/**
 * Validate a job spec, including the model config it resolves to under its recipe. Throws a RangeError
 * whose message names each offending field ("invalid job spec: steps: …"), so the orchestrator can return it
 * as INVALID_ARGUMENT and a trainer can fail a bad plain-BullMQ submission without retrying it.
 */
export function validateJobSpec(input: unknown): JobSpec {
  const parsed = jobSpecSchema.safeParse(input);
  if (!parsed.success) throw new RangeError(`invalid job spec: ${formatIssues(parsed.error.issues)}`);
  const spec = parsed.data;
  try {
    resolveConfig(spec);
  } catch (e) {
    throw new RangeError(`invalid job spec: config: ${(e as Error).message}`);
  }
  return spec;
}

/**
 * The @octet/model config a spec trains: the preset or given config with the spec's overrides (steps,
 * batchSize, evalEvery, data) applied, validated. Its `data` is what the trainer loads.
 */
export function resolveConfig(spec: JobSpec): Config {
  const base = typeof spec.config === "string" ? presetConfig(spec.config) : (structuredClone(spec.config) as unknown as Config);
  const train = { ...(base.train ?? {}) } as Config["train"];
  if (spec.steps !== undefined) train.steps = spec.steps;
  if (spec.batchSize !== undefined) train.batchSize = spec.batchSize;
  if (spec.evalEvery !== undefined) train.evalEvery = spec.evalEvery;
  const data = spec.data ?? base.data;
  return validateConfig({ ...base, train, data }, spec.recipe);
}

/** The run a job trains: the spec's, or "job-<id>" for a job submitted without one. */
export function runName(spec: JobSpec, jobId: string): string {
  return spec.run ?? `job-${jobId}`;
}

/** The BullMQ job options for a spec: priority, retries with exponential backoff, history kept. */
export function jobOptions(spec: JobSpec) {
  return {
    priority: spec.priority,
    attempts: spec.retries + 1,
    backoff: { type: "exponential" as const, delay: 1000 },
    removeOnComplete: false,
    removeOnFail: false,
  };
}

/** What a worker offers, announced under keys.worker(id) with a TTL refreshed by its heartbeat. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  kind: "gpu" | "cpu";
  /** GPUs (or CPU slots) in all. */
  slots: number;
  /** Slots reserved by running jobs. */
  busy: number;
  gpus: { index: number; name: string; memoryMiB: number }[];
  /** BullMQ ids of the jobs it runs now. */
  jobs: string[];
  /** Epoch milliseconds of this announcement. */
  at: number;
  /** GPUs (nvidia-smi indices) this worker stopped offering because they became unusable (not in `slots`). */
  lostGpus?: number[];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * Why a queued job cannot start, from the live workers' announcements, or null when some worker could take it as
 * soon as it has the slots free. A job larger than every worker waits until one joins:
 * "needs 2 GPUs; the largest worker has 1".
 */
export function waitingReason(spec: Pick<JobSpec, "gpus" | "device">, workers: readonly WorkerInfo[]): string | null {
  const n = spec.gpus;
  if (workers.length === 0) return `needs ${plural(n, spec.device === "cuda" ? "GPU" : "slot")}; no worker is running`;
  const gpuWorkers = workers.filter((w) => w.kind === "gpu");
  if (spec.device === "cuda") {
    if (gpuWorkers.length === 0) return `needs ${plural(n, "GPU")}; no worker has a GPU (${plural(workers.length, "worker")}, CPU only)`;
    const most = Math.max(...gpuWorkers.map((w) => w.slots));
    if (n > most) return `needs ${plural(n, "GPU")}; the largest worker has ${most}`;
    const free = Math.max(...gpuWorkers.map((w) => w.slots - w.busy));
    return n > free ? `needs ${plural(n, "free GPU")} on one worker; every worker that has ${n} is busy` : null;
  }
  const most = Math.max(...workers.map((w) => w.slots));
  if (n > most) {
    const top = workers.find((w) => w.slots === most)!;
    return spec.device === "auto" && top.kind === "gpu"
      ? `needs ${plural(n, "GPU")}; the largest worker has ${most}`
      : `needs ${plural(n, "slot")}; the largest worker has ${most} (${top.kind === "gpu" ? "GPUs" : "CPU slots"})`;
  }
  const free = Math.max(...workers.map((w) => w.slots - w.busy));
  return n > free ? `needs ${plural(n, "free slot")} on one worker; every worker large enough is busy` : null;
}

/** A job's phase; "done" once its trainer has ended it (completed or cancelled), so no final state shows a stale phase. */
export type JobPhase = "starting" | "restoring" | "running" | "checkpointing" | "evaluating" | "stopping" | "done";

/** The device a job attempt trains on: GPUs (as the worker's nvidia-smi lists them) or the CPU. */
export interface JobDevice {
  kind: "cuda" | "cpu";
  /** The GPUs reserved (the first trains; training across GPUs is planned); empty on the CPU. */
  gpus: { index: number; name: string; memoryMiB: number }[];
}

/** "GPU 0 (NVIDIA H100 80GB HBM3)", "GPUs 2, 3 (…)" or "CPU": how pages and reports name a job's device. */
export function deviceLabel(d: JobDevice | null | undefined): string {
  if (!d) return "unknown";
  if (d.kind === "cpu" || d.gpus.length === 0) return d.kind === "cpu" ? "CPU" : "GPU";
  const names = [...new Set(d.gpus.map((g) => g.name))].join(", ");
  return `${d.gpus.length === 1 ? "GPU" : "GPUs"} ${d.gpus.map((g) => g.index).join(", ")} (${names})`;
}

/** The EMA as one attempt kept it: what reached the keeper, and the gaps while it was unreachable. */
export interface EmaHealth {
  /** The newest step the keeper acknowledged (null: none yet). */
  step: number | null;
  /** Pushes that failed (keeper down or refusing). */
  failedPushes: number;
  /** Pushes replaced by newer ones before they were sent (the keeper could not keep up). */
  coalescedPushes: number;
  /** Times the keeper became unreachable or lost the run and the trainer had to reconnect and resend. */
  outages: number;
  /** Training steps not folded into the EMA because of those outages (summed). */
  gapSteps: number;
}

/** Per-attempt measurements of the training thread (what /metrics exports per GPU). */
export interface JobStats {
  /** Mean step time over the last reports, milliseconds. */
  stepMs: number;
  /** Device memory in use and its peak (bytes; null on the CPU). */
  memoryBytes: number | null;
  peakMemoryBytes: number | null;
  /** Time the training loop spent handing the parameters off for the EMA, and exporting checkpoints (ms, summed). */
  emaStallMs: number;
  checkpointStallMs: number;
}

/** What the trainer reports through job.updateProgress (BullMQ keeps the latest). */
export interface JobProgress {
  phase: JobPhase;
  step: number;
  totalSteps: number;
  /** Training loss of the latest step (NaN is sent as null). */
  loss: number | null;
  valLoss: number | null;
  tokensPerSec: number;
  /** The latest durable checkpoint of the run. */
  lastCheckpoint: { step: number; path: string } | null;
  /** The step this attempt resumed from (null: started at step 0). */
  resumedFrom: number | null;
  attempt: number;
  workerId: string;
  /** Where this attempt trains (set once it has started). */
  device?: JobDevice;
  stats?: JobStats;
  ema?: EmaHealth;
}

/** One point of a job's curve (the list under keys.curve). */
export interface CurvePoint {
  step: number;
  loss: number;
  valLoss?: number;
  tokensPerSec?: number;
}

/** A finished job's return value (a cancelled job ends failed, with the failedReason CANCELLED_REASON). */
export interface JobResult {
  run: string;
  step: number;
  loss: number;
  valLoss: number;
  tokensPerSec: number;
  recipe: string;
  /** The data's entropy floor (nats/token) when known. */
  entropyRate: number | null;
  unigramEntropy: number | null;
  checkpoints: { step: number; path: string }[];
  /** Step of the EMA last pushed to the keeper (null when EMA was off). */
  emaStep: number | null;
  resumedFrom: number | null;
  seconds: number;
  /** The device that trained the last attempt. */
  device?: JobDevice;
  ema?: EmaHealth;
}

/**
 * The failedReason of a cancelled job (the trainer checkpoints first; cancelled jobs are not retried).
 * How the orchestrator cancels (CancelJob): it always sets keys.cancel(id) (with a TTL of days) and publishes the
 * id on keys.cancelChannel(). A job not yet running (waiting, prioritized, paused or delayed for a retry) is also
 * moved straight to the failed set with this failedReason, atomically, so it never runs; its data and history stay.
 * A running job is left to its trainer, which sees the key or the message, checkpoints, and fails the job with
 * this reason (an UnrecoverableError, so no retry).
 */
export const CANCELLED_REASON = "cancelled";
