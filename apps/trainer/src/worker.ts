// The trainer worker: takes jobs from the shared GPU queue while it has free slots, runs each with JobRun,
// renews their locks, listens for cancellations, announces itself, and shuts down gracefully.
//
// Scheduling (see README): manual fetching. The worker asks BullMQ for a job only while at least one slot is
// free; a job needing more slots than are free now goes back to the queue (moveToDelayed, which does not
// count as an attempt) so another worker can take it; a job that fits reserves all its slots at once.

import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { CheckpointClient } from "@octet/checkpointer/client";
import { CANCELLED_REASON, JOB_NAME, type JobResult, type JobSpec, type OctetKeys, QUEUE_NAME, type WorkerInfo, keysFor, validateJobSpec } from "@octet/jobs";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { type GpuInfo, type Offer, decideOffer, detectGpus, planJob } from "./gpus.js";
import { DeviceLostError, JobRun, type JobOutcome, type Placement } from "./job.js";
import { type Logger, createLogger } from "./log.js";
import { createRedis, pingRedis, redactUrl } from "./redis.js";
import { SlotPool } from "./slots.js";

export interface TrainerWorkerOptions {
  /** Redis URL (BullMQ's queue and Octet's keys beside it). */
  redisUrl: string;
  /** BullMQ key prefix (default "bull"); Octet's keys follow it (keysFor). */
  prefix?: string;
  /** Checkpointer address host:port. */
  checkpointer: string;
  /** EMA keeper address host:port; without it EMA is skipped (one warning). */
  emaKeeper?: string | null;
  /**
   * Bearer token sent to the checkpointer and the EMA keeper (their saves, registrations and pushes need it when
   * they were started with one). Default none.
   */
  authToken?: string;
  workerId?: string;
  /** CPU slots offered when no GPU is used (default 1). */
  cpuSlots?: number;
  /** GPUs offered: >= 1 overrides detection, 0 forces CPU slots; default: nvidia-smi's count. */
  gpus?: number;
  /** Already detected GPUs (skips nvidia-smi). */
  detectedGpus?: GpuInfo[];
  /** BullMQ lock duration (default 30000): a job whose lock is not renewed for this long is stalled. */
  lockMs?: number;
  /** BullMQ stalled-job check interval (default 30000). */
  stalledMs?: number;
  /** Announcement refresh interval (default 5000); the announcement expires after 3 intervals. */
  heartbeatMs?: number;
  /** How long a job that does not fit now is kept out of the queue for this worker's sake (default 1000). */
  fitDelayMs?: number;
  /** Least time between two progress updates of a job (default 250). */
  progressIntervalMs?: number;
  /** Start-up Redis check deadline (default 3000). */
  redisTimeoutMs?: number;
  /** How long a stop waits for a job's checkpoint (default 60000). */
  stopSaveTimeoutMs?: number;
  logger?: Logger;
}

interface Running {
  run: JobRun;
  job: Job;
  token: string;
  slots: number[];
  spec: JobSpec;
  done: Promise<void>;
  /** Consecutive lock renewals that found the lock gone. */
  lockMisses: number;
}

const WORKER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class TrainerWorker extends EventEmitter {
  readonly id: string;
  readonly offer: Offer;
  readonly keys: OctetKeys;
  readonly prefix: string;
  private readonly log: Logger;
  private readonly slots: SlotPool;
  private readonly running = new Map<string, Running>();
  private readonly opts: Required<Pick<TrainerWorkerOptions, "lockMs" | "stalledMs" | "heartbeatMs" | "fitDelayMs" | "progressIntervalMs" | "stopSaveTimeoutMs">>;
  private readonly redis: Redis;
  private readonly sub: Redis;
  private readonly bullConnection: Redis;
  private readonly worker: Worker;
  private readonly checkpointer: CheckpointClient;
  private readonly emaAddress: string | null;
  private readonly authToken: string | undefined;
  private stopping: Promise<void> | null = null;
  private fetchLoop: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private tokenSeq = 0;
  private readonly tooBigWarned = new Set<string>();
  private heartbeatInFlight = false;
  private renewInFlight = false;

  private constructor(opts: TrainerWorkerOptions, offer: Offer, log: Logger) {
    super();
    this.id = opts.workerId ?? `${hostname()}-${process.pid}`;
    this.offer = offer;
    this.prefix = opts.prefix ?? "bull";
    this.keys = keysFor(this.prefix);
    this.log = log;
    this.slots = new SlotPool(offer.slots);
    this.opts = {
      lockMs: opts.lockMs ?? 30_000,
      stalledMs: opts.stalledMs ?? 30_000,
      heartbeatMs: opts.heartbeatMs ?? 5_000,
      fitDelayMs: opts.fitDelayMs ?? 1_000,
      progressIntervalMs: opts.progressIntervalMs ?? 250,
      stopSaveTimeoutMs: opts.stopSaveTimeoutMs ?? 60_000,
    };
    const onRedisError = (which: string) => {
      let last = 0;
      return (e: Error) => {
        if (Date.now() - last > 5000) {
          last = Date.now();
          this.log.warn("redis connection error", { connection: which, err: e });
        }
      };
    };
    this.redis = createRedis(opts.redisUrl);
    this.redis.on("error", onRedisError("commands"));
    this.sub = createRedis(opts.redisUrl);
    this.sub.on("error", onRedisError("subscriber"));
    this.bullConnection = createRedis(opts.redisUrl);
    this.bullConnection.on("error", onRedisError("bullmq"));
    this.worker = new Worker(QUEUE_NAME, null, {
      connection: this.bullConnection,
      prefix: this.prefix,
      autorun: false,
      lockDuration: this.opts.lockMs,
      stalledInterval: this.opts.stalledMs,
      // Stalls count against the job's own retries (JobSpec.retries), checked when the job starts.
      maxStalledCount: 1_000_000,
      drainDelay: 5,
      name: this.id,
    });
    this.worker.on("error", onRedisError("worker"));
    this.authToken = opts.authToken;
    this.checkpointer = new CheckpointClient(opts.checkpointer, opts.authToken !== undefined ? { authToken: opts.authToken } : {});
    this.emaAddress = opts.emaKeeper ?? null;
  }

  /** Checks Redis (bounded), detects GPUs, connects, announces itself and starts taking jobs. */
  static async start(opts: TrainerWorkerOptions): Promise<TrainerWorker> {
    const log = opts.logger ?? createLogger();
    if (opts.workerId !== undefined && !WORKER_ID_RE.test(opts.workerId)) {
      throw new RangeError(`worker id must be 1-128 characters of letters, digits, '.', '_' or '-', got ${JSON.stringify(opts.workerId)}`);
    }
    await pingRedis(opts.redisUrl, opts.redisTimeoutMs ?? 3000);
    let detected = opts.detectedGpus;
    if (!detected && opts.gpus !== 0) {
      const d = await detectGpus();
      detected = d.gpus;
      if (d.note) log.info("no GPU detected", { reason: d.note });
    }
    const offer = decideOffer(detected ?? [], { gpus: opts.gpus, cpuSlots: opts.cpuSlots ?? 1 });
    const w = new TrainerWorker(opts, offer, log.child({ workerId: opts.workerId ?? `${hostname()}-${process.pid}` }));
    try {
      await w.begin();
    } catch (e) {
      await w.closeConnections();
      throw e;
    }
    if (!w.emaAddress) w.log.warn("no EMA keeper address: jobs run without EMA");
    w.log.info("ready", { redis: redactUrl(opts.redisUrl), prefix: w.prefix, kind: offer.kind, slots: offer.slots, gpus: offer.gpus, checkpointer: opts.checkpointer, emaKeeper: w.emaAddress, authToken: opts.authToken !== undefined });
    return w;
  }

  private async begin(): Promise<void> {
    await this.worker.waitUntilReady();
    await this.sub.subscribe(this.keys.cancelChannel());
    this.sub.on("message", (channel: string, jobId: string) => {
      if (channel !== this.keys.cancelChannel()) return;
      const r = this.running.get(jobId);
      if (r) r.run.requestStop("cancel");
    });
    await this.announce();
    this.timers.push(setInterval(() => void this.heartbeat(), this.opts.heartbeatMs));
    this.timers.push(setInterval(() => void this.renewLocks(), Math.max(50, Math.floor(this.opts.lockMs / 3))));
    await this.worker.startStalledCheckTimer();
    this.fetchLoop = this.loop();
  }

  info(): WorkerInfo {
    const lost = new Set(this.slots.lost);
    return {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      kind: this.offer.kind,
      // GPUs that became unusable are no longer offered.
      slots: this.slots.usable,
      busy: this.slots.busy,
      gpus: this.offer.gpus.filter((_, i) => !lost.has(i)),
      jobs: [...this.running.keys()],
      at: Date.now(),
      ...(lost.size > 0 ? { lostGpus: [...lost].map((i) => this.offer.gpus[i]?.index ?? i) } : {}),
    };
  }

  private async announce(): Promise<void> {
    await this.redis.set(this.keys.worker(this.id), JSON.stringify(this.info()), "PX", this.opts.heartbeatMs * 3);
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeatInFlight || this.stopping) return;
    this.heartbeatInFlight = true;
    try {
      await this.announce();
      // Cancellations published while this worker was disconnected are not replayed: look at the keys too.
      for (const [id, r] of this.running) {
        if (r.run.stopReason === null && (await this.redis.exists(this.keys.cancel(id))) === 1) r.run.requestStop("cancel");
      }
    } catch (e) {
      this.log.debug("heartbeat failed", { err: e });
    } finally {
      this.heartbeatInFlight = false;
    }
  }

  private async renewLocks(): Promise<void> {
    if (this.renewInFlight) return;
    this.renewInFlight = true;
    try {
      await this.renewLocksOnce();
    } finally {
      this.renewInFlight = false;
    }
  }

  private async renewLocksOnce(): Promise<void> {
    for (const [id, r] of [...this.running]) {
      if (r.run.stopReason === "lost") continue;
      try {
        const ok = await r.job.extendLock(r.token, this.opts.lockMs);
        if (this.running.get(id) !== r) continue;
        if (ok) r.lockMisses = 0;
        else if (++r.lockMisses >= 2) {
          // The lock is gone: the job was moved back (stalled) and may run elsewhere already.
          this.log.error("lost the job's lock: stopping it without writing anything more", { jobId: id });
          r.run.requestStop("lost");
        }
      } catch (e) {
        this.log.debug("lock renewal failed (Redis unreachable?)", { jobId: id, err: e });
      }
    }
  }

  /** Takes jobs while a slot is free. */
  private async loop(): Promise<void> {
    while (!this.stopping) {
      if (this.slots.free === 0) {
        await this.slots.changed();
        continue;
      }
      const token = `${this.id}:${++this.tokenSeq}`;
      let job: Job | undefined;
      try {
        job = await this.worker.getNextJob(token, { block: true });
      } catch (e) {
        if (this.stopping) break;
        this.log.warn("fetching a job failed", { err: e });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!job) continue;
      if (this.stopping) {
        await this.giveBack(job, token, "shutting down");
        break;
      }
      await this.accept(job, token);
    }
  }

  /**
   * Puts a job back for any worker without using an attempt: moveToDelayed(now) (skipAttempt) also sets the
   * queue's delay marker, so workers blocked waiting for jobs wake at once (moveToWait does not for a
   * prioritized job: they would sleep until their drain delay).
   */
  private async giveBack(job: Job, token: string, why: string): Promise<void> {
    try {
      await job.moveToDelayed(Date.now(), token);
      this.log.info("job given back", { jobId: job.id, why });
    } catch (e) {
      this.log.warn("could not give the job back (it will be recovered as stalled)", { jobId: job.id, err: e });
    }
  }

  private async accept(job: Job, token: string): Promise<void> {
    const id = job.id!;
    let spec: JobSpec;
    try {
      if (job.name !== JOB_NAME) throw new RangeError(`invalid job: name ${JSON.stringify(job.name)}, want ${JSON.stringify(JOB_NAME)}`);
      spec = validateJobSpec(job.data);
    } catch (e) {
      await this.fail(job, token, new UnrecoverableError((e as Error).message));
      return;
    }
    const attemptsUsed = job.attemptsMade + (job.stalledCounter ?? 0);
    if (attemptsUsed > spec.retries) {
      await this.fail(job, token, new UnrecoverableError(`no retries left: failed ${job.attemptsMade} and stalled ${job.stalledCounter ?? 0} times (retries: ${spec.retries})`));
      return;
    }
    const plan = planJob(spec, this.offer, this.slots.usable);
    const slots = plan.take ? this.slots.reserve(spec.gpus) : null;
    if (!plan.take || !slots) {
      const never = !plan.take;
      if (never && !this.tooBigWarned.has(id)) {
        this.tooBigWarned.add(id);
        this.log.warn("job cannot run on this worker: left for another", { jobId: id, gpus: spec.gpus, device: spec.device, slots: this.slots.usable, why: plan.take ? undefined : plan.why });
      }
      try {
        await job.moveToDelayed(Date.now() + this.opts.fitDelayMs * (never ? 5 : 1), token);
        this.log.debug("job does not fit now: back to the queue", { jobId: id, gpus: spec.gpus, free: this.slots.free });
      } catch (e) {
        this.log.warn("could not put back a job that does not fit", { jobId: id, err: e });
      }
      return;
    }
    const previous = this.running.get(id);
    if (previous) {
      // The job came back to this worker while an older attempt of it still winds down here: that attempt's
      // lock is gone (it stalled, e.g. across a long Redis outage), so it must not write anything more.
      this.log.warn("job taken again while its previous attempt is still here: that attempt is dropped", { jobId: id });
      previous.run.requestStop("lost");
    }
    const backend = plan.backend;
    const gpus = this.offer.kind === "gpu" ? slots.map((i) => this.offer.gpus[i] ?? { index: i, name: "unknown", memoryMiB: 0 }) : [];
    const placement: Placement = {
      backend,
      device: backend === "cuda" ? { kind: "cuda", gpus } : { kind: "cpu", gpus: [] },
      gpus: backend === "cuda" ? gpus.map((g) => g.index) : [],
    };
    const run = new JobRun(job, token, spec, slots, {
      workerId: this.id,
      redis: this.redis,
      keys: this.keys,
      checkpointer: this.checkpointer,
      emaAddress: this.emaAddress,
      ...(this.authToken !== undefined ? { authToken: this.authToken } : {}),
      log: this.log,
      progressIntervalMs: this.opts.progressIntervalMs,
      stopSaveTimeoutMs: this.opts.stopSaveTimeoutMs,
    }, placement);
    const entry: Running = { run, job, token, slots, spec, done: Promise.resolve(), lockMisses: 0 };
    this.running.set(id, entry);
    const device = this.offer.kind === "gpu" ? { gpus: slots.map((i) => this.offer.gpus[i]?.index ?? i) } : { cpuSlots: slots };
    this.log.info("job started", { jobId: id, run: run.run, attempt: run.attempt, backend, ...device });
    this.emit("job:start", { jobId: id, slots });
    void this.announce().catch(() => undefined);
    entry.done = this.execute(entry);
  }

  private async execute(entry: Running): Promise<void> {
    const { job, token, run } = entry;
    const id = job.id!;
    let outcome: JobOutcome | null = null;
    let error: Error | null = null;
    try {
      outcome = await run.execute();
    } catch (e) {
      error = e instanceof Error ? e : new Error(String(e));
    }
    // Stop renewing before the job leaves this worker (unless a newer attempt of it runs here now).
    if (this.running.get(id) === entry) this.running.delete(id);
    if (error instanceof DeviceLostError) {
      // The GPU is gone for this process (no context): fail over as a crash does — the attempt fails, the job goes
      // back to the queue for another worker while it has retries — and stop offering these GPUs.
      this.slots.lose(entry.slots);
      this.log.error("GPU unusable: the job goes back to the queue and this worker no longer offers the GPU", { jobId: id, gpus: error.gpus, err: error, slotsLeft: this.slots.usable });
    }
    try {
      if (error) {
        if (run.stopReason === "lost") this.log.warn("job failed after its lock was lost; leaving it to its new owner", { jobId: id, err: error });
        else await this.fail(job, token, error);
      } else if (outcome!.kind === "completed") {
        await job.moveToCompleted(outcome!.result, token, false);
      } else if (outcome!.kind === "cancelled") {
        await job.moveToFailed(new UnrecoverableError(CANCELLED_REASON), token, false);
      } else if (outcome!.kind === "released") {
        await this.giveBack(job, token, "released at shutdown");
      }
    } catch (e) {
      this.log.error("could not record the job's end (it will be recovered as stalled)", { jobId: id, err: e });
    }
    this.slots.release(entry.slots);
    const end = error ? "failed" : outcome!.kind;
    this.log.info("job ended", {
      jobId: id,
      outcome: end,
      step: run.step,
      ...(error ? { err: error } : {}),
      ...(outcome?.kind === "completed" ? { loss: outcome.result.loss, valLoss: outcome.result.valLoss, resumedFrom: outcome.result.resumedFrom } : {}),
    });
    this.emit("job:end", { jobId: id, outcome: end, result: outcome?.kind === "completed" ? (outcome.result as JobResult) : undefined, error });
    void this.announce().catch(() => undefined);
  }

  private async fail(job: Job, token: string, err: Error): Promise<void> {
    try {
      await job.moveToFailed(err, token, false);
      this.log.warn("job failed", { jobId: job.id, err, unrecoverable: err instanceof UnrecoverableError });
    } catch (e) {
      this.log.error("could not mark the job failed", { jobId: job.id, err: e });
    }
  }

  /** Jobs running now (ids). */
  jobs(): string[] {
    return [...this.running.keys()];
  }

  /**
   * Graceful stop: no new jobs; every running job finishes its step, checkpoints and goes back to the queue
   * for another worker (an attempt is not used up); then the connections close and the announcement goes.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.log.info("stopping", { jobs: this.jobs() });
      this.slots.wake();
      for (const r of this.running.values()) r.run.requestStop("shutdown");
      await Promise.all([...this.running.values()].map((r) => r.done));
      for (const t of this.timers) clearInterval(t);
      this.timers = [];
      await this.worker.close(true).catch((e: unknown) => this.log.warn("closing the BullMQ worker", { err: e }));
      await Promise.race([this.fetchLoop, new Promise((r) => setTimeout(r, 2000))]);
      await Promise.race([this.redis.del(this.keys.worker(this.id)).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
      await this.closeConnections();
      this.log.info("stopped");
    })();
    return this.stopping;
  }

  private async closeConnections(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.worker.close(true).catch(() => undefined);
    this.checkpointer.close();
    for (const c of [this.sub, this.redis, this.bullConnection]) c.disconnect();
  }
}
