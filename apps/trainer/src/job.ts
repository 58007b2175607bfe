// One attempt of one training job on this worker: restore the run's latest valid checkpoint, train step by
// step (yielding to the event loop between steps), report progress and the curve, push the EMA, checkpoint,
// and end as completed, cancelled, released (shutdown) or lost (another worker owns the job now).

import { type CheckpointClient, stepDirName, type Tensor } from "@octet/checkpointer";
import { EmaClient, type EmaStateMetadata, type EmaState } from "@octet/ema-keeper";
import { type CurvePoint, type JobProgress, type JobResult, type JobSpec, type OctetKeys, resolveConfig, runName } from "@octet/jobs";
import { Worker } from "node:worker_threads";
import { type Job, UnrecoverableError } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "./log.js";
import { CTRL_SAVE_BUSY, CTRL_STOP, CTRL_WORDS, type ThreadInit, type ThreadMessage, type WireTensor } from "./protocol.js";
import {
  type CurveArrays,
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

/** gRPC status codes used here. */
const NOT_FOUND = 5;
const ABORTED = 10;

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
  log: Logger;
  /** Least time between two progress updates (eval points and phase changes are sent at once). */
  progressIntervalMs: number;
  /** How long a stop (cancel, shutdown) waits for its checkpoint to be durable before going on without it. */
  stopSaveTimeoutMs: number;
}

export interface CheckpointRef {
  step: number;
  path: string;
}

function grpcCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown })?.code;
  return typeof c === "number" ? c : undefined;
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function finiteOrNull(x: number | null | undefined): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : x;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** job.updateProgress, throttled: at most one update in flight, at most one per interval unless forced. */
class ProgressReporter {
  private inFlight: Promise<void> | null = null;
  private pending = false;
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly job: Job,
    readonly progress: JobProgress,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  update(p: Partial<JobProgress>, force = false): void {
    Object.assign(this.progress, p);
    if (this.closed) return;
    const wait = this.last + this.intervalMs - Date.now();
    if (force || wait <= 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.send();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.send();
      }, wait);
    }
  }

  private send(): void {
    if (this.inFlight) {
      this.pending = true;
      return;
    }
    this.last = Date.now();
    const snapshot = { ...this.progress };
    this.inFlight = this.job
      .updateProgress(snapshot as unknown as object)
      .catch((e: unknown) => this.log.warn("progress update failed", { err: e }))
      .finally(() => {
        this.inFlight = null;
        if (this.pending && !this.closed) {
          this.pending = false;
          this.send();
        }
      });
  }

  /** Sends the latest progress and waits for it; no update after this. */
  async close(sendLatest: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (sendLatest) {
      this.pending = false;
      while (this.inFlight) await this.inFlight;
      this.send();
      while (this.inFlight) await this.inFlight;
    }
    this.closed = true;
  }
}

/** Every point of the run's curve so far (restored + this attempt), kept to be saved with each checkpoint. */
class CurveLog {
  private n = 0;
  private a: CurveArrays = { step: new Uint32Array(64), loss: new Float64Array(64), valLoss: new Float64Array(64), tokensPerSec: new Float32Array(64) };

  static from(c: CurveArrays | null, upTo: number): CurveLog {
    const log = new CurveLog();
    if (c) for (let i = 0; i < c.step.length; i++) if (c.step[i] <= upTo) log.add({ step: c.step[i], loss: c.loss[i], ...(Number.isNaN(c.valLoss[i]) ? {} : { valLoss: c.valLoss[i] }), tokensPerSec: c.tokensPerSec[i] });
    return log;
  }

  get length(): number {
    return this.n;
  }

  add(p: CurvePoint): void {
    if (this.n === this.a.step.length) {
      const grow = <T extends Uint32Array | Float64Array | Float32Array>(x: T): T => {
        const y = new (x.constructor as new (n: number) => T)(x.length * 2);
        y.set(x);
        return y;
      };
      this.a = { step: grow(this.a.step), loss: grow(this.a.loss), valLoss: grow(this.a.valLoss), tokensPerSec: grow(this.a.tokensPerSec) };
    }
    this.a.step[this.n] = p.step;
    this.a.loss[this.n] = p.loss;
    this.a.valLoss[this.n] = p.valLoss ?? NaN;
    this.a.tokensPerSec[this.n] = p.tokensPerSec ?? 0;
    this.n++;
  }

  /** The points up to `step`, as arrays (copies). */
  upTo(step: number): CurveArrays {
    let k = this.n;
    while (k > 0 && this.a.step[k - 1] > step) k--;
    return { step: this.a.step.slice(0, k), loss: this.a.loss.slice(0, k), valLoss: this.a.valLoss.slice(0, k), tokensPerSec: this.a.tokensPerSec.slice(0, k) };
  }

  points(): CurvePoint[] {
    const out: CurvePoint[] = [];
    for (let i = 0; i < this.n; i++) {
      const p: CurvePoint = { step: this.a.step[i], loss: this.a.loss[i], tokensPerSec: this.a.tokensPerSec[i] };
      if (!Number.isNaN(this.a.valLoss[i])) p.valLoss = this.a.valLoss[i];
      out.push(p);
    }
    return out;
  }
}

/** The job's curve: points buffered and RPUSHed to keys.curve(jobId) in batches (one write in flight). */
class CurveWriter {
  private buf: CurvePoint[] = [];
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Makes the list the curve of the state resumed: exactly `points` when the checkpoint carried its curve,
   * else what the list holds up to `step` (all of it gone when step is 0).
   */
  async reset(step: number, points: CurvePoint[] | null): Promise<void> {
    let keep: string[];
    if (points) keep = points.map((p) => JSON.stringify(p));
    else if (step <= 0) keep = [];
    else {
      keep = (await this.redis.lrange(this.key, 0, -1)).filter((s) => {
        try {
          return (JSON.parse(s) as CurvePoint).step <= step;
        } catch {
          return false;
        }
      });
    }
    const m = this.redis.multi().del(this.key);
    for (let i = 0; i < keep.length; i += 10_000) m.rpush(this.key, ...keep.slice(i, i + 10_000));
    await m.exec();
  }

  add(p: CurvePoint, now = false): void {
    if (this.closed) return;
    this.buf.push(p);
    if (now) this.send();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.send();
      }, this.intervalMs);
    }
  }

  private send(): void {
    if (this.inFlight || this.buf.length === 0) return;
    const batch = this.buf.splice(0);
    this.inFlight = this.redis
      .rpush(this.key, ...batch.map((p) => JSON.stringify(p)))
      .then(() => undefined)
      .catch((e: unknown) => {
        this.log.warn("curve write failed; points kept for the next write", { err: e });
        this.buf.unshift(...batch);
      })
      .finally(() => {
        this.inFlight = null;
        if (this.buf.length && !this.closed && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.send();
          }, this.intervalMs);
        }
      });
  }

  /** Writes what is buffered (flush) or drops it, and stops. */
  async close(flush: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!flush) {
      this.closed = true;
      this.buf = [];
      return;
    }
    for (let i = 0; i < 1000 && (this.inFlight || this.buf.length); i++) {
      if (this.inFlight) await this.inFlight;
      else this.send();
    }
    this.closed = true;
  }
}

/** The run's EMA on the keeper: registered (or restored from the checkpoint) at start, pushed every N steps. */
class EmaLink {
  readonly client: EmaClient;
  /** The newest EMA step this attempt can ask the keeper for (pushed here, or imported at restore). */
  emaStep: number | null = null;
  private lost = false;
  private registering: Promise<void> | null = null;

  constructor(
    address: string,
    private readonly run: string,
    private readonly every: number,
    private readonly decay: number,
    private readonly tensors: { name: string; shape: number[] }[],
    private readonly log: Logger,
  ) {
    this.client = new EmaClient({
      address,
      run,
      onError: (err, step) => {
        if (grpcCode(err) === NOT_FOUND) this.lost = true;
        this.log.warn("EMA push failed (the next push supersedes it)", { step, err });
      },
    });
  }

  private spec() {
    return { tensors: this.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "F32" as const })), decay: { kind: "fixed" as const, decay: this.decay }, updateInterval: this.every };
  }

  metadata(step: number, updates: number): EmaStateMetadata {
    return {
      format: "octet.ema.v1",
      run: this.run,
      step,
      updates,
      decay: { kind: "fixed", decay: this.decay },
      updateInterval: this.every,
      nonFinite: "reject",
      tensors: this.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "F32" })),
    };
  }

  /** Fresh run or restored: drop what the keeper holds for the run, then import the checkpoint's EMA or register anew. */
  async start(restored: EmaState | null): Promise<void> {
    try {
      await this.client.dropRun();
    } catch (e) {
      if (grpcCode(e) !== NOT_FOUND) throw e;
    }
    if (restored) {
      await this.client.importState(restored);
      this.emaStep = restored.metadata.step;
    } else {
      await this.client.registerRun(this.spec());
    }
  }

  push(step: number, params: Map<string, Float32Array>): void {
    if (this.lost) {
      // The keeper forgot the run (restarted): register again; the EMA restarts from the next push.
      this.lost = false;
      this.registering = this.client
        .registerRun(this.spec())
        .then(() => this.log.warn("EMA keeper had lost the run: registered again, the EMA restarts", { step }))
        .catch((e: unknown) => {
          this.lost = true;
          this.log.warn("EMA re-registration failed", { err: e });
        })
        .finally(() => (this.registering = null));
      return;
    }
    if (this.registering) return;
    this.client.push(step, params);
    this.emaStep = step;
  }

  /** The EMA at `step` (every tensor at that step), or null when the keeper cannot give it in time. */
  async snapshot(step: number | null, deadlineMs: number): Promise<{ metadata: EmaStateMetadata; tensors: Map<string, Float32Array> } | null> {
    if (step === null) return null;
    try {
      // No flush(): while training goes on it would wait for every later push too. The keeper waits for
      // `step` itself (ABORTED if a newer step replaced it first).
      const snap = await this.client.getEma({ step, deadlineMs });
      return { metadata: this.metadata(snap.step, snap.updates), tensors: snap.tensors };
    } catch (e) {
      this.log[grpcCode(e) === ABORTED ? "debug" : "warn"]("EMA not included in the checkpoint", { emaStep: step, err: e });
      return null;
    }
  }

  close(): void {
    this.client.close();
  }
}

/** Saves through the checkpointer, one after another (each once the previous is staged); retention per run. */
class CheckpointWriter {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<CheckpointRef | null>>();
  private unstaged = 0;
  /** Step of the newest save issued (or of the checkpoint restored). */
  lastIssued = 0;
  lastDurable: CheckpointRef | null = null;
  kept: CheckpointRef[] = [];

  constructor(
    private readonly client: CheckpointClient,
    readonly run: string,
    private readonly keep: number,
    private readonly log: Logger,
    private readonly onDurable: (ref: CheckpointRef) => void,
  ) {}

  path(step: number): string {
    return `runs/${this.run}/${stepDirName(step)}`;
  }

  get busy(): boolean {
    return this.unstaged > 0;
  }

  /**
   * Queues a save of `tensors` at `step`; `extra` (the EMA) is fetched when the save's turn comes. Resolves with
   * the checkpoint once durable (retention applied), or null if it failed (logged).
   */
  save(step: number, tensors: Tensor[], metadata: Record<string, string>, extra: () => Promise<{ tensors: Tensor[]; metadata: Record<string, string> } | null>): Promise<CheckpointRef | null> {
    this.lastIssued = step;
    this.unstaged++;
    const task = this.chain.then(async () => {
      let all = tensors;
      let meta = metadata;
      try {
        const e = await extra();
        if (e) {
          all = [...tensors, ...e.tensors];
          meta = { ...metadata, ...e.metadata };
        }
      } catch (err) {
        this.log.warn("checkpoint extra state skipped", { step, err });
      }
      const s = this.client.save(this.run, step, all, meta);
      try {
        await s.staged;
      } finally {
        this.unstaged--;
      }
      // Wrapped so that the chain moves on once staged, not once durable.
      return { durable: s.durable };
    });
    task.catch(() => (this.unstaged = Math.max(0, this.unstaged)));
    // The next save starts once this one is staged (the checkpointer writes a run's saves in order).
    this.chain = task.then(
      () => undefined,
      () => undefined,
    );
    const done = task
      .then((t) => t.durable)
      .then(
        async (info) => {
          const ref = { step: Number(info.step ?? step), path: this.path(step) };
          if (!this.lastDurable || ref.step > this.lastDurable.step) this.lastDurable = ref;
          this.log.info("checkpoint durable", { run: this.run, step, bytes: info.totalBytes });
          this.onDurable(this.lastDurable);
          await this.retain();
          return ref;
        },
        (err: unknown) => {
          this.log.warn("checkpoint failed", { run: this.run, step, err });
          return null;
        },
      );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
    return done;
  }

  /** Keeps the newest `keep` valid checkpoints of the run, deletes older ones. */
  async retain(): Promise<void> {
    try {
      const listed = await this.client.list(this.run);
      const valid = listed.filter((c) => !c.corrupt && c.run === this.run).sort((a, b) => b.step - a.step);
      for (const c of valid.slice(this.keep)) {
        try {
          await this.client.delete(this.run, c.step);
        } catch (e) {
          if (grpcCode(e) !== NOT_FOUND) this.log.warn("retention: delete failed", { run: this.run, step: c.step, err: e });
        }
      }
      this.kept = valid
        .slice(0, this.keep)
        .map((c) => ({ step: c.step, path: this.path(c.step) }))
        .sort((a, b) => a.step - b.step);
    } catch (e) {
      this.log.warn("retention failed", { run: this.run, err: e });
    }
  }

  /** Resolves when every save issued so far is staged (or failed). */
  stagedAll(): Promise<unknown> {
    return this.chain;
  }

  /** Resolves when every save issued so far is durable (or failed) and retention ran. */
  idle(): Promise<unknown> {
    return Promise.allSettled([...this.pending]);
  }
}

function threadUrl(): URL {
  // Built: dist/train-thread.js. From source (tsx): src/train-thread.ts (the thread inherits --import tsx).
  return import.meta.url.endsWith(".ts") ? new URL("./train-thread.ts", import.meta.url) : new URL("./train-thread.js", import.meta.url);
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
  private control: Int32Array | null = null;
  private thread: Worker | null = null;

  constructor(
    readonly job: Job,
    readonly token: string,
    readonly spec: JobSpec,
    readonly slots: number[],
    private readonly env: JobEnv,
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
    if (this.control) Atomics.store(this.control, CTRL_STOP, 1);
    if (reason === "lost") void this.thread?.terminate();
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
      { phase: "starting", step: 0, totalSteps: total, loss: null, valLoss: null, tokensPerSec: 0, lastCheckpoint: null, resumedFrom: null, attempt: this.attempt, workerId: env.workerId },
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
      const controlBuf = new SharedArrayBuffer(4 * CTRL_WORDS);
      this.control = new Int32Array(controlBuf);
      const init: ThreadInit = {
        spec,
        config,
        specHadData: typeof job.data === "object" && job.data !== null && "data" in job.data,
        restore,
        control: controlBuf,
        emaEvery: emaWanted ? spec.ema.every : 0,
      };
      const thread = new Worker(threadUrl(), { workerData: init, transferList: restore ? restore.tensors.map((t) => t.data.buffer as ArrayBuffer) : [] });
      this.thread = thread;
      if (this.stopReason) Atomics.store(this.control, CTRL_STOP, 1);

      let lastLoss: number | null = record?.loss ?? null;
      let valLoss: number | null = record?.valLoss ?? null;
      let tokens = 0;
      let ms = 0;
      let info: { entropyRate: number | null; unigramEntropy: number | null } = { entropyRate: null, unigramEntropy: null };
      const control = this.control;

      const checkpoint = (step: number, w: { tensors: WireTensor[]; meta: string }, deadlineMs: number): Promise<CheckpointRef | null> => {
        const emaStep = ema ? ema.emaStep : null;
        const rec: TrainerRecord = { jobId: this.jobId, attempt: this.attempt, workerId: env.workerId, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss), emaStep: null };
        const link = ema;
        Atomics.store(control, CTRL_SAVE_BUSY, 1);
        const p = writer.save(step, [...wireToTensors(w.tensors), ...curveToTensors(curveLog.upTo(step))], { [META_MODEL]: w.meta, [META_TRAINER]: JSON.stringify(rec) }, async () => {
          const snap = link ? await link.snapshot(emaStep, deadlineMs) : null;
          if (!snap) return null;
          const e = emaToTensors(snap);
          return { tensors: e.tensors, metadata: { [META_EMA]: e.meta, [META_TRAINER]: JSON.stringify({ ...rec, emaStep: snap.metadata.step }) } };
        });
        void writer.stagedAll().then(() => Atomics.store(control, CTRL_SAVE_BUSY, 0));
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
        thread.on("exit", (code) => settle(() => reject(this.stopReason === "lost" ? new Error("lost") : new Error(`training thread exited (code ${code}) before the end`))));
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
              void (async () => {
                if (emaWanted) {
                  const link = new EmaLink(env.emaAddress!, this.run, spec.ema.every, spec.ema.decay, m.params, this.log);
                  try {
                    await link.start(restoredEma);
                    ema = link;
                  } catch (e) {
                    this.log.warn("EMA keeper unavailable: this attempt runs without EMA", { err: e });
                    link.close();
                  }
                }
                reporter.update({ phase: "running", step: m.step, resumedFrom, lastCheckpoint: writer.lastDurable, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss) }, true);
                thread.postMessage("go");
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
              reporter.update({ step: m.step, loss: finiteOrNull(m.loss), valLoss: finiteOrNull(valLoss), tokensPerSec: ms > 0 ? (tokens / ms) * 1000 : 0 }, m.valLoss !== undefined);
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
              settle(() => reject(m.unrecoverable ? new UnrecoverableError(m.message) : new Error(m.message)));
              break;
          }
        };
      }).catch((e: unknown) => {
        if (this.stopReason === "lost") return null;
        throw e;
      });
      void thread.terminate();
      this.thread = null;

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
        reporter.update({ lastCheckpoint: writer.lastDurable });
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
      };
      reporter.update({ step: end.step, loss: finiteOrNull(lastLoss), valLoss: finiteOrNull(valLoss), lastCheckpoint: writer.lastDurable });
      await reporter.close(true);
      return { kind: "completed", result };
    } finally {
      if (this.thread) void this.thread.terminate();
      this.thread = null;
      await reporter.close(false);
      await curve.close(false);
      (ema as EmaLink | null)?.close();
    }
  }
}
