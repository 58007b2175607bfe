import assert from "node:assert/strict";
import { test } from "node:test";
import { octet } from "./gen/protos.js";
import { serviceNames, services } from "./gen/services.js";
import { protoFiles } from "./protos.js";

test("every proto/*.proto is generated and every service gets a definition", () => {
  assert.ok(protoFiles().some((f) => f.endsWith("common.proto")));
  assert.ok(serviceNames.includes("octet.common.v1.EchoService"));
  const def = services.common.v1.EchoServiceDefinition;
  assert.deepEqual(Object.keys(def), ["echo", "echoStream", "slow"]);
  assert.equal(def.echo!.path, "/octet.common.v1.EchoService/Echo");
  assert.equal(def.echoStream!.requestStream, true);
  assert.equal(def.echoStream!.responseStream, true);
  assert.equal(def.slow!.requestStream, false);
  assert.equal(typeof services.common.v1.EchoServiceClient, "function");
});

test("static codecs: int64 fields are JS numbers, enums and repeated fields round-trip", () => {
  const { TensorHeader, DType } = octet.common.v1;
  const bytes = TensorHeader.encode({ name: "w", shape: [4096, 7168], dtype: DType.DTYPE_BF16 }).finish();
  const back = TensorHeader.decode(bytes);
  assert.deepEqual(back.shape, [4096, 7168]);
  assert.equal(typeof back.shape[0], "number");
  assert.equal(back.dtype, DType.DTYPE_BF16);
  const def = services.common.v1.EchoServiceDefinition.echo!;
  const reply = def.responseDeserialize(def.responseSerialize({ text: "t", sequence: 2 ** 40 }));
  assert.equal(reply.sequence, 2 ** 40);
});
