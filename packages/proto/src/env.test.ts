import assert from "node:assert/strict";
import { test } from "node:test";
import { serviceOptionsFromEnv } from "./env.js";

test("serviceOptionsFromEnv reads PREFIX_* variables and flags override them", () => {
  const env = {
    OCTET_NUMERICS_HOST: "127.0.0.1",
    OCTET_NUMERICS_PORT: "50051",
    OCTET_NUMERICS_MAX_MESSAGE_BYTES: "8388608",
    OCTET_NUMERICS_TLS_CERT: "/c.pem",
    OCTET_NUMERICS_TLS_KEY: "/k.pem",
    OCTET_NUMERICS_TLS_CA: "/ca.pem",
    OCTET_NUMERICS_TLS_REQUIRE_CLIENT_CERT: "true",
    OCTET_OTHER_PORT: "1",
  };
  assert.deepEqual(serviceOptionsFromEnv("OCTET_NUMERICS", { env }), {
    host: "127.0.0.1",
    port: 50051,
    maxMessageBytes: 8388608,
    tls: { certFile: "/c.pem", keyFile: "/k.pem", caFile: "/ca.pem", requireClientCert: true },
  });
  assert.deepEqual(serviceOptionsFromEnv("octet_numerics_", { env: { OCTET_NUMERICS_PORT: "1" }, argv: ["--port", "2", "--shutdown-grace-ms=300"] }), {
    port: 2,
    shutdownGraceMs: 300,
  });
  assert.deepEqual(serviceOptionsFromEnv("OCTET_NUMERICS", { env: {} }), {});
});

test("serviceOptionsFromEnv rejects bad values naming the variable", () => {
  assert.throws(() => serviceOptionsFromEnv("OCTET_X", { env: { OCTET_X_PORT: "http" } }), /OCTET_X_PORT/);
  assert.throws(() => serviceOptionsFromEnv("OCTET_X", { env: { OCTET_X_PORT: "70000" } }), RangeError);
  assert.throws(() => serviceOptionsFromEnv("OCTET_X", { env: { OCTET_X_TLS_CERT: "/c.pem" } }), /TLS_KEY/);
  assert.throws(() => serviceOptionsFromEnv("OCTET_X", { env: {}, argv: ["--max-message-bytes", "0"] }), /--max-message-bytes/);
});
