import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { callUnary, createClient, services, status, type OctetServer } from "@octet/proto";
import { startNumericsServer } from "./server.js";
import { dequantize, quantizeReference } from "../quantize.js";
import { encodeBf16 } from "../formats.js";
import { randomNormal, seededRandom } from "../testing/golden.js";
import { bytesOf } from "./tensors.js";

type Client = InstanceType<typeof services.numerics.v1.NumericsServiceClient>;
let server: OctetServer;
let client: Client;
const MAX_MESSAGE = 1 << 20; // 1 MiB: a 512x1024 f32 tensor (2 MiB) needs the streaming calls

before(async () => {
  const started = await startNumericsServer({ host: "127.0.0.1", port: 0, maxMessageBytes: MAX_MESSAGE, service: { chunkBytes: 256 << 10, maxElements: 1 << 22 } });
  server = started.server;
  client = createClient(services.numerics.v1.NumericsServiceClient, `127.0.0.1:${started.port}`, { maxMessageBytes: MAX_MESSAGE });
});

after(async () => {
  client.close();
  await server.shutdown("tests done");
});

function asBytes(u: Uint8Array | null | undefined): Uint8Array {
  return u ?? new Uint8Array(0);
}

test("Quantize (unary) over real gRPC equals the library bit for bit, f32 and bf16 input", async () => {
  const x = randomNormal(seededRandom(11), 3 * 300, 4);
  const want = quantizeReference(x, [3, 300], { block: [1, 128], format: "e5m2", scale: "pow2" });
  const res = await callUnary(client, "quantize", { header: { shape: [3, 300], block: [1, 128], format: 2, scale: 2, dtype: 1 }, data: bytesOf(x) }, { deadlineMs: 5000 });
  assert.deepEqual(res.header?.shape, [3, 300]);
  assert.deepEqual(res.header?.scaleGrid, [3, 3]);
  assert.deepEqual(Buffer.from(asBytes(res.data)), Buffer.from(want.data));
  assert.deepEqual(Buffer.from(asBytes(res.scales)), Buffer.from(bytesOf(want.scales)));

  const bf16 = encodeBf16(x);
  const fromBf16 = await callUnary(client, "quantize", { header: { shape: [3, 300], block: [128, 128], dtype: 2 }, data: bytesOf(bf16) });
  const widened = new Float32Array(new Uint32Array(Array.from(bf16, (b) => b << 16)).buffer);
  assert.deepEqual(Buffer.from(asBytes(fromBf16.data)), Buffer.from(quantizeReference(widened, [3, 300], { block: [128, 128] }).data));
});

test("Dequantize (unary) returns the library's float32 values", async () => {
  const q = quantizeReference(randomNormal(seededRandom(12), 130 * 7), [130, 7], { block: [128, 1] });
  const res = await callUnary(client, "dequantize", { header: { shape: [130, 7], block: [128, 1], format: 1 }, data: q.data, scales: bytesOf(q.scales) });
  assert.deepEqual(res.shape, [130, 7]);
  assert.deepEqual(Buffer.from(asBytes(res.data)), Buffer.from(bytesOf(dequantize(q))));
});

test("bad requests get INVALID_ARGUMENT naming the field; oversized tensors RESOURCE_EXHAUSTED", async () => {
  const cases: Array<[object, RegExp, number]> = [
    [{ header: { shape: [2, 3], block: [1, 128] }, data: new Uint8Array(20) }, /data has 20 bytes but shape \[2,3\] of f32 needs 24/, status.INVALID_ARGUMENT],
    [{ header: { shape: [2], block: [1, 128] }, data: new Uint8Array(8) }, /header\.shape must be two positive integers/, status.INVALID_ARGUMENT],
    [{ header: { shape: [1, 2], block: [1, 128], format: 7 }, data: new Uint8Array(8) }, /header\.format: unknown value 7/, status.INVALID_ARGUMENT],
    [{ header: { shape: [1, 2], block: [1, 0] }, data: new Uint8Array(8) }, /header\.block/, status.INVALID_ARGUMENT],
    [{ data: new Uint8Array(8) }, /header is required/, status.INVALID_ARGUMENT],
    [{ header: { shape: [1, 2], block: [1, 128] }, data: bytesOf(Float32Array.of(1, NaN)) }, /non-finite input NaN at row 0, column 1/, status.INVALID_ARGUMENT],
    [{ header: { shape: [4096, 4096], block: [1, 128] }, data: new Uint8Array(0) }, /above this server's limit/, status.RESOURCE_EXHAUSTED],
  ];
  for (const [request, message, code] of cases) {
    await assert.rejects(callUnary(client, "quantize", request), (err: grpc.ServiceError) => err.code === code && message.test(err.details), JSON.stringify(request).slice(0, 80));
  }
  await assert.rejects(
    callUnary(client, "dequantize", { header: { shape: [2, 2], block: [1, 128], format: 1 }, data: new Uint8Array(4), scales: new Uint8Array(4) }),
    (err: grpc.ServiceError) => err.code === status.INVALID_ARGUMENT && /scales has 4 bytes but .* needs 8/.test(err.details),
  );
});

async function runBidi<Req, Res>(call: grpc.ClientDuplexStream<Req, Res>, messages: Req[]): Promise<Res[]> {
  const replies: Res[] = [];
  const done = new Promise<Res[]>((resolve, reject) => {
    call.on("data", (m: Res) => replies.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(replies));
  });
  for (const m of messages) call.write(m);
  call.end();
  return done;
}

test("QuantizeStream and DequantizeStream carry a tensor larger than one message, round trip equal to the library", async () => {
  const rows = 512, cols = 1024; // 2 MiB of float32, above the 1 MiB message limit
  const x = randomNormal(seededRandom(13), rows * cols);
  const payload = bytesOf(x);
  const messages: object[] = [{ header: { shape: [rows, cols], block: [1, 128], format: 1 } }];
  for (let o = 0; o < payload.byteLength; o += 300_000) messages.push({ data: payload.subarray(o, o + 300_000) });
  const replies = await runBidi(client.quantizeStream(), messages as never[]);
  assert.ok(replies.length > 3, `expected several reply messages, got ${replies.length}`);
  const header = (replies[0] as { header: { shape: number[]; scaleGrid: number[] } }).header;
  assert.deepEqual(header.shape, [rows, cols]);
  const data = Buffer.concat(replies.map((r) => Buffer.from(asBytes((r as { data?: Uint8Array }).data))));
  const scales = Buffer.concat(replies.map((r) => Buffer.from(asBytes((r as { scales?: Uint8Array }).scales))));
  const want = quantizeReference(x, [rows, cols], { block: [1, 128] });
  assert.ok(data.equals(Buffer.from(want.data)), "codes differ from the library");
  assert.ok(scales.equals(Buffer.from(bytesOf(want.scales))), "scales differ from the library");

  const back = await runBidi(client.dequantizeStream(), [
    { header: { shape: [rows, cols], block: [1, 128], format: 1 } },
    { data: data.subarray(0, 400_000) },
    { data: data.subarray(400_000), scales },
  ] as never[]);
  const values = Buffer.concat(back.map((r) => Buffer.from(asBytes((r as { data?: Uint8Array }).data))));
  assert.ok(values.equals(Buffer.from(bytesOf(dequantize(want)))));
});

test("a stream with more bytes than its header promises, or a second header, is INVALID_ARGUMENT", async () => {
  await assert.rejects(
    runBidi(client.quantizeStream(), [{ header: { shape: [1, 2], block: [1, 128] } }, { data: new Uint8Array(12) }] as never[]),
    (err: grpc.ServiceError) => err.code === status.INVALID_ARGUMENT && /received more than the 8 bytes/.test(err.details),
  );
  await assert.rejects(
    runBidi(client.quantizeStream(), [{ header: { shape: [1, 2], block: [1, 128] } }, { header: { shape: [1, 2], block: [1, 128] } }] as never[]),
    (err: grpc.ServiceError) => err.code === status.INVALID_ARGUMENT && /header may only be sent in the first message/.test(err.details),
  );
  await assert.rejects(
    runBidi(client.quantizeStream(), [{ header: { shape: [1, 2], block: [1, 128] } }, { data: new Uint8Array(4) }] as never[]),
    (err: grpc.ServiceError) => err.code === status.INVALID_ARGUMENT && /received 4 bytes but the header's shape needs 8/.test(err.details),
  );
});

test("the octet-numerics binary serves, rejects bad flags with a message and a non-zero exit, and stops on SIGTERM", async () => {
  const cli = fileURLToPath(new URL("../cli.ts", import.meta.url));
  const bad = spawn(process.execPath, ["--import", "tsx", cli, "--port", "nope"], { stdio: ["ignore", "ignore", "pipe"] });
  let badErr = "";
  bad.stderr.on("data", (d) => (badErr += d));
  const badCode = await new Promise<number | null>((resolve) => bad.on("exit", resolve));
  assert.notEqual(badCode, 0);
  assert.match(badErr, /PORT|port/);

  const child = spawn(process.execPath, ["--import", "tsx", cli, "--host", "127.0.0.1", "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on("data", (d) => {
      stderr += d;
      const m = /listening on [^:]+:(\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const c = createClient(services.numerics.v1.NumericsServiceClient, `127.0.0.1:${port}`);
  const res = await callUnary(c, "quantize", { header: { shape: [1, 1], block: [1, 128] }, data: bytesOf(Float32Array.of(448)) }, { deadlineMs: 5000 });
  assert.equal(asBytes(res.data)[0], 0x7e);
  c.close();
  const exit = new Promise<number | null>((resolve) => child.on("exit", resolve));
  child.kill("SIGTERM");
  assert.equal(await exit, 0);
});

test("a server with a bearer token still answers every call without one: the service is stateless, nothing to protect", async () => {
  const guarded = await startNumericsServer({ host: "127.0.0.1", port: 0, authToken: "numerics-test-token-0123456789" });
  const anonymous = createClient(services.numerics.v1.NumericsServiceClient, `127.0.0.1:${guarded.port}`);
  try {
    const x = randomNormal(seededRandom(5), 128, 1);
    const res = await callUnary(anonymous, "quantize", { header: { shape: [1, 128], block: [1, 128], format: 1, scale: 1, dtype: 1 }, data: bytesOf(x) }, { deadlineMs: 5000 });
    assert.deepEqual(res.header?.shape, [1, 128]);
  } finally {
    anonymous.close();
    await guarded.server.shutdown("tests done");
  }
});
