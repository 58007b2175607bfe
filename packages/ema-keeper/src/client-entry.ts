// @octet/ema-keeper/client — the trainer side of the gRPC service: coalescing pushes, sharding, state import.
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
