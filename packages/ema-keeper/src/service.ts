// The gRPC EmaService over an EmaKeeper.
import {
  OctetServer,
  ServiceError,
  clientStreaming,
  invalidArgument,
  octet,
  serverStreaming,
  services,
  status as grpcStatus,
  unary,
  type CallContext,
  type Logger,
  type ServiceOptions,
} from "@octet/proto";
import { EmaKeeper, metadataOf, type EmaKeeperOptions, type PushBuilder } from "./keeper.js";
import { errorCode, StaleStepError } from "./errors.js";
import { dtypeFromProto, runSpecFromProto, runSpecToProto, statusToProto } from "./convert.js";
import { numel } from "./assign.js";
import type { EmaState, ExportedTensor } from "./types.js";

type Handlers = services.ema.v1.EmaServiceHandlers;
const { EmaServiceDefinition, EmaServiceName } = services.ema.v1;
const PushStatus = octet.ema.v1.PushStatus;
const F32 = octet.common.v1.DType.DTYPE_F32;

export const DEFAULT_CHUNK_BYTES = 1 << 20;

/**
 * EmaService's methods that change nothing: open without the bearer token when the server has one.
 * RegisterRun, PushParameters, ImportEma and DropRun need it.
 */
export const EMA_READ_ONLY_METHODS = ["GetEma", "GetStatus", "ExportEma"] as const;

export interface EmaServiceOptions {
  /** Largest `data` per streamed message the server sends (GetEma/ExportEma), default 1 MiB. */
  chunkBytes?: number;
  /** The server's message limit; chunks are kept 4 KiB below it. */
  maxMessageBytes?: number;
}

const CODES: Record<string, grpcStatus> = {
  INVALID_ARGUMENT: grpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: grpcStatus.NOT_FOUND,
  ALREADY_EXISTS: grpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpcStatus.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: grpcStatus.RESOURCE_EXHAUSTED,
  ABORTED: grpcStatus.ABORTED,
};

/** Library errors → ServiceError with the matching status (the wrappers map plain RangeError/TypeError). */
async function mapped<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const code = errorCode(err);
    if (code !== undefined && !(err instanceof ServiceError)) throw new ServiceError(CODES[code], (err as Error).message);
    throw err;
  }
}

function untilAborted(ctx: CallContext): Promise<never> {
  return new Promise((_, reject) => {
    if (ctx.signal.aborted) reject(ctx.signal.reason);
    ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
  });
}

export function createEmaService(keeper: EmaKeeper, options: EmaServiceOptions = {}): Handlers {
  const limit = Math.max(1024, (options.maxMessageBytes ?? 4 * 1024 * 1024) - 4096);
  const defaultChunk = Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, limit);
  const chunkSize = (asked: number | null | undefined) => {
    const c = asked ? Math.min(asked, limit) : defaultChunk;
    return c - (c % 4) || 4;
  };

  async function streamEma(
    run: string,
    step: number | undefined,
    chunkBytes: number,
    ctx: CallContext,
    write: (m: octet.ema.v1.IEmaChunk) => Promise<void>,
  ): Promise<void> {
    if (step !== undefined) await Promise.race([keeper.whenApplied(run, step), untilAborted(ctx)]);
    await keeper.withEma(
      run,
      async (view) => {
        const m = metadataOf(view.spec, view.step, view.updates);
        await write({ header: { format: m.format, run, step: view.step, updates: view.updates, spec: runSpecToProto(view.spec) } });
        for (const t of view.spec.tensors) {
          const ema = view.tensors.get(t.name)!;
          const bytes = new Uint8Array(ema.buffer, ema.byteOffset, ema.byteLength);
          let offset = 0;
          do {
            const end = Math.min(bytes.byteLength, offset + chunkBytes);
            // slice(): the bytes are copied out while the read lock holds the EMA still.
            await write({ chunk: { name: t.name, dtype: F32, shape: offset === 0 ? t.shape : [], offset, data: bytes.slice(offset, end) } });
            offset = end;
          } while (offset < bytes.byteLength);
        }
      },
      { step },
    );
  }

  return {
    registerRun: unary(async (req: octet.ema.v1.RegisterRunRequest) =>
      mapped(() => {
        const { spec, created } = keeper.registerRun(runSpecFromProto(req.spec));
        return { created, spec: runSpecToProto(spec) };
      }),
    ),

    pushParameters: clientStreaming(async (reqs: AsyncIterable<octet.ema.v1.PushChunk>, ctx) =>
      mapped(async () => {
        let builder: PushBuilder | undefined;
        let run = "";
        try {
          for await (const m of reqs) {
            if (!builder) {
              if (!m.header) throw invalidArgument("the first message of a push must be its header {run, step}");
              run = m.header.run ?? "";
              const step = Number(m.header.step ?? 0);
              builder = keeper.beginPush(run, step);
              // Hold the stream (gRPC flow control pushes back on the client) while the applier is behind or
              // too many steps are incomplete.
              await Promise.race([keeper.admit(run, step), untilAborted(ctx)]);
              continue;
            }
            if (m.header) throw invalidArgument("a push has exactly one header, first");
            const c = m.chunk;
            if (!c) throw invalidArgument("a push message after the header must be a tensor chunk");
            builder.addChunk({
              name: c.name ?? "",
              dtype: dtypeFromProto(c.dtype, `tensor ${JSON.stringify(c.name)}`),
              shape: c.shape && c.shape.length > 0 ? c.shape.map(Number) : undefined,
              offset: Number(c.offset ?? 0),
              data: c.data ?? new Uint8Array(0),
            });
          }
          if (!builder) throw invalidArgument("empty push: no header");
          const staged = builder.finish();
          const out = keeper.commit(staged);
          const st = out.status === "staged" ? PushStatus.PUSH_STATUS_STAGED : out.status === "complete" ? PushStatus.PUSH_STATUS_COMPLETE : PushStatus.PUSH_STATUS_DUPLICATE;
          return { run: out.run, step: out.step, status: st, missingTensors: out.missingTensors };
        } catch (err) {
          if (run && !(err instanceof StaleStepError)) keeper.noteRejected(run);
          throw err;
        }
      }),
    ),

    getEma: serverStreaming(async (req: octet.ema.v1.GetEmaRequest, ctx, write) =>
      mapped(() => streamEma(req.run ?? "", req.step === null || req.step === undefined ? undefined : Number(req.step), chunkSize(req.chunkBytes), ctx, write)),
    ),

    getStatus: unary(async (req: octet.ema.v1.GetStatusRequest) => mapped(() => statusToProto(keeper.status(req.run ?? "")))),

    exportEma: serverStreaming(async (req: octet.ema.v1.ExportEmaRequest, ctx, write) =>
      mapped(() => streamEma(req.run ?? "", undefined, chunkSize(req.chunkBytes), ctx, write)),
    ),

    importEma: clientStreaming(async (reqs: AsyncIterable<octet.ema.v1.EmaChunk>) =>
      mapped(async () => {
        const state = await collectState(keeper, reqs);
        return keeper.importState(state);
      }),
    ),

    dropRun: unary(async (req: octet.ema.v1.DropRunRequest) => mapped(() => ({ dropped: keeper.dropRun(req.run ?? "") }))),
  };
}

/** Placeholder of a tensor none of whose bytes have arrived yet (the shape's bytes are allocated on the first chunk). */
const EMPTY = new Uint8Array(0);

/** Reads an EmaChunk stream (header, then F32 chunks in order) into an EmaState, validating as it goes. */
export async function collectState(
  keeper: EmaKeeper,
  msgs: AsyncIterable<octet.ema.v1.IEmaChunk>,
): Promise<EmaState> {
  let state: EmaState | undefined;
  const filled = new Map<string, number>();
  for await (const m of msgs) {
    if (!state) {
      const h = m.header;
      if (!h) throw new RangeError("the first message must be the header");
      const spec = keeper.normalizeRunSpec(runSpecFromProto(h.spec));
      if (h.run !== spec.run) throw new RangeError(`header run ${JSON.stringify(h.run)} differs from spec.run ${JSON.stringify(spec.run)}`);
      // Refused (RESOURCE_EXHAUSTED) before a byte is allocated when the run would not fit the keeper's memory.
      keeper.checkRoomFor(spec);
      const tensors = new Map<string, ExportedTensor>();
      for (const t of spec.tensors) {
        // Each tensor's buffer is allocated when its first chunk arrives, so memory grows with the bytes received.
        tensors.set(t.name, { dtype: "F32", shape: t.shape, data: EMPTY });
        filled.set(t.name, 0);
      }
      state = {
        metadata: { ...metadataOf(spec, Number(h.step ?? 0), Number(h.updates ?? 0)), format: (h.format ?? "") as "octet.ema.v1" },
        tensors,
      };
      continue;
    }
    const c = m.chunk;
    if (!c) throw new RangeError("messages after the header must be tensor chunks");
    const name = c.name ?? "";
    const t = state.tensors.get(name);
    if (!t) throw new RangeError(`unknown tensor ${JSON.stringify(name)}`);
    if (c.dtype !== undefined && c.dtype !== null && c.dtype !== 0 && c.dtype !== F32) throw new RangeError(`tensor ${JSON.stringify(name)}: EMA chunks must be DTYPE_F32`);
    const at = filled.get(name)!;
    if (Number(c.offset ?? 0) !== at) throw new RangeError(`tensor ${JSON.stringify(name)}: chunk offset ${c.offset} but ${at} bytes received so far`);
    const data = c.data ?? new Uint8Array(0);
    const bytes = numel(t.shape) * 4;
    if (at + data.byteLength > bytes) throw new RangeError(`tensor ${JSON.stringify(name)}: more bytes than its shape holds (${bytes})`);
    if (t.data === EMPTY) t.data = new Uint8Array(bytes);
    t.data.set(data, at);
    filled.set(name, at + data.byteLength);
  }
  if (!state) throw new RangeError("empty stream: no header");
  for (const [name, t] of state.tensors) {
    const bytes = numel(t.shape) * 4;
    if (filled.get(name) !== bytes) throw new RangeError(`tensor ${JSON.stringify(name)}: ${filled.get(name)} bytes received, needs ${bytes}`);
  }
  return state;
}

export interface StartEmaServerOptions extends Partial<ServiceOptions> {
  keeper?: EmaKeeper;
  keeperOptions?: EmaKeeperOptions;
  chunkBytes?: number;
  logger?: Logger;
}

/** Starts an OctetServer with EmaService (plus health and reflection from the scaffolding). */
export async function startEmaServer(options: StartEmaServerOptions = {}): Promise<{
  server: OctetServer;
  keeper: EmaKeeper;
  port: number;
  address: string;
}> {
  const { keeper: given, keeperOptions, chunkBytes, ...serverOptions } = options;
  const keeper = given ?? new EmaKeeper(keeperOptions);
  const server = new OctetServer({ name: "octet-ema-keeper", ...serverOptions });
  server.addService(EmaServiceDefinition, createEmaService(keeper, { chunkBytes, maxMessageBytes: serverOptions.maxMessageBytes }), EmaServiceName, {
    readOnly: EMA_READ_ONLY_METHODS,
  });
  const { port, address } = await server.start();
  return { server, keeper, port, address };
}
