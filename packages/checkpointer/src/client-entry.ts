// @octet/checkpointer/client — the gRPC client of the checkpoint service (streamed saves, verified loads).
export { CheckpointClient, type CheckpointClientOptions, type SaveReceipt, type RemoteSave, type RemoteCheckpoint } from "./client.js";
