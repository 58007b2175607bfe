import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "./rng.js";

// The exact streams both seedings produced before the model's and the data's generators became this one
// module: initial weights and batches depend on them, so they must never change.
test("Rng: the data seeding and the initialisation seeding keep their exact streams", () => {
  const d = new Rng(42);
  assert.deepEqual([d.nextU32(), d.nextU32()], [67576343, 3918379511]);
  assert.equal(d.nextFloat(), 0.5037807664748809);
  assert.equal(d.nextInt(1000), 732);
  assert.equal(d.nextNormal(), 1.7247198640838117);
  assert.equal(d.nextGamma(0.5), 0.09096190910086101);
  assert.deepEqual(d.state(), [3222884552, 3971839110, 4018711142, 2666690019]);
  assert.equal(new Rng(2 ** 40 + 42).nextU32(), 3808998675);
  const m = Rng.fromU32Seed(1);
  assert.deepEqual([m.nextU32(), m.nextU32(), m.nextU32()], [2442144158, 3238099751, 3819917871]);
  assert.deepEqual([m.nextNormal32(), m.nextNormal32()], [-1.174065295236994, -0.110394446313689]);
  assert.deepEqual(m.state(), [2035332689, 2745151650, 3731626756, 3165412521]);
  // Only the low 32 bits of the seed seed the initialisation stream.
  assert.equal(Rng.fromU32Seed(2 ** 32 + 5).nextU32(), 3616982058);
  assert.equal(Rng.fromU32Seed(5).nextU32(), 3616982058);
});

test("Rng: same seed → same stream, different seeds differ (including above 2^32)", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 20 }, () => a.nextU32());
  assert.deepEqual(Array.from({ length: 20 }, () => b.nextU32()), xs);
  const c = new Rng(43);
  assert.notDeepEqual(Array.from({ length: 20 }, () => c.nextU32()), xs);
  const hi1 = new Rng(2 ** 40 + 42);
  assert.notDeepEqual(Array.from({ length: 20 }, () => hi1.nextU32()), xs);
});

test("Rng: state() / setState() resume the exact stream, and survive JSON", () => {
  const a = new Rng(7);
  for (let i = 0; i < 100; i++) a.nextFloat();
  const saved = JSON.parse(JSON.stringify(a.state()));
  const rest = Array.from({ length: 50 }, () => a.nextU32());
  const b = Rng.fromState(saved);
  assert.deepEqual(Array.from({ length: 50 }, () => b.nextU32()), rest);
});

test("Rng: nextInt is in range and roughly uniform; nextFloat in [0,1) with mean ≈ 1/2; gamma mean ≈ shape", () => {
  const r = new Rng(1);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[r.nextInt(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `count ${c}`);
  let s = 0;
  for (let i = 0; i < 100000; i++) {
    const f = r.nextFloat();
    assert.ok(f >= 0 && f < 1);
    s += f;
  }
  assert.ok(Math.abs(s / 100000 - 0.5) < 0.01);
  for (const shape of [0.3, 1, 2.5]) {
    let g = 0;
    for (let i = 0; i < 50000; i++) g += r.nextGamma(shape);
    assert.ok(Math.abs(g / 50000 - shape) < 0.05 * shape + 0.01, `gamma(${shape}) mean ${g / 50000}`);
  }
});

test("Rng: bad seeds and states are refused with errors naming the problem", () => {
  assert.throws(() => new Rng(-1), /seed must be a non-negative safe integer/);
  assert.throws(() => new Rng(1.5), TypeError);
  assert.throws(() => Rng.fromU32Seed(-3), /Rng.fromU32Seed: seed must be a non-negative safe integer/);
  const r = new Rng(0);
  assert.throws(() => r.setState([1, 2, 3] as never), /array of 4 uint32/);
  assert.throws(() => r.setState([0, 0, 0, 0]), /all-zero/);
  assert.throws(() => r.setState([1, 2, 3, 2 ** 32]), RangeError);
});
