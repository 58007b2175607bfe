import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createClient, createLogger, octet, services } from "@octet/proto";
import { CheckpointClient } from "./client.js";
import { serialize } from "@octet/numerics";
import { type RunningCheckpointServer, startCheckpointServer } from "./server.js";
import { byteTensor, f32Tensor, tempDir } from "./testing/util.js";

const MAX_MSG = 1024 * 1024;
let srv: RunningCheckpointServer;
let client: CheckpointClient;
let tmp: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  tmp = await tempDir();
  srv = await startCheckpointServer({ host: "127.0.0.1", port: 0, dataDir: tmp.dir, maxMessageBytes: MAX_MSG, shardMaxBytes: 2 * MAX_MSG, maxCheckpointBytes: 64 * MAX_MSG, logger: createLogger("test", "silent") });
  client = new CheckpointClient(srv.address, { maxMessageBytes: MAX_MSG });
  await client.waitForReady();
});

after(async () => {
  client.close();
  await srv.close();
  await tmp.cleanup();
});

const code = (c: grpc.status, re?: RegExp) => (e: grpc.ServiceError) => e.code === c && (!re || re.test(e.details));

test("save over gRPC: staged, then durable; list; load all and by name; tensors larger than a message", async () => {
  const big = byteTensor("model.layers.0.mlp.experts.3.w1", 3 * MAX_MSG + 123, 5); // 4 messages
  const tensors = [f32Tensor("embed", [64, 32]), big, { name: "scalar", dtype: "F64" as const, shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) }, { name: "empty", dtype: "BF16" as const, shape: [0], data: new Uint8Array(0) }];
  const s = client.save("svc", 100, tensors, { config: '{"layers":2}', rng: "seed=1" });
  const receipt = await s.staged;
  assert.equal(receipt.step, 100);
  assert.equal(receipt.tensors, 4);
  assert.equal(receipt.totalBytes, 64 * 32 * 4 + big.data.length + 8);
  const info = await s.durable;
  assert.equal(info.shards, 3); // 8 KiB + (3 MiB tensor alone) + 8 bytes
  assert.deepEqual(info.metadata, { config: '{"layers":2}', rng: "seed=1" });
  const listed = await client.list("svc");
  assert.deepEqual(listed.map((c) => c.step), [100]);

  const loaded = await client.load("svc", 100);
  assert.deepEqual(loaded.tensors.map((t) => [t.name, t.dtype, t.shape]), tensors.map((t) => [t.name, t.dtype, t.shape]));
  for (const [i, t] of loaded.tensors.entries()) assert.ok(Buffer.from(t.data).equals(Buffer.from(tensors[i].data)), t.name);
  const one = await client.load("svc", 100, { names: ["scalar"] });
  assert.equal(Buffer.from(one.tensors[0].data).readDoubleLE(0), Math.PI);
  await assert.rejects(client.load("svc", 100, { names: ["missing"] }), code(grpc.status.NOT_FOUND, /missing/));
  await assert.rejects(client.load("svc", 101), code(grpc.status.NOT_FOUND));
  const dup = client.save("svc", 100, [byteTensor("x", 4)]);
  await assert.rejects(dup.staged, code(grpc.status.ALREADY_EXISTS));
});

test("path traversal and odd names are INVALID_ARGUMENT with the reason; nothing is written outside", async () => {
  for (const run of ["../escape", "/etc", "a/../../b", "..", "a\\b", "run\n"]) {
    await assert.rejects(client.save(run, 1, [byteTensor("x", 4)]).staged, code(grpc.status.INVALID_ARGUMENT, /invalid run name/), run);
    await assert.rejects(client.load(run, 1), code(grpc.status.INVALID_ARGUMENT, /invalid run name/));
    await assert.rejects(client.delete(run, 1), code(grpc.status.INVALID_ARGUMENT, /invalid run name/));
  }
  for (const name of ["../../../etc/passwd", "/abs", "a/../b", "x y"]) {
    await assert.rejects(client.save("ok", 1, [byteTensor(name, 4)]).staged, code(grpc.status.INVALID_ARGUMENT, /invalid tensor name/), name);
  }
  await assert.rejects(client.save("ok", 1, [{ ...byteTensor("x", 4), dtype: "U8", shape: [5] }]).staged, code(grpc.status.INVALID_ARGUMENT, /got 4 of 5 bytes/));
  assert.deepEqual((await client.list()).map((c) => c.run), ["svc"]);
});

test("a message above the size limit is refused with RESOURCE_EXHAUSTED; the server keeps serving", async () => {
  const raw = createClient(services.checkpoint.v1.CheckpointServiceClient, srv.address, { maxMessageBytes: 8 * MAX_MSG });
  try {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      const call = raw.saveCheckpoint((e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error("accepted"))));
      call.write({ header: { run: "big", step: 1 } });
      call.write({ chunk: { name: "x", dtype: "U8", shape: [2 * MAX_MSG], data: Buffer.alloc(2 * MAX_MSG) } });
      call.end();
    });
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /larger than max/i);
  } finally {
    raw.close();
  }
  assert.equal((await client.list("big")).length, 0);
  assert.equal((await client.list("svc")).length, 1);
});

test("stream protocol errors: chunk before header, dtype unknown, checkpoint above the limit", async () => {
  const raw = createClient(services.checkpoint.v1.CheckpointServiceClient, srv.address, { maxMessageBytes: MAX_MSG });
  const send = (msgs: octet.checkpoint.v1.ISaveRequest[]) =>
    new Promise<grpc.ServiceError>((resolve, reject) => {
      const call = raw.saveCheckpoint((e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error("accepted"))));
      for (const m of msgs) call.write(m);
      call.end();
    });
  try {
    assert.match((await send([{ chunk: { name: "x", dtype: "U8", shape: [1], data: Buffer.alloc(1) } }])).details, /first message of SaveCheckpoint must be the header/);
    const e2 = await send([{ header: { run: "p", step: 1 } }, { chunk: { name: "x", dtype: "F12", shape: [1], data: Buffer.alloc(1) } }]);
    assert.equal(e2.code, grpc.status.INVALID_ARGUMENT);
    assert.match(e2.details, /unknown dtype "F12"/);
    const e3 = await send([{ header: { run: "p", step: 1 } }, { chunk: { name: "x", dtype: "F32", shape: [1 << 30], data: Buffer.alloc(0) } }]);
    assert.equal(e3.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(e3.details, /exceeds the 67108864-byte limit/);
    const e4 = await send([{ header: { run: "p", step: 1 } }, { chunk: { name: "x", dtype: "U8", shape: [2], data: Buffer.alloc(3) } }]);
    assert.match(e4.details, /more than the 2 bytes/);
  } finally {
    raw.close();
  }
  assert.equal(srv.store.pendingBytes, 0);
});

test("corruption over gRPC: DATA_LOSS naming the shard, no tensor sent; latest valid falls back", async () => {
  await client.save("cor", 1, [byteTensor("a", 5000, 1)]).durable;
  await client.save("cor", 2, [byteTensor("a", 5000, 2)]).durable;
  const shard = join(tmp.dir, "runs", "cor", "step-000000000002", "shard-00000-of-00001.safetensors");
  const b = await readFile(shard);
  b[b.length - 1] ^= 0xff;
  await writeFile(shard, b);
  // Raw stream: count messages received before the error.
  const raw = createClient(services.checkpoint.v1.CheckpointServiceClient, srv.address, { maxMessageBytes: MAX_MSG });
  let received = 0;
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    const call = raw.loadCheckpoint({ run: "cor", step: 2 });
    call.on("data", () => received++);
    call.on("error", resolve);
  });
  raw.close();
  assert.equal(err.code, grpc.status.DATA_LOSS);
  assert.match(err.details, /cor@2 is corrupted: shard-00000-of-00001\.safetensors: SHA-256 mismatch/);
  assert.equal(received, 0);
  const latest = await client.loadLatestValid("cor");
  assert.equal(latest.info.step, 1);
  assert.deepEqual(latest.skipped.map((s) => [s.step, s.object]), [[2, "shard-00000-of-00001.safetensors"]]);
  assert.ok(Buffer.from(latest.tensors[0].data).equals(Buffer.from(byteTensor("a", 5000, 1).data)));
});

test("WaitDurable by unknown id is NOT_FOUND; delete; import a safetensors file", async () => {
  await assert.rejects(client.waitDurable("no-such-id"), code(grpc.status.NOT_FOUND));
  const file = serialize([f32Tensor("w", [3, 3], 1), byteTensor("b", 2 * MAX_MSG, 3)], { format: "pt" });
  const imp = client.importSafetensors("imported", 9, file, { origin: "hf" });
  assert.equal((await imp.staged).tensors, 2);
  await imp.durable;
  const l = await client.load("imported", 9);
  assert.deepEqual(l.metadata, { origin: "hf", "safetensors.metadata": '{"format":"pt"}' });
  assert.ok(Buffer.from(l.tensors[1].data).equals(Buffer.from(byteTensor("b", 2 * MAX_MSG, 3).data)));
  await assert.rejects(client.importSafetensors("imported", 10, Buffer.from("not a safetensors file")).staged, code(grpc.status.INVALID_ARGUMENT, /header length|too short|past the end/));
  await client.delete("imported", 9);
  assert.deepEqual(await client.list("imported"), []);
  await assert.rejects(client.delete("imported", 9), code(grpc.status.NOT_FOUND));
});
