// HostTensor: the CPU's tensor handle holds exactly its shape's elements in its dtype's typed array.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HostTensor, type TensorHandle } from "./tensor.js";

test("HostTensor: zeroed memory of the dtype's array, or a view of the given one (no copy)", () => {
  const z = new HostTensor("BF16", [2, 3]);
  assert.ok(z.data instanceof Uint16Array);
  assert.equal(z.data.length, 6);
  assert.equal(z.size, 6);
  assert.deepEqual(z.shape, [2, 3]);
  assert.equal(z.device, "cpu");
  assert.ok(Object.isFrozen(z.shape));
  const backing = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const rows = new HostTensor("F32", [1, 3], backing.subarray(3));
  rows.data[0] = 9;
  assert.equal(backing[3], 9);
  assert.equal(new HostTensor("C64", [2]).data.length, 4); // two float32 per complex element
  assert.equal(new HostTensor("F8_E4M3", [4]).data.constructor, Uint8Array);
  assert.equal(new HostTensor("F32", []).size, 1); // a scalar
});

test("HostTensor: a wrong array type, length, shape or dtype is refused naming it", () => {
  assert.throws(() => new HostTensor("F32", [2], new Uint16Array(2) as unknown as Float32Array), /HostTensor: F32 data must be a Float32Array, got Uint16Array/);
  assert.throws(() => new HostTensor("I32", [2, 2], new Int32Array(3)), /shape \[2, 2\] holds 4 I32 values, the array has 3/);
  assert.throws(() => new HostTensor("F32", [2, -1]), /HostTensor: shape: dimension -1 is not a non-negative integer/);
  assert.throws(() => new HostTensor("F17" as "F32", [1]), /unknown dtype "F17"/);
});

test("HostTensor.of narrows a handle to the host tensor, and names a device tensor it cannot read", () => {
  const t = new HostTensor("F32", [3]);
  const h: TensorHandle = t;
  assert.equal(HostTensor.of(h), t);
  const device: TensorHandle = { shape: [4, 8], dtype: "BF16", device: "cuda" };
  assert.throws(() => HostTensor.of(device, "weights"), /weights: BF16 \[4, 8\] on cuda is not a host tensor/);
});
