import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { bearerInterceptor } from "./auth.js";
import { clientCredentials, type ClientTlsOptions } from "./tls.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./server.js";

export interface ClientOptions {
  /** TLS when given (CA to trust, optional client certificate); insecure otherwise. */
  tls?: ClientTlsOptions & {
    /** Name to check the server certificate against instead of the address' host. */
    serverNameOverride?: string;
  };
  /** Receive and send limit per message; default 4 MiB, like the servers. */
  maxMessageBytes?: number;
  /** Further grpc-js channel options. */
  channelOptions?: Partial<grpc.ChannelOptions>;
  /**
   * Bearer token sent with every call (metadata `authorization: Bearer <token>`): what a server with an authToken
   * requires for its mutating methods. Without TLS it crosses the network in clear.
   */
  authToken?: string;
}

type ClientCtor<C extends grpc.Client> = new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => C;

/** `createClient(services.common.v1.EchoServiceClient, "localhost:50051", { tls: { caFile } })`. */
export function createClient<C extends grpc.Client>(Ctor: ClientCtor<C>, address: string, opts: ClientOptions = {}): C {
  const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const options: Partial<grpc.ClientOptions> = {
    "grpc.max_receive_message_length": max,
    "grpc.max_send_message_length": max,
    ...opts.channelOptions,
  };
  if (opts.tls?.serverNameOverride) options["grpc.ssl_target_name_override"] = opts.tls.serverNameOverride;
  // An interceptor, not call credentials: grpc-js refuses call credentials on an insecure channel, and loopback
  // services without TLS are the common case.
  if (opts.authToken !== undefined) options.interceptors = [...(options.interceptors ?? []), bearerInterceptor(opts.authToken)];
  const credentials = opts.tls ? clientCredentials(opts.tls) : grpc.credentials.createInsecure();
  return new Ctor(address, credentials, options);
}

/** The parameters of a generated unary method's last overload: (request, metadata, options, callback). */
type UnaryParams<F> = F extends (...args: infer P) => grpc.ClientUnaryCall
  ? P extends [unknown, grpc.Metadata, Partial<grpc.CallOptions>, grpc.requestCallback<never>]
    ? P
    : never
  : never;

/** Names of a client's unary methods, e.g. "echo" | "slow" for services.common.v1.EchoServiceClient. */
export type UnaryMethod<C> = { [K in keyof C]: [UnaryParams<C[K]>] extends [never] ? never : K }[keyof C] & string;
/** Request type (the I-interface) of a client's unary method. */
export type UnaryRequest<C, M extends keyof C> = UnaryParams<C[M]>[0];
/** Response type (the decoded message class) of a client's unary method. */
export type UnaryResponse<C, M extends keyof C> = UnaryParams<C[M]>[3] extends grpc.requestCallback<infer R> ? R : never;

export interface CallOptions {
  /** Deadline relative to now. */
  deadlineMs?: number;
  metadata?: grpc.Metadata;
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
}

/**
 * Calls a unary method and returns a Promise of its response; rejects with the grpc-js ServiceError
 * (`err.code` is the status). `await callUnary(client, "echo", { text: "hi" }, { deadlineMs: 1000 })`.
 */
export function callUnary<C extends grpc.Client, M extends UnaryMethod<C>>(
  client: C,
  method: M,
  request: UnaryRequest<C, M>,
  opts: CallOptions = {},
): Promise<UnaryResponse<C, M>> {
  const fn = (client as unknown as Record<string, unknown>)[method];
  if (typeof fn !== "function") return Promise.reject(new TypeError(`client has no method ${method}`));
  const callOptions: Partial<grpc.CallOptions> = opts.deadlineMs !== undefined ? { deadline: Date.now() + opts.deadlineMs } : {};
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    const call = (fn as (...args: unknown[]) => grpc.ClientUnaryCall).call(
      client,
      request,
      opts.metadata ?? new grpc.Metadata(),
      callOptions,
      (err: grpc.ServiceError | null, res?: UnaryResponse<C, M>) => {
        opts.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(res as UnaryResponse<C, M>);
      },
    );
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Returns a promise-returning function for one unary method: `const echo = promisifyUnary(client, "echo")`. */
export function promisifyUnary<C extends grpc.Client, M extends UnaryMethod<C>>(client: C, method: M): (request: UnaryRequest<C, M>, opts?: CallOptions) => Promise<UnaryResponse<C, M>> {
  return (request, opts) => callUnary(client, method, request, opts);
}

/** Resolves once the client's channel is connected; rejects after deadlineMs. */
export function waitForReady(client: grpc.Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + deadlineMs, (err) => (err ? reject(err) : resolve()));
  });
}

type HealthClient = grpc.Client & {
  check(req: { service: string }, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: grpc.requestCallback<{ status: string }>): grpc.ClientUnaryCall;
};
const HealthClientCtor = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, "Health") as unknown as ClientCtor<HealthClient>;

/**
 * One grpc.health.v1.Health/Check: the serving status ("SERVING", "NOT_SERVING", ...) of `service` ("" = the whole
 * server). Rejects with the grpc-js error (NOT_FOUND for an unknown service, DEADLINE_EXCEEDED after deadlineMs,
 * default 3000). Health is never behind the bearer token.
 */
export function checkHealth(address: string, opts: ClientOptions & { service?: string; deadlineMs?: number } = {}): Promise<string> {
  const { service = "", deadlineMs = 3000, ...clientOptions } = opts;
  const client = createClient(HealthClientCtor, address, clientOptions);
  return new Promise<string>((resolve, reject) => {
    client.check({ service }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(String(res!.status));
    });
  });
}
