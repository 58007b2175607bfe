// @octet/ema-keeper/service — the EMA keeper as a gRPC service (what the octet-ema-keeper CLI runs).
export { createEmaService, startEmaServer, collectState, DEFAULT_CHUNK_BYTES, EMA_READ_ONLY_METHODS, type EmaServiceOptions, type StartEmaServerOptions } from "./service.js";
export { keeperOptionsFromEnv, type KeeperConfig } from "./config.js";
