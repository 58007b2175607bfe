// The job's progress as BullMQ sees it (job.updateProgress), throttled.

import type { JobProgress } from "@octet/jobs";
import type { Job } from "bullmq";
import type { Logger } from "./log.js";

/** job.updateProgress, throttled: at most one update in flight, at most one per interval unless forced. */
export class ProgressReporter {
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
