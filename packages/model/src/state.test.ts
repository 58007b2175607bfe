// The model's state files: safetensors through @octet/numerics' codec, tensors in name order, the metadata as JSON
// under __metadata__.octet, and only the dtypes model state uses.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deserialize, serialize } from "@octet/numerics";
import { type TrainingState, decodeSafetensors, encodeSafetensors } from "./state.js";

function sample(): TrainingState {
  return {
    tensors: new Map([
      ["z/param", { dtype: "F32" as const, shape: [2, 2], data: Float32Array.of(1, -2, 3.5, 0) }],
      ["a/moment", { dtype: "BF16" as const, shape: [3], data: Uint16Array.of(0x3f80, 0xc000, 0) }],
      ["rng/data", { dtype: "U32" as const, shape: [4], data: Uint32Array.of(1, 2, 3, 0xffffffff) }],
      ["count", { dtype: "I32" as const, shape: [], data: Int32Array.of(-7) }],
    ]),
    meta: { kind: "octet.model/v1", step: 12, nested: { a: [1, 2] } },
  };
}

test("round trip: every model dtype, shapes, metadata; tensors come back in name order as own arrays", () => {
  const bytes = encodeSafetensors(sample());
  const back = decodeSafetensors(bytes);
  assert.deepEqual([...back.tensors.keys()], ["a/moment", "count", "rng/data", "z/param"]);
  for (const [name, t] of sample().tensors) {
    const got = back.tensors.get(name)!;
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.equal(got.data.constructor, t.data.constructor, name);
    assert.deepEqual([...got.data], [...t.data], name);
    assert.notEqual(got.data.buffer, bytes.buffer, `${name} is a copy, not a view of the file`);
  }
  assert.deepEqual(back.meta, sample().meta);
  // The layout other tools see: the metadata JSON under "octet", tensors contiguous in name order.
  const file = deserialize(bytes);
  assert.deepEqual(JSON.parse(file.metadata!.octet), sample().meta);
  assert.deepEqual(file.tensors.map((t) => t.name), ["a/moment", "count", "rng/data", "z/param"]);
});

test("a file without Octet metadata reads with empty meta; non-model dtypes and inconsistent tensors are refused", () => {
  const plain = serialize([{ name: "w", dtype: "F32", shape: [1], data: new Uint8Array(4) }]);
  assert.deepEqual(decodeSafetensors(plain).meta, {});
  const f64 = serialize([{ name: "w", dtype: "F64", shape: [1], data: new Uint8Array(8) }]);
  assert.throws(() => decodeSafetensors(f64), (e: Error) => e instanceof RangeError && /"w": dtype F64 is not a model state dtype/.test(e.message));
  const state = sample();
  state.tensors.set("bad", { dtype: "F32", shape: [3], data: new Float32Array(2) });
  assert.throws(() => encodeSafetensors(state), (e: Error) => e instanceof RangeError && /"bad": 8 data bytes, expected 12/.test(e.message));
  assert.throws(() => decodeSafetensors(plain.subarray(0, plain.length - 1)), RangeError);
});
