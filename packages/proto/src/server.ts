import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { BearerCheck } from "./auth.js";
import { bindLogger } from "./handlers.js";
import { createLogger, type Logger } from "./logger.js";
import { protoDir, protoFiles } from "./protos.js";
import { serverCredentials, type ServerTlsOptions } from "./tls.js";

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** Services listen on loopback unless told otherwise: reaching them from elsewhere is a deliberate `host`. */
export const DEFAULT_HOST = "127.0.0.1";
const HEALTH_SERVICE = "grpc.health.v1.Health";

export interface ServiceOptions {
  /** Service name for logs, e.g. "octet-numerics". */
  name: string;
  /** Interface to listen on; default "127.0.0.1" (loopback only). "0.0.0.0" or "::" listen on every interface. */
  host?: string;
  /** Port; default 0 = ephemeral (start() returns the one bound). */
  port?: number;
  /** TLS when given; insecure otherwise. */
  tls?: ServerTlsOptions;
  /** Receive AND send limit per message, default 4 MiB. A larger request fails with RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
  /** How long shutdown() lets in-flight calls finish before cancelling them; default 10000. */
  shutdownGraceMs?: number;
  /** Install SIGTERM/SIGINT handlers: graceful shutdown, then process.exit(0). Default false (CLIs pass true). */
  handleSignals?: boolean;
  /** pino logger; default: JSON lines on stderr at OCTET_LOG_LEVEL or "info". */
  logger?: Logger;
  /**
   * Bearer token that every method not declared read-only (addService's `access.readOnly`) requires: a call
   * without `authorization: Bearer <token>` gets UNAUTHENTICATED. Health and reflection stay open. Unset: no
   * authentication (then keep `host` on loopback or behind a network boundary).
   */
  authToken?: string;
}

/** Which methods of a service stay open when the server has an authToken. */
export interface ServiceAccess {
  /** Methods that change no state, named as in the proto ("GetBias"); every other method needs the token. */
  readOnly?: readonly string[];
}

/** The full service name a definition's method paths carry ("/pkg.Service/Method" → "pkg.Service"). */
function serviceNameOf(definition: grpc.ServiceDefinition): string | undefined {
  const first = Object.values(definition)[0] as grpc.MethodDefinition<unknown, unknown> | undefined;
  const m = first?.path.match(/^\/([^/]+)\//);
  return m?.[1];
}

/**
 * A grpc-js server with what every Octet service needs: health checking (grpc.health.v1), server reflection,
 * message-size limits, optional TLS, uniform logging (through the handler wrappers) and graceful shutdown.
 */
export class OctetServer {
  readonly logger: Logger;
  private readonly opts: Required<Omit<ServiceOptions, "tls" | "logger" | "authToken">> & Pick<ServiceOptions, "tls">;
  private readonly bearer: BearerCheck | undefined;
  /** Full paths of the methods that need the token (empty without one). */
  private readonly guarded: string[] = [];
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING" });
  private readonly services: string[] = [];
  private readonly hooks: Array<() => Promise<void> | void> = [];
  private started: Promise<{ port: number; address: string }> | undefined;
  private stopping: Promise<void> | undefined;
  private stopped = false;
  private signalHandler: ((signal: NodeJS.Signals) => void) | undefined;

  constructor(opts: ServiceOptions) {
    const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0) throw new RangeError(`maxMessageBytes must be a positive integer, got ${maxMessageBytes}`);
    const port = opts.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be an integer in [0, 65535], got ${port}`);
    this.opts = {
      name: opts.name,
      host: opts.host ?? DEFAULT_HOST,
      port,
      tls: opts.tls,
      maxMessageBytes,
      shutdownGraceMs: opts.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
      handleSignals: opts.handleSignals ?? false,
    };
    this.logger = opts.logger ?? createLogger(opts.name);
    this.bearer = opts.authToken === undefined ? undefined : new BearerCheck(opts.authToken);
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
    });
    this.health.addToServer(this.server);
  }

  /**
   * Adds a service (before start()). `serviceName` is its full proto name, e.g. "octet.numerics.v1.NumericsService",
   * used for health and reflection; it defaults to the one in the definition's method paths. With an authToken,
   * every method not in `access.readOnly` needs the token.
   */
  addService<T>(definition: grpc.ServiceDefinition<T>, implementation: T, serviceName?: string, access: ServiceAccess = {}): void {
    if (this.started) throw new Error("addService must be called before start()");
    const fromPaths = serviceNameOf(definition as grpc.ServiceDefinition);
    const name = serviceName ?? fromPaths;
    if (!name) throw new TypeError("addService: cannot tell the service's name; pass serviceName");
    if (fromPaths && fromPaths !== name) throw new TypeError(`addService: serviceName "${name}" does not match the definition's paths (${fromPaths})`);
    if (this.services.includes(name)) throw new Error(`service ${name} was already added`);
    const methods = Object.entries(definition as grpc.ServiceDefinition).map(([key, method]) => ({ key, method, name: method.path.slice(method.path.lastIndexOf("/") + 1) }));
    const readOnly = new Set(access.readOnly ?? []);
    for (const m of readOnly) {
      if (!methods.some((x) => x.name === m)) throw new TypeError(`addService: ${name} has no method "${m}" (name read-only methods as in the proto, e.g. "GetBias")`);
    }
    for (const fn of Object.values(implementation as object)) if (typeof fn === "function") bindLogger(fn, this.logger);
    const served = { ...(implementation as grpc.UntypedServiceImplementation) };
    if (this.bearer) {
      for (const m of methods) {
        if (readOnly.has(m.name)) continue;
        const key = m.key in served ? m.key : m.method.originalName;
        const fn = key === undefined ? undefined : served[key];
        if (key === undefined || typeof fn !== "function") continue; // grpc-js answers UNIMPLEMENTED
        served[key] = this.guard(fn, m.method);
        this.guarded.push(m.method.path);
      }
    }
    this.server.addService(definition as grpc.ServiceDefinition, served);
    this.services.push(name);
    this.health.setStatus(name, "NOT_SERVING");
  }

  /** Wraps a handler so that a call without the bearer token ends with UNAUTHENTICATED before the handler runs. */
  private guard(fn: grpc.UntypedHandleCall, method: grpc.MethodDefinition<unknown, unknown>): grpc.UntypedHandleCall {
    const bearer = this.bearer!;
    const logger = this.logger;
    const refusal = (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>): grpc.StatusObject | null => {
      const verdict = bearer.verdict(call.metadata);
      if (verdict === "ok") return null;
      logger.warn({ method: method.path, peer: call.getPeer(), verdict }, "unauthenticated call refused");
      const details =
        verdict === "missing"
          ? `${method.path} needs a bearer token: send the metadata "authorization: Bearer <token>"`
          : `${method.path}: the bearer token is not valid`;
      return { code: grpc.status.UNAUTHENTICATED, details, metadata: new grpc.Metadata() };
    };
    if (!method.responseStream) {
      const handler = fn as grpc.handleUnaryCall<unknown, unknown>;
      return ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const refused = refusal(call);
        if (refused) callback(refused);
        else handler(call, callback);
      }) as grpc.UntypedHandleCall;
    }
    const handler = fn as grpc.handleServerStreamingCall<unknown, unknown>;
    return ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      const refused = refusal(call as unknown as grpc.ServerUnaryCall<unknown, unknown>);
      // grpc-js turns an "error" event on a server stream into the call's status.
      if (refused) call.emit("error", refused);
      else handler(call);
    }) as grpc.UntypedHandleCall;
  }

  /** Binds, starts serving, and marks "" and every added service SERVING. `address` is connectable ("localhost:port" for wildcard hosts). */
  start(): Promise<{ port: number; address: string }> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<{ port: number; address: string }> {
    if (this.stopping) throw new Error("server was shut down");
    this.addReflection();
    const { host } = this.opts;
    const bindHost = host.includes(":") ? `[${host}]` : host;
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${bindHost}:${this.opts.port}`, serverCredentials(this.opts.tls), (err, p) => (err ? reject(err) : resolve(p)));
    });
    const wildcard = host === "0.0.0.0" || host === "::" || host === "[::]";
    const address = `${wildcard ? "localhost" : bindHost}:${port}`;
    if (this.opts.handleSignals) this.installSignals();
    for (const s of ["", ...this.services]) this.health.setStatus(s, "SERVING");
    this.logger.info(
      {
        host,
        port,
        address,
        tls: Boolean(this.opts.tls),
        services: this.services,
        maxMessageBytes: this.opts.maxMessageBytes,
        auth: this.bearer ? { bearer: true, methods: this.guarded } : { bearer: false },
      },
      "listening",
    );
    return { port, address };
  }

  private addReflection(): void {
    let pkg: protoLoader.PackageDefinition;
    try {
      pkg = protoLoader.loadSync([...protoFiles(), healthProtoPath], {
        includeDirs: [protoDir],
        keepCase: true,
        longs: Number,
        enums: String,
        defaults: true,
        oneofs: true,
      });
    } catch (err) {
      this.logger.warn({ err }, "reflection disabled: cannot load the proto files");
      return;
    }
    const known = [...this.services, HEALTH_SERVICE].filter((s) => s in pkg);
    const unknown = this.services.filter((s) => !(s in pkg));
    if (unknown.length > 0) this.logger.warn({ services: unknown }, "services not in @octet/proto's proto files are not reflected");
    new ReflectionService(pkg, { services: known }).addToServer(this.server);
  }

  /** Sets the health status of one added service, or of the whole server with "". Ignored once shutting down. */
  setServing(serviceName: string, serving: boolean): void {
    if (this.stopping) return;
    this.health.setStatus(serviceName, serving ? "SERVING" : "NOT_SERVING");
  }

  /** Registers a hook run during shutdown, after in-flight calls have drained (in registration order). */
  onShutdown(fn: () => Promise<void> | void): void {
    this.hooks.push(fn);
  }

  /**
   * Graceful shutdown: every health status NOT_SERVING, stop accepting calls, let in-flight calls finish within
   * shutdownGraceMs and then cancel the rest, run the onShutdown hooks. Idempotent; resolves when done.
   */
  shutdown(reason = "shutdown requested"): Promise<void> {
    this.stopping ??= this.doShutdown(reason);
    return this.stopping;
  }

  /** Cancels in-flight calls now (a shutdown in progress then finishes without waiting for its grace). */
  forceShutdown(): void {
    this.server.forceShutdown();
  }

  private async doShutdown(reason: string): Promise<void> {
    const t0 = Date.now();
    this.logger.info({ reason, graceMs: this.opts.shutdownGraceMs }, "shutting down");
    for (const s of ["", ...this.services]) this.health.setStatus(s, "NOT_SERVING");
    if (this.started) {
      await this.started.catch(() => undefined);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.logger.warn({ graceMs: this.opts.shutdownGraceMs }, "grace period over, cancelling remaining calls");
          this.server.forceShutdown();
          resolve();
        }, this.opts.shutdownGraceMs);
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    } else {
      this.server.forceShutdown();
    }
    for (const hook of this.hooks) {
      try {
        await hook();
      } catch (err) {
        this.logger.error({ err }, "shutdown hook failed");
      }
    }
    this.removeSignals();
    this.stopped = true;
    this.logger.info({ reason, durationMs: Date.now() - t0 }, "shutdown complete");
  }

  /** True once shutdown() has finished. */
  get isShutDown(): boolean {
    return this.stopped;
  }

  private installSignals(): void {
    if (this.signalHandler) return;
    this.signalHandler = (signal) => {
      if (this.stopping) {
        this.logger.warn({ signal }, "second signal: cancelling in-flight calls");
        this.server.forceShutdown();
        return;
      }
      this.logger.info({ signal }, "signal received");
      this.shutdown(signal).then(
        () => process.exit(0),
        (err: unknown) => {
          this.logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", this.signalHandler);
    process.on("SIGINT", this.signalHandler);
  }

  private removeSignals(): void {
    if (!this.signalHandler) return;
    process.off("SIGTERM", this.signalHandler);
    process.off("SIGINT", this.signalHandler);
    this.signalHandler = undefined;
  }
}
