// Prometheus metrics (prom-client, a registry of the orchestrator's own): the queue read at each scrape, GPU
// slots from the workers' announcements, step rate from progress reports, counters of submissions and outcomes.
import type { JobProgress } from "@octet/jobs";
import type { JobView } from "@octet/jobs/view";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { EventHub, HubCounters } from "./events.js";
import type { JobStore } from "./store.js";

type JobLabel = "job" | "worker" | "device" | "gpu_name";

export class OrchestratorMetrics {
  readonly registry = new Registry();
  readonly submitted: Counter<"via">;
  readonly added: Counter;
  readonly finished: Counter<"outcome">;
  readonly stalled: Counter;
  private readonly jobs: Gauge<"state">;
  private readonly depth: Gauge;
  private readonly running: Gauge;
  private readonly slotsTotal: Gauge<"kind">;
  private readonly slotsInUse: Gauge<"kind">;
  private readonly workers: Gauge<"kind">;
  private readonly stepRate: Gauge;
  private readonly tokensPerSec: Gauge;
  private readonly watchers: Gauge;
  private readonly up: Gauge;
  private readonly stepSeconds: Gauge<JobLabel>;
  private readonly memoryBytes: Gauge<JobLabel>;
  private readonly peakMemoryBytes: Gauge<JobLabel>;
  private readonly emaStall: Gauge<JobLabel>;
  private readonly checkpointStall: Gauge<JobLabel>;
  private readonly emaLag: Gauge<JobLabel>;
  readonly emaOutages: Counter;
  readonly emaGapSteps: Counter;
  readonly emaFailedPushes: Counter;
  readonly emaCoalescedPushes: Counter;
  /** The EMA counts of each job attempt's last progress report seen (the counters add what grew since). */
  private readonly emaSeen = new Map<string, { attempt: number; outages: number; gapSteps: number; failed: number; coalesced: number }>();
  private refreshing: Promise<void> | undefined;

  constructor(prefix = "octet_") {
    const register = this.registry;
    collectDefaultMetrics({ register });
    this.submitted = new Counter({ name: `${prefix}jobs_submitted_total`, help: "Jobs submitted through this orchestrator (JobService.SubmitJob)", labelNames: ["via"], registers: [register] });
    this.submitted.inc({ via: "grpc" }, 0);
    this.added = new Counter({ name: `${prefix}jobs_added_total`, help: "Jobs added to the queue by any client (BullMQ 'added' events seen while running)", registers: [register] });
    this.finished = new Counter({ name: `${prefix}jobs_finished_total`, help: "Jobs that ended (seen while running), by outcome: completed, failed, cancelled", labelNames: ["outcome"], registers: [register] });
    for (const outcome of ["completed", "failed", "cancelled"]) this.finished.inc({ outcome }, 0);
    this.stalled = new Counter({ name: `${prefix}jobs_stalled_total`, help: "Jobs whose worker stopped renewing its lock (moved back to wait for a retry)", registers: [register] });
    this.jobs = new Gauge({ name: `${prefix}jobs`, help: "Jobs in the queue by state (failed includes cancelled)", labelNames: ["state"], registers: [register] });
    this.depth = new Gauge({ name: `${prefix}queue_depth`, help: "Jobs waiting to run (waiting + delayed for a retry)", registers: [register] });
    this.running = new Gauge({ name: `${prefix}jobs_running`, help: "Jobs running now (BullMQ active)", registers: [register] });
    this.slotsTotal = new Gauge({ name: `${prefix}gpu_slots`, help: "GPU slots (CPU slots for kind=cpu) announced by live workers", labelNames: ["kind"], registers: [register] });
    this.slotsInUse = new Gauge({ name: `${prefix}gpu_slots_in_use`, help: "Slots reserved by running jobs, as the workers announce", labelNames: ["kind"], registers: [register] });
    this.workers = new Gauge({ name: `${prefix}workers`, help: "Live workers (unexpired announcements)", labelNames: ["kind"], registers: [register] });
    this.stepRate = new Gauge({ name: `${prefix}step_rate`, help: "Training steps per second summed over running jobs (each from its last two progress reports)", registers: [register] });
    this.tokensPerSec = new Gauge({ name: `${prefix}tokens_per_second`, help: "Tokens per second summed over running jobs (their latest progress reports)", registers: [register] });
    this.watchers = new Gauge({ name: `${prefix}watched_jobs`, help: "Jobs watched through WatchJob now", registers: [register] });
    this.up = new Gauge({ name: `${prefix}redis_up`, help: "1 when the last scrape could read the queue from Redis", registers: [register] });
    const labelNames = ["job", "worker", "device", "gpu_name"] as const;
    const perJob = (name: string, help: string) => new Gauge({ name: `${prefix}${name}`, help: `${help}; per running job and the device that trains it (device "cuda:<nvidia-smi index>" or "cpu")`, labelNames, registers: [register] });
    this.stepSeconds = perJob("job_step_seconds", "Mean training step time over the last steps");
    this.memoryBytes = perJob("job_device_memory_bytes", "GPU memory in use by the job's tensors (the CUDA pool's live bytes)");
    this.peakMemoryBytes = perJob("job_device_memory_peak_bytes", "Peak GPU memory in use by the job's tensors");
    this.emaStall = perJob("job_ema_stall_seconds", "Time the training loop spent handing the parameters to the EMA, summed over this attempt");
    this.checkpointStall = perJob("job_checkpoint_stall_seconds", "Time the training loop spent exporting checkpoints, summed over this attempt");
    this.emaLag = perJob("job_ema_lag_steps", "Training steps since the newest step the EMA keeper acknowledged");
    this.emaOutages = new Counter({ name: `${prefix}ema_outages_total`, help: "Times a job's EMA keeper was unreachable (or lost the run) and its trainer reconnected and resent the parameters", registers: [register] });
    this.emaGapSteps = new Counter({ name: `${prefix}ema_gap_steps_total`, help: "Training steps missing from jobs' EMAs because their keeper was unreachable", registers: [register] });
    this.emaFailedPushes = new Counter({ name: `${prefix}ema_failed_pushes_total`, help: "EMA pushes that failed (keeper down or refusing)", registers: [register] });
    this.emaCoalescedPushes = new Counter({ name: `${prefix}ema_coalesced_pushes_total`, help: "EMA pushes dropped because a newer one replaced them before they were sent (the keeper could not keep up)", registers: [register] });
  }

  /** Adds what a job attempt's EMA counts grew by since its previous progress report (seen by this orchestrator). */
  private noteEma(jobId: string, p: JobProgress): void {
    if (!p.ema) return;
    const prev = this.emaSeen.get(jobId);
    const base = prev && prev.attempt === p.attempt ? prev : { attempt: p.attempt, outages: 0, gapSteps: 0, failed: 0, coalesced: 0 };
    const now = { attempt: p.attempt, outages: p.ema.outages, gapSteps: p.ema.gapSteps, failed: p.ema.failedPushes, coalesced: p.ema.coalescedPushes };
    if (now.outages > base.outages) this.emaOutages.inc(now.outages - base.outages);
    if (now.gapSteps > base.gapSteps) this.emaGapSteps.inc(now.gapSteps - base.gapSteps);
    if (now.failed > base.failed) this.emaFailedPushes.inc(now.failed - base.failed);
    if (now.coalesced > base.coalesced) this.emaCoalescedPushes.inc(now.coalesced - base.coalesced);
    this.emaSeen.delete(jobId);
    this.emaSeen.set(jobId, now);
    if (this.emaSeen.size > 10_000) this.emaSeen.delete(this.emaSeen.keys().next().value!);
  }

  /** The per-job gauges from the running jobs' latest progress. */
  private setJobGauges(active: JobView[]): void {
    for (const g of [this.stepSeconds, this.memoryBytes, this.peakMemoryBytes, this.emaStall, this.checkpointStall, this.emaLag]) g.reset();
    for (const j of active) {
      const p = j.progress;
      if (!p) continue;
      const gpu = p.device?.kind === "cuda" ? p.device.gpus[0] : undefined;
      const labels = { job: j.id, worker: p.workerId, device: gpu ? `cuda:${gpu.index}` : p.device ? "cpu" : "unknown", gpu_name: gpu?.name ?? "" };
      if (p.stats) {
        this.stepSeconds.set(labels, p.stats.stepMs / 1000);
        if (p.stats.memoryBytes !== null) this.memoryBytes.set(labels, p.stats.memoryBytes);
        if (p.stats.peakMemoryBytes !== null) this.peakMemoryBytes.set(labels, p.stats.peakMemoryBytes);
        this.emaStall.set(labels, p.stats.emaStallMs / 1000);
        this.checkpointStall.set(labels, p.stats.checkpointStallMs / 1000);
      }
      if (p.ema) this.emaLag.set(labels, Math.max(0, p.step - (p.ema.step ?? 0)));
    }
  }

  /** Counters fed by the EventHub. */
  counters(): HubCounters {
    return {
      added: () => this.added.inc(),
      completed: () => this.finished.inc({ outcome: "completed" }),
      failed: (cancelled) => this.finished.inc({ outcome: cancelled ? "cancelled" : "failed" }),
      stalled: () => this.stalled.inc(),
      progress: (jobId, p) => this.noteEma(jobId, p),
    };
  }

  /** Reads the queue and the announcements into the gauges (one refresh at a time; concurrent scrapes share it). */
  refresh(store: JobStore, hub: EventHub): Promise<void> {
    this.refreshing ??= this.doRefresh(store, hub).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(store: JobStore, hub: EventHub): Promise<void> {
    try {
      const [counts, workers, active] = await Promise.all([store.counts(), store.workers(), store.list({ states: ["active"], pageSize: 1000 })]);
      for (const [state, n] of Object.entries(counts)) this.jobs.set({ state }, n);
      this.depth.set(counts.waiting + counts.delayed);
      this.running.set(counts.active);
      const kinds = { gpu: { total: 0, busy: 0, n: 0 }, cpu: { total: 0, busy: 0, n: 0 } };
      for (const w of workers) {
        const k = w.kind === "cpu" ? kinds.cpu : kinds.gpu;
        k.total += w.slots;
        k.busy += w.busy;
        k.n++;
      }
      for (const [kind, k] of Object.entries(kinds)) {
        this.slotsTotal.set({ kind }, k.total);
        this.slotsInUse.set({ kind }, k.busy);
        this.workers.set({ kind }, k.n);
      }
      this.stepRate.set(hub.stepRate(active.jobs.map((j) => j.id)));
      this.setJobGauges(active.jobs);
      this.tokensPerSec.set(active.jobs.reduce((s, j) => s + (j.progress?.tokensPerSec ?? 0), 0));
      this.up.set(1);
    } catch {
      this.up.set(0);
    }
    this.watchers.set(hub.watched);
  }

  contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
