// @octet/ema-keeper: EMA of training parameters in CPU memory, in-process (EmaKeeper) or as a gRPC service.
export { type DecayPolicy, decayAt, normalizeDecayPolicy } from "./decay.js";
export { emaUpdateF32, emaUpdateF32Plain, emaUpdateBf16, firstNonFinite, firstNonFiniteBf16 } from "./kernel.js";
export {
  EmaKeeper,
  PushBuilder,
  metadataOf,
  type EmaKeeperOptions,
  type NormalizedRunSpec,
  type PushOutcome,
  type StagedPush,
  type EmaView,
  type EmaSnapshot,
} from "./keeper.js";
export { EmaRangeError, EmaNotFoundError, StaleStepError, type EmaErrorCode } from "./errors.js";
export { assignTensors, fnv1a, numel, type Assignment, type AssignStrategy } from "./assign.js";
export type {
  ParamDType,
  ParamArray,
  TensorSpec,
  RunSpec,
  RunStatus,
  EmaState,
  EmaStateMetadata,
  ExportedTensor,
} from "./types.js";
export { createEmaService, startEmaServer, collectState, DEFAULT_CHUNK_BYTES, type EmaServiceOptions, type StartEmaServerOptions } from "./service.js";
export {
  EmaClient,
  ShardedEmaClient,
  pushParameters,
  importState,
  createEmaServiceClient,
  DEFAULT_CLIENT_CHUNK_BYTES,
  type EmaClientOptions,
  type EmaClientStats,
  type ShardedEmaClientOptions,
} from "./client.js";
export { keeperOptionsFromEnv, type KeeperConfig } from "./config.js";
