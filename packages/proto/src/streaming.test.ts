import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { createClient } from "./client.js";
import { octet } from "./gen/protos.js";
import { clientStreaming, serverStreaming } from "./handlers.js";
import { OctetServer } from "./server.js";

// A hand-written definition (not from proto/) reusing the Echo messages, to exercise the streaming wrappers.
const { EchoRequest, EchoReply } = octet.common.v1;
const ser = (t: typeof EchoRequest | typeof EchoReply) => (m: object) => Buffer.from(t.encode(m).finish());
const codec = {
  requestSerialize: ser(EchoRequest),
  requestDeserialize: (b: Buffer) => EchoRequest.decode(b),
  responseSerialize: ser(EchoReply),
  responseDeserialize: (b: Buffer) => EchoReply.decode(b),
};
const StreamsDefinition = {
  split: { path: "/test.Streams/Split", requestStream: false, responseStream: true, ...codec },
  join: { path: "/test.Streams/Join", requestStream: true, responseStream: false, ...codec },
} as grpc.ServiceDefinition;
type StreamsClient = grpc.Client & {
  split(req: octet.common.v1.IEchoRequest): grpc.ClientReadableStream<octet.common.v1.EchoReply>;
  join(cb: grpc.requestCallback<octet.common.v1.EchoReply>): grpc.ClientWritableStream<octet.common.v1.IEchoRequest>;
};

describe("streaming wrappers", () => {
  let server: OctetServer;
  let client: StreamsClient;
  const splitEnds: string[] = [];
  before(async () => {
    server = new OctetServer({ name: "streams", host: "127.0.0.1", logger: pino({ level: "silent" }), maxMessageBytes: 1 << 20 });
    server.addService(StreamsDefinition, {
      split: serverStreaming<octet.common.v1.EchoRequest, octet.common.v1.IEchoReply>(async (req, ctx, write) => {
        const n = Number(req.text);
        try {
          for (let i = 0; i < n; i++) await write({ sequence: i, payload: req.payload });
          splitEnds.push("done");
        } catch (err) {
          splitEnds.push(ctx.signal.aborted ? "aborted" : "error");
          throw err;
        }
      }),
      join: clientStreaming<octet.common.v1.EchoRequest, octet.common.v1.IEchoReply>(async (reqs) => {
        const parts: string[] = [];
        for await (const r of reqs) parts.push(r.text);
        return { text: parts.join("+"), sequence: parts.length };
      }),
    });
    const { port } = await server.start();
    const Ctor = grpc.makeGenericClientConstructor(StreamsDefinition, "Streams") as unknown as new (a: string, c: grpc.ChannelCredentials) => StreamsClient;
    client = createClient(Ctor, `127.0.0.1:${port}`);
  });
  after(async () => {
    client.close();
    await server.shutdown();
  });

  test("server streaming sends every message in order under backpressure (8 MiB through a slow reader)", async () => {
    const payload = Buffer.alloc(32 * 1024, 7);
    const call = client.split({ text: "256", payload });
    const seen: number[] = [];
    for await (const msg of call as AsyncIterable<octet.common.v1.EchoReply>) {
      seen.push(msg.sequence);
      assert.equal(msg.payload.length, payload.length);
      if (seen.length % 64 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(seen, Array.from({ length: 256 }, (_, i) => i));
    assert.equal(splitEnds.at(-1), "done");
  });

  test("cancelling a server stream aborts the handler's pending write", async () => {
    const call = client.split({ text: "100000", payload: Buffer.alloc(16 * 1024) });
    call.on("error", () => undefined);
    await new Promise<void>((resolve) => call.once("data", () => resolve()));
    call.cancel();
    const deadline = Date.now() + 2000;
    while (splitEnds.at(-1) !== "aborted" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(splitEnds.at(-1), "aborted");
  });

  test("client streaming receives every request as an async iterable", async () => {
    const res = await new Promise<octet.common.v1.EchoReply>((resolve, reject) => {
      const call = client.join((err, r) => (err ? reject(err) : resolve(r!)));
      for (const text of ["x", "y", "z"]) call.write({ text });
      call.end();
    });
    assert.equal(res.text, "x+y+z");
    assert.equal(res.sequence, 3);
  });
});
