#!/usr/bin/env node
// gRPC health check (grpc.health.v1.Health/Check) for container health checks and scripts:
//   node infra/grpc-health.mjs HOST:PORT [SERVICE]
// Exit 0 when the server (or SERVICE) is SERVING, 1 otherwise (including no answer within 3 s).
// Runs from the repository root inside the Octet image (it resolves @grpc/grpc-js from /app/node_modules).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const { protoPath } = require("grpc-health-check");

const [address, service = ""] = process.argv.slice(2);
if (!address) {
  console.error("usage: grpc-health.mjs HOST:PORT [SERVICE]");
  process.exit(2);
}
const def = protoLoader.loadSync(protoPath, { keepCase: true, enums: String, defaults: true });
const Health = grpc.loadPackageDefinition(def).grpc.health.v1.Health;
const client = new Health(address, grpc.credentials.createInsecure());
client.check({ service }, { deadline: Date.now() + 3000 }, (err, res) => {
  client.close();
  if (err) {
    console.error(`${address}: ${err.details || err.message}`);
    process.exit(1);
  }
  console.log(`${address}${service ? ` ${service}` : ""}: ${res.status}`);
  process.exit(res.status === "SERVING" ? 0 : 1);
});
