// JobClient: a small typed client of the orchestrator's gRPC JobService, for the launcher, tests and scripts
// (`@octet/jobs/client`; the package root stays free of gRPC for programs that submit with plain BullMQ).
import { Metadata, callUnary, createClient, octet, services, status, waitForReady, type ClientOptions } from "@octet/proto";
import type { JobSpecInput } from "./index.js";
import type { CancelOutcome, JobStateName, JobView, ListPage, WatchEvent } from "./view.js";
import { eventFromProto, fitsTypedSpec, jobFromProto, specToProto, stateToProto } from "./wire.js";

// The bearer token a client sends (ClientOptions.authToken) from --auth-token-file / OCTET_AUTH_TOKEN(_FILE), checked
// as the services check theirs: what a program needs that submits to an orchestrator started with a token.
// And the status codes its errors carry (err.code), e.g. status.UNAUTHENTICATED.
export { authTokenFromEnv, checkAuthToken, status, SHARED_AUTH_TOKEN_VAR, type ClientOptions } from "@octet/proto";

// The views the client returns, so that one import serves a client's user.
export { FINAL_STATES, JOB_STATES, type CancelOutcome, type CheckpointRef, type JobStateName, type JobView, type ListPage, type QueueCounts, type WatchEvent } from "./view.js";

export interface SubmitOptions {
  /** Idempotency: a job with this id is returned unchanged if it exists. */
  jobId?: string;
  /** Send the spec as spec_json instead of typed fields (the default when a field does not fit the typed spec). */
  asJson?: boolean;
  deadlineMs?: number;
}

const OUTCOMES: Record<number, CancelOutcome> = { 1: "cancelled-now", 2: "requested", 3: "already" };

export class JobClient {
  readonly raw: services.orchestrator.v1.JobServiceClient;

  /**
   * `new JobClient("127.0.0.1:50070", { authToken })`; TLS, limits and the bearer token as for every Octet client
   * (ClientOptions). SubmitJob and CancelJob need the token when the orchestrator has one; the reads do not.
   */
  constructor(address: string, options: ClientOptions = {}) {
    this.raw = createClient(services.orchestrator.v1.JobServiceClient, address, options);
  }

  waitForReady(deadlineMs = 5000): Promise<void> {
    return waitForReady(this.raw, deadlineMs);
  }

  /** Submits a spec (validated by the server: INVALID_ARGUMENT naming the field when it is not valid). */
  async submit(spec: JobSpecInput, opts: SubmitOptions = {}): Promise<{ job: JobView; created: boolean }> {
    const asJson = opts.asJson || !fitsTypedSpec(spec);
    const req: octet.orchestrator.v1.ISubmitJobRequest = asJson ? { specJson: JSON.stringify(spec) } : { spec: specToProto(spec) };
    if (opts.jobId) req.jobId = opts.jobId;
    const res = await callUnary(this.raw, "submitJob", req, { deadlineMs: opts.deadlineMs ?? 30_000 });
    return { job: jobFromProto(res.job ?? {}), created: res.created };
  }

  /** The job (NOT_FOUND when unknown); with curve, its loss curve (at most maxCurvePoints). */
  async get(id: string, opts: { curve?: boolean; maxCurvePoints?: number; deadlineMs?: number } = {}): Promise<JobView> {
    const res = await callUnary(this.raw, "getJob", { id, includeCurve: opts.curve ?? false, maxCurvePoints: opts.maxCurvePoints ?? 0 }, { deadlineMs: opts.deadlineMs ?? 30_000 });
    return jobFromProto(res);
  }

  async list(opts: { states?: JobStateName[]; pageSize?: number; pageToken?: string; deadlineMs?: number } = {}): Promise<ListPage> {
    const res = await callUnary(
      this.raw,
      "listJobs",
      { states: (opts.states ?? []).map(stateToProto), pageSize: opts.pageSize ?? 0, pageToken: opts.pageToken ?? "" },
      { deadlineMs: opts.deadlineMs ?? 30_000 },
    );
    const c = res.counts ?? {};
    return {
      jobs: res.jobs.map(jobFromProto),
      nextPageToken: res.nextPageToken,
      counts: { waiting: Number(c.waiting ?? 0), delayed: Number(c.delayed ?? 0), active: Number(c.active ?? 0), completed: Number(c.completed ?? 0), failed: Number(c.failed ?? 0) },
    };
  }

  async cancel(id: string, opts: { deadlineMs?: number } = {}): Promise<{ job: JobView; outcome: CancelOutcome }> {
    const res = await callUnary(this.raw, "cancelJob", { id }, { deadlineMs: opts.deadlineMs ?? 30_000 });
    return { job: jobFromProto(res.job ?? {}), outcome: OUTCOMES[res.outcome] ?? "requested" };
  }

  /**
   * The job's events: a snapshot, then state changes and progress; ends after the job ends. Breaking out of the
   * loop or aborting the signal cancels the call. Errors (NOT_FOUND, UNAVAILABLE) are thrown from the iteration.
   */
  async *watch(id: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<WatchEvent> {
    const call = this.raw.watchJob({ id }, new Metadata());
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const msg of call as AsyncIterable<octet.orchestrator.v1.JobEvent>) yield eventFromProto(msg);
    } catch (err) {
      if (opts.signal?.aborted && (err as { code?: number }).code === status.CANCELLED) return;
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  /** Watches until the job ends and returns its final view. */
  async waitFor(id: string, opts: { signal?: AbortSignal; onEvent?: (e: WatchEvent) => void } = {}): Promise<JobView> {
    let last: JobView | undefined;
    for await (const e of this.watch(id, opts)) {
      opts.onEvent?.(e);
      if (e.kind !== "progress") last = e.job;
    }
    if (!last) throw new Error(`watch of job ${id} ended without an event`);
    return last;
  }

  close(): void {
    this.raw.close();
  }
}
