import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { bindLogger } from "./handlers.js";
import { createLogger, type Logger } from "./logger.js";
import { protoDir, protoFiles } from "./protos.js";
import { serverCredentials, type ServerTlsOptions } from "./tls.js";

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
const HEALTH_SERVICE = "grpc.health.v1.Health";

export interface ServiceOptions {
  /** Service name for logs, e.g. "octet-numerics". */
  name: string;
  /** Interface to listen on; default "0.0.0.0". */
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
  private readonly opts: Required<Omit<ServiceOptions, "tls" | "logger">> & Pick<ServiceOptions, "tls">;
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
      host: opts.host ?? "0.0.0.0",
      port,
      tls: opts.tls,
      maxMessageBytes,
      shutdownGraceMs: opts.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
      handleSignals: opts.handleSignals ?? false,
    };
    this.logger = opts.logger ?? createLogger(opts.name);
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
    });
    this.health.addToServer(this.server);
  }

  /**
   * Adds a service (before start()). `serviceName` is its full proto name, e.g. "octet.numerics.v1.NumericsService",
   * used for health and reflection; it defaults to the one in the definition's method paths.
   */
  addService<T>(definition: grpc.ServiceDefinition<T>, implementation: T, serviceName?: string): void {
    if (this.started) throw new Error("addService must be called before start()");
    const fromPaths = serviceNameOf(definition as grpc.ServiceDefinition);
    const name = serviceName ?? fromPaths;
    if (!name) throw new TypeError("addService: cannot tell the service's name; pass serviceName");
    if (fromPaths && fromPaths !== name) throw new TypeError(`addService: serviceName "${name}" does not match the definition's paths (${fromPaths})`);
    if (this.services.includes(name)) throw new Error(`service ${name} was already added`);
    for (const fn of Object.values(implementation as object)) if (typeof fn === "function") bindLogger(fn, this.logger);
    this.server.addService(definition as grpc.ServiceDefinition, implementation as grpc.UntypedServiceImplementation);
    this.services.push(name);
    this.health.setStatus(name, "NOT_SERVING");
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
      { host, port, address, tls: Boolean(this.opts.tls), services: this.services, maxMessageBytes: this.opts.maxMessageBytes },
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
