// @octet/checkpointer — safetensors checkpoints: format and the atomic, verified store (this root); the gRPC service
// and its CLI configuration (@octet/checkpointer/service); the client (@octet/checkpointer/client).

// The safetensors codec and dtype table live in @octet/numerics (one codec for checkpoints and model state files);
// they stay available from here under the names this package has always documented.
export { DTYPES, DTYPE_SIZES, type DType, isDType, checkDType, dtypeSize, numElements, tensorByteLength } from "@octet/numerics";
export {
  MAX_HEADER_BYTES,
  METADATA_KEY,
  type Tensor,
  type TensorSpec,
  type TensorEntry,
  type SafetensorsHeader,
  encodeHeader,
  parseHeader,
  parseHeaderJson,
  readHeaderLength,
  readHeaderFromFile,
  serialize,
  deserialize,
} from "@octet/numerics";
export { CheckpointError, CorruptCheckpointError, type CheckpointErrorCode } from "./errors.js";
export { checkRunName, checkTensorName, checkStep, stepDirName, shardFileName } from "./names.js";
export { MANIFEST_FORMAT, MANIFEST_OBJECT, ManifestSchema, type Manifest, type ManifestShard, type ManifestTensor, encodeManifest, decodeManifest } from "./manifest.js";
export { type CheckpointStorage, type StagingArea, type ObjectSink, type ObjectReader, LocalStorage } from "./storage.js";
export {
  CheckpointStore,
  planShards,
  type CheckpointStoreOptions,
  type RetentionPolicy,
  type SaveOptions,
  type SaveHandle,
  type SaveState,
  type SaveStatus,
  type CheckpointInfo,
  type ListedCheckpoint,
  type LoadOptions,
  type LoadedCheckpoint,
  type CheckpointReader,
  type CorruptionReport,
} from "./store.js";
// The gRPC service is @octet/checkpointer/service, its client @octet/checkpointer/client: this root loads no gRPC.
