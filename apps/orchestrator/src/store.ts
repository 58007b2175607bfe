// JobStore: the orchestrator's one view of the queue. BullMQ's own data is the source of truth (no index of its
// own), so jobs added by any BullMQ client are seen exactly like jobs submitted through JobService.
import { Job, Queue } from "bullmq";
import type { Redis } from "ioredis";
import {
  CANCELLED_REASON,
  DEFAULT_BULL_PREFIX,
  JOB_NAME,
  QUEUE_NAME,
  jobOptions,
  keysFor,
  type CurvePoint,
  type JobSpec,
  type OctetKeys,
  type WorkerInfo,
  waitingReason,
} from "@octet/jobs";
import { cancelWaiting } from "./cancel.js";
import type { CancelOutcome, JobStateName, JobView, ListPage, QueueCounts } from "@octet/jobs/view";
import { jobView, parseCurvePoint, tidyCurve } from "./view.js";

/** How long the cancel key of a job lives (a trainer checks it when it picks the job up or runs it). */
export const CANCEL_KEY_TTL_S = 7 * 24 * 3600;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_CURVE_POINTS = 2000;

/** An error the RPC layer turns into INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION. */
export class JobStoreError extends Error {
  constructor(
    readonly code: "invalid" | "not-found" | "precondition",
    message: string,
  ) {
    super(message);
    this.name = "JobStoreError";
  }
}

/** A BullMQ job id a client may choose: like a run name, and not all digits (BullMQ reserves integer ids). */
export function checkJobId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) {
    throw new JobStoreError("invalid", `job_id: must be 1–128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit, got ${JSON.stringify(id)}`);
  }
  if (/^\d+$/.test(id)) throw new JobStoreError("invalid", `job_id: must not be all digits (BullMQ's own ids are integers), got ${JSON.stringify(id)}`);
}

/** One segment of the list order: a BullMQ state set, read in one direction, optionally filtered by failedReason. */
interface Segment {
  type: "active" | "prioritized" | "wait" | "paused" | "delayed" | "completed" | "failed";
  asc: boolean;
  cancelled?: boolean;
}

const SEGMENTS: Record<JobStateName, Segment[]> = {
  active: [{ type: "active", asc: true }],
  waiting: [
    { type: "prioritized", asc: true },
    { type: "wait", asc: true },
    { type: "paused", asc: true },
  ],
  delayed: [{ type: "delayed", asc: true }],
  completed: [{ type: "completed", asc: false }],
  failed: [{ type: "failed", asc: false, cancelled: false }],
  cancelled: [{ type: "failed", asc: false, cancelled: true }],
};
const ORDER: JobStateName[] = ["active", "waiting", "delayed", "completed", "failed", "cancelled"];

export interface ListOptions {
  /** Empty or absent: every state. */
  states?: JobStateName[];
  pageSize?: number;
  pageToken?: string;
}

function encodeToken(segment: number, offset: number, states: string): string {
  return Buffer.from(JSON.stringify({ s: segment, o: offset, f: states })).toString("base64url");
}

function decodeToken(token: string, states: string): { segment: number; offset: number } {
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { s: unknown; o: unknown; f: unknown };
    if (Number.isInteger(t.s) && Number.isInteger(t.o) && (t.s as number) >= 0 && (t.o as number) >= 0 && t.f === states) {
      return { segment: t.s as number, offset: t.o as number };
    }
  } catch {
    // fall through
  }
  throw new JobStoreError("invalid", "page_token: not a token from a previous ListJobs with the same states");
}

export interface JobStoreOptions {
  /** Command connection (shared by the Queue, bull-board and the orchestrator's own keys). */
  redis: Redis;
  /** BullMQ key prefix (default "bull"); the keys beside the queue follow it (keysFor). */
  prefix?: string;
}

export class JobStore {
  readonly queue: Queue;
  readonly redis: Redis;
  readonly prefix: string;
  readonly keys: OctetKeys;

  constructor(opts: JobStoreOptions) {
    this.redis = opts.redis;
    this.prefix = opts.prefix ?? DEFAULT_BULL_PREFIX;
    this.keys = keysFor(this.prefix);
    this.queue = new Queue(QUEUE_NAME, { connection: opts.redis, prefix: this.prefix });
    this.queue.on("error", () => undefined); // command errors surface in the calls that made them
  }

  /** Adds a validated spec under JOB_NAME with jobOptions(spec); with jobId, idempotent (created = false when it existed). */
  async submit(spec: JobSpec, jobId?: string): Promise<{ job: JobView; created: boolean }> {
    if (jobId) {
      checkJobId(jobId);
      const existing = await this.get(jobId);
      if (existing) return { job: existing, created: false };
    }
    const job = await this.queue.add(JOB_NAME, spec, jobId ? { ...jobOptions(spec), jobId } : jobOptions(spec));
    // The job as added (waiting; a worker may take it at once, which GetJob/WatchJob then show). Not read back:
    // that would be three more round trips to Redis per submission.
    return { job: jobView(job, "waiting", false, spec), created: true };
  }

  /** The job, or null when there is none with this id. */
  async get(id: string, opts: { curve?: boolean; maxCurvePoints?: number } = {}): Promise<JobView | null> {
    if (!id) throw new JobStoreError("invalid", "id: required");
    // State first, then the hash: a job that reached a final state has its final fields (failedReason,
    // returnvalue, finishedOn) written in the same script, so the hash read after never lags behind the state.
    const state = await this.queue.getJobState(id);
    const [job, cancel] = await Promise.all([Job.fromId(this.queue, id), this.redis.exists(this.keys.cancel(id))]);
    if (!job) return null;
    const view = jobView(job, state, cancel === 1);
    if (opts.curve) view.curve = await this.curve(id, opts.maxCurvePoints);
    // A queued job says why it cannot start when no live worker could take it.
    if ((view.state === "waiting" || view.state === "delayed") && view.spec) view.waitingReason = waitingReason(view.spec, await this.workers());
    return view;
  }

  /** The job's loss curve (see tidyCurve). */
  async curve(id: string, maxPoints = DEFAULT_CURVE_POINTS): Promise<CurvePoint[]> {
    const raw = await this.redis.lrange(this.keys.curve(id), 0, -1);
    return tidyCurve(
      raw.map(parseCurvePoint).filter((p): p is CurvePoint => p !== null),
      maxPoints,
    );
  }

  async counts(): Promise<QueueCounts> {
    const c = await this.queue.getJobCounts("active", "wait", "paused", "prioritized", "waiting-children", "delayed", "completed", "failed");
    return {
      waiting: (c.wait ?? 0) + (c.paused ?? 0) + (c.prioritized ?? 0) + (c["waiting-children"] ?? 0),
      delayed: c.delayed ?? 0,
      active: c.active ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
    };
  }

  /**
   * A page of jobs in the given states, in the order: active, waiting (next to run first), delayed, completed
   * (newest first), failed, cancelled (newest first). The token is (segment, offset into that BullMQ set).
   */
  async list(opts: ListOptions = {}): Promise<ListPage> {
    const states = opts.states?.length ? ORDER.filter((s) => opts.states!.includes(s)) : ORDER;
    const key = states.join(",");
    const segments = states.flatMap((s) => SEGMENTS[s]);
    const pageSize = opts.pageSize || DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw new JobStoreError("invalid", `page_size: must be in [1, ${MAX_PAGE_SIZE}], got ${pageSize}`);
    let { segment, offset } = opts.pageToken ? decodeToken(opts.pageToken, key) : { segment: 0, offset: 0 };
    const jobs: JobView[] = [];
    while (segment < segments.length && jobs.length < pageSize) {
      const seg = segments[segment];
      // Filtered segments (failed vs cancelled) read in larger batches; others exactly what the page needs.
      const want = seg.cancelled === undefined ? pageSize - jobs.length : Math.max(pageSize - jobs.length, 100);
      const ids = await this.queue.getRanges([seg.type], offset, offset + want - 1, seg.asc);
      let used = 0;
      const views = await this.views(ids, seg.type);
      for (const v of views) {
        used++;
        if (!v) continue;
        if (seg.cancelled !== undefined && (v.state === "cancelled") !== seg.cancelled) continue;
        jobs.push(v);
        if (jobs.length === pageSize) break;
      }
      offset += used;
      if (ids.length < want && used === views.length) {
        segment++;
        offset = 0;
      }
    }
    let nextPageToken = "";
    // Hand out a token only when some set still holds a job past this page (no empty last page, except when the
    // rest of a failed set holds only jobs of the other kind, failed vs cancelled).
    for (let s = segment, o = offset; s < segments.length; s++, o = 0) {
      const rest = await this.queue.getRanges([segments[s].type], o, o, segments[s].asc);
      if (rest.length > 0) {
        nextPageToken = encodeToken(s, o, key);
        break;
      }
    }
    if (jobs.some((j) => (j.state === "waiting" || j.state === "delayed") && j.spec)) {
      const workers = await this.workers();
      for (const j of jobs) if ((j.state === "waiting" || j.state === "delayed") && j.spec) j.waitingReason = waitingReason(j.spec, workers);
    }
    return { jobs, nextPageToken, counts: await this.counts() };
  }

  private async views(ids: string[], bullState: string): Promise<(JobView | null)[]> {
    if (ids.length === 0) return [];
    const [jobs, cancels] = await Promise.all([
      Promise.all(ids.map((id) => Job.fromId(this.queue, id))),
      this.redis.mget(ids.map((id) => this.keys.cancel(id))),
    ]);
    return jobs.map((job, i) => (job ? jobView(job, bullState, cancels[i] !== null) : null));
  }

  /**
   * Cancels a job: sets its cancel key and publishes its id (a trainer that runs it or picks it up stops), and if
   * it is not running yet, moves it to the failed set with CANCELLED_REASON at once. Null for an unknown job.
   */
  async cancel(id: string): Promise<{ job: JobView; outcome: CancelOutcome } | null> {
    const before = await this.get(id);
    if (!before) return null;
    if (before.state === "cancelled") return { job: before, outcome: "already" };
    if (before.state === "completed" || before.state === "failed") {
      throw new JobStoreError("precondition", `job ${id} already ${before.state}; only a waiting, delayed or running job can be cancelled`);
    }
    const fresh = await this.redis.set(this.keys.cancel(id), "1", "EX", CANCEL_KEY_TTL_S, "NX");
    await this.redis.publish(this.keys.cancelChannel(), id);
    let outcome: CancelOutcome = fresh === null ? "already" : "requested";
    if (before.state !== "active") {
      const moved = await cancelWaiting(this.redis, this.queue, id, CANCELLED_REASON);
      if (moved === "missing") return null;
      if (moved !== "locked" && moved !== "not-waiting") outcome = "cancelled-now";
    }
    const after = await this.get(id);
    return after ? { job: after, outcome } : null;
  }

  /** Workers announced under the prefix (expired announcements are gone; malformed ones skipped). */
  async workers(): Promise<WorkerInfo[]> {
    const out: WorkerInfo[] = [];
    let cursor = "0";
    const keys: string[] = [];
    do {
      const [next, batch] = await this.redis.scan(cursor, "MATCH", this.keys.workerPattern(), "COUNT", 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    if (keys.length === 0) return out;
    const values = await this.redis.mget(keys);
    for (const v of values) {
      if (!v) continue;
      try {
        const w = JSON.parse(v) as WorkerInfo;
        if (typeof w.slots === "number" && typeof w.busy === "number") out.push(w);
      } catch {
        // skip
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
