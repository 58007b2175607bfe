// What the launcher needs from the orchestrator's JobService, behind one small interface so the flow does
// not depend on the client's exact shapes: submit, follow to the end, cancel.

import type { CurvePoint, JobProgress, JobResult, JobSpecInput } from "@octet/jobs";

export type JobState = "waiting" | "active" | "completed" | "failed" | "cancelled" | "delayed" | "unknown";

export interface JobUpdate {
  state: JobState;
  progress?: JobProgress;
}

export interface JobOutcome {
  id: string;
  state: "completed" | "failed" | "cancelled";
  result?: JobResult;
  error?: string;
  /** The job's whole loss curve when the orchestrator keeps it. */
  curve: CurvePoint[];
}

export interface JobsApi {
  submit(spec: JobSpecInput): Promise<string>;
  /** Follows a job until it ends, calling onUpdate on every state change and progress report. */
  follow(id: string, onUpdate: (u: JobUpdate) => void, signal: AbortSignal): Promise<JobOutcome>;
  cancel(id: string): Promise<void>;
  close(): void;
}
