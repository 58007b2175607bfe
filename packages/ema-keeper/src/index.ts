// @octet/ema-keeper: EMA of training parameters in CPU memory — in-process (EmaKeeper) from this root; the gRPC
// service and its CLI configuration from @octet/ema-keeper/service; the trainer-side client from @octet/ema-keeper/client.
export { type DecayPolicy, decayAt, normalizeDecayPolicy } from "./decay.js";
export { emaUpdateF32, emaUpdateF32Plain, emaUpdateBf16, firstNonFinite, firstNonFiniteBf16 } from "./kernel.js";
export {
  EmaKeeper,
  PushBuilder,
  metadataOf,
  defaultMaxEmaBytes,
  availableMemory,
  DEFAULT_MAX_EMA_FRACTION,
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
// The gRPC service is @octet/ema-keeper/service, its client @octet/ema-keeper/client: this root loads no gRPC.
