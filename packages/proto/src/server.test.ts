import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { callUnary, promisifyUnary, waitForReady } from "./client.js";
import { octet } from "./gen/protos.js";
import { services } from "./gen/services.js";
import { OctetServer } from "./server.js";
import { healthCheck, reflect, startEcho, type EchoHarness } from "./testing/harness.js";

const ECHO = services.common.v1.EchoServiceName;

async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  assert.fail("expected the call to fail");
}

describe("OctetServer with the Echo service", () => {
  let h: EchoHarness;
  before(async () => {
    h = await startEcho({ maxMessageBytes: 64 * 1024 });
    await waitForReady(h.client, 2000);
  });
  after(() => h.close());

  test("unary call round-trips through the generated codecs", async () => {
    const res = await callUnary(h.client, "echo", { text: "hello", payload: Buffer.from([1, 2, 3]) }, { deadlineMs: 2000 });
    assert.ok(res instanceof octet.common.v1.EchoReply);
    assert.equal(res.text, "hello");
    assert.deepEqual([...res.payload], [1, 2, 3]);
    const echo = promisifyUnary(h.client, "echo");
    assert.equal((await echo({ text: "again" })).text, "again");
  });

  test("bidi stream replies in order with sequence numbers (int64 as number)", async () => {
    const call = h.client.echoStream();
    const got: Array<{ text: string; sequence: number }> = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (r: octet.common.v1.EchoReply) => got.push({ text: r.text, sequence: r.sequence }));
      call.on("end", resolve);
      call.on("error", reject);
    });
    for (const text of ["a", "b", "c"]) call.write({ text });
    call.end();
    await done;
    assert.deepEqual(got, [
      { text: "a", sequence: 0 },
      { text: "b", sequence: 1 },
      { text: "c", sequence: 2 },
    ]);
  });

  test("health answers SERVING for the server and the Echo service, NOT_SERVING after setServing(false)", async () => {
    assert.equal(await healthCheck(h.address, ""), "SERVING");
    assert.equal(await healthCheck(h.address, ECHO), "SERVING");
    assert.equal(await healthCheck(h.address, "octet.nope.v1.Nope"), grpc.status.NOT_FOUND);
    h.server.setServing(ECHO, false);
    try {
      assert.equal(await healthCheck(h.address, ECHO), "NOT_SERVING");
      assert.equal(await healthCheck(h.address, ""), "SERVING");
    } finally {
      h.server.setServing(ECHO, true);
    }
    assert.equal(await healthCheck(h.address, ECHO), "SERVING");
  });

  test("reflection lists the Echo service and describes it", async () => {
    const list = await reflect(h.address, { list_services: "*" });
    const names = list.list_services_response!.service.map((s) => s.name);
    assert.ok(names.includes(ECHO), `got ${names.join(", ")}`);
    assert.ok(names.includes("grpc.health.v1.Health"));
    assert.ok(!names.includes("octet.numerics.v1.NumericsService"), "only added services are listed");
    const file = await reflect(h.address, { file_containing_symbol: ECHO });
    const descriptors = file.file_descriptor_response!.file_descriptor_proto;
    assert.ok(descriptors.length >= 1);
    assert.ok(descriptors.some((d) => Buffer.from(d).includes("EchoService") && Buffer.from(d).includes("SlowRequest")));
  });

  test("a deadline that passes aborts the handler's signal and ends the call with DEADLINE_EXCEEDED", async () => {
    const before = h.observed.slow.length;
    const t0 = Date.now();
    const err = await rejection(callUnary(h.client, "slow", { text: "zzz", delayMs: 500 }, { deadlineMs: 100 }));
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 400, "the client did not wait for the handler");
    // The server's own deadline timer fires at about the same time as the client's.
    const deadline = Date.now() + 1000;
    while (h.observed.slow.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(h.observed.slow.at(-1), { aborted: true, reasonCode: grpc.status.DEADLINE_EXCEEDED });
  });

  test("a client cancel aborts the handler's signal with CANCELLED", async () => {
    const before = h.observed.slow.length;
    const ac = new AbortController();
    const p = callUnary(h.client, "slow", { text: "zzz", delayMs: 2000 }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    assert.equal((await rejection(p)).code, grpc.status.CANCELLED);
    const deadline = Date.now() + 1000;
    while (h.observed.slow.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(h.observed.slow.at(-1), { aborted: true, reasonCode: grpc.status.CANCELLED });
  });

  test("a slow call within its deadline completes with the signal not aborted", async () => {
    const res = await callUnary(h.client, "slow", { text: "ok", delayMs: 30 }, { deadlineMs: 2000 });
    assert.equal(res.text, "ok");
    assert.deepEqual(h.observed.slow.at(-1), { aborted: false });
  });

  test("a request above maxMessageBytes fails with RESOURCE_EXHAUSTED and the server keeps serving", async () => {
    const err = await rejection(callUnary(h.client, "echo", { text: "big", payload: Buffer.alloc(100 * 1024) }, { deadlineMs: 2000 }));
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    const ok = await callUnary(h.client, "echo", { text: "small", payload: Buffer.alloc(1024) }, { deadlineMs: 2000 });
    assert.equal(ok.text, "small");
    assert.equal(ok.payload.length, 1024);
  });

  test("error mapping: RangeError/TypeError → INVALID_ARGUMENT, ServiceError → its code, others → INTERNAL", async () => {
    const range = await rejection(callUnary(h.client, "echo", { text: "range-error" }));
    assert.equal(range.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(range.details, "shape must have two dimensions");
    const type = await rejection(callUnary(h.client, "echo", { text: "type-error" }));
    assert.equal(type.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(type.details, "format must be a string");
    const nf = await rejection(callUnary(h.client, "echo", { text: "not-found" }));
    assert.equal(nf.code, grpc.status.NOT_FOUND);
    assert.equal(nf.details, "no tensor named x");
    const boom = await rejection(callUnary(h.client, "echo", { text: "boom" }));
    assert.equal(boom.code, grpc.status.INTERNAL);
  });

  test("a bidi handler that throws RangeError ends the stream with INVALID_ARGUMENT after earlier replies", async () => {
    const call = h.client.echoStream();
    const got: string[] = [];
    const status = new Promise<grpc.ServiceError>((resolve) => {
      call.on("data", (r: octet.common.v1.EchoReply) => got.push(r.text));
      call.on("error", resolve);
    });
    call.write({ text: "first" });
    call.write({ text: "range-error" });
    const err = await status;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err.details, "bad chunk");
    assert.deepEqual(got, ["first"]);
  });
});

describe("OctetServer lifecycle", () => {
  test("shutdown is idempotent, runs hooks once and turns health NOT_SERVING first", async () => {
    const h = await startEcho();
    let hooks = 0;
    h.server.onShutdown(() => {
      hooks++;
    });
    const a = h.server.shutdown("first");
    const b = h.server.shutdown("second");
    await Promise.all([a, b, h.close()]);
    assert.equal(hooks, 1);
    assert.equal(h.server.isShutDown, true);
    assert.notEqual(await healthCheck(h.address, ""), "SERVING");
  });

  test("addService rejects a serviceName that does not match the definition", () => {
    const server = new OctetServer({ name: "x", logger: pino({ level: "silent" }), host: "127.0.0.1" });
    assert.throws(() => server.addService(services.common.v1.EchoServiceDefinition, {} as services.common.v1.EchoServiceHandlers, "octet.other.v1.Other"), TypeError);
    void server.shutdown();
  });

  test("options are validated", () => {
    assert.throws(() => new OctetServer({ name: "x", port: 70000 }), RangeError);
    assert.throws(() => new OctetServer({ name: "x", maxMessageBytes: 0 }), RangeError);
  });
});

describe("call logging", () => {
  test("each call is one JSON line with method, status code and duration; failures at warn/error", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) };
    const h = await startEcho({ logger: pino({ level: "debug" }, sink) });
    try {
      await callUnary(h.client, "echo", { text: "logged" });
      await rejection(callUnary(h.client, "echo", { text: "range-error" }));
      await rejection(callUnary(h.client, "echo", { text: "boom" }));
    } finally {
      await h.close();
    }
    const calls = lines.filter((l) => l.method === "/octet.common.v1.EchoService/Echo");
    assert.equal(calls.length, 3, JSON.stringify(lines));
    const [ok, bad, boom] = calls as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    assert.equal(ok.level, 20);
    assert.equal(ok.code, grpc.status.OK);
    assert.equal(typeof ok.durationMs, "number");
    assert.equal(bad.level, 40);
    assert.equal(bad.status, "INVALID_ARGUMENT");
    assert.equal(boom.level, 50);
    assert.equal(boom.code, grpc.status.INTERNAL);
    assert.match(String((boom.err as { stack?: string }).stack), /unexpected failure/);
  });
});
