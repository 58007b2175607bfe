// CheckpointStore: the library. Saves are staged in memory, then written (shards + manifest into a staging area,
// fsynced, published by one atomic commit) in the background, one run's saves in step order, different runs in
// parallel. Loads verify SHA-256 checksums before any tensor is returned.

import { randomUUID } from "node:crypto";
import { totalmem } from "node:os";
import { readFile, stat } from "node:fs/promises";
import { DTYPE_SIZES, type Tensor, type TensorSpec, checkDType, deserialize, encodeHeader, parseHeaderJson, readHeaderLength, tensorByteLength } from "@octet/numerics";
import { CheckpointError, CorruptCheckpointError, fsError } from "./errors.js";
import { HashingWriter, IO_CHUNK_BYTES, hashObject, readAllHashed, readFully } from "./io.js";
import { MANIFEST_FORMAT, MANIFEST_OBJECT, type Manifest, type ManifestTensor, decodeManifest, encodeManifest } from "./manifest.js";
import { checkRunName, checkStep, checkTensorName, shardFileName } from "./names.js";
import { type CheckpointStorage, type ObjectReader, LocalStorage } from "./storage.js";

export interface RetentionPolicy {
  /** Keep the newest N checkpoints of each run (0: keep all; retention off). */
  keepLast: number;
  /** Also keep every checkpoint whose step is a multiple of K (0: none). */
  keepEvery: number;
}

export interface CheckpointStoreOptions {
  /** Directory for LocalStorage; ignored when `storage` is given. */
  dataDir?: string;
  storage?: CheckpointStorage;
  retention?: Partial<RetentionPolicy>;
  /** Shards are filled with whole tensors up to this size (a larger tensor gets a shard of its own). Default 1 GiB. */
  shardMaxBytes?: number;
  /** Total bytes held in memory by saves not yet durable. Default: half the machine's memory. */
  maxStagedBytes?: number;
  /** Largest checkpoint accepted. Default: maxStagedBytes. */
  maxCheckpointBytes?: number;
  /** Refuse a save up front when the storage reports less free space than it needs. Default true. */
  checkFreeSpace?: boolean;
  logger?: Pick<Console, "info" | "warn" | "error">;
}

export interface SaveOptions {
  /** Copy the tensors' bytes while staging (default true), so the caller may reuse its buffers at once. */
  copy?: boolean;
  shardMaxBytes?: number;
}

export interface CheckpointInfo {
  run: string;
  step: number;
  createdAt: string;
  totalBytes: number;
  shards: number;
  tensors: number;
  metadata: Record<string, string>;
}

export type SaveState = "staged" | "writing" | "durable" | "failed";

export interface SaveHandle {
  id: string;
  run: string;
  step: number;
  /** Resolves once the data is held by the store (the caller may move on); rejects if the save is refused. */
  staged: Promise<void>;
  /** Resolves once the checkpoint is published and on stable storage. */
  durable: Promise<CheckpointInfo>;
}

export interface SaveStatus {
  id: string;
  run: string;
  step: number;
  state: SaveState;
  error?: Error;
  info?: CheckpointInfo;
}

export interface ListedCheckpoint extends Partial<CheckpointInfo> {
  run: string;
  step: number;
  /** Set when the manifest cannot be read or verified (shards are checked by load/verify only). */
  corrupt?: string;
}

export interface LoadOptions {
  /** Only these tensors (NOT_FOUND for a name not in the checkpoint). Default: all. */
  names?: string[];
}

export interface LoadedCheckpoint {
  info: CheckpointInfo;
  manifest: Manifest;
  metadata: Record<string, string>;
  /** In manifest order; data are views into the verified shard buffers. */
  tensors: Tensor[];
}

export interface CorruptionReport {
  run: string;
  step: number;
  object: string;
  reason: string;
}

/** A verified checkpoint open for streaming reads. */
export interface CheckpointReader {
  info: CheckpointInfo;
  manifest: Manifest;
  /** Selected tensors with their shard, in manifest order. */
  tensors: (ManifestTensor & { shard: string })[];
  /** Reads one tensor's bytes in pieces of at most `chunkBytes`. */
  readTensor(t: ManifestTensor & { shard: string }, chunkBytes?: number): AsyncIterable<Buffer>;
  close(): Promise<void>;
}

interface SaveRecord extends SaveStatus {
  durable: Promise<CheckpointInfo>;
  bytes: number;
}

interface RunQueue {
  tail: Promise<unknown>;
  pending: Map<number, SaveRecord>;
}

const DEFAULT_SHARD_MAX = 1024 ** 3;
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
const FINISHED_HISTORY = 1024;

function infoOf(m: Manifest): CheckpointInfo {
  return {
    run: m.run,
    step: m.step,
    createdAt: m.createdAt,
    totalBytes: m.totalBytes,
    shards: m.shards.length,
    tensors: m.shards.reduce((n, s) => n + s.tensors.length, 0),
    metadata: m.metadata,
  };
}

function checkMetadata(metadata: unknown): Record<string, string> {
  if (metadata === undefined) return {};
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new TypeError("metadata must be an object of string values");
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new TypeError(`metadata[${JSON.stringify(k)}] must be a string (JSON-encode structured values)`);
  }
  return { ...(metadata as Record<string, string>) };
}

/** Greedy shard plan: tensors in order, a new shard when the next tensor would exceed `max`. */
export function planShards<T extends { data: Uint8Array }>(tensors: readonly T[], max: number): T[][] {
  const shards: T[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const cur = shards[shards.length - 1];
    if (cur.length > 0 && size + t.data.byteLength > max) {
      shards.push([t]);
      size = t.data.byteLength;
    } else {
      cur.push(t);
      size += t.data.byteLength;
    }
  }
  return shards;
}

export class CheckpointStore {
  readonly storage: CheckpointStorage;
  readonly retention: RetentionPolicy;
  readonly shardMaxBytes: number;
  readonly maxStagedBytes: number;
  readonly maxCheckpointBytes: number;
  private readonly checkFreeSpace: boolean;
  private readonly log: Pick<Console, "info" | "warn" | "error">;
  private readonly runs = new Map<string, RunQueue>();
  private readonly saves = new Map<string, SaveRecord>();
  private stagedBytes = 0;
  private closed = false;

  private constructor(opts: CheckpointStoreOptions) {
    if (!opts.storage && !opts.dataDir) throw new TypeError("CheckpointStore needs a dataDir or a storage");
    this.storage = opts.storage ?? new LocalStorage(opts.dataDir!);
    const keepLast = opts.retention?.keepLast ?? 0;
    const keepEvery = opts.retention?.keepEvery ?? 0;
    for (const [k, v] of [["keepLast", keepLast], ["keepEvery", keepEvery]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`retention.${k} must be a non-negative integer`);
    }
    this.retention = { keepLast, keepEvery };
    this.shardMaxBytes = opts.shardMaxBytes ?? DEFAULT_SHARD_MAX;
    this.maxStagedBytes = opts.maxStagedBytes ?? Math.floor(totalmem() / 2);
    this.maxCheckpointBytes = opts.maxCheckpointBytes ?? this.maxStagedBytes;
    for (const [k, v] of [["shardMaxBytes", this.shardMaxBytes], ["maxStagedBytes", this.maxStagedBytes], ["maxCheckpointBytes", this.maxCheckpointBytes]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${k} must be a positive integer`);
    }
    this.checkFreeSpace = opts.checkFreeSpace ?? true;
    this.log = opts.logger ?? { info: () => undefined, warn: () => undefined, error: () => undefined };
  }

  /** Opens a store: creates the data directory and removes staging areas left by a crash. */
  static async open(opts: CheckpointStoreOptions): Promise<CheckpointStore> {
    const store = new CheckpointStore(opts);
    const { removedStaging } = await store.storage.init();
    if (removedStaging.length > 0) store.log.warn(`removed ${removedStaging.length} stale staging area(s): ${removedStaging.join(", ")}`);
    return store;
  }

  /** Bytes currently held in memory by saves that are not yet durable. */
  get pendingBytes(): number {
    return this.stagedBytes;
  }

  /** Reserves memory for data being received (the service calls this per tensor); returns the release function. */
  reserve(bytes: number): () => void {
    if (this.stagedBytes + bytes > this.maxStagedBytes) {
      throw new CheckpointError(
        "RESOURCE_EXHAUSTED",
        `staging ${bytes} more bytes would exceed the ${this.maxStagedBytes}-byte limit on data held for pending saves (${this.stagedBytes} held)`,
      );
    }
    this.stagedBytes += bytes;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.stagedBytes -= bytes;
      }
    };
  }

  private queue(run: string): RunQueue {
    let q = this.runs.get(run);
    if (!q) {
      q = { tail: Promise.resolve(), pending: new Map() };
      this.runs.set(run, q);
    }
    return q;
  }

  /** Runs `job` after every earlier job of the run. */
  private enqueue<T>(run: string, job: () => Promise<T>): Promise<T> {
    const q = this.queue(run);
    const p = q.tail.then(job, job);
    q.tail = p.catch(() => undefined);
    return p;
  }

  /**
   * Saves tensors as checkpoint (run, step). Throws synchronously (TypeError/RangeError) on invalid input and
   * (CheckpointError) when the save is refused; otherwise returns at once with `staged` and `durable` promises.
   */
  save(run: string, step: number, tensors: readonly Tensor[], metadata?: Record<string, string>, opts: SaveOptions = {}): SaveHandle {
    if (this.closed) throw new CheckpointError("UNAVAILABLE", "store is closed");
    checkRunName(run);
    checkStep(step);
    const meta = checkMetadata(metadata);
    if (!Array.isArray(tensors)) throw new TypeError("tensors must be an array");
    const seen = new Set<string>();
    let total = 0;
    for (const t of tensors) {
      checkTensorName(t?.name);
      if (seen.has(t.name)) throw new RangeError(`duplicate tensor name ${JSON.stringify(t.name)}`);
      seen.add(t.name);
      const dtype = checkDType(t.dtype, `tensor ${JSON.stringify(t.name)}`);
      const bytes = tensorByteLength(dtype, t.shape, `tensor ${JSON.stringify(t.name)} shape`);
      if (!(t.data instanceof Uint8Array)) throw new TypeError(`tensor ${JSON.stringify(t.name)}: data must be a Uint8Array`);
      if (t.data.byteLength !== bytes) {
        throw new RangeError(`tensor ${JSON.stringify(t.name)}: ${t.data.byteLength} data bytes, but ${dtype}[${t.shape.join(", ")}] needs ${bytes}`);
      }
      total += bytes;
    }
    const shardMax = opts.shardMaxBytes ?? this.shardMaxBytes;
    if (!Number.isSafeInteger(shardMax) || shardMax <= 0) throw new RangeError("shardMaxBytes must be a positive integer");
    if (total > this.maxCheckpointBytes) {
      throw new CheckpointError("RESOURCE_EXHAUSTED", `checkpoint of ${total} bytes exceeds the ${this.maxCheckpointBytes}-byte limit`);
    }
    const q = this.queue(run);
    if (q.pending.has(step)) throw new CheckpointError("ALREADY_EXISTS", `a save of ${run}@${step} is already in progress`);
    const newest = Math.max(-1, ...q.pending.keys());
    if (step < newest) {
      throw new CheckpointError("FAILED_PRECONDITION", `saves of a run go in step order: ${run}@${step} arrived after ${run}@${newest}, still in progress`);
    }
    const release = this.reserve(total);
    let staged: Tensor[];
    try {
      staged = opts.copy === false ? tensors.map((t) => ({ ...t, shape: [...t.shape] })) : tensors.map((t) => ({ ...t, shape: [...t.shape], data: Buffer.from(t.data) }));
    } catch (e) {
      release();
      throw e;
    }
    const id = randomUUID();
    const rec: SaveRecord = { id, run, step, state: "staged", bytes: total, durable: undefined as unknown as Promise<CheckpointInfo> };
    q.pending.set(step, rec);
    this.saves.set(id, rec);

    // Staged = held in memory and not refused by a quick look at the storage.
    const precheck = (async () => {
      if (await this.storage.exists(run, step)) throw new CheckpointError("ALREADY_EXISTS", `checkpoint ${run}@${step} already exists`);
    })();
    const durable = this.enqueue(run, async () => {
      await precheck;
      rec.state = "writing";
      const manifest = await this.write(run, step, staged, meta, shardMax, total);
      return infoOf(manifest);
    }).then(
      (info) => {
        rec.state = "durable";
        rec.info = info;
        return info;
      },
      (e: unknown) => {
        rec.state = "failed";
        rec.error = e as Error;
        this.log.error(`save ${run}@${step} failed: ${(e as Error).message}`);
        throw e;
      },
    ).finally(() => {
      release();
      staged.length = 0;
      q.pending.delete(step);
      this.trimHistory();
      if (rec.state === "durable") void this.enqueue(run, () => this.applyRetention(run)).catch((e) => this.log.warn(`retention of ${run}: ${(e as Error).message}`));
    });
    rec.durable = durable;
    durable.catch(() => undefined);
    precheck.catch(() => undefined);
    return { id, run, step, staged: precheck, durable };
  }

  private trimHistory(): void {
    if (this.saves.size <= FINISHED_HISTORY) return;
    for (const [id, r] of this.saves) {
      if (this.saves.size <= FINISHED_HISTORY) break;
      if (r.state === "durable" || r.state === "failed") this.saves.delete(id);
    }
  }

  private async write(run: string, step: number, tensors: Tensor[], metadata: Record<string, string>, shardMax: number, total: number): Promise<Manifest> {
    if (this.checkFreeSpace) {
      const free = await this.storage.freeBytes();
      const need = total + 64 * 1024 + tensors.length * 256; // data + headers and manifest, roughly
      if (free !== undefined && free < need) {
        throw new CheckpointError("RESOURCE_EXHAUSTED", `not enough space for ${run}@${step}: needs about ${need} bytes, ${free} free`);
      }
    }
    const plan = planShards(tensors, shardMax);
    const area = await this.storage.stage(run, step);
    try {
      const shards: Manifest["shards"] = [];
      for (let i = 0; i < plan.length; i++) {
        const file = shardFileName(i, plan.length);
        // Widest dtypes first (stable otherwise), as Hugging Face's writer does: every tensor's data is then
        // aligned to its element size in the file (the buffer starts 8-byte aligned), which zero-copy readers need.
        const ordered = [...plan[i]].sort((a, b) => DTYPE_SIZES[b.dtype] - DTYPE_SIZES[a.dtype]);
        const { header, entries } = encodeHeader(ordered, { format: "pt" });
        const w = new HashingWriter(await area.create(file));
        await w.write(header);
        for (const t of ordered) await w.write(t.data);
        const { bytes, sha256 } = await w.finish();
        shards.push({
          file,
          bytes,
          sha256,
          tensors: entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, offset: header.length + e.begin, bytes: e.end - e.begin })),
        });
      }
      const manifest = encodeManifest({
        format: MANIFEST_FORMAT,
        run,
        step,
        createdAt: new Date().toISOString(),
        metadata,
        totalBytes: total,
        shards,
      });
      const sink = await area.create(MANIFEST_OBJECT);
      await sink.write(manifest);
      await sink.close();
      await area.commit();
      return decodeManifest(manifest);
    } catch (e) {
      await area.abort();
      throw fsError(e, `writing ${run}@${step}`);
    }
  }

  /** Status of a save by id (NOT_FOUND once forgotten: the last 1024 finished saves are remembered). */
  status(id: string): SaveStatus {
    const r = this.saves.get(id);
    if (!r) throw new CheckpointError("NOT_FOUND", `unknown save id ${JSON.stringify(id)}`);
    const { durable: _d, bytes: _b, ...s } = r;
    return s;
  }

  /** Waits until the save is durable; rejects with its error if it failed. */
  async waitDurable(id: string): Promise<CheckpointInfo> {
    const r = this.saves.get(id);
    if (!r) throw new CheckpointError("NOT_FOUND", `unknown save id ${JSON.stringify(id)}`);
    return r.durable;
  }

  /** Waits for a pending save of (run, step) if any; otherwise reports the stored checkpoint (NOT_FOUND if none). */
  async waitDurableStep(run: string, step: number): Promise<CheckpointInfo> {
    checkRunName(run);
    checkStep(step);
    const r = this.runs.get(run)?.pending.get(step);
    if (r) return r.durable;
    return infoOf(await this.readManifest(run, step));
  }

  /** Waits for every pending save (of one run, or all). */
  async flush(run?: string): Promise<void> {
    const qs = run === undefined ? [...this.runs.values()] : [this.runs.get(run)].filter((q): q is RunQueue => !!q);
    await Promise.all(qs.map((q) => q.tail));
  }

  /** Refuses new saves and waits for pending ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  async readManifest(run: string, step: number): Promise<Manifest> {
    checkRunName(run);
    checkStep(step);
    let reader: ObjectReader;
    try {
      reader = await this.storage.openObject(run, step, MANIFEST_OBJECT);
    } catch (e) {
      if (e instanceof CheckpointError && e.code === "NOT_FOUND" && (await this.storage.exists(run, step))) {
        throw new CorruptCheckpointError(run, step, MANIFEST_OBJECT, "missing");
      }
      if (e instanceof CheckpointError && e.code === "NOT_FOUND") throw new CheckpointError("NOT_FOUND", `checkpoint ${run}@${step} not found`);
      throw e;
    }
    let bytes: Buffer;
    try {
      if (reader.size > MAX_MANIFEST_BYTES) throw new CorruptCheckpointError(run, step, MANIFEST_OBJECT, `${reader.size} bytes, above the limit`);
      bytes = Buffer.allocUnsafe(reader.size);
      await readFully(reader, bytes, 0);
    } finally {
      await reader.close();
    }
    let m: Manifest;
    try {
      m = decodeManifest(bytes);
    } catch (e) {
      throw new CorruptCheckpointError(run, step, MANIFEST_OBJECT, (e as Error).message);
    }
    if (m.run !== run || m.step !== step) throw new CorruptCheckpointError(run, step, MANIFEST_OBJECT, `describes ${m.run}@${m.step}`);
    return m;
  }

  async listRuns(): Promise<string[]> {
    return this.storage.listRuns();
  }

  /** Visible checkpoints of one run (or all runs), ascending by run then step. Manifests are verified. */
  async list(run?: string): Promise<ListedCheckpoint[]> {
    const runs = run === undefined ? await this.storage.listRuns() : [checkRunName(run)];
    const out: ListedCheckpoint[] = [];
    for (const r of runs) {
      for (const step of await this.storage.listSteps(r)) {
        try {
          out.push(infoOf(await this.readManifest(r, step)));
        } catch (e) {
          if (e instanceof CorruptCheckpointError) out.push({ run: r, step, corrupt: e.message });
          else if (!(e instanceof CheckpointError && e.code === "NOT_FOUND")) throw e; // deleted meanwhile: skip
        }
      }
    }
    return out;
  }

  private select(m: Manifest, names?: string[]): (ManifestTensor & { shard: string })[] {
    const all = m.shards.flatMap((s) => s.tensors.map((t) => ({ ...t, shard: s.file })));
    if (names === undefined) return all;
    const byName = new Map(all.map((t) => [t.name, t]));
    const sel: (ManifestTensor & { shard: string })[] = [];
    for (const n of new Set(names)) {
      if (typeof n !== "string") throw new TypeError("tensor names must be strings");
      const t = byName.get(n);
      if (!t) throw new CheckpointError("NOT_FOUND", `tensor ${JSON.stringify(n)} not in checkpoint ${m.run}@${m.step}`);
      sel.push(t);
    }
    return sel;
  }

  /** Checks a shard's safetensors header (the 8 + N bytes at its start) against the manifest. */
  private checkShardHeader(m: Manifest, shard: Manifest["shards"][number], head: Uint8Array): void {
    let h;
    try {
      const n = readHeaderLength(head, shard.bytes);
      if (head.length < 8 + n) throw new RangeError("truncated header");
      h = { ...parseHeaderJson(head.subarray(8, 8 + n), shard.bytes - 8 - n), dataStart: 8 + n };
    } catch (e) {
      throw new CorruptCheckpointError(m.run, m.step, shard.file, `bad safetensors header: ${(e as Error).message}`);
    }
    const ok =
      h.tensors.length === shard.tensors.length &&
      shard.tensors.every((t, i) => {
        const e = h.tensors[i];
        return e.name === t.name && e.dtype === t.dtype && e.shape.join() === t.shape.join() && h.dataStart + e.begin === t.offset && e.end - e.begin === t.bytes;
      });
    if (!ok) throw new CorruptCheckpointError(m.run, m.step, shard.file, "safetensors header does not match the manifest");
  }

  private async openShard(m: Manifest, shard: Manifest["shards"][number]): Promise<ObjectReader> {
    let reader: ObjectReader;
    try {
      reader = await this.storage.openObject(m.run, m.step, shard.file);
    } catch (e) {
      if (e instanceof CheckpointError && e.code === "NOT_FOUND") throw new CorruptCheckpointError(m.run, m.step, shard.file, "missing");
      throw e;
    }
    if (reader.size !== shard.bytes) {
      await reader.close();
      throw new CorruptCheckpointError(m.run, m.step, shard.file, `size ${reader.size} bytes, manifest says ${shard.bytes}`);
    }
    return reader;
  }

  /** Verifies the manifest and the SHA-256 of the shards holding `names` (all shards by default). */
  async verify(run: string, step: number, opts: LoadOptions = {}): Promise<Manifest> {
    const m = await this.readManifest(run, step);
    const needed = new Set(this.select(m, opts.names).map((t) => t.shard));
    for (const shard of m.shards) {
      if (opts.names !== undefined && !needed.has(shard.file)) continue;
      const reader = await this.openShard(m, shard);
      try {
        const sha = await hashObject(reader);
        if (sha !== shard.sha256) throw new CorruptCheckpointError(run, step, shard.file, `SHA-256 mismatch (stored ${shard.sha256.slice(0, 16)}..., read ${sha.slice(0, 16)}...)`);
        const head = Buffer.alloc(Math.min(reader.size, shard.tensors.length > 0 ? shard.tensors[0].offset : reader.size));
        await readFully(reader, head, 0);
        this.checkShardHeader(m, shard, head);
      } catch (e) {
        if (e instanceof CorruptCheckpointError) throw e;
        throw fsError(e, `reading ${shard.file} of ${run}@${step}`);
      } finally {
        await reader.close();
      }
    }
    return m;
  }

  /** Loads a checkpoint into memory, verifying every shard it reads (one pass: read and hash together). */
  async load(run: string, step: number, opts: LoadOptions = {}): Promise<LoadedCheckpoint> {
    const m = await this.readManifest(run, step);
    const sel = this.select(m, opts.names);
    const needed = new Set(opts.names === undefined ? m.shards.map((s) => s.file) : sel.map((t) => t.shard));
    const data = new Map<string, Buffer>();
    for (const shard of m.shards) {
      if (!needed.has(shard.file)) continue;
      const reader = await this.openShard(m, shard);
      try {
        const { data: buf, sha256 } = await readAllHashed(reader);
        if (sha256 !== shard.sha256) throw new CorruptCheckpointError(run, step, shard.file, `SHA-256 mismatch (stored ${shard.sha256.slice(0, 16)}..., read ${sha256.slice(0, 16)}...)`);
        data.set(shard.file, buf);
      } catch (e) {
        if (e instanceof CorruptCheckpointError) throw e;
        throw fsError(e, `reading ${shard.file} of ${run}@${step}`);
      } finally {
        await reader.close();
      }
    }
    for (const shard of m.shards) {
      const buf = data.get(shard.file);
      if (buf) this.checkShardHeader(m, shard, buf);
    }
    const tensors = sel.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: data.get(t.shard)!.subarray(t.offset, t.offset + t.bytes) }));
    return { info: infoOf(m), manifest: m, metadata: m.metadata, tensors };
  }

  /** Newest checkpoint of the run that verifies; corrupted newer ones are skipped and reported. */
  async loadLatestValid(run: string, opts: LoadOptions = {}): Promise<LoadedCheckpoint & { skipped: CorruptionReport[] }> {
    checkRunName(run);
    const skipped: CorruptionReport[] = [];
    const steps = await this.storage.listSteps(run);
    for (let i = steps.length - 1; i >= 0; i--) {
      try {
        return { ...(await this.load(run, steps[i], opts)), skipped };
      } catch (e) {
        if (!(e instanceof CorruptCheckpointError)) throw e;
        this.log.warn(e.message);
        skipped.push({ run, step: e.step, object: e.object, reason: e.reason });
      }
    }
    throw new CheckpointError("NOT_FOUND", `no valid checkpoint of run ${run}${skipped.length ? ` (${skipped.length} corrupted)` : ""}`);
  }

  /** Step of the newest checkpoint that verifies, with the corrupted newer ones. */
  async latestValidStep(run: string, opts: LoadOptions = {}): Promise<{ step: number; skipped: CorruptionReport[] }> {
    checkRunName(run);
    const skipped: CorruptionReport[] = [];
    const steps = await this.storage.listSteps(run);
    for (let i = steps.length - 1; i >= 0; i--) {
      try {
        await this.verify(run, steps[i], opts);
        return { step: steps[i], skipped };
      } catch (e) {
        if (!(e instanceof CorruptCheckpointError)) throw e;
        skipped.push({ run, step: e.step, object: e.object, reason: e.reason });
      }
    }
    throw new CheckpointError("NOT_FOUND", `no valid checkpoint of run ${run}${skipped.length ? ` (${skipped.length} corrupted)` : ""}`);
  }

  /** Verifies (all selected shards first), then streams tensors from storage without holding whole shards. */
  async open(run: string, step: number, opts: LoadOptions = {}): Promise<CheckpointReader> {
    const m = await this.verify(run, step, opts);
    const tensors = this.select(m, opts.names);
    const readers = new Map<string, ObjectReader>();
    const shardOf = new Map(m.shards.map((s) => [s.file, s]));
    const getReader = async (file: string) => {
      let r = readers.get(file);
      if (!r) {
        r = await this.openShard(m, shardOf.get(file)!);
        readers.set(file, r);
      }
      return r;
    };
    return {
      info: infoOf(m),
      manifest: m,
      tensors,
      readTensor: async function* (t, chunkBytes = 4 * 1024 * 1024) {
        const r = await getReader(t.shard);
        for (let off = 0; off < t.bytes; off += chunkBytes) {
          const buf = Buffer.allocUnsafe(Math.min(chunkBytes, t.bytes - off));
          await readFully(r, buf, t.offset + off);
          yield buf;
        }
      },
      close: async () => {
        await Promise.allSettled([...readers.values()].map((r) => r.close()));
      },
    };
  }

  /** Opens the newest checkpoint of the run that verifies; corrupted newer ones are skipped and reported. */
  async openLatestValid(run: string, opts: LoadOptions = {}): Promise<{ reader: CheckpointReader; skipped: CorruptionReport[] }> {
    checkRunName(run);
    const skipped: CorruptionReport[] = [];
    const steps = await this.storage.listSteps(run);
    for (let i = steps.length - 1; i >= 0; i--) {
      try {
        return { reader: await this.open(run, steps[i], opts), skipped };
      } catch (e) {
        if (!(e instanceof CorruptCheckpointError)) throw e;
        this.log.warn(e.message);
        skipped.push({ run, step: e.step, object: e.object, reason: e.reason });
      }
    }
    throw new CheckpointError("NOT_FOUND", `no valid checkpoint of run ${run}${skipped.length ? ` (${skipped.length} corrupted)` : ""}`);
  }

  /** Deletes a checkpoint (after the run's pending saves). */
  async delete(run: string, step: number): Promise<void> {
    checkRunName(run);
    checkStep(step);
    await this.enqueue(run, () => this.storage.remove(run, step));
  }

  /** Applies the retention policy to a run now; returns the deleted steps. */
  async applyRetention(run: string, policy: RetentionPolicy = this.retention): Promise<number[]> {
    if (policy.keepLast <= 0) return [];
    const steps = await this.storage.listSteps(run);
    const keep = new Set(steps.slice(-policy.keepLast));
    const removed: number[] = [];
    for (const s of steps) {
      if (keep.has(s) || (policy.keepEvery > 0 && s % policy.keepEvery === 0)) continue;
      await this.storage.remove(run, s);
      removed.push(s);
    }
    if (removed.length) this.log.info(`retention removed ${run} steps ${removed.join(", ")}`);
    return removed;
  }

  /**
   * Imports a safetensors file (a path or its bytes) as checkpoint (run, step). The file is validated fully;
   * its own __metadata__ is kept as JSON under "safetensors.metadata".
   */
  async importSafetensors(run: string, step: number, source: string | Uint8Array, metadata?: Record<string, string>): Promise<SaveHandle> {
    checkRunName(run);
    checkStep(step);
    const meta = checkMetadata(metadata);
    let bytes: Uint8Array;
    if (typeof source === "string") {
      try {
        const { size } = await stat(source);
        if (size > this.maxCheckpointBytes) throw new CheckpointError("RESOURCE_EXHAUSTED", `file of ${size} bytes exceeds the ${this.maxCheckpointBytes}-byte limit`);
        bytes = await readFile(source);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CheckpointError("NOT_FOUND", `no such file ${source}`);
        throw fsError(e, `reading ${source}`);
      }
    } else bytes = source;
    const { tensors, metadata: fileMeta } = deserialize(bytes);
    if (fileMeta !== undefined && !("safetensors.metadata" in meta)) meta["safetensors.metadata"] = JSON.stringify(fileMeta);
    return this.save(run, step, tensors, meta, { copy: typeof source !== "string" });
  }

}

export type { TensorSpec };
export { IO_CHUNK_BYTES };
