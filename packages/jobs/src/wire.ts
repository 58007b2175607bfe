// JobService's messages (octet.orchestrator.v1) ⇄ job specs and JobViews, for both ends: the server (the
// orchestrator) turns requests into spec input (validated by validateJobSpec) and JobViews into Job messages;
// the client (JobClient) does the reverse.
import { octet } from "@octet/proto";
import type { CurvePoint, EmaHealth, JobDevice, JobPhase, JobProgress, JobResult, JobSpec, JobSpecInput, JobStats } from "./index.js";
import type { JobStateName, JobView, WatchEvent } from "./view.js";

const pb = octet.orchestrator.v1;
const S = pb.JobState;

const STATE_TO_PROTO: Record<JobView["state"], octet.orchestrator.v1.JobState> = {
  waiting: S.JOB_STATE_WAITING,
  delayed: S.JOB_STATE_DELAYED,
  active: S.JOB_STATE_ACTIVE,
  completed: S.JOB_STATE_COMPLETED,
  failed: S.JOB_STATE_FAILED,
  cancelled: S.JOB_STATE_CANCELLED,
  unknown: S.JOB_STATE_UNSPECIFIED,
};
const STATE_FROM_PROTO = new Map<number, JobView["state"]>(Object.entries(STATE_TO_PROTO).map(([k, v]) => [v, k as JobView["state"]]));

export function stateToProto(s: JobView["state"]): octet.orchestrator.v1.JobState {
  return STATE_TO_PROTO[s];
}

export function stateFromProto(s: number | null | undefined): JobView["state"] {
  return STATE_FROM_PROTO.get(s ?? 0) ?? "unknown";
}

/** ListJobsRequest.states → state names; UNSPECIFIED or an unknown value is INVALID_ARGUMENT. */
export function statesFromProto(states: number[] | null | undefined): JobStateName[] {
  return (states ?? []).map((s, i) => {
    const name = STATE_FROM_PROTO.get(s);
    if (!name || name === "unknown") throw new RangeError(`states[${i}]: not a job state (${s})`);
    return name;
  });
}

const PHASES: JobPhase[] = ["starting", "restoring", "running", "checkpointing", "evaluating", "stopping", "done"];

function parseJsonObject(text: string, field: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new RangeError(`invalid job spec: ${field}: not valid JSON (${(err as Error).message})`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new RangeError(`invalid job spec: ${field}: must be a JSON object`);
  return v as Record<string, unknown>;
}

function set<T>(out: Record<string, unknown>, key: string, v: T | null | undefined): void {
  if (v !== null && v !== undefined) out[key] = v;
}

/**
 * The spec input of a SubmitJobRequest: spec_json parsed, or the typed spec's set fields (unset fields are left
 * out, so the schema's defaults apply). Validation is @octet/jobs' validateJobSpec, by the caller. Throws
 * RangeError (→ INVALID_ARGUMENT) for JSON that does not parse.
 */
export function specInputFromRequest(req: octet.orchestrator.v1.ISubmitJobRequest): unknown {
  if (req.specJson !== null && req.specJson !== undefined && req.specJson !== "") return parseJsonObject(req.specJson, "spec_json");
  const s = req.spec ?? {};
  const out: Record<string, unknown> = {};
  set(out, "run", s.run);
  if (s.configPreset !== null && s.configPreset !== undefined && s.configPreset !== "") out.config = s.configPreset;
  else if (s.configJson !== null && s.configJson !== undefined && s.configJson !== "") out.config = parseJsonObject(s.configJson, "config (config_json)");
  set(out, "recipe", s.recipe);
  set(out, "seed", s.seed);
  set(out, "steps", s.steps);
  set(out, "batchSize", s.batchSize);
  set(out, "evalEvery", s.evalEvery);
  const d = s.data;
  if (d) {
    if (d.synthetic) {
      const o: Record<string, unknown> = { kind: "synthetic" };
      set(o, "seed", d.synthetic.seed);
      out.data = o;
    } else if (d.text) {
      const o: Record<string, unknown> = { kind: "text", path: d.text.path ?? "" };
      set(o, "valFraction", d.text.valFraction);
      out.data = o;
    } else if (d.llmc) {
      out.data = { kind: "llmc", train: d.llmc.train ?? "", val: d.llmc.val ?? "" };
    }
  }
  if (s.checkpoint) {
    const o: Record<string, unknown> = {};
    set(o, "every", s.checkpoint.every);
    set(o, "keep", s.checkpoint.keep);
    out.checkpoint = o;
  }
  if (s.ema) {
    const o: Record<string, unknown> = {};
    set(o, "enabled", s.ema.enabled);
    set(o, "every", s.ema.every);
    set(o, "decay", s.ema.decay);
    out.ema = o;
  }
  set(out, "gpus", s.gpus);
  set(out, "device", s.device);
  set(out, "priority", s.priority);
  set(out, "retries", s.retries);
  return out;
}

/** A spec input as the typed proto JobSpec (client side). Fields the proto cannot hold go through spec_json instead. */
export function specToProto(spec: JobSpecInput): octet.orchestrator.v1.IJobSpec {
  const out: octet.orchestrator.v1.IJobSpec = {};
  if (spec.run !== undefined) out.run = spec.run;
  if (typeof spec.config === "string") out.configPreset = spec.config;
  else if (spec.config !== undefined) out.configJson = JSON.stringify(spec.config);
  if (spec.recipe !== undefined) out.recipe = spec.recipe;
  if (spec.seed !== undefined) out.seed = spec.seed;
  if (spec.steps !== undefined) out.steps = spec.steps;
  if (spec.batchSize !== undefined) out.batchSize = spec.batchSize;
  if (spec.evalEvery !== undefined) out.evalEvery = spec.evalEvery;
  const d = spec.data;
  if (d?.kind === "synthetic") out.data = { synthetic: d.seed !== undefined ? { seed: d.seed } : {} };
  else if (d?.kind === "text") out.data = { text: d.valFraction !== undefined ? { path: d.path, valFraction: d.valFraction } : { path: d.path } };
  else if (d?.kind === "llmc") out.data = { llmc: { train: d.train, val: d.val } };
  if (spec.checkpoint) out.checkpoint = { ...spec.checkpoint };
  if (spec.ema) out.ema = { ...spec.ema };
  if (spec.gpus !== undefined) out.gpus = spec.gpus;
  if (spec.device !== undefined) out.device = spec.device;
  if (spec.priority !== undefined) out.priority = spec.priority;
  if (spec.retries !== undefined) out.retries = spec.retries;
  return out;
}

/** Whether every field of the input fits the typed proto (unsigned 32-bit integers; else use spec_json). */
export function fitsTypedSpec(spec: JobSpecInput): boolean {
  const u32 = (v: unknown) => v === undefined || (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
  const s = spec as Record<string, unknown>;
  const nested = (o: unknown, ks: string[]) => o === undefined || (typeof o === "object" && o !== null && ks.every((k) => u32((o as Record<string, unknown>)[k])));
  return (
    ["seed", "steps", "batchSize", "evalEvery", "gpus", "priority", "retries"].every((k) => u32(s[k])) &&
    nested(s.checkpoint, ["every", "keep"]) &&
    nested(s.ema, ["every"]) &&
    (spec.data === undefined || spec.data.kind !== "synthetic" || u32(spec.data.seed)) &&
    (spec.run === undefined || typeof spec.run === "string") &&
    (spec.config === undefined || typeof spec.config === "string" || typeof spec.config === "object")
  );
}

function deviceToProto(d: JobDevice): octet.orchestrator.v1.IDevice {
  return { kind: d.kind, gpus: d.gpus.map((g) => ({ index: g.index, name: g.name, memoryMib: g.memoryMiB })) };
}

function deviceFromProto(d: octet.orchestrator.v1.IDevice | null | undefined): JobDevice | undefined {
  if (!d || (d.kind !== "cuda" && d.kind !== "cpu")) return undefined;
  return { kind: d.kind, gpus: (d.gpus ?? []).map((g) => ({ index: g.index ?? 0, name: g.name ?? "", memoryMiB: Number(g.memoryMib ?? 0) })) };
}

function statsToProto(s: JobStats): octet.orchestrator.v1.IJobStats {
  const out: octet.orchestrator.v1.IJobStats = { stepMs: s.stepMs, emaStallMs: s.emaStallMs, checkpointStallMs: s.checkpointStallMs };
  if (s.memoryBytes !== null) out.memoryBytes = s.memoryBytes;
  if (s.peakMemoryBytes !== null) out.peakMemoryBytes = s.peakMemoryBytes;
  return out;
}

function statsFromProto(s: octet.orchestrator.v1.IJobStats | null | undefined): JobStats | undefined {
  if (!s) return undefined;
  return {
    stepMs: s.stepMs ?? 0,
    memoryBytes: s.memoryBytes !== null && s.memoryBytes !== undefined ? Number(s.memoryBytes) : null,
    peakMemoryBytes: s.peakMemoryBytes !== null && s.peakMemoryBytes !== undefined ? Number(s.peakMemoryBytes) : null,
    emaStallMs: s.emaStallMs ?? 0,
    checkpointStallMs: s.checkpointStallMs ?? 0,
  };
}

function emaToProto(e: EmaHealth): octet.orchestrator.v1.IEmaHealth {
  const out: octet.orchestrator.v1.IEmaHealth = { failedPushes: e.failedPushes, coalescedPushes: e.coalescedPushes, outages: e.outages, gapSteps: e.gapSteps };
  if (e.step !== null) out.step = e.step;
  return out;
}

function emaFromProto(e: octet.orchestrator.v1.IEmaHealth | null | undefined): EmaHealth | undefined {
  if (!e) return undefined;
  return {
    step: e.step !== null && e.step !== undefined ? Number(e.step) : null,
    failedPushes: Number(e.failedPushes ?? 0),
    coalescedPushes: Number(e.coalescedPushes ?? 0),
    outages: Number(e.outages ?? 0),
    gapSteps: Number(e.gapSteps ?? 0),
  };
}

function progressToProto(p: JobProgress): octet.orchestrator.v1.IProgress {
  const out: octet.orchestrator.v1.IProgress = {
    phase: PHASES.indexOf(p.phase) + 1,
    step: p.step,
    totalSteps: p.totalSteps,
    tokensPerSec: p.tokensPerSec,
    attempt: p.attempt,
    workerId: p.workerId,
  };
  if (p.loss !== null) out.loss = p.loss;
  if (p.valLoss !== null) out.valLoss = p.valLoss;
  if (p.lastCheckpoint) out.lastCheckpoint = { ...p.lastCheckpoint };
  if (p.resumedFrom !== null) out.resumedFrom = p.resumedFrom;
  if (p.device) out.device = deviceToProto(p.device);
  if (p.stats) out.stats = statsToProto(p.stats);
  if (p.ema) out.ema = emaToProto(p.ema);
  return out;
}

function progressFromProto(p: octet.orchestrator.v1.IProgress | null | undefined): JobProgress | null {
  if (!p) return null;
  const device = deviceFromProto(p.device);
  const stats = statsFromProto(p.stats);
  const ema = emaFromProto(p.ema);
  return {
    ...(device ? { device } : {}),
    ...(stats ? { stats } : {}),
    ...(ema ? { ema } : {}),
    phase: PHASES[(p.phase ?? 0) - 1] ?? "running",
    step: Number(p.step ?? 0),
    totalSteps: Number(p.totalSteps ?? 0),
    loss: p.loss ?? null,
    valLoss: p.valLoss ?? null,
    tokensPerSec: p.tokensPerSec ?? 0,
    lastCheckpoint: p.lastCheckpoint ? { step: Number(p.lastCheckpoint.step ?? 0), path: p.lastCheckpoint.path ?? "" } : null,
    resumedFrom: p.resumedFrom ?? null,
    attempt: p.attempt ?? 0,
    workerId: p.workerId ?? "",
  };
}

function resultToProto(r: JobResult): octet.orchestrator.v1.IJobResult {
  const out: octet.orchestrator.v1.IJobResult = {
    run: r.run,
    step: r.step,
    loss: r.loss,
    valLoss: r.valLoss,
    tokensPerSec: r.tokensPerSec,
    recipe: r.recipe,
    checkpoints: r.checkpoints.map((c) => ({ ...c })),
    seconds: r.seconds,
  };
  if (r.entropyRate !== null) out.entropyRate = r.entropyRate;
  if (r.unigramEntropy !== null) out.unigramEntropy = r.unigramEntropy;
  if (r.emaStep !== null) out.emaStep = r.emaStep;
  if (r.resumedFrom !== null) out.resumedFrom = r.resumedFrom;
  if (r.device) out.device = deviceToProto(r.device);
  if (r.ema) out.ema = emaToProto(r.ema);
  return out;
}

function resultFromProto(r: octet.orchestrator.v1.IJobResult | null | undefined): JobResult | null {
  if (!r) return null;
  const device = deviceFromProto(r.device);
  const ema = emaFromProto(r.ema);
  return {
    ...(device ? { device } : {}),
    ...(ema ? { ema } : {}),
    run: r.run ?? "",
    step: Number(r.step ?? 0),
    loss: r.loss ?? Number.NaN,
    valLoss: r.valLoss ?? Number.NaN,
    tokensPerSec: r.tokensPerSec ?? 0,
    recipe: r.recipe ?? "",
    entropyRate: r.entropyRate ?? null,
    unigramEntropy: r.unigramEntropy ?? null,
    checkpoints: (r.checkpoints ?? []).map((c) => ({ step: Number(c.step ?? 0), path: c.path ?? "" })),
    emaStep: r.emaStep ?? null,
    resumedFrom: r.resumedFrom ?? null,
    seconds: r.seconds ?? 0,
  };
}

function curvePointToProto(p: CurvePoint): octet.orchestrator.v1.ICurvePoint {
  const out: octet.orchestrator.v1.ICurvePoint = { step: p.step, loss: p.loss };
  if (p.valLoss !== undefined) out.valLoss = p.valLoss;
  if (p.tokensPerSec !== undefined) out.tokensPerSec = p.tokensPerSec;
  return out;
}

function curvePointFromProto(p: octet.orchestrator.v1.ICurvePoint): CurvePoint {
  const out: CurvePoint = { step: Number(p.step ?? 0), loss: p.loss ?? Number.NaN };
  if (p.valLoss !== null && p.valLoss !== undefined) out.valLoss = p.valLoss;
  if (p.tokensPerSec !== null && p.tokensPerSec !== undefined) out.tokensPerSec = p.tokensPerSec;
  return out;
}

export function jobToProto(v: JobView): octet.orchestrator.v1.IJob {
  const out: octet.orchestrator.v1.IJob = {
    id: v.id,
    name: v.name,
    state: stateToProto(v.state),
    cancelRequested: v.cancelRequested,
    specJson: v.spec ? JSON.stringify(v.spec) : "",
    specError: v.specError ?? "",
    dataJson: JSON.stringify(v.data ?? null),
    run: v.run ?? "",
    priority: v.priority,
    attemptsMade: v.attemptsMade,
    maxAttempts: v.maxAttempts,
    createdAtMs: v.createdAt,
    startedAtMs: v.startedAt ?? 0,
    finishedAtMs: v.finishedAt ?? 0,
    failedReason: v.failedReason ?? "",
    stacktrace: v.stacktrace,
    checkpoints: v.checkpoints.map((c) => ({ ...c })),
    waitingReason: v.waitingReason ?? "",
  };
  if (v.progress) out.progress = progressToProto(v.progress);
  if (v.result) out.result = resultToProto(v.result);
  if (v.curve) out.curve = v.curve.map(curvePointToProto);
  return out;
}

export function jobFromProto(j: octet.orchestrator.v1.IJob): JobView {
  const parse = (s: string | null | undefined): unknown => (s ? JSON.parse(s) : null);
  const view: JobView = {
    id: j.id ?? "",
    name: j.name ?? "",
    state: stateFromProto(j.state),
    cancelRequested: j.cancelRequested ?? false,
    spec: (parse(j.specJson) as JobSpec | null) ?? null,
    specError: j.specError || null,
    data: parse(j.dataJson),
    run: j.run || null,
    priority: j.priority ?? 0,
    attemptsMade: j.attemptsMade ?? 0,
    maxAttempts: j.maxAttempts ?? 0,
    createdAt: Number(j.createdAtMs ?? 0),
    startedAt: j.startedAtMs ? Number(j.startedAtMs) : null,
    finishedAt: j.finishedAtMs ? Number(j.finishedAtMs) : null,
    progress: progressFromProto(j.progress),
    result: resultFromProto(j.result),
    failedReason: j.failedReason || null,
    stacktrace: j.stacktrace ?? [],
    checkpoints: (j.checkpoints ?? []).map((c) => ({ step: Number(c.step ?? 0), path: c.path ?? "" })),
    waitingReason: j.waitingReason || null,
  };
  if (j.curve && j.curve.length > 0) view.curve = j.curve.map(curvePointFromProto);
  return view;
}

const KIND_TO_PROTO = { snapshot: pb.JobEvent.Kind.KIND_SNAPSHOT, state: pb.JobEvent.Kind.KIND_STATE, progress: pb.JobEvent.Kind.KIND_PROGRESS } as const;

export function eventToProto(e: WatchEvent): octet.orchestrator.v1.IJobEvent {
  const out: octet.orchestrator.v1.IJobEvent = { kind: KIND_TO_PROTO[e.kind], state: stateToProto(e.state), timeMs: e.time };
  if (e.kind !== "progress") out.job = jobToProto(e.job);
  if (e.progress) out.progress = progressToProto(e.progress);
  return out;
}

export function eventFromProto(e: octet.orchestrator.v1.IJobEvent): WatchEvent {
  const state = stateFromProto(e.state);
  const progress = progressFromProto(e.progress);
  const time = Number(e.timeMs ?? 0);
  if (e.kind === pb.JobEvent.Kind.KIND_PROGRESS) return { kind: "progress", state, progress: progress!, time };
  const job = jobFromProto(e.job ?? {});
  return { kind: e.kind === pb.JobEvent.Kind.KIND_SNAPSHOT ? "snapshot" : "state", state, job, progress, time };
}
