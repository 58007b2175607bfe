import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { ServiceError, statusName, toStatus } from "./errors.js";
import { pino } from "pino";
import type { Logger } from "./logger.js";

/** What every handler gets besides its request(s). */
export interface CallContext {
  /** Aborts when the client cancels or the call's deadline passes; `signal.reason` is a ServiceError. */
  signal: AbortSignal;
  /** The call's deadline, null when the client set none. */
  deadline: Date | null;
  /** Request metadata (headers). */
  metadata: grpc.Metadata;
  /** The server's logger with `method` bound. */
  logger: Logger;
  /** Full method path, e.g. "/octet.numerics.v1.NumericsService/Quantize". */
  method: string;
  /** The client's address. */
  peer: string;
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Where the handler wrappers find the logger: OctetServer.addService binds it; unbound handlers use a silent one. */
const loggers = new WeakMap<object, Logger>();
const silent: Logger = pino({ level: "silent" });

/** @internal Binds the logger the wrapped handlers of one service implementation log to. */
export function bindLogger(handler: object, logger: Logger): void {
  loggers.set(handler, logger);
}

// Server deadline timers can fire a hair before Date.now() reaches the deadline.
const DEADLINE_SLACK_MS = 20;

interface Tracker {
  ctx: CallContext;
  /** Ends the call's bookkeeping; returns false when the call was already over (cancelled, deadline). */
  settle(code: grpc.status, err?: unknown): boolean;
  /** Maps a failure, logs it, and returns the status to send, or null when the call is already over. */
  fail(err: unknown): { code: grpc.status; details: string; metadata?: grpc.Metadata } | null;
}

function track(call: AnyCall, handlerKey: object): Tracker {
  const start = performance.now();
  const method = call.getPath();
  const rawDeadline = call.getDeadline();
  const deadlineMs = rawDeadline instanceof Date ? rawDeadline.getTime() : rawDeadline;
  const deadline = Number.isFinite(deadlineMs) ? new Date(deadlineMs) : null;
  const logger = (loggers.get(handlerKey) ?? silent).child({ method });
  const controller = new AbortController();
  let done = false;

  const log = (code: grpc.status, err?: unknown, unexpected = false) => {
    const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
    const fields = { code, status: statusName(code), durationMs }; // method is bound on the child logger
    const l = ctx.logger;
    if (code === grpc.status.OK) l.debug(fields, "call");
    else if (unexpected) l.error({ ...fields, err }, "call failed");
    else l.warn({ ...fields, details: err instanceof Error ? err.message : undefined }, "call failed");
  };

  const ctx: CallContext = {
    signal: controller.signal,
    deadline,
    metadata: call.metadata,
    logger,
    method,
    peer: call.getPeer(),
  };

  (call as unknown as NodeJS.EventEmitter).on("cancelled", () => {
    // grpc-js also emits "cancelled" after a call ends normally; only a call still running is cancelled.
    if (done) return;
    done = true;
    const expired = deadline !== null && Date.now() >= deadline.getTime() - DEADLINE_SLACK_MS;
    const code = expired ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED;
    const reason = new ServiceError(code, expired ? "deadline exceeded" : "cancelled by the client");
    controller.abort(reason);
    log(code, reason);
  });

  return {
    ctx,
    settle(code, err) {
      if (done) return false;
      done = true;
      log(code, err);
      return true;
    },
    fail(err) {
      if (done) return null;
      done = true;
      const st = toStatus(err);
      log(st.code, err, st.unexpected);
      return { code: st.code, details: st.details, ...(st.metadata ? { metadata: st.metadata } : {}) };
    },
  };
}

/** Runs fn, turning a synchronous throw into a rejection. */
async function invoke<T>(fn: () => Promise<T> | T): Promise<T> {
  return fn();
}

function writer<Res>(call: grpc.ServerWritableStream<unknown, Res> | grpc.ServerDuplexStream<unknown, Res>, signal: AbortSignal) {
  return (msg: Res): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      if (call.write(msg)) return resolve();
      const cleanup = () => {
        call.off("drain", onDrain);
        signal.removeEventListener("abort", onAbort);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(signal.reason);
      };
      call.once("drain", onDrain);
      signal.addEventListener("abort", onAbort, { once: true });
    });
}

function endStream(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, t: Tracker, err?: unknown): void {
  if (err === undefined) {
    if (t.settle(grpc.status.OK)) call.end();
    return;
  }
  const st = t.fail(err);
  // grpc-js turns an "error" event on a server stream into the call's status.
  if (st) call.emit("error", st);
}

function requests<Req>(call: grpc.ServerReadableStream<Req, unknown> | grpc.ServerDuplexStream<Req, unknown>): AsyncIterable<Req> {
  // destroyOnReturn: false so that a handler leaving its loop early does not destroy the call's write side.
  return { [Symbol.asyncIterator]: () => call.iterator({ destroyOnReturn: false }) as AsyncIterator<Req> };
}

/** Wraps a unary handler: error mapping, deadline/cancel signal, one log line per call. */
export function unary<Req, Res>(fn: (req: Req, ctx: CallContext) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
  const handler: grpc.handleUnaryCall<Req, Res> = (call, callback) => {
    const t = track(call, handler);
    invoke(() => fn(call.request, t.ctx)).then(
      (res) => {
        if (t.settle(grpc.status.OK)) callback(null, res);
      },
      (err: unknown) => {
        const st = t.fail(err);
        if (st) callback(st);
      },
    );
  };
  return handler;
}

/** Wraps a server-streaming handler; `write` resolves once the message is buffered below the high-water mark. */
export function serverStreaming<Req, Res>(
  fn: (req: Req, ctx: CallContext, write: (msg: Res) => Promise<void>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  const handler: grpc.handleServerStreamingCall<Req, Res> = (call) => {
    const t = track(call, handler);
    invoke(() => fn(call.request, t.ctx, writer(call, t.ctx.signal))).then(
      () => endStream(call, t),
      (err: unknown) => endStream(call, t, err),
    );
  };
  return handler;
}

/** Wraps a client-streaming handler; the requests arrive as an async iterable. */
export function clientStreaming<Req, Res>(fn: (reqs: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
  const handler: grpc.handleClientStreamingCall<Req, Res> = (call, callback) => {
    const t = track(call, handler);
    invoke(() => fn(requests(call), t.ctx)).then(
      (res) => {
        if (t.settle(grpc.status.OK)) callback(null, res);
      },
      (err: unknown) => {
        const st = t.fail(err);
        if (st) callback(st);
      },
    );
  };
  return handler;
}

/** Wraps a bidirectional-streaming handler. */
export function bidiStreaming<Req, Res>(
  fn: (reqs: AsyncIterable<Req>, ctx: CallContext, write: (msg: Res) => Promise<void>) => Promise<void>,
): grpc.handleBidiStreamingCall<Req, Res> {
  const handler: grpc.handleBidiStreamingCall<Req, Res> = (call) => {
    const t = track(call, handler);
    invoke(() => fn(requests(call), t.ctx, writer(call, t.ctx.signal))).then(
      () => endStream(call, t),
      (err: unknown) => endStream(call, t, err),
    );
  };
  return handler;
}
