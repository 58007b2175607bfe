// Fixture for shutdown.test.ts: an Echo server with handleSignals; prints {"port":N} on stdout once
// listening and logs JSON to stderr. An onShutdown hook logs "flushed state".
import { OctetServer } from "../server.js";
import { services } from "../gen/services.js";
import { echoHandlers } from "./echo-service.js";

const server = new OctetServer({ name: "octet-echo-fixture", host: "127.0.0.1", handleSignals: true, shutdownGraceMs: 5000 });
server.addService(services.common.v1.EchoServiceDefinition, echoHandlers(), services.common.v1.EchoServiceName);
server.onShutdown(() => {
  server.logger.info({ hook: "flush" }, "flushed state");
});
const { port } = await server.start();
process.stdout.write(JSON.stringify({ port }) + "\n");
