import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { generate } from "selfsigned";
import { callUnary, createClient } from "./client.js";
import { services } from "./gen/services.js";
import { startEcho, type EchoHarness } from "./testing/harness.js";

describe("TLS", () => {
  let h: EchoHarness;
  let dir: string;
  let certFile: string;
  before(async () => {
    const pems = await generate([{ name: "commonName", value: "localhost" }], {
      keySize: 2048,
      algorithm: "sha256",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
    });
    dir = mkdtempSync(join(tmpdir(), "octet-proto-tls-"));
    certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    writeFileSync(certFile, pems.cert);
    writeFileSync(keyFile, pems.private);
    h = await startEcho({ tls: { certFile, keyFile } });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("an Echo call over TLS with the self-signed CA trusted works", async () => {
    const client = createClient(services.common.v1.EchoServiceClient, `localhost:${h.port}`, { tls: { caFile: certFile } });
    try {
      const res = await callUnary(client, "echo", { text: "secure" }, { deadlineMs: 3000 });
      assert.equal(res.text, "secure");
    } finally {
      client.close();
    }
  });

  test("an insecure client cannot call the TLS server", async () => {
    // h.client is the harness' plaintext client.
    await assert.rejects(callUnary(h.client, "echo", { text: "plain" }, { deadlineMs: 1500 }), (err: grpc.ServiceError) => {
      assert.notEqual(err.code, grpc.status.OK);
      assert.ok([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL].includes(err.code), `code ${err.code}`);
      return true;
    });
  });

  test("a TLS client that does not trust the certificate fails", async () => {
    const client = createClient(services.common.v1.EchoServiceClient, `localhost:${h.port}`, { tls: {} });
    try {
      await assert.rejects(callUnary(client, "echo", { text: "x" }, { deadlineMs: 1500 }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED);
    } finally {
      client.close();
    }
  });
});
