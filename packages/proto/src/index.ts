// @octet/proto: generated protobufjs code for every proto/*.proto, grpc-js service definitions, and the shared
// gRPC service scaffolding.
export { octet } from "./gen/protos.js";
export { services, serviceNames, type ClientConstructor } from "./gen/services.js";
export { protoDir, protoFiles } from "./protos.js";
export { OctetServer, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SHUTDOWN_GRACE_MS, type ServiceOptions } from "./server.js";
export { unary, serverStreaming, clientStreaming, bidiStreaming, type CallContext } from "./handlers.js";
export {
  ServiceError,
  toStatus,
  statusName,
  type MappedStatus,
  invalidArgument,
  notFound,
  alreadyExists,
  failedPrecondition,
  outOfRange,
  resourceExhausted,
  permissionDenied,
  unauthenticated,
  aborted,
  unavailable,
  unimplemented,
  deadlineExceeded,
  cancelled,
  internal,
} from "./errors.js";
export { clientCredentials, serverCredentials, type ClientTlsOptions, type ServerTlsOptions } from "./tls.js";
export {
  createClient,
  callUnary,
  promisifyUnary,
  waitForReady,
  type ClientOptions,
  type CallOptions,
  type UnaryMethod,
  type UnaryRequest,
  type UnaryResponse,
} from "./client.js";
export { serviceOptionsFromEnv, type FromEnvOptions } from "./env.js";
export { createLogger, type Logger } from "./logger.js";
export { status, Metadata } from "@grpc/grpc-js";
