// Trainer-side clients: EmaClient (one keeper) and ShardedEmaClient (tensors spread over several keepers).
import * as grpc from "@grpc/grpc-js";
import { callUnary, createClient, octet, services, type ClientOptions } from "@octet/proto";
import { assignTensors, type AssignStrategy, type Assignment } from "./assign.js";
import { dtypeToProto, runSpecFromProto, runSpecToProto, statusFromProto } from "./convert.js";
import type { DecayPolicy } from "./decay.js";
import type { EmaSnapshot, PushOutcome } from "./keeper.js";
import type { EmaState, EmaStateMetadata, ExportedTensor, ParamArray, RunSpec, RunStatus, TensorSpec } from "./types.js";

type RawClient = services.ema.v1.EmaServiceClient;
const PushStatus = octet.ema.v1.PushStatus;
const F32 = octet.common.v1.DType.DTYPE_F32;

export const DEFAULT_CLIENT_CHUNK_BYTES = 1 << 20;

/** Creates the generated grpc-js client for EmaService. */
export function createEmaServiceClient(address: string, options: ClientOptions = {}): RawClient {
  return createClient(services.ema.v1.EmaServiceClient, address, options);
}

function asBytes(a: ParamArray | Uint8Array): Uint8Array {
  return a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function dtypeOf(a: ParamArray): number {
  if (a instanceof Float32Array) return dtypeToProto("F32");
  if (a instanceof Uint16Array) return dtypeToProto("BF16");
  throw new TypeError("parameters must be a Float32Array (F32) or a Uint16Array of bf16 bit patterns (BF16)");
}

function waitDrain(stream: { once(ev: "drain", fn: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => stream.once("drain", resolve));
}

/**
 * One PushParameters call: header, then each tensor in chunks of at most chunkBytes (never one message above the
 * size limit), honouring back-pressure. Resolves with the keeper's answer once the push is staged.
 */
export async function pushParameters(
  client: RawClient,
  run: string,
  step: number,
  tensors: Iterable<[string, ParamArray]>,
  options: { chunkBytes?: number; deadlineMs?: number } = {},
): Promise<PushOutcome> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CLIENT_CHUNK_BYTES;
  let reply!: (v: octet.ema.v1.PushResponse) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<octet.ema.v1.PushResponse>((res, rej) => {
    reply = res;
    fail = rej;
  });
  const callOptions: Partial<grpc.CallOptions> = options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {};
  const stream = client.pushParameters(new grpc.Metadata(), callOptions, (err, res) => (err ? fail(err) : reply(res!)));
  let ended = false;
  done.catch(() => undefined).finally(() => (ended = true));
  try {
    if (!stream.write({ header: { run, step } })) await waitDrain(stream);
    for (const [name, values] of tensors) {
      const dtype = dtypeOf(values);
      const bytes = asBytes(values);
      let offset = 0;
      do {
        if (ended) break;
        const end = Math.min(bytes.byteLength, offset + chunkBytes);
        const ok = stream.write({ chunk: { name, dtype, offset, data: bytes.subarray(offset, end) } });
        offset = end;
        if (!ok) await Promise.race([waitDrain(stream), done.catch(() => undefined)]);
      } while (offset < bytes.byteLength);
    }
  } finally {
    stream.end();
  }
  const res = await done;
  const status = res.status === PushStatus.PUSH_STATUS_COMPLETE ? "complete" : res.status === PushStatus.PUSH_STATUS_DUPLICATE ? "duplicate" : "staged";
  return { run: res.run, step: Number(res.step), status, missingTensors: res.missingTensors };
}

/** Reads a GetEma/ExportEma stream into an EmaState (header metadata + F32 tensors). */
async function readEmaStream(stream: grpc.ClientReadableStream<octet.ema.v1.EmaChunk>): Promise<EmaState> {
  let metadata: EmaStateMetadata | undefined;
  const tensors = new Map<string, ExportedTensor>();
  const filled = new Map<string, number>();
  for await (const m of stream as AsyncIterable<octet.ema.v1.EmaChunk>) {
    if (m.header) {
      const spec = runSpecFromProto(m.header.spec);
      metadata = {
        format: "octet.ema.v1",
        run: m.header.run ?? "",
        step: Number(m.header.step),
        updates: Number(m.header.updates),
        decay: spec.decay,
        updateInterval: spec.updateInterval ?? 1,
        nonFinite: spec.nonFinite ?? "reject",
        tensors: spec.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype ?? "F32" })),
      };
      for (const t of spec.tensors) {
        tensors.set(t.name, { dtype: "F32", shape: t.shape, data: new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * 4) });
        filled.set(t.name, 0);
      }
      continue;
    }
    const c = m.chunk;
    if (!metadata || !c) throw new Error("malformed EMA stream: chunk before header");
    const name = c.name ?? "";
    const data = c.data ?? new Uint8Array(0);
    const t = tensors.get(name);
    if (!t) throw new Error(`malformed EMA stream: unknown tensor ${name}`);
    const at = filled.get(name)!;
    if (at + data.byteLength > t.data.byteLength) throw new Error(`malformed EMA stream: too many bytes for ${name}`);
    t.data.set(data, at);
    filled.set(name, at + data.byteLength);
  }
  if (!metadata) throw new Error("malformed EMA stream: no header");
  for (const [name, t] of tensors) if (filled.get(name) !== t.data.byteLength) throw new Error(`EMA stream ended early in tensor ${name}`);
  return { metadata, tensors };
}

function toSnapshot(state: EmaState): EmaSnapshot {
  const tensors = new Map<string, Float32Array>();
  for (const [name, t] of state.tensors) tensors.set(name, new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));
  return { run: state.metadata.run, step: state.metadata.step, updates: state.metadata.updates, tensors };
}

export interface EmaClientStats {
  /** push() calls. */
  pushed: number;
  /** Pushes whose tensors reached the keeper (at least one tensor sent and accepted). */
  sent: number;
  /** Pushes never sent because newer pushes replaced all of their tensors while a send was in flight. */
  coalesced: number;
  /** Pushes whose send failed (see lastError); not retried: the next push supersedes them. */
  failed: number;
  /** Tensor updates replaced by newer ones before being sent. */
  coalescedTensors: number;
  /** A push is in flight or waiting. */
  busy: boolean;
  /** The newest step the keeper accepted (null: none yet). */
  lastSentStep: number | null;
  lastError?: Error;
}

export interface EmaClientOptions {
  /** keeper address "host:port" */
  address: string;
  run: string;
  /** TLS, message limit, channel options (as @octet/proto's createClient). */
  clientOptions?: ClientOptions;
  /** Largest `data` per message; default 1 MiB (must stay below the server's message limit). */
  chunkBytes?: number;
  /**
   * Copy the arrays at push() (default true) so the trainer may overwrite its buffers at once. With false the
   * client keeps references: the caller must not modify the arrays until flush() (or the next push of the same
   * tensors, which replaces them).
   */
  copy?: boolean;
  /** Deadline of each PushParameters call (default 120 s). */
  pushDeadlineMs?: number;
  /** Called for every failed send. */
  onError?: (err: Error, step: number) => void;
  /** Called for every send the keeper accepted (the step whose tensors it staged). */
  onSent?: (step: number) => void;
  /** Use an existing generated client (shared channel) instead of creating one. */
  client?: RawClient;
}

interface PendingTensor {
  step: number;
  data: ParamArray;
  push: PushRecord;
}

interface PushRecord {
  total: number;
  superseded: number;
  ok: number;
  bad: number;
}

/**
 * Trainer-side client of one keeper. push() enqueues synchronously and returns; one PushParameters call is in
 * flight at a time; while it is, newer pushes replace older pending ones tensor by tensor (the keeper gets the
 * newest parameters of every tensor; the replaced updates are counted as coalesced).
 */
export class EmaClient {
  readonly run: string;
  readonly raw: RawClient;
  private readonly ownsClient: boolean;
  private readonly chunkBytes: number;
  private readonly copy: boolean;
  private readonly pushDeadlineMs: number;
  private readonly onError?: (err: Error, step: number) => void;
  private readonly onSent?: (step: number) => void;
  private lastSentStep: number | null = null;
  private readonly pending = new Map<string, PendingTensor>();
  private inFlight = false;
  private lastStep = -1;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly counts = { pushed: 0, sent: 0, coalesced: 0, failed: 0, coalescedTensors: 0 };
  private lastError: Error | undefined;

  constructor(options: EmaClientOptions) {
    if (typeof options.run !== "string" || options.run === "") throw new TypeError("run must be a non-empty string");
    this.run = options.run;
    this.ownsClient = !options.client;
    this.raw = options.client ?? createEmaServiceClient(options.address, options.clientOptions);
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CLIENT_CHUNK_BYTES;
    const max = options.clientOptions?.maxMessageBytes ?? 4 * 1024 * 1024;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 4 || this.chunkBytes > max - 1024) {
      throw new RangeError(`chunkBytes must be an integer in [4, maxMessageBytes - 1024 = ${max - 1024}], got ${this.chunkBytes}`);
    }
    this.copy = options.copy ?? true;
    this.pushDeadlineMs = options.pushDeadlineMs ?? 120_000;
    this.onError = options.onError;
    this.onSent = options.onSent;
  }

  /** Registers the run (idempotent for an identical spec); `run` defaults to the client's. */
  async registerRun(spec: Omit<RunSpec, "run"> & { run?: string }): Promise<{ created: boolean }> {
    const res = await callUnary(this.raw, "registerRun", { spec: runSpecToProto({ ...spec, run: spec.run ?? this.run }) });
    return { created: res.created };
  }

  /**
   * Enqueues the parameters of `step` and returns at once. Validates the arguments' types synchronously
   * (TypeError / RangeError); the keeper's own validation failures show up in stats().failed and onError.
   * Steps must not decrease.
   */
  push(step: number, tensors: Map<string, ParamArray> | Record<string, ParamArray>): void {
    if (this.closed) throw new RangeError("client is closed");
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step must be an integer >= 0, got ${step}`);
    if (step < this.lastStep) throw new RangeError(`step ${step} is older than the last pushed step ${this.lastStep}`);
    const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
    if (entries.length === 0) throw new RangeError("push needs at least one tensor");
    for (const [name, v] of entries) {
      if (!(v instanceof Float32Array) && !(v instanceof Uint16Array)) {
        throw new TypeError(`tensor ${JSON.stringify(name)}: expected a Float32Array or a Uint16Array (bf16 bits)`);
      }
    }
    this.lastStep = step;
    const rec: PushRecord = { total: entries.length, superseded: 0, ok: 0, bad: 0 };
    this.counts.pushed++;
    for (const [name, v] of entries) {
      const prev = this.pending.get(name);
      if (prev) {
        this.counts.coalescedTensors++;
        prev.push.superseded++;
        this.settle(prev.push);
      }
      this.pending.set(name, { step, data: this.copy ? v.slice() : v, push: rec });
    }
    this.pump();
  }

  private settle(rec: PushRecord): void {
    if (rec.superseded + rec.ok + rec.bad !== rec.total) return;
    if (rec.ok > 0) this.counts.sent++;
    else if (rec.bad > 0) this.counts.failed++;
    else this.counts.coalesced++;
  }

  private pump(): void {
    if (this.inFlight || this.pending.size === 0) return;
    // Send the oldest pending step's tensors (usually the only step pending).
    let step = Number.POSITIVE_INFINITY;
    for (const p of this.pending.values()) step = Math.min(step, p.step);
    const group: [string, PendingTensor][] = [];
    for (const [name, p] of this.pending) if (p.step === step) group.push([name, p]);
    for (const [name] of group) this.pending.delete(name);
    this.inFlight = true;
    pushParameters(
      this.raw,
      this.run,
      step,
      group.map(([name, p]) => [name, p.data] as [string, ParamArray]),
      { chunkBytes: this.chunkBytes, deadlineMs: this.pushDeadlineMs },
    ).then(
      () => {
        for (const [, p] of group) p.push.ok++;
        for (const rec of new Set(group.map(([, p]) => p.push))) this.settle(rec);
        this.lastSentStep = Math.max(this.lastSentStep ?? step, step);
        try {
          this.onSent?.(step);
        } catch {
          // a throwing callback must not stop the queue
        }
      },
      (err: Error) => {
        this.lastError = err;
        for (const [, p] of group) p.push.bad++;
        for (const rec of new Set(group.map(([, p]) => p.push))) this.settle(rec);
        try {
          this.onError?.(err, step);
        } catch {
          // a throwing callback must not stop the queue
        }
      },
    ).finally(() => {
      this.inFlight = false;
      this.pump();
      if (!this.inFlight && this.pending.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  /** Resolves once every pending push has been sent (or has failed). */
  flush(): Promise<void> {
    if (!this.inFlight && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): EmaClientStats {
    return { ...this.counts, busy: this.inFlight || this.pending.size > 0, lastSentStep: this.lastSentStep, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  async status(): Promise<RunStatus> {
    return statusFromProto((await callUnary(this.raw, "getStatus", { run: this.run })) as unknown as Record<string, unknown>);
  }

  /** A consistent snapshot (every tensor at one step). With `step`: waits for that step (ABORTED if replaced). */
  async getEma(options: { step?: number; deadlineMs?: number } = {}): Promise<EmaSnapshot> {
    const callOptions = options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {};
    return toSnapshot(await readEmaStream(this.raw.getEma({ run: this.run, ...(options.step !== undefined ? { step: options.step } : {}) }, callOptions)));
  }

  /** ExportEma: the EMA as named fp32 tensors + metadata, ready for the checkpointer. */
  exportState(): Promise<EmaState> {
    return readEmaStream(this.raw.exportEma({ run: this.run }));
  }

  /** ImportEma: restores a run from an exported state (the state's metadata names the run). */
  importState(state: EmaState): Promise<{ run: string; step: number }> {
    return importState(this.raw, state, this.chunkBytes);
  }

  async dropRun(): Promise<boolean> {
    return (await callUnary(this.raw, "dropRun", { run: this.run })).dropped;
  }

  /** Stops accepting pushes; closes the channel if this client created it (pending sends are abandoned). */
  close(): void {
    this.closed = true;
    if (this.ownsClient) this.raw.close();
  }
}

/** Streams an EmaState to ImportEma. */
export async function importState(client: RawClient, state: EmaState, chunkBytes = DEFAULT_CLIENT_CHUNK_BYTES): Promise<{ run: string; step: number }> {
  const m = state.metadata;
  let reply!: (v: octet.ema.v1.ImportEmaResponse) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<octet.ema.v1.ImportEmaResponse>((res, rej) => {
    reply = res;
    fail = rej;
  });
  const stream = client.importEma((err, res) => (err ? fail(err) : reply(res!)));
  try {
    const spec = runSpecToProto({ run: m.run, tensors: m.tensors, decay: m.decay as DecayPolicy, updateInterval: m.updateInterval, nonFinite: m.nonFinite });
    if (!stream.write({ header: { format: m.format, run: m.run, step: m.step, updates: m.updates, spec } })) await waitDrain(stream);
    for (const [name, t] of state.tensors) {
      let offset = 0;
      do {
        const end = Math.min(t.data.byteLength, offset + chunkBytes);
        const ok = stream.write({ chunk: { name, dtype: F32, shape: offset === 0 ? t.shape : [], offset, data: t.data.subarray(offset, end) } });
        offset = end;
        if (!ok) await Promise.race([waitDrain(stream), done.catch(() => undefined)]);
      } while (offset < t.data.byteLength);
    }
  } finally {
    stream.end();
  }
  const res = await done;
  return { run: res.run, step: Number(res.step) };
}

export interface ShardedEmaClientOptions extends Omit<EmaClientOptions, "address" | "client"> {
  /** Keeper addresses; keeper i owns assignTensors(tensors, addresses.length, strategy).byKeeper[i]. */
  addresses: string[];
  /** The model's full tensor list. */
  tensors: TensorSpec[];
  strategy?: AssignStrategy;
}

/**
 * Several keepers sharing one model's EMA, each owning the subset of tensors assignTensors() gives it.
 * push() splits a push by owner and enqueues it on every keeper's EmaClient (each coalesces independently).
 */
export class ShardedEmaClient {
  readonly assignment: Assignment;
  readonly clients: EmaClient[];
  readonly run: string;
  private readonly tensors: TensorSpec[];

  constructor(options: ShardedEmaClientOptions) {
    if (!Array.isArray(options.addresses) || options.addresses.length === 0) throw new RangeError("addresses must list at least one keeper");
    this.run = options.run;
    this.tensors = options.tensors;
    this.assignment = assignTensors(options.tensors, options.addresses.length, options.strategy);
    this.clients = options.addresses.map((address) => new EmaClient({ ...options, address }));
  }

  /** Registers each keeper's subset of the run. */
  async registerRun(spec: { decay: DecayPolicy; updateInterval?: number; nonFinite?: "reject" | "allow" }): Promise<void> {
    await Promise.all(
      this.clients.map((c, i) => {
        if (this.assignment.byKeeper[i].length === 0) return undefined;
        return c.registerRun({ ...spec, tensors: this.assignment.byKeeper[i] });
      }),
    );
  }

  push(step: number, tensors: Map<string, ParamArray> | Record<string, ParamArray>): void {
    const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
    const parts: Map<string, ParamArray>[] = this.clients.map(() => new Map());
    for (const [name, v] of entries) {
      const k = this.assignment.owner.get(name);
      if (k === undefined) throw new RangeError(`unknown tensor ${JSON.stringify(name)}: not in the sharded run's tensor list`);
      parts[k].set(name, v);
    }
    if (entries.length === 0) throw new RangeError("push needs at least one tensor");
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step must be an integer >= 0, got ${step}`);
    parts.forEach((p, k) => {
      if (p.size > 0) this.clients[k].push(step, p);
    });
  }

  flush(): Promise<void> {
    return Promise.all(this.clients.map((c) => c.flush())).then(() => undefined);
  }

  /** Sums of the per-keeper stats (a push counts once per keeper it touches). */
  stats(): EmaClientStats {
    const out: EmaClientStats = { pushed: 0, sent: 0, coalesced: 0, failed: 0, coalescedTensors: 0, busy: false, lastSentStep: null };
    for (const c of this.clients) {
      const s = c.stats();
      out.pushed += s.pushed;
      out.sent += s.sent;
      out.coalesced += s.coalesced;
      out.failed += s.failed;
      out.coalescedTensors += s.coalescedTensors;
      out.busy ||= s.busy;
      if (s.lastError) out.lastError = s.lastError;
    }
    // Every keeper (that owns tensors) has accepted at least the smallest of their newest steps.
    const steps = this.clients.filter((_, i) => this.assignment.byKeeper[i].length > 0).map((c) => c.stats().lastSentStep);
    out.lastSentStep = steps.length > 0 && steps.every((x) => x !== null) ? Math.min(...(steps as number[])) : null;
    return out;
  }

  /**
   * A snapshot consistent across keepers: every tensor at one step. Asks each keeper for the newest applied
   * step S among them (keepers behind wait for S); if a keeper has already moved past S, retries with the new
   * newest step, up to `attempts` times.
   */
  async getEma(options: { deadlineMs?: number; attempts?: number } = {}): Promise<EmaSnapshot> {
    const active = this.clients.filter((_, i) => this.assignment.byKeeper[i].length > 0);
    const attempts = options.attempts ?? 5;
    let lastErr: unknown;
    for (let a = 0; a < attempts; a++) {
      const statuses = await Promise.all(active.map((c) => c.status()));
      const step = Math.max(...statuses.map((s) => s.appliedStep));
      if (step < 0) throw new RangeError(`run ${JSON.stringify(this.run)} has no EMA yet`);
      try {
        const snaps = await Promise.all(active.map((c) => c.getEma({ step, deadlineMs: options.deadlineMs ?? 30_000 })));
        const tensors = new Map<string, Float32Array>();
        for (const t of this.tensors) {
          const k = this.assignment.owner.get(t.name)!;
          tensors.set(t.name, snaps[active.indexOf(this.clients[k])].tensors.get(t.name)!);
        }
        return { run: this.run, step, updates: Math.min(...snaps.map((s) => s.updates)), tensors };
      } catch (err) {
        lastErr = err;
        if ((err as { code?: number }).code !== grpc.status.ABORTED) throw err;
      }
    }
    throw lastErr;
  }

  status(): Promise<RunStatus[]> {
    return Promise.all(this.clients.map((c) => c.status()));
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
