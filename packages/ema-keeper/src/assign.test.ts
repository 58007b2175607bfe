import { test } from "node:test";
import assert from "node:assert/strict";
import { assignTensors, fnv1a } from "./assign.js";
import type { TensorSpec } from "./types.js";

const tensors: TensorSpec[] = [
  { name: "embed", shape: [1000, 64] },
  { name: "l0.w", shape: [64, 256] },
  { name: "l0.b", shape: [256] },
  { name: "l1.w", shape: [256, 64] },
  { name: "l1.b", shape: [64] },
  { name: "head", shape: [64, 1000] },
  { name: "norm", shape: [64] },
];

test("greedy assignment is a partition, balanced, and independent of input order", () => {
  const a = assignTensors(tensors, 3);
  const names = a.byKeeper.flat().map((t) => t.name).sort();
  assert.deepEqual(names, tensors.map((t) => t.name).sort());
  assert.equal(a.owner.size, tensors.length);
  // embed and head (64000 elements each) go to different keepers
  assert.notEqual(a.owner.get("embed"), a.owner.get("head"));
  const total = a.emaBytes.reduce((x, y) => x + y, 0);
  assert.equal(total, tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1) * 4, 0));
  const b = assignTensors([...tensors].reverse(), 3);
  assert.deepEqual([...b.owner].sort(), [...a.owner].sort());
  assert.deepEqual(b.emaBytes, a.emaBytes);
});

test("LPT bound: the largest keeper holds at most 4/3 of the ideal plus the largest tensor", () => {
  const many: TensorSpec[] = [];
  for (let i = 0; i < 200; i++) many.push({ name: `t${i}`, shape: [1 + ((i * 7919) % 997), 16] });
  const a = assignTensors(many, 5);
  const total = a.emaBytes.reduce((x, y) => x + y, 0);
  assert.ok(Math.max(...a.emaBytes) <= (total / 5) * (4 / 3));
});

test("hash assignment uses fnv1a(name) mod keepers", () => {
  const a = assignTensors(tensors, 4, "hash");
  for (const t of tensors) assert.equal(a.owner.get(t.name), fnv1a(t.name) % 4);
  assert.equal(fnv1a(""), 0x811c9dc5);
  assert.equal(fnv1a("a"), 0xe40c292c);
});

test("bad arguments are RangeError", () => {
  assert.throws(() => assignTensors(tensors, 0), RangeError);
  assert.throws(() => assignTensors([...tensors, { name: "norm", shape: [1] }], 2), RangeError);
  assert.throws(() => assignTensors(tensors, 2, "round-robin" as never), RangeError);
});
