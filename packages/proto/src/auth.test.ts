import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { BearerCheck, checkAuthToken } from "./auth.js";
import { callUnary, checkHealth, createClient, waitForReady } from "./client.js";
import { authTokenFromEnv, serviceOptionsFromEnv } from "./env.js";
import { services } from "./gen/services.js";
import { OctetServer } from "./server.js";
import { echoHandlers } from "./testing/echo-service.js";
import { healthCheck, startEcho, type EchoHarness } from "./testing/harness.js";

const TOKEN = "0123456789abcdef-test-token";
const ECHO = services.common.v1.EchoServiceName;

async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  assert.fail("expected the call to fail");
}

/** Runs one EchoStream round trip; resolves with the replies' texts or rejects with the call's error. */
function echoStream(client: services.common.v1.EchoServiceClient, texts: string[]): Promise<string[]> {
  const call = client.echoStream();
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (r: { text: string }) => got.push(r.text));
    call.on("end", () => resolve(got));
    call.on("error", reject);
    for (const text of texts) call.write({ text });
    call.end();
  });
}

describe("bearer token on the mutating methods", () => {
  let h: EchoHarness;
  let withToken: services.common.v1.EchoServiceClient;
  let wrongToken: services.common.v1.EchoServiceClient;
  before(async () => {
    // Echo is declared read-only; Slow (unary) and EchoStream (bidi) need the token.
    h = await startEcho({ authToken: TOKEN }, {}, { readOnly: ["Echo"] });
    withToken = createClient(services.common.v1.EchoServiceClient, h.address, { authToken: TOKEN });
    wrongToken = createClient(services.common.v1.EchoServiceClient, h.address, { authToken: `${TOKEN}-wrong` });
    await waitForReady(h.client, 2000);
  });
  after(async () => {
    withToken.close();
    wrongToken.close();
    await h.close();
  });

  test("read-only methods and health answer without a token", async () => {
    assert.equal((await callUnary(h.client, "echo", { text: "open" }, { deadlineMs: 2000 })).text, "open");
    assert.equal(await healthCheck(h.address, ""), "SERVING");
    assert.equal(await healthCheck(h.address, ECHO), "SERVING");
  });

  test("a guarded unary method without a token, or with a wrong one, is UNAUTHENTICATED and its handler never runs", async () => {
    const ran = h.observed.slow.length;
    const missing = await rejection(callUnary(h.client, "slow", { text: "x", delayMs: 0 }, { deadlineMs: 2000 }));
    assert.equal(missing.code, grpc.status.UNAUTHENTICATED);
    assert.match(missing.details, /\/octet\.common\.v1\.EchoService\/Slow needs a bearer token/);
    const wrong = await rejection(callUnary(wrongToken, "slow", { text: "x", delayMs: 0 }, { deadlineMs: 2000 }));
    assert.equal(wrong.code, grpc.status.UNAUTHENTICATED);
    assert.match(wrong.details, /not valid/);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Basic ${TOKEN}`);
    const basic = await rejection(callUnary(h.client, "slow", { text: "x", delayMs: 0 }, { deadlineMs: 2000, metadata }));
    assert.equal(basic.code, grpc.status.UNAUTHENTICATED);
    assert.equal(h.observed.slow.length, ran, "no refused call reached the handler");
    assert.equal((await callUnary(withToken, "slow", { text: "in", delayMs: 0 }, { deadlineMs: 2000 })).text, "in");
    assert.equal(h.observed.slow.length, ran + 1);
  });

  test("a guarded streaming method is refused without the token and works with it", async () => {
    await assert.rejects(echoStream(h.client, ["a"]), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    await assert.rejects(echoStream(wrongToken, ["a"]), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    assert.deepEqual(await echoStream(withToken, ["a", "b"]), ["a", "b"]);
  });

  test("a token sent to a server without one is ignored", async () => {
    const open = await startEcho();
    const client = createClient(services.common.v1.EchoServiceClient, open.address, { authToken: TOKEN });
    try {
      assert.equal((await callUnary(client, "slow", { text: "y", delayMs: 0 }, { deadlineMs: 2000 })).text, "y");
      assert.equal((await callUnary(open.client, "slow", { text: "z", delayMs: 0 }, { deadlineMs: 2000 })).text, "z");
    } finally {
      client.close();
      await open.close();
    }
  });

  test("addService refuses a read-only method the service does not have", () => {
    const server = new OctetServer({ name: "t", logger: pino({ level: "silent" }), authToken: TOKEN });
    assert.throws(
      () => server.addService(services.common.v1.EchoServiceDefinition, echoHandlers(), ECHO, { readOnly: ["echo"] }),
      { name: "TypeError", message: /has no method "echo"/ },
    );
  });
});

test("tokens: too short, spaces or control characters are refused, naming the source and never quoting the token", () => {
  assert.throws(() => checkAuthToken("short", "OCTET_AUTH_TOKEN"), { name: "RangeError", message: /^OCTET_AUTH_TOKEN must be 16 to 4096 characters long, got 5/ });
  assert.throws(() => checkAuthToken("a token with spaces!", "--auth-token-file"), (err: Error) => err instanceof RangeError && /visible ASCII/.test(err.message) && !err.message.includes("spaces!"));
  assert.throws(() => new OctetServer({ name: "t", authToken: "x" }), RangeError);
  const check = new BearerCheck(TOKEN);
  const md = (v?: string) => {
    const m = new grpc.Metadata();
    if (v !== undefined) m.set("authorization", v);
    return m;
  };
  assert.equal(check.verdict(md()), "missing");
  assert.equal(check.verdict(md(`Bearer ${TOKEN}`)), "ok");
  assert.equal(check.verdict(md(`bearer ${TOKEN}`)), "ok");
  assert.equal(check.verdict(md(`Bearer ${TOKEN}x`)), "wrong");
  assert.equal(check.verdict(md(TOKEN)), "wrong");
});

test("authTokenFromEnv: flag file, then PREFIX_AUTH_TOKEN_FILE, PREFIX_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-auth-"));
  try {
    const file = join(dir, "token");
    writeFileSync(file, "from-a-file-0123456789\n");
    const shared = { OCTET_AUTH_TOKEN: "shared-token-0123456789" };
    assert.equal(authTokenFromEnv({ env: {} }), undefined);
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: { OCTET_AUTH_TOKEN: "" } }), undefined);
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: shared }), shared.OCTET_AUTH_TOKEN);
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: { ...shared, OCTET_AUTH_TOKEN_FILE: file } }), "from-a-file-0123456789");
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: { ...shared, OCTET_EMA_AUTH_TOKEN: "ema-only-token-0123456789" } }), "ema-only-token-0123456789");
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: { OCTET_EMA_AUTH_TOKEN: "ema-only-token-0123456789", OCTET_EMA_AUTH_TOKEN_FILE: file } }), "from-a-file-0123456789");
    assert.equal(authTokenFromEnv({ prefix: "OCTET_EMA", env: shared, file }), "from-a-file-0123456789");
    assert.throws(() => authTokenFromEnv({ env: { OCTET_AUTH_TOKEN: "short" } }), /OCTET_AUTH_TOKEN must be 16/);
    assert.throws(() => authTokenFromEnv({ env: { OCTET_AUTH_TOKEN_FILE: join(dir, "nope") } }), /OCTET_AUTH_TOKEN_FILE: cannot read the token file/);
    // The service options carry it; --auth-token-file is a flag like the others.
    assert.deepEqual(serviceOptionsFromEnv("OCTET_X", { env: { OCTET_X_PORT: "1" }, argv: ["--auth-token-file", file] }), { port: 1, authToken: "from-a-file-0123456789" });
    assert.deepEqual(serviceOptionsFromEnv("OCTET_X", { env: shared }), { authToken: shared.OCTET_AUTH_TOKEN });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a server without a host listens on loopback only", async () => {
  const server = new OctetServer({ name: "t", logger: pino({ level: "silent" }), shutdownGraceMs: 100 });
  server.addService(services.common.v1.EchoServiceDefinition, echoHandlers(), ECHO);
  const { port, address } = await server.start();
  try {
    assert.equal(address, `127.0.0.1:${port}`);
    assert.equal(await healthCheck(`127.0.0.1:${port}`, ""), "SERVING");
    // From another interface of this machine, when it has one, nothing answers.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === "IPv4" && !i.internal);
    if (external) {
      const client = createClient(services.common.v1.EchoServiceClient, `${external.address}:${port}`);
      try {
        await assert.rejects(waitForReady(client, 500));
      } finally {
        client.close();
      }
    }
  } finally {
    await server.shutdown();
  }
});

test("checkHealth answers the serving status without a token, and rejects for an unknown service", async () => {
  const h = await startEcho({ authToken: TOKEN });
  try {
    assert.equal(await checkHealth(h.address), "SERVING");
    assert.equal(await checkHealth(h.address, { service: ECHO }), "SERVING");
    await assert.rejects(checkHealth(h.address, { service: "octet.nope.v1.Nope" }), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
  } finally {
    await h.close();
  }
});
