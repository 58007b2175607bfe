// The gRPC JobService over a JobStore and an EventHub.
import {
  ServiceError,
  failedPrecondition,
  invalidArgument,
  notFound,
  serverStreaming,
  services,
  status as grpcStatus,
  unary,
  unavailable,
  type octet,
} from "@octet/proto";
import { validateJobSpec } from "@octet/jobs";
import { eventToProto, jobToProto, specInputFromRequest, statesFromProto } from "@octet/jobs/wire";
import type { EventHub } from "./events.js";
import { JobStoreError, type JobStore } from "./store.js";
import { watchJob } from "./watch.js";

type Handlers = services.orchestrator.v1.JobServiceHandlers;

/** JobService's methods that change nothing: open without the bearer token when the server has one. SubmitJob and CancelJob need it. */
export const JOB_READ_ONLY_METHODS = ["GetJob", "ListJobs", "WatchJob"] as const;
type Outcome = octet.orchestrator.v1.CancelJobResponse.Outcome;

const OUTCOME: Record<string, number> = { "cancelled-now": 1, requested: 2, already: 3 };

function isRedisDown(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string };
  return (
    e?.name === "MaxRetriesPerRequestError" ||
    /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|Stream isn't writeable|enableOfflineQueue/i.test(e?.message ?? "") ||
    e?.code === "ECONNREFUSED"
  );
}

/** Store errors → gRPC statuses; Redis failures → UNAVAILABLE; RangeError/TypeError are mapped by the wrappers. */
async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ServiceError) throw err;
    if (err instanceof JobStoreError) {
      if (err.code === "invalid") throw invalidArgument(err.message);
      if (err.code === "not-found") throw notFound(err.message);
      throw failedPrecondition(err.message);
    }
    if (isRedisDown(err)) throw unavailable(`Redis unavailable: ${(err as Error).message}`);
    throw err;
  }
}

/** A signal that aborts when either does, and its cleanup (AbortSignal.any needs Node 20.3). */
function anySignal(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const c = new AbortController();
  const abort = () => c.abort();
  if (a.aborted || b.aborted) abort();
  a.addEventListener("abort", abort, { once: true });
  b.addEventListener("abort", abort, { once: true });
  return {
    signal: c.signal,
    dispose: () => {
      a.removeEventListener("abort", abort);
      b.removeEventListener("abort", abort);
    },
  };
}

export interface JobServiceOptions {
  /** Called after each accepted submission (metrics). */
  onSubmit?: () => void;
  /** Aborts every WatchJob stream (shutdown): they end with UNAVAILABLE so clients reconnect elsewhere. */
  closing?: AbortSignal;
  /** WatchJob's re-read period (default 1000 ms). */
  watchPollMs?: number;
}

export function createJobService(store: JobStore, hub: EventHub, opts: JobServiceOptions = {}): Handlers {
  const notFoundMsg = (id: string) => `no job ${JSON.stringify(id)} in queue ${store.queue.name}`;
  const needId = (id: string | null | undefined): string => {
    if (!id) throw invalidArgument("id: required");
    return id;
  };

  return {
    submitJob: unary(async (req: octet.orchestrator.v1.SubmitJobRequest) =>
      mapped(async () => {
        const spec = validateJobSpec(specInputFromRequest(req)); // RangeError naming the field → INVALID_ARGUMENT
        const { job, created } = await store.submit(spec, req.jobId || undefined);
        if (created) opts.onSubmit?.();
        return { job: jobToProto(job), created };
      }),
    ),

    getJob: unary(async (req: octet.orchestrator.v1.GetJobRequest) =>
      mapped(async () => {
        const id = needId(req.id);
        const job = await store.get(id, { curve: req.includeCurve, maxCurvePoints: req.maxCurvePoints || undefined });
        if (!job) throw notFound(notFoundMsg(id));
        return jobToProto(job);
      }),
    ),

    listJobs: unary(async (req: octet.orchestrator.v1.ListJobsRequest) =>
      mapped(async () => {
        const page = await store.list({ states: statesFromProto(req.states), pageSize: req.pageSize || undefined, pageToken: req.pageToken || undefined });
        return { jobs: page.jobs.map(jobToProto), nextPageToken: page.nextPageToken, counts: { ...page.counts } };
      }),
    ),

    cancelJob: unary(async (req: octet.orchestrator.v1.CancelJobRequest) =>
      mapped(async () => {
        const id = needId(req.id);
        const out = await store.cancel(id);
        if (!out) throw notFound(notFoundMsg(id));
        return { job: jobToProto(out.job), outcome: OUTCOME[out.outcome] as Outcome };
      }),
    ),

    watchJob: serverStreaming(async (req: octet.orchestrator.v1.WatchJobRequest, ctx, write) =>
      mapped(async () => {
        const id = needId(req.id);
        const both = opts.closing ? anySignal(ctx.signal, opts.closing) : { signal: ctx.signal, dispose: () => undefined };
        try {
          for await (const e of watchJob(store, hub, id, { signal: both.signal, pollMs: opts.watchPollMs })) await write(eventToProto(e));
        } finally {
          both.dispose();
        }
        if (opts.closing?.aborted && !ctx.signal.aborted) throw new ServiceError(grpcStatus.UNAVAILABLE, "orchestrator shutting down; watch again");
      }),
    ),
  };
}
