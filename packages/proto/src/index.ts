// @octet/proto: generated protobufjs code for every proto/*.proto, grpc-js service definitions, and the shared
// gRPC service scaffolding.
export { octet } from "./gen/protos.js";
export { services, serviceNames, type ClientConstructor } from "./gen/services.js";
export { protoDir, protoFiles } from "./protos.js";
export { OctetServer, DEFAULT_HOST, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SHUTDOWN_GRACE_MS, type ServiceOptions, type ServiceAccess } from "./server.js";
export {
  AUTHORIZATION_KEY,
  MIN_AUTH_TOKEN_LENGTH,
  MAX_AUTH_TOKEN_LENGTH,
  BearerCheck,
  bearerInterceptor,
  checkAuthToken,
  readAuthTokenFile,
  type BearerVerdict,
} from "./auth.js";
export { checkRunName, checkTensorName, MAX_RUN_NAME_LENGTH, MAX_TENSOR_NAME_LENGTH } from "./names.js";
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
  checkHealth,
  type ClientOptions,
  type CallOptions,
  type UnaryMethod,
  type UnaryRequest,
  type UnaryResponse,
} from "./client.js";
export { serviceOptionsFromEnv, authTokenFromEnv, SHARED_AUTH_TOKEN_VAR, SHARED_AUTH_TOKEN_FILE_VAR, type FromEnvOptions } from "./env.js";
export { createLogger, type Logger } from "./logger.js";
export { status, Metadata } from "@grpc/grpc-js";
