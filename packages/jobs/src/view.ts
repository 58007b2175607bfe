// What the orchestrator shows of a job — the same through gRPC (JobService), its JSON API and its web pages —
// and what JobClient returns. Plain types and constants, no gRPC: the orchestrator computes these views from
// BullMQ jobs; @octet/jobs/wire carries them over JobService; @octet/jobs/client reads them back.
import type { CurvePoint, JobProgress, JobResult, JobSpec } from "./index.js";

/** An Octet job state: BullMQ's states folded (wait, prioritized, paused, waiting-children → waiting) plus cancelled. */
export type JobStateName = "waiting" | "delayed" | "active" | "completed" | "failed" | "cancelled";
export const JOB_STATES: readonly JobStateName[] = ["waiting", "delayed", "active", "completed", "failed", "cancelled"];
/** States a job does not leave (BullMQ's retry of a failed job aside). */
export const FINAL_STATES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** A checkpoint of the job's run, as the checkpointer names it. */
export interface CheckpointRef {
  step: number;
  path: string;
}

/** One job as the orchestrator shows it. */
export interface JobView {
  id: string;
  /** BullMQ job name ("train"). */
  name: string;
  /** "unknown" only for a job BullMQ finds in no state (being removed). */
  state: JobStateName | "unknown";
  /** CancelJob was called (a running job keeps running until its trainer stops at its next step). */
  cancelRequested: boolean;
  /** The validated spec with defaults filled; null when the job's data is not a valid spec (see specError). */
  spec: JobSpec | null;
  specError: string | null;
  /** The job's data as BullMQ stores it. */
  data: unknown;
  /** The run it trains (spec.run or "job-<id>"); null when the spec is invalid. */
  run: string | null;
  priority: number;
  attemptsMade: number;
  maxAttempts: number;
  /** Epoch milliseconds. */
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  progress: JobProgress | null;
  result: JobResult | null;
  /** BullMQ's failedReason: of the failed (or cancelled) job, or of the last failed attempt of a retried one. */
  failedReason: string | null;
  stacktrace: string[];
  /** The result's checkpoints, or the latest one reported in progress. */
  checkpoints: CheckpointRef[];
  /** The loss curve, where asked for. */
  curve?: CurvePoint[];
  /**
   * Why a waiting or delayed job cannot start, from the live workers (@octet/jobs' waitingReason): "needs 2 GPUs;
   * the largest worker has 1". Null when some worker can take it, and for jobs not queued.
   */
  waitingReason: string | null;
}

/** One event of a job's watch (WatchJob): a snapshot first, then state changes and progress. */
export type WatchEvent =
  | { kind: "snapshot"; state: JobView["state"]; job: JobView; progress: JobProgress | null; time: number }
  | { kind: "state"; state: JobView["state"]; job: JobView; progress: JobProgress | null; time: number }
  | { kind: "progress"; state: JobView["state"]; progress: JobProgress; time: number };

/** One page of ListJobs, with the queue's counts. */
export interface ListPage {
  jobs: JobView[];
  nextPageToken: string;
  counts: QueueCounts;
}

/** How many jobs the queue holds in each state. */
export interface QueueCounts {
  waiting: number;
  delayed: number;
  active: number;
  completed: number;
  /** Includes the cancelled ones. */
  failed: number;
}

/**
 * What CancelJob did: "cancelled-now" (a waiting or delayed job moved to cancelled at once), "requested" (a running
 * job asked to stop; its trainer checkpoints and ends it), "already" (cancelled, or its cancellation requested, before).
 */
export type CancelOutcome = "cancelled-now" | "requested" | "already";
