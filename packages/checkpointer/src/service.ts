// gRPC CheckpointService (octet.checkpoint.v1) over a CheckpointStore.

import { ServiceError, clientStreaming, octet, serverStreaming, services, status, unary, type CallContext } from "@octet/proto";
import { type Tensor, checkDType, deserialize, tensorByteLength } from "@octet/numerics";
import { CheckpointError } from "./errors.js";
import { checkRunName, checkStep, checkTensorName } from "./names.js";
import type { CheckpointInfo, CheckpointStore, ListedCheckpoint } from "./store.js";

type Handlers = services.checkpoint.v1.CheckpointServiceHandlers;
const pb = octet.checkpoint.v1;

/**
 * CheckpointService's methods that change nothing: open without the bearer token when the server has one.
 * SaveCheckpoint, DeleteCheckpoint and ImportSafetensors need it.
 */
export const CHECKPOINT_READ_ONLY_METHODS = ["WaitDurable", "ListCheckpoints", "LoadCheckpoint"] as const;

export interface CheckpointServiceOptions {
  /** The server's message size limit; data chunks of LoadCheckpoint stay below it. */
  maxMessageBytes: number;
}

/** Room left in a message for everything but the data bytes (name up to 512 bytes, dtype, shape, framing). */
const MESSAGE_OVERHEAD = 4096;

/** CheckpointError → ServiceError with the matching gRPC status; anything else unchanged. */
export function toServiceError(e: unknown): unknown {
  if (e instanceof CheckpointError) return new ServiceError(status[e.code], e.message);
  return e;
}

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toServiceError(e);
  }
}

function infoToProto(i: ListedCheckpoint | CheckpointInfo): octet.checkpoint.v1.ICheckpointInfo {
  return {
    run: i.run,
    step: i.step,
    createdAt: i.createdAt ?? "",
    totalBytes: i.totalBytes ?? 0,
    shards: i.shards ?? 0,
    tensors: i.tensors ?? 0,
    metadata: i.metadata ?? {},
    corrupt: (i as ListedCheckpoint).corrupt ?? "",
  };
}

function metadataOf(m: { [k: string]: string } | null | undefined): Record<string, string> {
  return { ...(m ?? {}) };
}

function checkAborted(ctx: CallContext): void {
  if (ctx.signal.aborted) throw ctx.signal.reason;
}

export function checkpointHandlers(store: CheckpointStore, opts: CheckpointServiceOptions): Handlers {
  const maxChunk = Math.max(1, opts.maxMessageBytes - MESSAGE_OVERHEAD);

  const saveCheckpoint = clientStreaming<octet.checkpoint.v1.SaveRequest, octet.checkpoint.v1.ISaveReply>((reqs, ctx) =>
    mapped(async () => {
      const releases: (() => void)[] = [];
      try {
        let header: octet.checkpoint.v1.ISaveHeader | undefined;
        const tensors: Tensor[] = [];
        const seen = new Set<string>();
        let cur: { t: Tensor; filled: number } | undefined;
        let total = 0;
        const finishCurrent = (next: string) => {
          if (cur && cur.filled !== cur.t.data.byteLength) {
            throw new RangeError(`tensor ${JSON.stringify(cur.t.name)}: got ${cur.filled} of ${cur.t.data.byteLength} bytes before ${next}`);
          }
        };
        for await (const req of reqs) {
          checkAborted(ctx);
          if (req.header) {
            if (header) throw new RangeError("a second header in one SaveCheckpoint stream");
            checkRunName(req.header.run);
            checkStep(req.header.step);
            header = req.header;
            continue;
          }
          if (!header) throw new RangeError("the first message of SaveCheckpoint must be the header");
          const c = req.chunk;
          if (!c) throw new RangeError("a SaveCheckpoint message with neither header nor chunk");
          if (c.name && c.name !== cur?.t.name) {
            finishCurrent(`tensor ${JSON.stringify(c.name)} started`);
            checkTensorName(c.name);
            if (seen.has(c.name)) throw new RangeError(`tensor ${JSON.stringify(c.name)} sent twice (a tensor's chunks must be consecutive)`);
            seen.add(c.name);
            const where = `tensor ${JSON.stringify(c.name)}`;
            const dtype = checkDType(c.dtype, where);
            const shape = (c.shape ?? []).map(Number);
            const bytes = tensorByteLength(dtype, shape, `${where} shape`);
            if (total + bytes > store.maxCheckpointBytes) {
              throw new CheckpointError("RESOURCE_EXHAUSTED", `checkpoint exceeds the ${store.maxCheckpointBytes}-byte limit at ${where}`);
            }
            releases.push(store.reserve(bytes));
            total += bytes;
            cur = { t: { name: c.name, dtype, shape, data: Buffer.allocUnsafe(bytes) }, filled: 0 };
            tensors.push(cur.t);
          } else if (!cur) {
            throw new RangeError("a tensor's first chunk must carry its name, dtype and shape");
          } else if ((c.dtype && c.dtype !== cur.t.dtype) || ((c.shape?.length ?? 0) > 0 && c.shape!.join() !== cur.t.shape.join())) {
            throw new RangeError(`tensor ${JSON.stringify(cur.t.name)}: dtype or shape changed between chunks`);
          }
          const data = c.data ?? new Uint8Array(0);
          if (cur.filled + data.byteLength > cur.t.data.byteLength) {
            throw new RangeError(`tensor ${JSON.stringify(cur.t.name)}: more than the ${cur.t.data.byteLength} bytes its dtype and shape need`);
          }
          cur.t.data.set(data, cur.filled);
          cur.filled += data.byteLength;
        }
        if (!header) throw new RangeError("SaveCheckpoint stream without a header");
        finishCurrent("the end of the stream");
        for (const r of releases.splice(0)) r(); // store.save reserves the same bytes again, synchronously
        const shardMax = Number(header.shardMaxBytes ?? 0);
        const h = store.save(header.run!, Number(header.step), tensors, metadataOf(header.metadata), {
          copy: false,
          ...(shardMax > 0 ? { shardMaxBytes: shardMax } : {}),
        });
        await h.staged;
        ctx.logger.info({ run: h.run, step: h.step, saveId: h.id, bytes: total, tensors: tensors.length }, "checkpoint staged");
        return { saveId: h.id, run: h.run, step: h.step, totalBytes: total, tensors: tensors.length };
      } finally {
        for (const r of releases) r();
      }
    }),
  );

  const waitDurable = unary<octet.checkpoint.v1.WaitDurableRequest, octet.checkpoint.v1.ISaveStatus>((req) =>
    mapped(async () => {
      const info = req.saveId ? await store.waitDurable(req.saveId) : await store.waitDurableStep(req.run, Number(req.step));
      return { saveId: req.saveId, state: pb.SaveState.SAVE_STATE_DURABLE, checkpoint: infoToProto(info) };
    }),
  );

  const listCheckpoints = unary<octet.checkpoint.v1.ListCheckpointsRequest, octet.checkpoint.v1.IListCheckpointsReply>((req) =>
    mapped(async () => ({ checkpoints: (await store.list(req.run || undefined)).map(infoToProto) })),
  );

  const loadCheckpoint = serverStreaming<octet.checkpoint.v1.LoadCheckpointRequest, octet.checkpoint.v1.ILoadReply>((req, ctx, write) =>
    mapped(async () => {
      checkRunName(req.run);
      const names = req.names.length > 0 ? [...req.names] : undefined;
      const chunk = req.chunkBytes > 0 ? Math.min(req.chunkBytes, maxChunk) : maxChunk;
      const { reader, skipped } = req.latest
        ? await store.openLatestValid(req.run, { names })
        : { reader: await store.open(req.run, checkStep(Number(req.step)), { names }), skipped: [] };
      try {
        await write({
          header: {
            checkpoint: infoToProto(reader.info),
            tensors: reader.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes })),
            skipped: skipped.map((s) => ({ step: s.step, object: s.object, reason: s.reason })),
          },
        });
        for (const t of reader.tensors) {
          let first = true;
          if (t.bytes === 0) {
            await write({ chunk: { name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(0) } });
            continue;
          }
          for await (const data of reader.readTensor(t, chunk)) {
            checkAborted(ctx);
            await write({ chunk: first ? { name: t.name, dtype: t.dtype, shape: t.shape, data } : { name: t.name, data } });
            first = false;
          }
        }
      } finally {
        await reader.close();
      }
    }),
  );

  const deleteCheckpoint = unary<octet.checkpoint.v1.DeleteCheckpointRequest, octet.checkpoint.v1.IDeleteCheckpointReply>((req) =>
    mapped(async () => {
      await store.delete(checkRunName(req.run), checkStep(Number(req.step)));
      return {};
    }),
  );

  const importSafetensors = clientStreaming<octet.checkpoint.v1.ImportRequest, octet.checkpoint.v1.ISaveReply>((reqs, ctx) =>
    mapped(async () => {
      const releases: (() => void)[] = [];
      try {
        let header: octet.checkpoint.v1.IImportHeader | undefined;
        const parts: Uint8Array[] = [];
        let size = 0;
        for await (const req of reqs) {
          checkAborted(ctx);
          if (req.header) {
            if (header) throw new RangeError("a second header in one ImportSafetensors stream");
            checkRunName(req.header.run);
            checkStep(req.header.step);
            header = req.header;
            continue;
          }
          if (!header) throw new RangeError("the first message of ImportSafetensors must be the header");
          const d = req.data ?? new Uint8Array(0);
          size += d.byteLength;
          if (size > store.maxCheckpointBytes + 100_000_008) {
            throw new CheckpointError("RESOURCE_EXHAUSTED", `file exceeds the ${store.maxCheckpointBytes}-byte checkpoint limit`);
          }
          releases.push(store.reserve(d.byteLength));
          parts.push(d);
        }
        if (!header) throw new RangeError("ImportSafetensors stream without a header");
        const file = Buffer.concat(parts);
        parts.length = 0;
        const { tensors, metadata: fileMeta } = deserialize(file);
        const meta = metadataOf(header.metadata);
        if (fileMeta !== undefined && !("safetensors.metadata" in meta)) meta["safetensors.metadata"] = JSON.stringify(fileMeta);
        for (const r of releases.splice(0)) r();
        const h = store.save(header.run!, Number(header.step), tensors, meta, { copy: false });
        await h.staged;
        const total = tensors.reduce((n, t) => n + t.data.byteLength, 0);
        return { saveId: h.id, run: h.run, step: h.step, totalBytes: total, tensors: tensors.length };
      } finally {
        for (const r of releases) r();
      }
    }),
  );

  return { saveCheckpoint, waitDurable, listCheckpoints, loadCheckpoint, deleteCheckpoint, importSafetensors };
}
