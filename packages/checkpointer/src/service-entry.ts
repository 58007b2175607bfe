// @octet/checkpointer/service — the checkpoint store as a gRPC service (what the octet-checkpointer CLI runs).
export { checkpointHandlers, toServiceError, type CheckpointServiceOptions } from "./service.js";
export { startCheckpointServer, type CheckpointServerOptions, type RunningCheckpointServer } from "./server.js";
export { loadConfig, buildCommand, ENV_PREFIX } from "./config.js";
