// What one request must not be able to do to the keeper: reserve more memory than the machine has, hold the event
// loop, keep state under a name that is a path, or change state without the bearer token.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { totalmem } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { callUnary, type OctetServer } from "@octet/proto";
import { startEmaServer } from "./service.js";
import { EmaClient, createEmaServiceClient, importState } from "./client.js";
import { EmaKeeper, defaultMaxEmaBytes } from "./keeper.js";
import { runSpecToProto } from "./convert.js";
import { params } from "./testing/params.js";

const TOKEN = "ema-keeper-test-token-0123456789";
const decay = { kind: "fixed" as const, decay: 0.9 };
const servers: OctetServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown()));
});

async function start(options: Parameters<typeof startEmaServer>[0] = {}) {
  const s = await startEmaServer({ port: 0, shutdownGraceMs: 100, ...options });
  servers.push(s.server);
  return s;
}

const failsWith = (code: grpc.status, re: RegExp) => (e: grpc.ServiceError) => {
  assert.equal(e.code, code, e.details);
  assert.match(e.details, re);
  return true;
};

test("the default limit is half of physical memory (or of a container's limit); the issue's 2 TiB RegisterRun is refused at once, naming the sizes, while other runs answer", async () => {
  const limit = process.constrainedMemory?.() ?? 0;
  assert.equal(defaultMaxEmaBytes(), Math.floor((limit > 0 ? Math.min(totalmem(), limit) : totalmem()) / 2));
  assert.ok(defaultMaxEmaBytes() > 0);
  const { keeper, address } = await start(); // the default keeper: maxEmaBytes = half of RAM
  assert.ok(defaultMaxEmaBytes() < 2 ** 41, "this machine has less than 4 TiB of memory");
  const small = new EmaClient({ address, run: "small" });
  const raw = createEmaServiceClient(address);
  try {
    await small.registerRun({ tensors: [{ name: "w", shape: [4] }], decay });
    // 1000 tensors of 2^29 float32 elements: 2 TiB of EMA.
    const huge = { run: "huge", tensors: Array.from({ length: 1000 }, (_, i) => ({ name: `t${i}`, shape: [2 ** 29] })), decay };
    const t0 = performance.now();
    const [refused, status] = await Promise.allSettled([
      callUnary(raw, "registerRun", { spec: runSpecToProto(huge) }, { deadlineMs: 5000 }),
      small.status(),
    ]);
    assert.ok(performance.now() - t0 < 2000, "refused without allocating");
    assert.equal(refused.status, "rejected");
    failsWith(
      grpc.status.RESOURCE_EXHAUSTED,
      new RegExp(`run "huge" needs 2147483648000 bytes \\(2\\.0 TiB\\) of fp32 EMA for 1000 tensors, but 16 bytes of the keeper's ${defaultMaxEmaBytes()} bytes`),
    )((refused as PromiseRejectedResult).reason as grpc.ServiceError);
    assert.equal(status.status, "fulfilled");
    assert.deepEqual(keeper.listRuns(), ["small"]);
  } finally {
    small.close();
    raw.close();
  }
});

test("a registration only reserves its bytes: the EMA is allocated by the first applied update", async () => {
  const keeper = new EmaKeeper({ maxEmaBytes: 1 << 30 });
  const elements = 1 << 24; // 64 MiB of fp32
  const before = process.memoryUsage().arrayBuffers;
  keeper.registerRun({ run: "lazy", tensors: [{ name: "w", shape: [elements] }], decay });
  assert.equal(keeper.status("lazy").emaBytes, elements * 4, "reserved");
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 << 20, "nothing of the 64 MiB is allocated yet");
  // A second run that does not fit in what is left is refused, though nothing is allocated: the bytes are reserved.
  assert.throws(() => keeper.registerRun({ run: "more", tensors: [{ name: "w", shape: [(1 << 28) - elements + 1] }], decay }), {
    name: "EmaRangeError",
    code: "RESOURCE_EXHAUSTED",
  });
  const p = params(elements, 3);
  keeper.push("lazy", 0, { w: p });
  await keeper.idle("lazy");
  const snap = await keeper.snapshot("lazy");
  assert.deepEqual(snap.tensors.get("w")!.subarray(0, 1000), p.subarray(0, 1000));
  assert.equal(snap.tensors.get("w")!.length, elements);
});

test("ImportEma of a state larger than the limit is refused from its header, before its tensors are allocated", async () => {
  const { keeper, address } = await start({ keeperOptions: { maxEmaBytes: 1 << 20 } });
  const raw = createEmaServiceClient(address);
  try {
    const shape = [1 << 19]; // 2 MiB of EMA against a 1 MiB limit
    const state = {
      metadata: { format: "octet.ema.v1" as const, run: "imp", step: 1, updates: 1, decay, updateInterval: 1, nonFinite: "reject" as const, tensors: [{ name: "w", shape, dtype: "F32" as const }] },
      tensors: new Map([["w", { dtype: "F32" as const, shape, data: new Uint8Array(4 << 19) }]]),
    };
    await assert.rejects(importState(raw, state), failsWith(grpc.status.RESOURCE_EXHAUSTED, /run "imp" needs 2097152 bytes \(2\.0 MiB\)/));
    assert.deepEqual(keeper.listRuns(), []);
  } finally {
    raw.close();
  }
});

test("run names ../../etc and a\\0b and tensor name ../../x are INVALID_ARGUMENT naming the name, as at the checkpointer", async () => {
  const { keeper, address } = await start();
  const raw = createEmaServiceClient(address);
  try {
    for (const run of ["../../etc", "a\0b"]) {
      await assert.rejects(
        callUnary(raw, "registerRun", { spec: runSpecToProto({ run, tensors: [{ name: "w", shape: [2] }], decay }) }),
        failsWith(grpc.status.INVALID_ARGUMENT, new RegExp(`^invalid run name ${escapeRegExp(JSON.stringify(run))}:`)),
      );
      await assert.rejects(callUnary(raw, "getStatus", { run }), failsWith(grpc.status.INVALID_ARGUMENT, /invalid run name/));
    }
    await assert.rejects(
      callUnary(raw, "registerRun", { spec: runSpecToProto({ run: "ok", tensors: [{ name: "../../x", shape: [2] }], decay }) }),
      failsWith(grpc.status.INVALID_ARGUMENT, /invalid tensor name "\.\.\/\.\.\/x"/),
    );
    assert.deepEqual(keeper.listRuns(), []);
  } finally {
    raw.close();
  }
});

test("with a token, RegisterRun, PushParameters, ImportEma and DropRun need it; GetStatus, GetEma and ExportEma do not", async () => {
  const { keeper, address } = await start({ authToken: TOKEN });
  assert.match(address, /^127\.0\.0\.1:\d+$/, "loopback by default");
  const anonymous = new EmaClient({ address, run: "r" });
  const trusted = new EmaClient({ address, run: "r", clientOptions: { authToken: TOKEN } });
  const spec = { tensors: [{ name: "w", shape: [3] }], decay };
  try {
    await assert.rejects(anonymous.registerRun(spec), failsWith(grpc.status.UNAUTHENTICATED, /RegisterRun needs a bearer token/));
    assert.deepEqual(keeper.listRuns(), []);
    await trusted.registerRun(spec);

    anonymous.push(0, { w: new Float32Array([1, 2, 3]) });
    await anonymous.flush();
    assert.equal(anonymous.stats().failed, 1);
    assert.equal((anonymous.stats().lastError as grpc.ServiceError).code, grpc.status.UNAUTHENTICATED);
    assert.equal(keeper.status("r").appliedStep, -1, "the refused push changed nothing");
    trusted.push(0, { w: new Float32Array([1, 2, 3]) });
    await trusted.flush();
    await keeper.idle("r");

    // Reads are open.
    assert.equal((await anonymous.status()).appliedStep, 0);
    assert.deepEqual([...(await anonymous.getEma()).tensors.get("w")!], [1, 2, 3]);
    const exported = await anonymous.exportState();

    await assert.rejects(anonymous.importState(exported), failsWith(grpc.status.UNAUTHENTICATED, /ImportEma/));
    await assert.rejects(anonymous.dropRun(), failsWith(grpc.status.UNAUTHENTICATED, /DropRun/));
    assert.deepEqual(keeper.listRuns(), ["r"]);
    assert.equal(await trusted.dropRun(), true);
    assert.deepEqual(await trusted.importState(exported), { run: "r", step: 0 });
  } finally {
    anonymous.close();
    trusted.close();
  }
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
