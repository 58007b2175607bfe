// Shared test helpers: a real Echo server on 127.0.0.1 and grpc-js clients for it.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { OctetServer, type ServiceAccess, type ServiceOptions } from "../server.js";
import { services } from "../gen/services.js";
import { createClient, type ClientOptions } from "../client.js";
import { echoHandlers, type EchoObservations } from "./echo-service.js";

export interface EchoHarness {
  server: OctetServer;
  address: string;
  port: number;
  observed: EchoObservations;
  client: services.common.v1.EchoServiceClient;
  close(): Promise<void>;
}

export async function startEcho(opts: Partial<ServiceOptions> = {}, clientOpts: ClientOptions = {}, access: ServiceAccess = {}): Promise<EchoHarness> {
  const observed: EchoObservations = { slow: [] };
  const server = new OctetServer({ name: "octet-echo-test", host: "127.0.0.1", logger: pino({ level: "silent" }), shutdownGraceMs: 1000, ...opts });
  server.addService(services.common.v1.EchoServiceDefinition, echoHandlers(observed), services.common.v1.EchoServiceName, access);
  const { port } = await server.start();
  const address = `127.0.0.1:${port}`;
  const client = createClient(services.common.v1.EchoServiceClient, address, clientOpts);
  return {
    server,
    address,
    port,
    observed,
    client,
    async close() {
      client.close();
      await server.shutdown("test over");
    },
  };
}

type HealthClient = grpc.Client & {
  check(req: { service: string }, cb: grpc.requestCallback<{ status: string }>): grpc.ClientUnaryCall;
};
const HealthCtor = grpc.makeGenericClientConstructor(healthService, "Health") as unknown as new (a: string, c: grpc.ChannelCredentials) => HealthClient;

/** grpc.health.v1.Health/Check → "SERVING" | "NOT_SERVING" | ..., or the grpc status code when the call fails. */
export function healthCheck(address: string, service: string): Promise<string | number> {
  const client = new HealthCtor(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.check({ service }, (err, res) => {
      client.close();
      resolve(err ? err.code : res!.status);
    });
  });
}

const require = createRequire(import.meta.url);
const reflectionProto = join(dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto", "grpc", "reflection", "v1", "reflection.proto");

interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** Sends one request over grpc.reflection.v1.ServerReflection/ServerReflectionInfo and returns the reply. */
export async function reflect(address: string, request: Record<string, unknown>): Promise<ReflectionResponse> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true, oneofs: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse> } } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
  try {
    const call = client.serverReflectionInfo();
    const reply = new Promise<ReflectionResponse>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    call.write(request);
    const res = await reply;
    call.end();
    return res;
  } finally {
    client.close();
  }
}
