import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchLoader, evalBatches, evalWindowCount, type BatchLoaderPosition } from "./batches.js";

const ramp = (n: number) => Uint16Array.from({ length: n }, (_, i) => i % 65536);

test("BatchLoader: windows are contiguous, targets are inputs shifted by one, and in range", () => {
  const tokens = ramp(1000);
  const loader = new BatchLoader(tokens, { batchSize: 4, seqLen: 16, seed: 3 });
  for (let s = 0; s < 50; s++) {
    const { inputs, targets, batchSize, seqLen } = loader.next();
    assert.equal(batchSize, 4);
    assert.equal(seqLen, 16);
    assert.equal(inputs.length, 64);
    for (let b = 0; b < 4; b++) {
      const start = inputs[b * 16];
      assert.ok(start >= 0 && start + 16 < 1000, `start ${start}`);
      for (let t = 0; t < 16; t++) {
        assert.equal(inputs[b * 16 + t], start + t);
        assert.equal(targets[b * 16 + t], start + t + 1);
      }
    }
  }
  assert.equal(loader.steps, 50);
});

test("BatchLoader: same seed → same batches; different seed → different", () => {
  const tokens = ramp(5000);
  const a = new BatchLoader(tokens, { batchSize: 2, seqLen: 8, seed: 11 });
  const b = new BatchLoader(tokens, { batchSize: 2, seqLen: 8, seed: 11 });
  const c = new BatchLoader(tokens, { batchSize: 2, seqLen: 8, seed: 12 });
  const x = a.next();
  assert.deepEqual(b.next(), x);
  assert.notDeepEqual(c.next().inputs, x.inputs);
});

test("BatchLoader: every start offset, the last one included, is reachable", () => {
  const tokens = ramp(12);
  const loader = new BatchLoader(tokens, { batchSize: 8, seqLen: 4, seed: 0 });
  const seen = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const { inputs } = loader.next();
    for (let b = 0; b < 8; b++) seen.add(inputs[b * 4]);
  }
  assert.deepEqual([...seen].sort((p, q) => p - q), [0, 1, 2, 3, 4, 5, 6, 7]); // 12 − 4 = 8 starts
});

test("BatchLoader: restore mid-way (through JSON) gives identical subsequent batches", () => {
  const tokens = ramp(10000);
  const opts = { batchSize: 3, seqLen: 32, seed: 2024 };
  const a = new BatchLoader(tokens, opts);
  for (let i = 0; i < 17; i++) a.next();
  const pos = JSON.parse(JSON.stringify(a.position())) as BatchLoaderPosition;
  assert.equal(pos.step, 17);
  const expected = Array.from({ length: 10 }, () => a.next());
  const b = new BatchLoader(tokens, opts);
  b.next(); // anywhere: restore overrides
  b.restore(pos);
  assert.equal(b.steps, 17);
  assert.deepEqual(Array.from({ length: 10 }, () => b.next()), expected);
  // A fresh loader's batches differ from the resumed ones (the position matters).
  assert.notDeepEqual(new BatchLoader(tokens, opts).next(), expected[0]);
});

test("BatchLoader: mismatched or malformed positions and bad options are refused", () => {
  const tokens = ramp(100);
  const a = new BatchLoader(tokens, { batchSize: 2, seqLen: 8, seed: 1 });
  const pos = a.position();
  assert.throws(() => new BatchLoader(tokens, { batchSize: 3, seqLen: 8, seed: 1 }).restore(pos), /batchSize 2 but this loader has 3/);
  assert.throws(() => new BatchLoader(ramp(99), { batchSize: 2, seqLen: 8, seed: 1 }).restore(pos), /tokens 100 but this loader has 99/);
  assert.throws(() => a.restore({ ...pos, kind: "x" as never }), TypeError);
  assert.throws(() => a.restore({ ...pos, rng: [0, 0, 0, 0] }), /all-zero/);
  assert.throws(() => a.restore({ ...pos, step: -1 }), /step/);
  assert.throws(() => new BatchLoader(ramp(8), { batchSize: 1, seqLen: 8, seed: 1 }), /too few for one window/);
  assert.throws(() => new BatchLoader(tokens, { batchSize: 0, seqLen: 8, seed: 1 }), /batchSize must be at least 1/);
  assert.throws(() => new BatchLoader(tokens, { batchSize: 1, seqLen: 8, seed: -3 }), /seed/);
  assert.throws(() => new BatchLoader([1, 2, 3] as never, { batchSize: 1, seqLen: 1, seed: 1 }), TypeError);
});

test("evalBatches: non-overlapping windows covering every target once, last batch partial, deterministic", () => {
  const tokens = ramp(103);
  const batches = [...evalBatches(tokens, { batchSize: 4, seqLen: 10 })];
  assert.equal(evalWindowCount(103, 10), 10);
  assert.deepEqual(batches.map((b) => b.batchSize), [4, 4, 2]);
  const targets = batches.flatMap((b) => [...b.targets]);
  assert.deepEqual(targets, Array.from({ length: 100 }, (_, i) => i + 1));
  const inputs = batches.flatMap((b) => [...b.inputs]);
  assert.deepEqual(inputs, Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual([...evalBatches(tokens, { batchSize: 4, seqLen: 10 })], batches);
  assert.equal([...evalBatches(tokens, { batchSize: 4, seqLen: 10, maxBatches: 2 })].length, 2);
  assert.equal([...evalBatches(ramp(101), { batchSize: 4, seqLen: 10 })].reduce((s, b) => s + b.batchSize, 0), 10);
  assert.throws(() => [...evalBatches(ramp(10), { batchSize: 1, seqLen: 10 })], /too few/);
  assert.throws(() => [...evalBatches(tokens, { batchSize: 1, seqLen: 10, maxBatches: 1.5 })], /maxBatches/);
});
