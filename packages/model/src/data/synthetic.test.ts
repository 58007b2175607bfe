import { test } from "node:test";
import assert from "node:assert/strict";
import { syntheticCorpus } from "./synthetic.js";

test("syntheticCorpus: default sizes, vocabulary, and generation well under a second or two", () => {
  const t0 = performance.now();
  const c = syntheticCorpus({ seed: 1 });
  const ms = performance.now() - t0;
  assert.equal(c.vocabSize, 64);
  assert.equal(c.train.length, 1 << 20);
  assert.equal(c.val.length, 1 << 16);
  assert.ok(c.train instanceof Uint16Array && c.val instanceof Uint16Array);
  let max = 0;
  for (const t of c.train) if (t > max) max = t;
  assert.ok(max < 64);
  assert.ok(ms < 3000, `generation took ${ms.toFixed(0)} ms`);
  assert.match(c.description, /Entropy rate \d\.\d{4}/);
});

test("syntheticCorpus: deterministic in the seed", () => {
  const a = syntheticCorpus({ seed: 5, trainTokens: 20000, valTokens: 2000 });
  const b = syntheticCorpus({ seed: 5, trainTokens: 20000, valTokens: 2000 });
  const c = syntheticCorpus({ seed: 6, trainTokens: 20000, valTokens: 2000 });
  assert.deepEqual(a.train, b.train);
  assert.deepEqual(a.val, b.val);
  assert.equal(a.entropyRate, b.entropyRate);
  assert.notDeepEqual(a.train, c.train);
  assert.notEqual(a.entropyRate, c.entropyRate);
});

test("syntheticCorpus: the true model's empirical NLL matches the entropy rate (within 0.01 nats on 1M tokens)", () => {
  for (const opts of [{ seed: 1 }, { seed: 2, order: 1 as const }, { seed: 3, sharedSuccessors: false }, { seed: 4, vocabSize: 256, concentration: 1 }]) {
    const c = syntheticCorpus(opts);
    const nll = c.trueNll(c.train);
    assert.ok(Math.abs(nll - c.entropyRate) < 0.01, `${c.name}: empirical ${nll} vs entropy rate ${c.entropyRate}`);
    // The val split continues the same stationary stream (64K tokens: looser tolerance).
    assert.ok(Math.abs(c.trueNll(c.val) - c.entropyRate) < 0.04, `${c.name}: val ${c.trueNll(c.val)}`);
  }
});

test("syntheticCorpus: entropy rate well below the bigram floor, which is well below the unigram entropy", () => {
  const c = syntheticCorpus({ seed: 1, trainTokens: 1000, valTokens: 0 });
  assert.ok(c.unigramEntropy <= Math.log(c.vocabSize) + 1e-12);
  assert.ok(c.unigramEntropy - c.entropyRate > 2, `unigram ${c.unigramEntropy} vs rate ${c.entropyRate}`);
  assert.ok(c.order1Entropy - c.entropyRate > 0.15, `bigram ${c.order1Entropy} vs rate ${c.entropyRate}`);
  assert.ok(c.unigramEntropy - c.order1Entropy > 1);
  const o1 = syntheticCorpus({ seed: 1, order: 1, trainTokens: 1000, valTokens: 0 });
  assert.equal(o1.order1Entropy, o1.entropyRate);
});

test("syntheticCorpus: unigramEntropy is the entropy of the empirical token frequencies (stationary π)", () => {
  const c = syntheticCorpus({ seed: 9 });
  const counts = new Float64Array(c.vocabSize);
  for (const t of c.train) counts[t]++;
  let h = 0;
  for (const n of counts) if (n > 0) h -= (n / c.train.length) * Math.log(n / c.train.length);
  assert.ok(Math.abs(h - c.unigramEntropy) < 0.01, `empirical ${h} vs ${c.unigramEntropy}`);
});

test("syntheticCorpus: next-token distributions are proper and every token is possible", () => {
  const c = syntheticCorpus({ seed: 2, trainTokens: 100, valTokens: 0 });
  for (const ctx of [[0, 0], [5, 63], [63, 1]]) {
    const p = c.nextTokenDistribution(ctx);
    assert.equal(p.length, 64);
    assert.ok(Math.abs(p.reduce((s, x) => s + x, 0) - 1) < 1e-12);
    assert.ok(p.every((x) => x >= 0.02 / 64 - 1e-15));
    assert.equal(p.filter((x) => x > 0.02 / 64 + 1e-12).length <= 4, true);
  }
  // Shared successors: the set of likely successors depends on the previous token only.
  const likely = (ctx: number[]) => [...c.nextTokenDistribution(ctx)].map((x, i) => (x > 0.02 / 64 + 1e-12 ? i : -1)).filter((i) => i >= 0);
  assert.deepEqual(likely([3, 17]), likely([40, 17]));
});

test("syntheticCorpus: bad options are refused with errors naming the option", () => {
  assert.throws(() => syntheticCorpus({} as never), /seed/);
  assert.throws(() => syntheticCorpus({ seed: 1, vocabSize: 1 }), /vocabSize must be in \[2, 1024\]/);
  assert.throws(() => syntheticCorpus({ seed: 1, vocabSize: 2000 }), RangeError);
  assert.throws(() => syntheticCorpus({ seed: 1, order: 3 as never }), /order must be 1 or 2/);
  assert.throws(() => syntheticCorpus({ seed: 1, successors: 65 }), /successors/);
  assert.throws(() => syntheticCorpus({ seed: 1, smoothing: 0 }), /smoothing/);
  assert.throws(() => syntheticCorpus({ seed: 1, concentration: -1 }), /concentration/);
  assert.throws(() => syntheticCorpus({ seed: 1, trainTokens: 2.5 }), TypeError);
  const c = syntheticCorpus({ seed: 1, trainTokens: 10, valTokens: 0 });
  assert.throws(() => c.nextTokenDistribution([1]), /at least 2 tokens/);
  assert.throws(() => c.trueNll([1, 2, 99]), /outside the vocabulary/);
});
