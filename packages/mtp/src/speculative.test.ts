import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptanceRate, speculativeDecode } from "./speculative.js";

const V = 8;
// Main model: next = last + 1 (mod V). Drafter: right (next + 1) unless next ≡ 0 (mod 4), then off by one.
const mainNextToken = (p: readonly number[]) => (p[p.length - 1] + 1) % V;
const mtpDraftAfterNext = (_p: readonly number[], next: number) => (next % 4 === 0 ? (next + 2) % V : (next + 1) % V);

test("acceptanceRate: a synthetic deterministic model with a known answer (3/4)", () => {
  const r = acceptanceRate({ mainNextToken, mtpDraftAfterNext, sequences: [[0, 1, 2, 3, 4, 5, 6, 7]] });
  assert.equal(r.total, 8); // prefixes of length 1..8
  assert.equal(r.accepted, 6); // last token 3 or 7 → next 4 or 0 → rejected
  assert.equal(r.rate, 0.75);
  const perfect = acceptanceRate({ mainNextToken, mtpDraftAfterNext: (_p, n) => (n + 1) % V, sequences: [[3, 1], [5]], minPrefix: 1 });
  assert.deepEqual(perfect, { accepted: 3, total: 3, rate: 1 });
  const never = acceptanceRate({ mainNextToken, mtpDraftAfterNext: (_p, n) => n, sequences: [[1, 2, 3]], minPrefix: 2 });
  assert.deepEqual(never, { accepted: 0, total: 2, rate: 0 });
});

test("acceptanceRate: the draft is verified against the main model given its own next token, not the text", () => {
  // Text that disagrees with the main model everywhere: acceptance only depends on the models.
  const r = acceptanceRate({ mainNextToken, mtpDraftAfterNext: (_p, n) => (n + 1) % V, sequences: [[0, 5, 2, 7, 1]] });
  assert.equal(r.rate, 1);
});

test("speculativeDecode: output equals plain greedy decoding; counts accepted drafts and steps", () => {
  const r = speculativeDecode({ mainNextToken, mtpDraftAfterNext, prompt: [1], maxNewTokens: 16 });
  assert.deepEqual(r.tokens, Array.from({ length: 16 }, (_, i) => (i + 2) % V));
  // Steps emit [2,3] [4] [5,6] [7,0] [1,2] [3,4] [5,6] [7,0] [1]: the draft after next = 4 is wrong
  // (the only even `next`, since an accepted pair keeps the parity); the 16th token ends the run.
  assert.equal(r.steps, 9);
  assert.equal(r.total, 8);
  assert.equal(r.accepted, 7);
  assert.equal(r.tokensPerStep, 16 / 9);
  const perfect = speculativeDecode({ mainNextToken, mtpDraftAfterNext: (_p, n) => (n + 1) % V, prompt: [2], maxNewTokens: 10 });
  assert.equal(perfect.steps, 5);
  assert.equal(perfect.tokensPerStep, 2);
  assert.equal(perfect.rate, 1);
  const bad = speculativeDecode({ mainNextToken, mtpDraftAfterNext: (_p, n) => n, prompt: [2], maxNewTokens: 10 });
  assert.deepEqual(bad.tokens, perfect.tokens);
  assert.equal(bad.steps, 10);
  assert.equal(bad.rate, 0);
});

test("acceptance / decode: bad inputs are refused", () => {
  assert.throws(() => acceptanceRate({ mainNextToken, sequences: [[1]] } as never), /must be functions/);
  assert.throws(() => acceptanceRate({ mainNextToken: () => -1, mtpDraftAfterNext, sequences: [[1]] }), /non-negative integer token/);
  assert.throws(() => acceptanceRate({ mainNextToken, mtpDraftAfterNext, sequences: [[1]], minPrefix: 0 }), /minPrefix/);
  assert.throws(() => speculativeDecode({ mainNextToken, mtpDraftAfterNext, prompt: [], maxNewTokens: 3 }), /prompt must not be empty/);
  assert.throws(() => speculativeDecode({ mainNextToken, mtpDraftAfterNext, prompt: [1], maxNewTokens: -1 }), /maxNewTokens/);
});
