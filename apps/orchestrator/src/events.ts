// One QueueEvents reader per orchestrator, fanned out to WatchJob streams by job id, and the job events the
// metrics count (submissions from any client, completions, failures, step rate from progress reports).
import { QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import { CANCELLED_REASON, type JobProgress, QUEUE_NAME } from "@octet/jobs";
import { parseProgress } from "./view.js";

export type HubListener = (event: string, args: Record<string, unknown>) => void;

/** The QueueEvents events that concern one job. */
const JOB_EVENTS = ["added", "waiting", "active", "progress", "completed", "failed", "delayed", "stalled", "removed", "retries-exhausted", "waiting-children"] as const;

export interface HubCounters {
  added(): void;
  completed(): void;
  failed(cancelled: boolean): void;
  stalled(): void;
  /** Every progress report seen (parsed). */
  progress?(jobId: string, p: JobProgress): void;
}

interface StepSample {
  step: number;
  at: number;
  rate: number;
}

export class EventHub {
  readonly events: QueueEvents;
  private readonly listeners = new Map<string, Set<HubListener>>();
  private readonly samples = new Map<string, StepSample>();

  constructor(connection: Redis, prefix: string, counters?: HubCounters) {
    this.events = new QueueEvents(QUEUE_NAME, { connection, prefix });
    this.events.on("error", () => undefined); // the blocking connection reconnects by itself
    for (const name of JOB_EVENTS) {
      this.events.on(name as "added", (args: unknown) => {
        const a = (args ?? {}) as Record<string, unknown>;
        const jobId = typeof a.jobId === "string" ? a.jobId : undefined;
        if (!jobId) return;
        if (name === "progress") {
          this.noteProgress(jobId, a.data);
          const p = counters?.progress ? parseProgress(a.data) : null;
          if (p) counters!.progress!(jobId, p);
        }
        else if (name === "completed" || name === "failed" || name === "removed") this.samples.delete(jobId);
        if (counters) {
          if (name === "added") counters.added();
          else if (name === "completed") counters.completed();
          else if (name === "failed") counters.failed(a.failedReason === CANCELLED_REASON);
          else if (name === "stalled") counters.stalled();
        }
        const set = this.listeners.get(jobId);
        if (set) for (const fn of [...set]) fn(name, a);
      });
    }
  }

  /** Resolves once the reader is connected and reading (events after this are seen). */
  async ready(): Promise<void> {
    await this.events.waitUntilReady();
  }

  subscribe(jobId: string, fn: HubListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (set!.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  /** Number of jobs watched now. */
  get watched(): number {
    return this.listeners.size;
  }

  private noteProgress(jobId: string, data: unknown): void {
    const p = parseProgress(data);
    if (!p) return;
    const now = performance.now();
    const prev = this.samples.get(jobId);
    let rate = prev?.rate ?? 0;
    if (prev && p.step > prev.step && now > prev.at) rate = ((p.step - prev.step) * 1000) / (now - prev.at);
    else if (prev && p.step < prev.step) rate = 0; // a resumed attempt went back to its checkpoint
    if (!prev || p.step !== prev.step) this.samples.set(jobId, { step: p.step, at: now, rate });
  }

  /**
   * Steps per second summed over the given (running) jobs, each from its last two progress reports seen by this
   * orchestrator; a job that reported nothing for staleMs counts 0.
   */
  stepRate(activeIds: Iterable<string>, staleMs = 60_000): number {
    const now = performance.now();
    let sum = 0;
    const active = new Set(activeIds);
    for (const [id, s] of this.samples) {
      if (!active.has(id)) {
        if (now - s.at > staleMs) this.samples.delete(id);
        continue;
      }
      if (now - s.at <= staleMs) sum += s.rate;
    }
    return sum;
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.events.close();
  }
}
