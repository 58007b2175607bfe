import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "./rng.js";

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
  const r = new Rng(0);
  assert.throws(() => r.setState([1, 2, 3] as never), /array of 4 uint32/);
  assert.throws(() => r.setState([0, 0, 0, 0]), /all-zero/);
  assert.throws(() => r.setState([1, 2, 3, 2 ** 32]), RangeError);
});
