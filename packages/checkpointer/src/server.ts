// Running CheckpointService: an OctetServer (health, reflection, limits, TLS, graceful shutdown) over a store.

import { OctetServer, services, type ServiceOptions } from "@octet/proto";
import { CHECKPOINT_READ_ONLY_METHODS, checkpointHandlers } from "./service.js";
import { CheckpointStore, type CheckpointStoreOptions } from "./store.js";

export interface CheckpointServerOptions extends Omit<ServiceOptions, "name">, Omit<CheckpointStoreOptions, "logger"> {
  name?: string;
  /** Use this store instead of opening one from the options. */
  store?: CheckpointStore;
}

export interface RunningCheckpointServer {
  server: OctetServer;
  store: CheckpointStore;
  port: number;
  address: string;
  /** Graceful shutdown: stop accepting calls, let in-flight ones finish, wait for pending saves to be durable. */
  close(): Promise<void>;
}

export async function startCheckpointServer(opts: CheckpointServerOptions): Promise<RunningCheckpointServer> {
  const server = new OctetServer({ ...opts, name: opts.name ?? "octet-checkpointer" });
  const log = server.logger;
  const store =
    opts.store ??
    (await CheckpointStore.open({
      ...opts,
      logger: { info: (m: string) => log.info(m), warn: (m: string) => log.warn(m), error: (m: string) => log.error(m) },
    }));
  const maxMessageBytes = opts.maxMessageBytes ?? 4 * 1024 * 1024;
  server.addService(services.checkpoint.v1.CheckpointServiceDefinition, checkpointHandlers(store, { maxMessageBytes }), services.checkpoint.v1.CheckpointServiceName, {
    readOnly: CHECKPOINT_READ_ONLY_METHODS,
  });
  server.onShutdown(() => store.close());
  const { port, address } = await server.start();
  log.info(
    { storage: store.storage.location, retention: store.retention, shardMaxBytes: store.shardMaxBytes, maxStagedBytes: store.maxStagedBytes, maxCheckpointBytes: store.maxCheckpointBytes },
    "checkpointer ready",
  );
  return { server, store, port, address, close: () => server.shutdown() };
}
