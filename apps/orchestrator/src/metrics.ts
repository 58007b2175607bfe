// Prometheus metrics (prom-client, a registry of the orchestrator's own): the queue read at each scrape, GPU
// slots from the workers' announcements, step rate from progress reports, counters of submissions and outcomes.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { EventHub, HubCounters } from "./events.js";
import type { JobStore } from "./store.js";

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
  }

  /** Counters fed by the EventHub. */
  counters(): HubCounters {
    return {
      added: () => this.added.inc(),
      completed: () => this.finished.inc({ outcome: "completed" }),
      failed: (cancelled) => this.finished.inc({ outcome: cancelled ? "cancelled" : "failed" }),
      stalled: () => this.stalled.inc(),
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
