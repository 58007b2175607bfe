// EmaKeeper: the in-process EMA store (library mode) that the gRPC service wraps.
//
// Semantics (also in README.md):
// - A push carries parameters for step s and any non-empty subset of the run's tensors. It is validated
//   completely (every chunk of every tensor: known names, dtypes, shapes, byte counts, offsets, NaN/±Inf when
//   the run rejects them) before any of it is staged; a bad push leaves the keeper exactly as it was.
// - Step s is complete once every tensor of the run has been pushed for s (by one push or by several, from one
//   client or several). Complete steps are applied in increasing order, in the background, each under a write
//   lock held across all tensors, so a reader (snapshot/export/GetEma) always sees every tensor at one step.
// - When step s completes, incomplete steps below s are discarded ("superseded"): a client that coalesced a
//   step away will never complete it.
// - A push for a step that is already complete (applied or queued) is a no-op ("duplicate", idempotent). A push
//   for an older step than the newest complete one is refused as stale (StaleStepError, FAILED_PRECONDITION).
// - The first applied update initializes the EMA to the parameters; later ones apply
//   ema ← d · ema + (1 − d) · param with d = decayAt(policy, s), in float32 storage (see kernel.ts).

import { EventEmitter } from "node:events";
import { totalmem } from "node:os";
import { checkRunName, checkTensorName } from "@octet/proto/names";
import { decayAt, normalizeDecayPolicy, type DecayPolicy } from "./decay.js";
import { EmaNotFoundError, EmaRangeError, StaleStepError } from "./errors.js";
import {
  emaInitBf16,
  emaInitF32,
  emaUpdateBf16,
  emaUpdateF32,
  firstNonFinite,
  firstNonFiniteBf16,
} from "./kernel.js";
import { RwLock } from "./lock.js";
import { numel } from "./assign.js";
import {
  dtypeBytes,
  type EmaState,
  type EmaStateMetadata,
  type ExportedTensor,
  type ParamArray,
  type ParamDType,
  type RunSpec,
  type RunStatus,
} from "./types.js";

export interface EmaKeeperOptions {
  /** Elements per slice of the background apply; the applier yields to the event loop between slices. */
  sliceElements?: number;
  /** Complete steps allowed to wait for the applier; admit() waits beyond this (default 2). */
  maxQueuedSteps?: number;
  /** Incomplete steps kept per run: admit() holds pushes opening more; past it (library push()) the oldest is discarded (default 8). */
  maxPendingSteps?: number;
  /**
   * Upper bound on the fp32 EMA bytes of all runs together; a registration beyond it is refused
   * (RESOURCE_EXHAUSTED). Default: half of the machine's physical memory, or of the container's memory limit when
   * that is lower (defaultMaxEmaBytes()).
   */
  maxEmaBytes?: number;
  /** Upper bound on tensors per run (default 100 000). */
  maxTensorsPerRun?: number;
  /** Upper bound on elements per tensor (default 2^30). */
  maxTensorElements?: number;
}

export interface NormalizedRunSpec {
  run: string;
  tensors: { name: string; shape: number[]; dtype: ParamDType }[];
  decay: DecayPolicy;
  updateInterval: number;
  nonFinite: "reject" | "allow";
}

interface TensorState {
  name: string;
  shape: number[];
  dtype: ParamDType;
  numel: number;
  paramBytes: number;
  /**
   * The EMA; null until the first update is applied (or a state imported). Registration only reserves the bytes:
   * the buffer is allocated by the background applier, tensor by tensor, so a registration never holds the event
   * loop and a run that never receives a push costs no memory.
   */
  ema: Float32Array | null;
}

interface QueuedStep {
  step: number;
  tensors: Map<string, Uint8Array>;
}

export interface PushOutcome {
  run: string;
  step: number;
  /** "staged": waiting for more tensors; "complete": queued for the applier; "duplicate": step already complete. */
  status: "staged" | "complete" | "duplicate";
  /** Tensors of the run still missing for this step (0 unless "staged"). */
  missingTensors: number;
}

export interface EmaView {
  run: string;
  step: number;
  updates: number;
  /** Live EMA buffers; valid (and unchanging) only until the callback's promise settles. */
  tensors: Map<string, Float32Array>;
  spec: NormalizedRunSpec;
}

export interface EmaSnapshot {
  run: string;
  step: number;
  updates: number;
  tensors: Map<string, Float32Array>;
}

/** The share of physical memory the EMAs of all runs may take when maxEmaBytes is not given. */
export const DEFAULT_MAX_EMA_FRACTION = 0.5;

/** The memory this process may use: os.totalmem(), or less when a cgroup (a container's limit) says so. */
export function availableMemory(): number {
  const total = totalmem();
  // undefined (Node 20) or 0 (later) when there is no limit; cgroup v2 without a limit reports more than total.
  const limit = process.constrainedMemory?.() ?? 0;
  return limit > 0 ? Math.min(total, limit) : total;
}

/** The default maxEmaBytes: DEFAULT_MAX_EMA_FRACTION of availableMemory(). */
export function defaultMaxEmaBytes(): number {
  return Math.floor(availableMemory() * DEFAULT_MAX_EMA_FRACTION);
}

/** "2199023255552 bytes (2.0 TiB)". */
function describeBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = "";
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return unit ? `${bytes} bytes (${value.toFixed(1)} ${unit})` : `${bytes} bytes`;
}

class RunState {
  readonly tensors = new Map<string, TensorState>();
  readonly lock = new RwLock();
  appliedStep = -1;
  updates = 0;
  /** Highest complete step (queued or applied), −1 if none. */
  completeStep = -1;
  readonly pending = new Map<number, Map<string, Uint8Array>>();
  readonly queue: QueuedStep[] = [];
  applying = false;
  dropped = false;
  emaBytes = 0;
  readonly counters = { superseded: 0, duplicate: 0, stale: 0, rejected: 0 };
  /** Resolved whenever a step is applied or the queue shrinks. */
  readonly waiters = new Set<() => void>();

  constructor(readonly spec: NormalizedRunSpec) {
    for (const t of spec.tensors) {
      const n = numel(t.shape);
      this.tensors.set(t.name, {
        name: t.name,
        shape: t.shape,
        dtype: t.dtype,
        numel: n,
        paramBytes: n * dtypeBytes(t.dtype),
        ema: null,
      });
      this.emaBytes += n * 4;
    }
  }

  notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once pred() is true (checked now and after every apply / queue change / drop). */
  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.dropped) {
          this.waiters.delete(check);
          reject(new EmaNotFoundError(`run ${JSON.stringify(this.spec.run)} was dropped`));
        } else if (pred()) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
    });
  }
}

/**
 * Accumulates one push (chunk by chunk or tensor by tensor), validating everything as it goes; finish() checks
 * completeness; EmaKeeper.commit() stages it atomically. Nothing touches the keeper's state before commit().
 */
export class PushBuilder {
  private readonly received = new Map<string, { state: TensorState; data: Uint8Array; filled: number }>();
  private finished = false;

  /** @internal */
  constructor(
    /** @internal */ readonly runState: RunState,
    readonly step: number,
  ) {}

  get run(): string {
    return this.runState.spec.run;
  }

  private tensor(name: unknown): TensorState {
    if (typeof name !== "string") throw new TypeError("tensor name must be a string");
    const t = this.runState.tensors.get(name);
    if (!t) throw new EmaRangeError(`unknown tensor ${JSON.stringify(name)} in run ${JSON.stringify(this.run)}`);
    return t;
  }

  /**
   * Adds one chunk of a tensor's parameter bytes (little-endian, row-major). Chunks of a tensor arrive in order;
   * `offset`, when given, must equal the bytes already received for it; `shape`, when given, must match.
   */
  addChunk(chunk: { name: string; dtype?: ParamDType; shape?: readonly number[]; offset?: number; data: Uint8Array }): void {
    if (this.finished) throw new EmaRangeError("push already finished");
    const t = this.tensor(chunk.name);
    if (chunk.dtype !== undefined && chunk.dtype !== t.dtype) {
      throw new EmaRangeError(`tensor ${JSON.stringify(t.name)}: dtype ${chunk.dtype} does not match the registered ${t.dtype}`);
    }
    if (chunk.shape !== undefined && chunk.shape.length > 0 && !sameShape(chunk.shape, t.shape)) {
      throw new EmaRangeError(`tensor ${JSON.stringify(t.name)}: shape [${chunk.shape.join(", ")}] does not match the registered [${t.shape.join(", ")}]`);
    }
    if (!(chunk.data instanceof Uint8Array)) throw new TypeError(`tensor ${JSON.stringify(t.name)}: data must be a Uint8Array`);
    let r = this.received.get(t.name);
    if (!r) {
      r = { state: t, data: new Uint8Array(t.paramBytes), filled: 0 };
      this.received.set(t.name, r);
    }
    if (chunk.offset !== undefined && chunk.offset !== r.filled) {
      throw new EmaRangeError(`tensor ${JSON.stringify(t.name)}: chunk offset ${chunk.offset} but ${r.filled} bytes received so far`);
    }
    if (r.filled + chunk.data.byteLength > t.paramBytes) {
      throw new EmaRangeError(
        `tensor ${JSON.stringify(t.name)}: more bytes than its shape [${t.shape.join(", ")}] × ${t.dtype} holds (${t.paramBytes})`,
      );
    }
    r.data.set(chunk.data, r.filled);
    r.filled += chunk.data.byteLength;
  }

  /** Adds a whole tensor: a Float32Array for F32 tensors, a Uint16Array of bf16 bit patterns for BF16. */
  addTensor(name: string, values: ParamArray): void {
    const t = this.tensor(name);
    if (this.received.has(name)) throw new EmaRangeError(`tensor ${JSON.stringify(name)} given twice in one push`);
    const want = t.dtype === "F32" ? Float32Array : Uint16Array;
    if (!(values instanceof want)) {
      throw new TypeError(`tensor ${JSON.stringify(name)}: expected a ${want.name} for dtype ${t.dtype}`);
    }
    if (values.length !== t.numel) {
      throw new EmaRangeError(`tensor ${JSON.stringify(name)}: ${values.length} elements, shape [${t.shape.join(", ")}] has ${t.numel}`);
    }
    this.addChunk({ name, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
  }

  /** Checks that every tensor begun is complete (and finite, when the run rejects non-finite values). */
  finish(): StagedPush {
    if (this.finished) throw new EmaRangeError("push already finished");
    if (this.received.size === 0) throw new EmaRangeError("push carries no tensors");
    const out = new Map<string, Uint8Array>();
    for (const [name, r] of this.received) {
      if (r.filled !== r.state.paramBytes) {
        throw new EmaRangeError(
          `tensor ${JSON.stringify(name)}: ${r.filled} bytes received, shape [${r.state.shape.join(", ")}] × ${r.state.dtype} needs ${r.state.paramBytes}`,
        );
      }
      if (this.runState.spec.nonFinite === "reject") {
        const bad =
          r.state.dtype === "F32"
            ? firstNonFinite(new Float32Array(r.data.buffer, r.data.byteOffset, r.state.numel))
            : firstNonFiniteBf16(new Uint16Array(r.data.buffer, r.data.byteOffset, r.state.numel));
        if (bad >= 0) throw new EmaRangeError(`tensor ${JSON.stringify(name)}: non-finite value (NaN or ±Inf) at element ${bad}; run rejects non-finite parameters`);
      }
      out.set(name, r.data);
    }
    this.finished = true;
    return { runState: this.runState, run: this.run, step: this.step, tensors: out };
  }
}

export interface StagedPush {
  /** @internal */ readonly runState: RunState;
  readonly run: string;
  readonly step: number;
  readonly tensors: Map<string, Uint8Array>;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class EmaKeeper extends EventEmitter {
  private readonly runs = new Map<string, RunState>();
  private readonly sliceElements: number;
  private readonly maxQueuedSteps: number;
  private readonly maxPendingSteps: number;
  private readonly maxEmaBytes: number;
  private readonly maxTensorsPerRun: number;
  private readonly maxTensorElements: number;

  constructor(options: EmaKeeperOptions = {}) {
    super();
    this.sliceElements = positiveInt("sliceElements", options.sliceElements ?? 1 << 20);
    this.maxQueuedSteps = positiveInt("maxQueuedSteps", options.maxQueuedSteps ?? 2);
    this.maxPendingSteps = positiveInt("maxPendingSteps", options.maxPendingSteps ?? 8);
    this.maxEmaBytes = options.maxEmaBytes ?? defaultMaxEmaBytes();
    if (!(this.maxEmaBytes > 0)) throw new RangeError(`maxEmaBytes must be > 0, got ${this.maxEmaBytes}`);
    this.maxTensorsPerRun = positiveInt("maxTensorsPerRun", options.maxTensorsPerRun ?? 100_000);
    this.maxTensorElements = positiveInt("maxTensorElements", options.maxTensorElements ?? 2 ** 30);
  }

  /** Names of the registered runs. */
  listRuns(): string[] {
    return [...this.runs.keys()];
  }

  /** Validates a run spec and fills in defaults, without registering it. */
  normalizeRunSpec(spec: RunSpec): NormalizedRunSpec {
    if (spec === null || typeof spec !== "object") throw new TypeError("run spec must be an object");
    const run = checkRunName(spec.run); // RangeError naming the name: INVALID_ARGUMENT
    if (!Array.isArray(spec.tensors)) throw new TypeError("tensors must be an array");
    if (spec.tensors.length === 0) throw new RangeError("a run needs at least one tensor");
    if (spec.tensors.length > this.maxTensorsPerRun) {
      throw new EmaRangeError(`${spec.tensors.length} tensors, above the limit of ${this.maxTensorsPerRun}`, "RESOURCE_EXHAUSTED");
    }
    const names = new Set<string>();
    const tensors = spec.tensors.map((t, i) => {
      if (t === null || typeof t !== "object") throw new TypeError(`tensors[${i}] must be an object`);
      if (typeof t.name !== "string" || t.name.length === 0) throw new TypeError(`tensors[${i}].name must be a non-empty string`);
      checkTensorName(t.name);
      if (names.has(t.name)) throw new RangeError(`duplicate tensor name ${JSON.stringify(t.name)}`);
      names.add(t.name);
      if (!Array.isArray(t.shape)) throw new TypeError(`tensor ${JSON.stringify(t.name)}: shape must be an array`);
      for (const d of t.shape) {
        if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`tensor ${JSON.stringify(t.name)}: bad dimension ${d} in shape`);
      }
      const n = numel(t.shape);
      if (n > this.maxTensorElements) {
        throw new EmaRangeError(`tensor ${JSON.stringify(t.name)}: ${n} elements, above the limit of ${this.maxTensorElements}`, "RESOURCE_EXHAUSTED");
      }
      const dtype = t.dtype ?? "F32";
      if (dtype !== "F32" && dtype !== "BF16") throw new RangeError(`tensor ${JSON.stringify(t.name)}: dtype must be F32 or BF16, got ${String(dtype)}`);
      return { name: t.name, shape: [...t.shape], dtype };
    });
    const updateInterval = spec.updateInterval ?? 1;
    if (!Number.isSafeInteger(updateInterval) || updateInterval < 1) throw new RangeError(`updateInterval must be an integer >= 1, got ${updateInterval}`);
    const nonFinite = spec.nonFinite ?? "reject";
    if (nonFinite !== "reject" && nonFinite !== "allow") throw new RangeError(`nonFinite must be "reject" or "allow"`);
    return { run, tensors, decay: normalizeDecayPolicy(spec.decay), updateInterval, nonFinite };
  }

  /**
   * Registers a run. Registering the same spec again is a no-op (returns "existing"); a different spec under a
   * registered name is refused (ALREADY_EXISTS): drop the run first.
   */
  registerRun(spec: RunSpec): { spec: NormalizedRunSpec; created: boolean } {
    const norm = this.normalizeRunSpec(spec);
    const existing = this.runs.get(norm.run);
    if (existing) {
      if (JSON.stringify(existing.spec) === JSON.stringify(norm)) return { spec: existing.spec, created: false };
      throw new EmaRangeError(`run ${JSON.stringify(norm.run)} is registered with a different spec; drop it first`, "ALREADY_EXISTS");
    }
    this.install(norm);
    return { spec: norm, created: true };
  }

  /** The fp32 EMA bytes a run of this spec reserves. */
  static emaBytesOf(spec: NormalizedRunSpec): number {
    let bytes = 0;
    for (const t of spec.tensors) bytes += numel(t.shape) * 4;
    return bytes;
  }

  /**
   * Throws RESOURCE_EXHAUSTED, naming the sizes, unless a run of this spec fits in what maxEmaBytes leaves (a run
   * already registered under the name holds its reservation: it fits). Checked before anything is allocated.
   */
  checkRoomFor(spec: NormalizedRunSpec): void {
    if (this.runs.has(spec.run)) return;
    const bytes = EmaKeeper.emaBytesOf(spec);
    const used = this.totalEmaBytes();
    if (used + bytes > this.maxEmaBytes) {
      throw new EmaRangeError(
        `run ${JSON.stringify(spec.run)} needs ${describeBytes(bytes)} of fp32 EMA for ${spec.tensors.length} tensor${spec.tensors.length === 1 ? "" : "s"}, ` +
          `but ${describeBytes(used)} of the keeper's ${describeBytes(this.maxEmaBytes)} (maxEmaBytes, --max-ema-bytes) are in use`,
        "RESOURCE_EXHAUSTED",
      );
    }
  }

  private install(norm: NormalizedRunSpec): RunState {
    this.checkRoomFor(norm);
    const state = new RunState(norm);
    this.runs.set(norm.run, state);
    return state;
  }

  totalEmaBytes(): number {
    let used = 0;
    for (const r of this.runs.values()) used += r.emaBytes;
    return used;
  }

  /** Drops a run and its EMA. Waiters are rejected; an apply in progress stops at its next slice. */
  dropRun(run: string): boolean {
    const state = this.runs.get(checkRunName(run));
    if (!state) return false;
    this.runs.delete(run);
    state.dropped = true;
    state.pending.clear();
    state.queue.length = 0;
    state.notify();
    return true;
  }

  private state(run: unknown): RunState {
    const s = this.runs.get(checkRunName(run));
    if (!s) throw new EmaNotFoundError(`unknown run ${JSON.stringify(run)}`);
    return s;
  }

  spec(run: string): NormalizedRunSpec {
    return this.state(run).spec;
  }

  /** Starts a push for `step`. Throws at once for an unknown run, a bad step, or a stale step. */
  beginPush(run: string, step: number): PushBuilder {
    const s = this.state(run);
    if (!Number.isSafeInteger(step) || step < 0) throw new EmaRangeError(`step must be an integer >= 0, got ${step}`);
    if (step % s.spec.updateInterval !== 0) {
      throw new EmaRangeError(`step ${step} is not a multiple of run ${JSON.stringify(run)}'s update interval ${s.spec.updateInterval}`);
    }
    this.checkStale(s, step);
    return new PushBuilder(s, step);
  }

  private isComplete(s: RunState, step: number): boolean {
    return step === s.appliedStep || s.queue.some((q) => q.step === step);
  }

  private checkStale(s: RunState, step: number): void {
    if (step < s.completeStep && !this.isComplete(s, step)) {
      s.counters.stale++;
      throw new StaleStepError(
        `run ${JSON.stringify(s.spec.run)}: step ${step} is older than step ${s.completeStep}, which is already ${s.appliedStep === s.completeStep ? "applied" : "complete"}`,
      );
    }
  }

  /** Counts a push refused for bad input (the service calls this when a builder throws). */
  noteRejected(run: string): void {
    const s = this.runs.get(run);
    if (s) s.counters.rejected++;
  }

  /**
   * Flow control; the service waits here after a push's header, before reading its chunks. Resolves once the
   * applier queue has room (fewer than maxQueuedSteps complete steps waiting) and, for a push that would open a
   * new incomplete step, once fewer than maxPendingSteps steps are incomplete. So a client pushing its tensors
   * ahead of the others is held (not dropped) when it runs maxPendingSteps steps ahead of the slowest one.
   */
  admit(run: string, step?: number): Promise<void> {
    const s = this.state(run);
    return s.until(
      () =>
        s.queue.length < this.maxQueuedSteps &&
        (step === undefined || step <= s.completeStep || s.pending.has(step) || s.pending.size < this.maxPendingSteps),
    );
  }

  /** Stages a finished push atomically. */
  commit(push: StagedPush): PushOutcome {
    const s = push.runState;
    if (s.dropped || this.runs.get(s.spec.run) !== s) throw new EmaNotFoundError(`run ${JSON.stringify(s.spec.run)} was dropped`);
    const step = push.step;
    if (this.isComplete(s, step)) {
      s.counters.duplicate++;
      return { run: s.spec.run, step, status: "duplicate", missingTensors: 0 };
    }
    this.checkStale(s, step);
    let entry = s.pending.get(step);
    if (!entry) {
      entry = new Map();
      s.pending.set(step, entry);
    }
    for (const [name, data] of push.tensors) entry.set(name, data);
    if (entry.size < s.tensors.size) {
      // Bound the incomplete steps kept: discard the oldest.
      while (s.pending.size > this.maxPendingSteps) {
        const oldest = Math.min(...s.pending.keys());
        s.pending.delete(oldest);
        s.counters.superseded++;
        this.emit("superseded", s.spec.run, oldest);
      }
      return { run: s.spec.run, step, status: "staged", missingTensors: s.tensors.size - entry.size };
    }
    s.pending.delete(step);
    for (const older of [...s.pending.keys()]) {
      if (older < step) {
        s.pending.delete(older);
        s.counters.superseded++;
        this.emit("superseded", s.spec.run, older);
      }
    }
    s.queue.push({ step, tensors: entry });
    s.completeStep = step;
    s.notify();
    this.schedule(s);
    return { run: s.spec.run, step, status: "complete", missingTensors: 0 };
  }

  /** Convenience: validates and stages a whole push in one call (library mode). */
  push(run: string, step: number, tensors: Map<string, ParamArray> | Record<string, ParamArray>): PushOutcome {
    const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
    try {
      const b = this.beginPush(run, step);
      for (const [name, values] of entries) b.addTensor(name, values);
      return this.commit(b.finish());
    } catch (err) {
      if (!(err instanceof StaleStepError)) this.noteRejected(run);
      throw err;
    }
  }

  private schedule(s: RunState): void {
    if (s.applying) return;
    s.applying = true;
    void this.applyLoop(s);
  }

  private async applyLoop(s: RunState): Promise<void> {
    try {
      while (s.queue.length > 0 && !s.dropped) {
        const item = s.queue[0];
        await s.lock.write(() => this.applyStep(s, item));
        s.queue.shift();
        s.notify();
        if (!s.dropped && s.appliedStep === item.step) this.emit("applied", s.spec.run, item.step);
      }
    } catch (err) {
      this.emit("error", err);
    } finally {
      s.applying = false;
    }
  }

  private async applyStep(s: RunState, item: QueuedStep): Promise<void> {
    if (s.dropped || item.step <= s.appliedStep) return;
    const init = s.updates === 0;
    const d = decayAt(s.spec.decay, item.step);
    const slice = this.sliceElements;
    let sinceYield = 0;
    for (const t of s.tensors.values()) {
      const raw = item.tensors.get(t.name)!;
      // The first update allocates the EMA (registration only reserved it); initialization overwrites every element.
      if (t.ema === null) t.ema = new Float32Array(t.numel);
      const ema = t.ema;
      const f32 = t.dtype === "F32" ? new Float32Array(raw.buffer, raw.byteOffset, t.numel) : undefined;
      const bf16 = t.dtype === "BF16" ? new Uint16Array(raw.buffer, raw.byteOffset, t.numel) : undefined;
      for (let start = 0; start < t.numel; start += slice) {
        const end = Math.min(t.numel, start + slice);
        if (f32) {
          if (init) emaInitF32(ema, f32, start, end);
          else emaUpdateF32(ema, f32, d, start, end);
        } else {
          if (init) emaInitBf16(ema, bf16!, start, end);
          else emaUpdateBf16(ema, bf16!, d, start, end);
        }
        sinceYield += end - start;
        if (sinceYield >= slice) {
          sinceYield = 0;
          await yieldToEventLoop();
          if (s.dropped) return;
        }
      }
    }
    s.appliedStep = item.step;
    s.updates++;
  }

  /** Resolves once the run has applied `step` or a later one. */
  whenApplied(run: string, step: number): Promise<void> {
    const s = this.state(run);
    return s.until(() => s.appliedStep >= step);
  }

  /** Resolves once nothing complete is waiting to be applied. */
  idle(run: string): Promise<void> {
    const s = this.state(run);
    return s.until(() => s.queue.length === 0);
  }

  /**
   * Runs fn with a read lock on the run's EMA: while fn's promise is pending no update is applied, so every
   * tensor in the view is at view.step. With `step`, waits (the applier keeps going) until that step is applied,
   * and fails with ABORTED if a later step has replaced it by the time the lock is held.
   */
  async withEma<T>(run: string, fn: (view: EmaView) => Promise<T> | T, options: { step?: number } = {}): Promise<T> {
    const s = this.state(run);
    const want = options.step;
    if (want !== undefined) {
      if (want > s.appliedStep) await s.until(() => s.appliedStep >= want);
    }
    return s.lock.read(() => {
      if (s.dropped) throw new EmaNotFoundError(`run ${JSON.stringify(run)} was dropped`);
      if (s.updates === 0) throw new EmaRangeError(`run ${JSON.stringify(run)} has no EMA yet: no update applied`, "FAILED_PRECONDITION");
      if (want !== undefined && s.appliedStep !== want) {
        throw new EmaRangeError(`run ${JSON.stringify(run)}: step ${want} was replaced by step ${s.appliedStep}`, "ABORTED");
      }
      const tensors = new Map<string, Float32Array>();
      // updates > 0: the first apply (or an import) has allocated every tensor's EMA.
      for (const t of s.tensors.values()) tensors.set(t.name, t.ema!);
      return fn({ run, step: s.appliedStep, updates: s.updates, tensors, spec: s.spec });
    });
  }

  /** A consistent copy of the EMA (every tensor at the returned step). */
  snapshot(run: string, options: { step?: number } = {}): Promise<EmaSnapshot> {
    return this.withEma(
      run,
      (v) => {
        const tensors = new Map<string, Float32Array>();
        for (const [name, ema] of v.tensors) tensors.set(name, ema.slice());
        return { run, step: v.step, updates: v.updates, tensors };
      },
      options,
    );
  }

  /** The EMA as named fp32 tensors plus metadata, for the checkpointer (copies). */
  exportState(run: string): Promise<EmaState> {
    return this.withEma(run, (v) => {
      const tensors = new Map<string, ExportedTensor>();
      for (const t of v.spec.tensors) {
        const ema = v.tensors.get(t.name)!;
        const data = new Uint8Array(ema.byteLength);
        data.set(new Uint8Array(ema.buffer, ema.byteOffset, ema.byteLength));
        tensors.set(t.name, { dtype: "F32", shape: [...t.shape], data });
      }
      return { metadata: metadataOf(v.spec, v.step, v.updates), tensors };
    });
  }

  /**
   * Restores a run from an exported state. The state is validated completely first. If the run is not
   * registered it is registered from the metadata; if it is, its spec must match the metadata (tensors, decay,
   * interval). The EMA, step and update count are replaced; pending and queued steps are discarded.
   */
  async importState(state: EmaState): Promise<{ run: string; step: number }> {
    const { spec, step, updates, arrays } = this.validateState(state);
    let s = this.runs.get(spec.run);
    if (s) {
      if (JSON.stringify(s.spec) !== JSON.stringify(spec)) {
        throw new EmaRangeError(`run ${JSON.stringify(spec.run)} is registered with a spec that differs from the imported metadata`, "FAILED_PRECONDITION");
      }
    } else {
      s = this.install(spec);
    }
    const target = s;
    await target.lock.write(() => {
      if (target.dropped) throw new EmaNotFoundError(`run ${JSON.stringify(spec.run)} was dropped`);
      for (const t of target.tensors.values()) t.ema = arrays.get(t.name)!;
      target.appliedStep = step;
      target.completeStep = step;
      target.updates = updates;
      target.pending.clear();
      target.queue.length = 0;
    });
    target.notify();
    return { run: spec.run, step };
  }

  /** Checks an EmaState (as importState would) and returns the parsed parts. */
  validateState(state: EmaState): { spec: NormalizedRunSpec; step: number; updates: number; arrays: Map<string, Float32Array> } {
    if (state === null || typeof state !== "object" || !state.metadata || !(state.tensors instanceof Map)) {
      throw new TypeError("state must be { metadata, tensors: Map }");
    }
    const m = state.metadata;
    if (m.format !== "octet.ema.v1") throw new RangeError(`unknown state format ${JSON.stringify(m.format)}`);
    if (!Number.isSafeInteger(m.step) || m.step < 0) throw new RangeError(`metadata.step must be an integer >= 0, got ${m.step}`);
    if (!Number.isSafeInteger(m.updates) || m.updates < 1) throw new RangeError(`metadata.updates must be an integer >= 1, got ${m.updates}`);
    const spec = this.normalizeRunSpec({
      run: m.run,
      tensors: m.tensors,
      decay: m.decay,
      updateInterval: m.updateInterval,
      nonFinite: m.nonFinite,
    });
    if (state.tensors.size !== spec.tensors.length) {
      throw new RangeError(`state has ${state.tensors.size} tensors, metadata lists ${spec.tensors.length}`);
    }
    const arrays = new Map<string, Float32Array>();
    for (const t of spec.tensors) {
      const e = state.tensors.get(t.name);
      if (!e) throw new RangeError(`state lacks tensor ${JSON.stringify(t.name)}`);
      if (e.dtype !== "F32") throw new RangeError(`tensor ${JSON.stringify(t.name)}: exported EMA dtype must be F32, got ${String(e.dtype)}`);
      if (!Array.isArray(e.shape) || !sameShape(e.shape, t.shape)) throw new RangeError(`tensor ${JSON.stringify(t.name)}: shape does not match the metadata`);
      if (!(e.data instanceof Uint8Array)) throw new TypeError(`tensor ${JSON.stringify(t.name)}: data must be a Uint8Array`);
      const n = numel(t.shape);
      if (e.data.byteLength !== n * 4) throw new RangeError(`tensor ${JSON.stringify(t.name)}: ${e.data.byteLength} bytes, shape needs ${n * 4}`);
      const arr = new Float32Array(n);
      new Uint8Array(arr.buffer).set(e.data);
      if (spec.nonFinite === "reject") {
        const bad = firstNonFinite(arr);
        if (bad >= 0) throw new RangeError(`tensor ${JSON.stringify(t.name)}: non-finite EMA value at element ${bad}`);
      }
      arrays.set(t.name, arr);
    }
    return { spec, step: m.step, updates: m.updates, arrays };
  }

  status(run: string): RunStatus {
    const s = this.state(run);
    return {
      run,
      appliedStep: s.appliedStep,
      updatesApplied: s.updates,
      pendingSteps: s.pending.size,
      queuedSteps: s.queue.length,
      supersededSteps: s.counters.superseded,
      duplicatePushes: s.counters.duplicate,
      stalePushes: s.counters.stale,
      rejectedPushes: s.counters.rejected,
      emaBytes: s.emaBytes,
      tensors: s.tensors.size,
    };
  }
}

export function metadataOf(spec: NormalizedRunSpec, step: number, updates: number): EmaStateMetadata {
  return {
    format: "octet.ema.v1",
    run: spec.run,
    step,
    updates,
    decay: { ...spec.decay },
    updateInterval: spec.updateInterval,
    nonFinite: spec.nonFinite,
    tensors: spec.tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype })),
  };
}

function positiveInt(name: string, x: number): number {
  if (!Number.isSafeInteger(x) || x < 1) throw new RangeError(`${name} must be an integer >= 1, got ${x}`);
  return x;
}

