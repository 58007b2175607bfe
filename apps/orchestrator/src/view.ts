// JobView (defined in @octet/jobs/view): what the orchestrator shows of a BullMQ job, the same through gRPC, the
// JSON API and the web pages. It is computed here from the job as BullMQ stores it, so a job added with plain
// BullMQ looks exactly like one submitted through JobService.
import type { Job } from "bullmq";
import {
  CANCELLED_REASON,
  type EmaHealth,
  type JobDevice,
  type JobStats,
  runName,
  validateJobSpec,
  type CurvePoint,
  type JobPhase,
  type JobProgress,
  type JobResult,
  type JobSpec,
} from "@octet/jobs";
import type { CheckpointRef, JobStateName, JobView } from "@octet/jobs/view";

/** BullMQ state (job.getState() or the set a job was listed from) → Octet state. */
export function stateName(bullState: string, failedReason: string | null | undefined): JobStateName | "unknown" {
  switch (bullState) {
    case "waiting":
    case "wait":
    case "prioritized":
    case "paused":
    case "waiting-children":
      return "waiting";
    case "delayed":
      return "delayed";
    case "active":
      return "active";
    case "completed":
      return "completed";
    case "failed":
      return failedReason === CANCELLED_REASON ? "cancelled" : "failed";
    default:
      return "unknown";
  }
}

const PHASES: ReadonlySet<string> = new Set(["starting", "restoring", "running", "checkpointing", "evaluating", "stopping", "done"]);

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function checkpointRef(v: unknown): CheckpointRef | null {
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  const step = num(o.step);
  return step !== null && typeof o.path === "string" ? { step, path: o.path } : null;
}

function device(v: unknown): JobDevice | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  if (o.kind !== "cuda" && o.kind !== "cpu") return undefined;
  const gpus = Array.isArray(o.gpus)
    ? o.gpus.flatMap((g: unknown) => {
        const r = (g ?? {}) as Record<string, unknown>;
        const index = num(r.index);
        return index === null ? [] : [{ index, name: typeof r.name === "string" ? r.name : "", memoryMiB: num(r.memoryMiB) ?? 0 }];
      })
    : [];
  return { kind: o.kind, gpus };
}

function stats(v: unknown): JobStats | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  return { stepMs: num(o.stepMs) ?? 0, memoryBytes: num(o.memoryBytes), peakMemoryBytes: num(o.peakMemoryBytes), emaStallMs: num(o.emaStallMs) ?? 0, checkpointStallMs: num(o.checkpointStallMs) ?? 0 };
}

function emaHealth(v: unknown): EmaHealth | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  return { step: num(o.step), failedPushes: num(o.failedPushes) ?? 0, coalescedPushes: num(o.coalescedPushes) ?? 0, outages: num(o.outages) ?? 0, gapSteps: num(o.gapSteps) ?? 0 };
}

/** The optional parts of progress and results: present only when the trainer reported them. */
function extras(o: Record<string, unknown>, keys: ("device" | "stats" | "ema")[]): { device?: JobDevice; stats?: JobStats; ema?: EmaHealth } {
  const out: { device?: JobDevice; stats?: JobStats; ema?: EmaHealth } = {};
  const d = keys.includes("device") ? device(o.device) : undefined;
  const s = keys.includes("stats") ? stats(o.stats) : undefined;
  const e = keys.includes("ema") ? emaHealth(o.ema) : undefined;
  if (d) out.device = d;
  if (s) out.stats = s;
  if (e) out.ema = e;
  return out;
}

/**
 * The trainer's progress report (JobProgress), read defensively: BullMQ progress may be anything a program set
 * (a number for a plain BullMQ job). Null unless it is an object with a numeric step.
 */
export function parseProgress(p: unknown): JobProgress | null {
  if (!p || typeof p !== "object" || Array.isArray(p)) return null;
  const o = p as Record<string, unknown>;
  const step = num(o.step);
  if (step === null) return null;
  return {
    phase: (typeof o.phase === "string" && PHASES.has(o.phase) ? o.phase : "running") as JobPhase,
    step,
    totalSteps: num(o.totalSteps) ?? 0,
    loss: num(o.loss),
    valLoss: num(o.valLoss),
    tokensPerSec: num(o.tokensPerSec) ?? 0,
    lastCheckpoint: checkpointRef(o.lastCheckpoint),
    resumedFrom: num(o.resumedFrom),
    attempt: num(o.attempt) ?? 0,
    workerId: typeof o.workerId === "string" ? o.workerId : "",
    ...extras(o, ["device", "stats", "ema"]),
  };
}

/** A completed job's return value (JobResult), read defensively; null unless it has a numeric step. */
export function parseResult(r: unknown): JobResult | null {
  if (!r || typeof r !== "object" || Array.isArray(r)) return null;
  const o = r as Record<string, unknown>;
  const step = num(o.step);
  if (step === null) return null;
  const checkpoints = Array.isArray(o.checkpoints) ? o.checkpoints.map(checkpointRef).filter((c): c is CheckpointRef => c !== null) : [];
  return {
    run: typeof o.run === "string" ? o.run : "",
    step,
    loss: num(o.loss) ?? Number.NaN,
    valLoss: num(o.valLoss) ?? Number.NaN,
    tokensPerSec: num(o.tokensPerSec) ?? 0,
    recipe: typeof o.recipe === "string" ? o.recipe : "",
    entropyRate: num(o.entropyRate),
    unigramEntropy: num(o.unigramEntropy),
    checkpoints,
    emaStep: num(o.emaStep),
    resumedFrom: num(o.resumedFrom),
    seconds: num(o.seconds) ?? 0,
    ...extras(o, ["device", "ema"]),
  };
}

/** One curve point (JSON from the curve list), or null for a malformed entry. */
export function parseCurvePoint(s: string): CurvePoint | null {
  let o: unknown;
  try {
    o = JSON.parse(s);
  } catch {
    return null;
  }
  if (!o || typeof o !== "object") return null;
  const r = o as Record<string, unknown>;
  const step = num(r.step);
  const loss = num(r.loss);
  if (step === null || loss === null) return null;
  const p: CurvePoint = { step, loss };
  const valLoss = num(r.valLoss);
  if (valLoss !== null) p.valLoss = valLoss;
  const tps = num(r.tokensPerSec);
  if (tps !== null) p.tokensPerSec = tps;
  return p;
}

/**
 * A curve ready to show: one point per step (the latest entry wins — a resumed attempt repeats the steps after
 * its checkpoint), by step, thinned evenly to at most maxPoints (the last point always kept).
 */
export function tidyCurve(points: CurvePoint[], maxPoints = 2000): CurvePoint[] {
  const byStep = new Map<number, CurvePoint>();
  for (const p of points) byStep.set(p.step, p);
  const sorted = [...byStep.values()].sort((a, b) => a.step - b.step);
  if (maxPoints <= 0 || sorted.length <= maxPoints) return sorted;
  const out: CurvePoint[] = [];
  const stride = (sorted.length - 1) / (maxPoints - 1);
  for (let i = 0; i < maxPoints; i++) out.push(sorted[Math.round(i * stride)]);
  return out;
}

function specOf(data: unknown): { spec: JobSpec | null; specError: string | null } {
  try {
    return { spec: validateJobSpec(data), specError: null };
  } catch (err) {
    return { spec: null, specError: (err as Error).message };
  }
}

/** The view of a BullMQ job in a known BullMQ state (spec: its data already validated, to skip validating again). */
export function jobView(job: Job, bullState: string, cancelRequested: boolean, validated?: JobSpec): JobView {
  const { spec, specError } = validated ? { spec: validated, specError: null } : specOf(job.data);
  const progress = parseProgress(job.progress);
  const result = parseResult(job.returnvalue);
  const failedReason = job.failedReason ? String(job.failedReason) : null;
  const state = stateName(bullState, failedReason);
  // A job that ended shows no phase of its last attempt (a trainer that died mid-save never said "done").
  if (progress && (state === "completed" || state === "failed" || state === "cancelled")) progress.phase = "done";
  const checkpoints = result?.checkpoints.length ? result.checkpoints : progress?.lastCheckpoint ? [progress.lastCheckpoint] : [];
  return {
    id: String(job.id),
    name: job.name,
    state,
    cancelRequested,
    spec,
    specError,
    data: job.data,
    run: spec ? runName(spec, String(job.id)) : null,
    priority: job.opts?.priority ?? 0,
    attemptsMade: job.attemptsMade ?? 0,
    maxAttempts: Math.max(1, job.opts?.attempts ?? 1), // BullMQ stores 0 for "no retries"
    createdAt: job.timestamp,
    startedAt: job.processedOn ?? null,
    finishedAt: job.finishedOn ?? null,
    progress,
    result,
    failedReason,
    stacktrace: Array.isArray(job.stacktrace) ? job.stacktrace.map(String) : [],
    checkpoints,
    waitingReason: null,
  };
}
