// One attempt of one training job on this worker: restore the run's latest valid checkpoint, train step by
// step (yielding to the event loop between steps), report progress and the curve, push the EMA, checkpoint,
// and end as completed, cancelled, released (shutdown) or lost (another worker owns the job now).

import type { Tensor } from "@octet/checkpointer";
import type { CheckpointClient } from "@octet/checkpointer/client";
import type { EmaState } from "@octet/ema-keeper";
import { type CurvePoint, type JobDevice, type JobResult, type JobSpec, type JobStats, type OctetKeys, resolveConfig, runName } from "@octet/jobs";
import { type Job, UnrecoverableError } from "bullmq";
import type { Redis } from "ioredis";
import { CheckpointWriter, type CheckpointRef } from "./checkpoint-writer.js";
import { CurveLog, CurveWriter } from "./curve.js";
import { EmaLink } from "./ema-link.js";
import { NOT_FOUND, finiteOrNull, grpcCode, msg, withTimeout } from "./helpers.js";
import { type TrainingHost, startProcessHost, startThreadHost } from "./host.js";
import type { Logger } from "./log.js";
import { ProgressReporter } from "./progress.js";
import { CTRL_SAVE_BUSY, CTRL_STOP, type ThreadInit, type ThreadMessage, type WireTensor } from "./protocol.js";
import {
  META_EMA,
  META_MODEL,
  META_TRAINER,
  curveFromTensors,
  curveToTensors,
  emaFromTensors,
  emaToTensors,
  parseTrainerRecord,
  tensorsToState,
  type TrainerRecord,
} from "./state.js";

export type { CheckpointRef } from "./checkpoint-writer.js";

export type StopReason = "cancel" | "shutdown" | "lost";

export type JobOutcome =
  | { kind: "completed"; result: JobResult }
  | { kind: "cancelled"; step: number }
  | { kind: "released"; step: number }
  | { kind: "lost"; step: number };

export interface JobEnv {
  workerId: string;
  redis: Redis;
  keys: OctetKeys;
  checkpointer: CheckpointClient;
  /** EMA keeper address; null: EMA off on this worker. */
  emaAddress: string | null;
  /** Bearer token for the services' mutating calls (the trainer's --auth-token-file / OCTET_AUTH_TOKEN); none: send none. */
  authToken?: string;
  log: Logger;
  /** Least time between two progress updates (eval points and phase changes are sent at once). */
  progressIntervalMs: number;
  /** How long a stop (cancel, shutdown) waits for its checkpoint to be durable before going on without it. */
  stopSaveTimeoutMs: number;
}

/** Where an attempt trains: the backend, the device as pages name it, and the GPUs pinned (nvidia-smi indices). */
export interface Placement {
  backend: "cpu" | "cuda";
  device: JobDevice;
  /** CUDA_VISIBLE_DEVICES of the training process (cuda); empty on the CPU. */
  gpus: number[];
}

/**
 * The attempt's GPU could not be used (no CUDA context, device gone): the worker fails the attempt as a crash
 * (the job goes back to the queue while it has retries) and stops offering these GPUs.
 */
export class DeviceLostError extends Error {
  constructor(message: string, readonly gpus: number[]) {
    super(message);
    this.name = "DeviceLostError";
  }
}

/** A running mean of the last `n` values. */
class RecentMean {
  private readonly xs: number[] = [];
  constructor(private readonly n: number) {}
  add(x: number): void {
    this.xs.push(x);
    if (this.xs.length > this.n) this.xs.shift();
  }
  get value(): number {
    return this.xs.length ? this.xs.reduce((a, b) => a + b, 0) / this.xs.length : 0;
  }
}

function wireToTensors(w: WireTensor[]): Tensor[] {
  return w.map((t) => ({ name: t.name, dtype: t.dtype as Tensor["dtype"], shape: t.shape, data: t.data }));
}

/** One attempt of a job. The worker validated the spec and reserved the slots; execute() does the rest. */
export class JobRun {
  readonly jobId: string;
  readonly run: string;
  stopReason: StopReason | null = null;
  step = 0;
  private readonly log: Logger;
  private host: TrainingHost | null = null;

  constructor(
    readonly job: Job,
    readonly token: string,
    readonly spec: JobSpec,
    readonly slots: number[],
    private readonly env: JobEnv,
    readonly placement: Placement = { backend: "cpu", device: { kind: "cpu", gpus: [] }, gpus: [] },
  ) {
    this.jobId = job.id!;
    this.run = runName(spec, this.jobId);
    this.log = env.log.child({ jobId: this.jobId, run: this.run });
  }

  /** Asks the run to stop after the current step. A lost lock overrides; a cancel overrides a shutdown. */
  requestStop(reason: StopReason): void {
    const rank = { shutdown: 1, cancel: 2, lost: 3 } as const;
    if (this.stopReason === null || rank[reason] > rank[this.stopReason]) {
      if (this.stopReason !== reason) this.log.info("stop requested", { reason, step: this.step });
      this.stopReason = reason;
    }
    this.host?.setControl(CTRL_STOP, 1);
    if (reason === "lost") this.host?.terminate();
  }

  /** 1 for the first attempt; every failure and every stall starts a new one. */
  get attempt(): number {
    return this.job.attemptsMade + (this.job.stalledCounter ?? 0) + 1;
  }

  async execute(): Promise<JobOutcome> {
    const { env, job, spec } = this;
    const t0 = performance.now();
    const config = resolveConfig(spec);
    const total = config.train.steps;
    const reporter = new ProgressReporter(
      job,
      { phase: "starting", step: 0, totalSteps: total, loss: null, valLoss: null, tokensPerSec: 0, lastCheckpoint: null, resumedFrom: null, attempt: this.attempt, workerId: env.workerId, device: this.placement.device },
      env.progressIntervalMs,
      this.log,
    );
    reporter.update({}, true);
    const curve = new CurveWriter(env.redis, env.keys.curve(this.jobId), env.progressIntervalMs, this.log);
    let ema: EmaLink | null = null;
    const writer = new CheckpointWriter(env.checkpointer, this.run, spec.checkpoint.keep, this.log, (ref) => reporter.update({ lastCheckpoint: ref }, true));
    const stopped = (step: number): JobOutcome =>
      this.stopReason === "lost" ? { kind: "lost", step } : this.stopReason === "cancel" ? { kind: "cancelled", step } : { kind: "released", step };
    try {
      // Cancelled before it started: nothing to train, nothing new to checkpoint.
      if ((await env.redis.exists(env.keys.cancel(this.jobId))) === 1) this.requestStop("cancel");
      if (this.stopReason) {
        await reporter.close(true);
        return stopped(0);
      }

      // Restore the run's latest valid checkpoint, if any.
      reporter.update({ phase: "restoring" }, true);
      let resumedFrom: number | null = null;
      let record: TrainerRecord | null = null;
      let restoredEma: EmaState | null = null;
      let restore: ThreadInit["restore"] = null;
      let curveLog = new CurveLog();
      let restoredCurve = false;
      let loaded;
      try {
        loaded = await env.checkpointer.loadLatestValid(this.run);
      } catch (e) {
        if (grpcCode(e) !== NOT_FOUND) throw new Error(`cannot restore run ${this.run} through the checkpointer: ${msg(e)}`);
        loaded = null;
      }
      if (loaded) {
        for (const s of loaded.skipped) this.log.warn("skipped a corrupt checkpoint", { step: s.step, reason: s.reason });
        const state = tensorsToState(loaded.tensors, loaded.metadata);
        const saved = (state.meta as { config?: { model?: unknown } }).config?.model;
        if (saved !== undefined && JSON.stringify(saved) !== JSON.stringify(config.model)) {
          throw new UnrecoverableError(`run ${this.run} has a checkpoint at step ${loaded.info.step} of another model config: use another run name`);
        }
        restore = {
          tensors: [...state.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })),
          meta: state.meta,
        };
        resumedFrom = loaded.info.step;
        record = parseTrainerRecord(loaded.metadata);
        restoredEma = emaFromTensors(loaded.tensors, loaded.metadata);
        const c = curveFromTensors(loaded.tensors);
        curveLog = CurveLog.from(c, loaded.info.step);
        restoredCurve = c !== null;
        writer.lastIssued = loaded.info.step;
        writer.lastDurable = { step: loaded.info.step, path: writer.path(loaded.info.step) };
        this.log.info("restoring", { step: resumedFrom, emaStep: restoredEma?.metadata.step ?? null });
      }
      this.step = resumedFrom ?? 0;
      await curve.reset(resumedFrom ?? 0, restoredCurve ? curveLog.points() : null);

      // The training thread.
      const emaWanted = spec.ema.enabled && env.emaAddress !== null;
      const init: Omit<ThreadInit, "control"> = {
        spec,
        config,
        restore,
        emaEvery: emaWanted ? spec.ema.every : 0,
        backend: this.placement.backend,
      };
      const thread = this.placement.backend === "cuda" ? startProcessHost(init, this.placement.gpus) : startThreadHost(init);
      this.host = thread;
      if (this.stopReason) thread.setControl(CTRL_STOP, 1);

      let lastLoss: number | null = record?.loss ?? null;
      let valLoss: number | null = record?.valLoss ?? null;
      let tokens = 0;
      let ms = 0;
      let info: { entropyRate: number | null; unigramEntropy: number | null } = { entropyRate: null, unigramEntropy: null };
      const stepMs = new RecentMean(20);
      const stats: JobStats = { stepMs: 0, memoryBytes: null, peakMemoryBytes: null, emaStallMs: 0, checkpointStallMs: 0 };
      const emaHealth = () => (ema ? { ema: (ema as EmaLink).health() } : {});

      const checkpoint = (step: number, w: { tensors: WireTensor[]; meta: string }, deadlineMs: number): Promise<CheckpointRef | null> => {
        const emaStep = ema ? ema.emaStep : null;
        const rec: TrainerRecord = { jobId: this.jobId, attempt: this.attempt, workerId: env.workerId, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss), emaStep: null };
        const link = ema;
        thread.setControl(CTRL_SAVE_BUSY, 1);
        const p = writer.save(step, [...wireToTensors(w.tensors), ...curveToTensors(curveLog.upTo(step))], { [META_MODEL]: w.meta, [META_TRAINER]: JSON.stringify(rec) }, async () => {
          const snap = link ? await link.snapshot(emaStep, deadlineMs) : null;
          if (!snap) return null;
          const e = emaToTensors(snap);
          return { tensors: e.tensors, metadata: { [META_EMA]: e.meta, [META_TRAINER]: JSON.stringify({ ...rec, emaStep: snap.metadata.step }) } };
        });
        void writer.stagedAll().then(() => thread.setControl(CTRL_SAVE_BUSY, 0));
        return p;
      };

      const end = await new Promise<Extract<ThreadMessage, { type: "end" }>>((resolve, reject) => {
        let settled = false;
        const settle = (f: () => void) => {
          if (!settled) {
            settled = true;
            f();
          }
        };
        thread.on("error", (e) => settle(() => reject(e)));
        thread.on("exit", (code, signal) =>
          settle(() =>
            reject(
              this.stopReason === "lost"
                ? new Error("lost")
                : new Error(`training ${this.placement.backend === "cuda" ? "process" : "thread"} ${signal ? `was killed by ${signal}` : `exited (code ${code})`} before the end`),
            ),
          ),
        );
        thread.on("message", (m: ThreadMessage) => {
          try {
            onMessage(m);
          } catch (e) {
            // Never let a bug in the bookkeeping take the worker (and its other jobs) down.
            this.log.error("handling a training thread message failed", { type: m.type, err: e });
          }
        });
        const onMessage = (m: ThreadMessage) => {
          switch (m.type) {
            case "ready":
              info = { entropyRate: m.entropyRate, unigramEntropy: m.unigramEntropy };
              this.log.info("training ready", { backend: m.backend, visibleDevices: m.visibleDevices, step: m.step });
              void (async () => {
                if (emaWanted) {
                  const link = new EmaLink(env.emaAddress!, this.run, spec.ema.every, spec.ema.decay, m.params, this.log, env.authToken);
                  try {
                    await link.start(restoredEma);
                    ema = link;
                  } catch (e) {
                    this.log.warn("EMA keeper unavailable: this attempt runs without EMA", { err: e });
                    link.close();
                  }
                }
                reporter.update({ phase: "running", step: m.step, resumedFrom, lastCheckpoint: writer.lastDurable, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss) }, true);
                thread.post("go");
              })();
              break;
            case "step": {
              this.step = m.step;
              lastLoss = m.loss;
              tokens += m.tokens;
              ms += m.ms;
              const point: CurvePoint = { step: m.step, loss: m.loss, tokensPerSec: m.ms > 0 ? (m.tokens / m.ms) * 1000 : 0 };
              if (m.valLoss !== undefined) {
                valLoss = m.valLoss;
                point.valLoss = m.valLoss;
              }
              curve.add(point, m.valLoss !== undefined);
              curveLog.add(point);
              stepMs.add(m.ms);
              stats.stepMs = stepMs.value;
              stats.emaStallMs += m.emaStallMs;
              stats.checkpointStallMs += m.checkpointStallMs;
              if (m.memory) {
                stats.memoryBytes = m.memory.usedBytes;
                stats.peakMemoryBytes = m.memory.peakBytes;
              }
              reporter.update(
                { step: m.step, loss: finiteOrNull(m.loss), valLoss: finiteOrNull(valLoss), tokensPerSec: ms > 0 ? (tokens / ms) * 1000 : 0, stats: { ...stats }, ...emaHealth() },
                m.valLoss !== undefined,
              );
              break;
            }
            case "ema":
              if (ema) ema.push(m.step, new Map(m.names.map((n, i) => [n, m.arrays[i]])));
              break;
            case "checkpoint":
              lastLoss = m.loss;
              valLoss = m.valLoss;
              void checkpoint(m.step, m, 5_000);
              break;
            case "end":
              settle(() => resolve(m));
              break;
            case "error":
              settle(() =>
                reject(m.kind === "unrecoverable" ? new UnrecoverableError(m.message) : m.kind === "device-lost" ? new DeviceLostError(m.message, this.placement.gpus) : new Error(m.message)),
              );
              break;
          }
        };
      }).catch((e: unknown) => {
        if (this.stopReason === "lost") return null;
        throw e;
      });
      thread.terminate();
      this.host = null;

      if (end === null || this.stopReason === "lost") {
        // Another worker owns the job now: write nothing more for it.
        await reporter.close(false);
        await curve.close(false);
        return { kind: "lost", step: this.step };
      }
      this.step = end.step;
      if (end.loss !== null) lastLoss = end.loss;
      if (end.valLoss !== null) valLoss = end.valLoss;

      if (end.reason === "stopped") {
        reporter.update({ phase: "stopping" }, true);
        await curve.close(true);
        if (end.final) {
          try {
            await withTimeout(checkpoint(end.step, end.final, Math.min(env.stopSaveTimeoutMs, 10_000)), env.stopSaveTimeoutMs, "checkpoint at stop");
          } catch (e) {
            this.log.warn("stopping without a checkpoint of the last steps", { err: e });
          }
        }
        await withTimeout(writer.idle(), env.stopSaveTimeoutMs, "checkpoints in flight").catch(() => undefined);
        // Cancelled: the job ends here (done); released or shut down, it goes back to the queue (stopping).
        reporter.update({ lastCheckpoint: writer.lastDurable, ...(this.stopReason === "cancel" ? { phase: "done" as const } : {}), ...emaHealth() });
        await reporter.close(true);
        return stopped(end.step);
      }

      // Finished: the final checkpoint (with the EMA once every push has reached the keeper), the result.
      reporter.update({ phase: "checkpointing", step: end.step, valLoss: finiteOrNull(valLoss) }, true);
      await curve.close(true);
      if (end.final) {
        const link = ema as EmaLink | null;
        if (link) await withTimeout(link.client.flush(), 30_000, "EMA flush").catch((e: unknown) => this.log.warn("EMA flush", { err: e }));
        const ref = await checkpoint(end.step, end.final, 30_000);
        if (!ref) throw new Error(`final checkpoint of run ${this.run} at step ${end.step} failed`);
      } else {
        await writer.idle();
        await writer.retain();
      }
      const result: JobResult = {
        run: this.run,
        step: end.step,
        loss: lastLoss ?? NaN,
        valLoss: valLoss ?? NaN,
        tokensPerSec: ms > 0 ? (tokens / ms) * 1000 : 0,
        recipe: spec.recipe,
        entropyRate: info.entropyRate,
        unigramEntropy: info.unigramEntropy,
        checkpoints: writer.kept.length ? writer.kept : writer.lastDurable ? [writer.lastDurable] : [],
        emaStep: ema ? (ema as EmaLink).emaStep : null,
        resumedFrom,
        seconds: (performance.now() - t0) / 1000,
        device: this.placement.device,
        ...emaHealth(),
      };
      // The last progress says "done": a completed job never shows the "checkpointing" of its final save.
      reporter.update({ phase: "done", step: end.step, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss), lastCheckpoint: writer.lastDurable, ...emaHealth() });
      await reporter.close(true);
      return { kind: "completed", result };
    } finally {
      this.host?.terminate();
      this.host = null;
      await reporter.close(false);
      await curve.close(false);
      (ema as EmaLink | null)?.close();
    }
  }
}
