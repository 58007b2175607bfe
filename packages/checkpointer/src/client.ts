// Trainer-side client of CheckpointService.

import { DEFAULT_MAX_MESSAGE_BYTES, callUnary, createClient, octet, services, waitForReady, type ClientOptions, type Metadata } from "@octet/proto";
import type * as grpc from "@grpc/grpc-js";
import { type Tensor, checkDType } from "@octet/numerics";
import type { CheckpointInfo, CorruptionReport, ListedCheckpoint } from "./store.js";

type Client = services.checkpoint.v1.CheckpointServiceClient;

export interface CheckpointClientOptions extends ClientOptions {
  /** Largest data chunk per message; default: the message size limit less 4 KiB. */
  chunkBytes?: number;
}

export interface SaveReceipt {
  saveId: string;
  run: string;
  step: number;
  totalBytes: number;
  tensors: number;
}

export interface RemoteSave {
  /** Resolves once the server holds the data: the caller may modify its tensors again. */
  staged: Promise<SaveReceipt>;
  /** Resolves once the checkpoint is published and durable. */
  durable: Promise<CheckpointInfo>;
}

export interface RemoteCheckpoint {
  info: CheckpointInfo;
  metadata: Record<string, string>;
  tensors: Tensor[];
  /** Newer checkpoints skipped as corrupted (loadLatestValid). */
  skipped: CorruptionReport[];
}

function infoFromProto(i: octet.checkpoint.v1.ICheckpointInfo): ListedCheckpoint & Partial<CheckpointInfo> {
  const out: ListedCheckpoint = {
    run: i.run ?? "",
    step: Number(i.step ?? 0),
  };
  if (i.corrupt) return { ...out, corrupt: i.corrupt };
  return {
    ...out,
    createdAt: i.createdAt ?? "",
    totalBytes: Number(i.totalBytes ?? 0),
    shards: i.shards ?? 0,
    tensors: i.tensors ?? 0,
    metadata: { ...(i.metadata ?? {}) },
  };
}

/** Writes to a client stream honouring back-pressure. */
function writeMsg<T>(call: grpc.ClientWritableStream<T>, msg: T): Promise<void> {
  return new Promise((resolve) => {
    if (call.write(msg)) resolve();
    else call.once("drain", () => resolve());
  });
}

export class CheckpointClient {
  readonly client: Client;
  private readonly chunkBytes: number;

  constructor(address: string, opts: CheckpointClientOptions = {}) {
    this.client = createClient(services.checkpoint.v1.CheckpointServiceClient, address, opts);
    const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.chunkBytes = opts.chunkBytes ?? Math.max(1, max - 4096);
  }

  waitForReady(deadlineMs = 10_000): Promise<void> {
    return waitForReady(this.client, deadlineMs);
  }

  close(): void {
    this.client.close();
  }

  /**
   * Streams a checkpoint to the server. `staged` resolves once the server holds it (do not modify the tensors'
   * bytes before that); `durable` once it is stored. Both reject with the grpc-js error (`code`, `details`).
   */
  save(run: string, step: number, tensors: readonly Tensor[], metadata: Record<string, string> = {}, opts: { shardMaxBytes?: number; metadata?: Metadata } = {}): RemoteSave {
    const staged = new Promise<SaveReceipt>((resolve, reject) => {
      const call = this.client.saveCheckpoint(...((opts.metadata ? [opts.metadata] : []) as []), (err: grpc.ServiceError | null, res?: octet.checkpoint.v1.SaveReply) => {
        if (err) reject(err);
        else resolve({ saveId: res!.saveId, run: res!.run, step: Number(res!.step), totalBytes: Number(res!.totalBytes), tensors: res!.tensors });
      });
      void (async () => {
        try {
          await writeMsg(call, { header: { run, step, metadata, shardMaxBytes: opts.shardMaxBytes ?? 0 } });
          for (const t of tensors) {
            checkDType(t.dtype, `tensor ${JSON.stringify(t.name)}`);
            const n = t.data.byteLength;
            let off = 0;
            do {
              const end = Math.min(n, off + this.chunkBytes);
              const data = t.data.subarray(off, end);
              await writeMsg(call, { chunk: off === 0 ? { name: t.name, dtype: t.dtype, shape: t.shape, data } : { name: t.name, data } });
              off = end;
            } while (off < n);
          }
          call.end();
        } catch (e) {
          call.cancel();
          reject(e);
        }
      })();
    });
    const durable = staged.then((r) => this.waitDurable(r.saveId));
    staged.catch(() => undefined);
    durable.catch(() => undefined);
    return { staged, durable };
  }

  async waitDurable(saveId: string, deadlineMs?: number): Promise<CheckpointInfo> {
    const res = await callUnary(this.client, "waitDurable", { saveId }, deadlineMs === undefined ? {} : { deadlineMs });
    return infoFromProto(res.checkpoint ?? {}) as CheckpointInfo;
  }

  async list(run?: string): Promise<ListedCheckpoint[]> {
    const res = await callUnary(this.client, "listCheckpoints", { run: run ?? "" });
    return res.checkpoints.map(infoFromProto);
  }

  async delete(run: string, step: number): Promise<void> {
    await callUnary(this.client, "deleteCheckpoint", { run, step });
  }

  /** Loads (verified by the server before anything is sent) a checkpoint, or some of its tensors. */
  load(run: string, step: number, opts: { names?: string[] } = {}): Promise<RemoteCheckpoint> {
    return this.doLoad({ run, step, names: opts.names ?? [] });
  }

  /** Loads the newest checkpoint of the run that verifies; `skipped` lists newer corrupted ones. */
  loadLatestValid(run: string, opts: { names?: string[] } = {}): Promise<RemoteCheckpoint> {
    return this.doLoad({ run, latest: true, names: opts.names ?? [] });
  }

  private async doLoad(req: octet.checkpoint.v1.ILoadCheckpointRequest): Promise<RemoteCheckpoint> {
    const call = this.client.loadCheckpoint(req);
    let header: octet.checkpoint.v1.ILoadHeader | undefined;
    const tensors: Tensor[] = [];
    let cur: { t: Tensor; filled: number } | undefined;
    let next = 0;
    for await (const msg of call as AsyncIterable<octet.checkpoint.v1.LoadReply>) {
      if (msg.header) {
        header = msg.header;
        continue;
      }
      const c = msg.chunk;
      if (!header || !c) throw new Error("LoadCheckpoint: unexpected message order");
      if (cur && c.name !== cur.t.name && cur.filled !== cur.t.data.byteLength) throw new Error(`LoadCheckpoint: tensor ${JSON.stringify(cur.t.name)} cut short`);
      if (!cur || c.name !== cur.t.name) {
        const spec = header.tensors![next++];
        if (!spec || spec.name !== c.name) throw new Error(`LoadCheckpoint: unexpected tensor ${JSON.stringify(c.name)}`);
        cur = { t: { name: spec.name!, dtype: checkDType(spec.dtype), shape: (spec.shape ?? []).map(Number), data: Buffer.allocUnsafe(Number(spec.bytes)) }, filled: 0 };
        tensors.push(cur.t);
      }
      const d = c.data ?? new Uint8Array(0);
      if (cur.filled + d.byteLength > cur.t.data.byteLength) throw new Error(`LoadCheckpoint: tensor ${JSON.stringify(cur.t.name)} longer than announced`);
      cur.t.data.set(d, cur.filled);
      cur.filled += d.byteLength;
    }
    if (!header) throw new Error("LoadCheckpoint: empty stream");
    if (tensors.length !== header.tensors!.length || (cur && cur.filled !== cur.t.data.byteLength)) throw new Error("LoadCheckpoint: stream ended early");
    const info = infoFromProto(header.checkpoint ?? {}) as CheckpointInfo;
    return {
      info,
      metadata: info.metadata,
      tensors,
      skipped: (header.skipped ?? []).map((s) => ({ run: info.run, step: Number(s.step), object: s.object ?? "", reason: s.reason ?? "" })),
    };
  }

  /** Uploads a safetensors file's bytes as checkpoint (run, step). */
  importSafetensors(run: string, step: number, file: Uint8Array, metadata: Record<string, string> = {}): RemoteSave {
    const staged = new Promise<SaveReceipt>((resolve, reject) => {
      const call = this.client.importSafetensors((err: grpc.ServiceError | null, res?: octet.checkpoint.v1.SaveReply) => {
        if (err) reject(err);
        else resolve({ saveId: res!.saveId, run: res!.run, step: Number(res!.step), totalBytes: Number(res!.totalBytes), tensors: res!.tensors });
      });
      void (async () => {
        await writeMsg(call, { header: { run, step, metadata } });
        for (let off = 0; off < file.byteLength; off += this.chunkBytes) {
          await writeMsg(call, { data: file.subarray(off, Math.min(file.byteLength, off + this.chunkBytes)) });
        }
        call.end();
      })();
    });
    const durable = staged.then((r) => this.waitDurable(r.saveId));
    staged.catch(() => undefined);
    durable.catch(() => undefined);
    return { staged, durable };
  }
}
