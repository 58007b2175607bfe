// Who may do what over gRPC: the shared name rule, the bearer token on the mutating methods, loopback by default.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@octet/proto";
import { CheckpointClient } from "./client.js";
import { loadConfig } from "./config.js";
import { type RunningCheckpointServer, startCheckpointServer } from "./server.js";
import { byteTensor, tempDir } from "./testing/util.js";

const TOKEN = "checkpointer-test-token-0123456789";
let srv: RunningCheckpointServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let anonymous: CheckpointClient;
let trusted: CheckpointClient;

before(async () => {
  tmp = await tempDir();
  // No host: the default, loopback.
  srv = await startCheckpointServer({ port: 0, dataDir: tmp.dir, authToken: TOKEN, logger: createLogger("test", "silent") });
  anonymous = new CheckpointClient(srv.address);
  trusted = new CheckpointClient(srv.address, { authToken: TOKEN });
  await trusted.waitForReady();
});

after(async () => {
  anonymous.close();
  trusted.close();
  await srv.close();
  await tmp.cleanup();
});

const failsWith = (code: grpc.status, re: RegExp) => (e: grpc.ServiceError) => e.code === code && re.test(e.details);

test("the server listens on 127.0.0.1 unless told otherwise", () => {
  assert.match(srv.address, /^127\.0\.0\.1:\d+$/);
});

test("the names the EMA keeper refuses are refused here too, with INVALID_ARGUMENT naming the name", async () => {
  for (const run of ["../../etc", "a\0b"]) {
    await assert.rejects(trusted.save(run, 1, [byteTensor("x", 4)]).staged, failsWith(grpc.status.INVALID_ARGUMENT, new RegExp(`invalid run name ${escape(JSON.stringify(run))}`)), run);
  }
  await assert.rejects(trusted.save("ok", 1, [byteTensor("../../x", 4)]).staged, failsWith(grpc.status.INVALID_ARGUMENT, /invalid tensor name "\.\.\/\.\.\/x"/));
  assert.deepEqual(await trusted.list(), []);
});

test("saving, importing and deleting need the bearer token; listing, loading and waiting do not", async () => {
  await assert.rejects(anonymous.save("r", 1, [byteTensor("w", 16)]).staged, failsWith(grpc.status.UNAUTHENTICATED, /SaveCheckpoint needs a bearer token/));
  await assert.rejects(anonymous.importSafetensors("r", 1, new Uint8Array(16)).staged, failsWith(grpc.status.UNAUTHENTICATED, /ImportSafetensors/));
  const wrong = new CheckpointClient(srv.address, { authToken: `${TOKEN}-old` });
  try {
    await assert.rejects(wrong.save("r", 1, [byteTensor("w", 16)]).staged, failsWith(grpc.status.UNAUTHENTICATED, /not valid/));
  } finally {
    wrong.close();
  }
  assert.deepEqual(await anonymous.list(), [], "refused saves wrote nothing");

  const saved = trusted.save("r", 1, [byteTensor("w", 16, 3)]);
  const receipt = await saved.staged;
  await saved.durable;
  // Read-only methods answer without a token.
  assert.equal((await anonymous.waitDurable(receipt.saveId)).step, 1);
  assert.deepEqual((await anonymous.list("r")).map((c) => c.step), [1]);
  const loaded = await anonymous.load("r", 1);
  assert.deepEqual([...loaded.tensors[0].data], [...byteTensor("w", 16, 3).data]);

  await assert.rejects(anonymous.delete("r", 1), failsWith(grpc.status.UNAUTHENTICATED, /DeleteCheckpoint/));
  assert.deepEqual((await anonymous.list("r")).map((c) => c.step), [1]);
  await trusted.delete("r", 1);
  assert.deepEqual(await anonymous.list("r"), []);
});

test("the CLI configuration takes the token from --auth-token-file or the environment", () => {
  assert.equal(loadConfig([], { OCTET_CHECKPOINTER_AUTH_TOKEN: TOKEN }).authToken, TOKEN);
  assert.equal(loadConfig([], { OCTET_AUTH_TOKEN: TOKEN }).authToken, TOKEN);
  assert.equal(loadConfig([], {}).authToken, undefined);
  assert.throws(() => loadConfig([], { OCTET_AUTH_TOKEN: "short" }), /OCTET_AUTH_TOKEN must be 16/);
  assert.throws(() => loadConfig(["--auth-token-file", "/nonexistent/token"], {}), /--auth-token-file: cannot read/);
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
