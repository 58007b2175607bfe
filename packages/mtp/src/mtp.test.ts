import { test } from "node:test";
import assert from "node:assert/strict";
import { HostTensor, type TensorHandle } from "@octet/numerics";
import { MultiTokenPrediction, normalStream, type MtpBatch } from "./mtp.js";
import { TableEmbedding, LinearHead } from "./reference.js";
import { CausalMixBlock, IdentityBlock, host } from "./testing/blocks.js";
import type { NamedParam } from "./interfaces.js";
import { cpuMtpKernels } from "./kernels.js";

const B = 2;
const T = 6;
const d = 4;
const V = 7;

function randomArray(n: number, seed: number, std = 1): Float32Array {
  const r = normalStream(seed);
  return Float32Array.from({ length: n }, () => r() * std);
}

/** The values of 1-element tensors (losses). */
const values = (ts: readonly TensorHandle[]): number[] => cpuMtpKernels.read(ts).map((v) => v[0]);
const value = (t: TensorHandle): number => values([t])[0];
const f32 = (data: Float32Array, rows: number) => new HostTensor("F32", [rows, data.length / rows], data);
const i32 = (data: Int32Array) => new HostTensor("I32", [data.length], data);
/** The batch's token arrays (host). */
const tokensOf = (b: MtpBatch) => ({ inputs: HostTensor.of(b.inputs).data as Int32Array, targets: HostTensor.of(b.targets).data as Int32Array });

function setup(D: number, blockKind: "mix" | "identity" = "mix") {
  const embedding = new TableEmbedding(V, d, randomArray(V * d, 11));
  const head = new LinearHead(V, d, { weight: randomArray(V * d, 12, 0.7) });
  host(head.norm!.value).set(randomArray(d, 13, 0.2).map((x) => 1 + x));
  const blocks = Array.from({ length: D }, (_, k) => (blockKind === "mix" ? new CausalMixBlock(d, 20 + k) : new IdentityBlock()));
  const mtp = new MultiTokenPrediction({ dim: d, blocks, embedding, head, seed: 5 });
  // Non-trivial norm gains so their gradients are exercised.
  for (const m of mtp.modules) {
    host(m.enorm.value).set(randomArray(d, 30, 0.3).map((x) => 1 + x));
    host(m.hnorm.value).set(randomArray(d, 31, 0.3).map((x) => 1 + x));
  }
  const stream = Int32Array.from({ length: B * (T + 1) }, (_, i) => (i * 5 + ((i * i) % 3)) % V);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      inputs[b * T + i] = stream[b * (T + 1) + i];
      targets[b * T + i] = stream[b * (T + 1) + i + 1];
    }
  }
  const batch: MtpBatch = { hidden: f32(randomArray(B * T * d, 40), B * T), inputs: i32(inputs), targets: i32(targets), batch: B, seqLen: T };
  return { embedding, head, mtp, batch };
}

test("MTP: positions scored per depth are batch·(seqLen − k); seqLen must exceed D", () => {
  const { mtp, batch } = setup(3);
  const f = mtp.forward(batch);
  assert.deepEqual(f.positions, [B * (T - 1), B * (T - 2), B * (T - 3)]);
  assert.equal(f.losses.length, 3);
  const L = values(f.losses);
  assert.ok(Math.abs(value(f.loss) - (L[0] + L[1] + L[2]) / 3) < 1e-12);
  const { inputs, targets } = tokensOf(batch);
  const short = { ...batch, seqLen: 3, hidden: f32(host(batch.hidden).subarray(0, B * 3 * d), B * 3), inputs: i32(inputs.subarray(0, B * 3)), targets: i32(targets.subarray(0, B * 3)) };
  assert.throws(() => mtp.forward(short), /seqLen 3 leaves no position for depth 3/);
});

test("MTP: losses match a naive per-position reference (module k: h^{k−1}_i and Emb(x_{i+k}) → x_{i+k+1})", () => {
  const { mtp, batch, embedding, head } = setup(2, "identity");
  const f = mtp.forward(batch);
  const { inputs, targets } = tokensOf(batch);
  const hidden = host(batch.hidden);
  const rms = (v: number[], g: Float32Array) => {
    const s = 1 / Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length + 1e-6);
    return v.map((x, j) => x * s * g[j]);
  };
  // x_j of sequence b: inputs for j < T, targets[T−1] for j = T.
  const x = (b: number, j: number) => (j < T ? inputs[b * T + j] : targets[b * T + T - 1]);
  let prev: number[][][] = [0, 1].map((b) => Array.from({ length: T }, (_, i) => Array.from(hidden.subarray((b * T + i) * d, (b * T + i + 1) * d))));
  for (let k = 1; k <= 2; k++) {
    const m = mtp.modules[k - 1];
    let sum = 0;
    let n = 0;
    const next: number[][][] = [];
    for (let b = 0; b < B; b++) {
      next.push([]);
      for (let i = 0; i + k + 1 <= T; i++) {
        const e = rms(Array.from(host(embedding.weight.value).subarray(x(b, i + k) * d, x(b, i + k) * d + d)), host(m.enorm.value));
        const h = rms(prev[b][i], host(m.hnorm.value));
        const z = [...e, ...h];
        const u = Array.from({ length: d }, (_, o) => z.reduce((s, zj, j) => s + host(m.ehProj.value)[o * 2 * d + j] * zj, 0));
        next[b].push(u); // identity block
        const hn = rms(u, host(head.norm!.value));
        const logits = Array.from({ length: V }, (_, v) => hn.reduce((s, hj, j) => s + host(head.weight.value)[v * d + j] * hj, 0));
        const mx = Math.max(...logits);
        const lse = mx + Math.log(logits.reduce((s, l) => s + Math.exp(l - mx), 0));
        sum += lse - logits[x(b, i + k + 1)];
        n++;
      }
    }
    assert.equal(n, B * (T - k));
    const Lk = value(f.losses[k - 1]);
    assert.ok(Math.abs(Lk - sum / n) < 1e-4, `depth ${k}: ${Lk} vs ${sum / n}`);
    prev = next;
  }
});

test("MTP: depth k never sees tokens past x_{i+k+1} — changing the last target changes only the loss terms that score it", () => {
  const { mtp, batch } = setup(2);
  const a = mtp.forward(batch);
  const changedTargets = Int32Array.from(tokensOf(batch).targets);
  changedTargets[T - 1] = (changedTargets[T - 1] + 1) % V; // x_T of sequence 0
  const b = mtp.forward({ ...batch, targets: i32(changedTargets) });
  // x_T is the target of position T−k−1 at every depth, so each L_k changes...
  assert.notEqual(value(a.losses[0]), value(b.losses[0]));
  assert.notEqual(value(a.losses[1]), value(b.losses[1]));
  // ...but is never an input: the depth-1 hidden states (hence depth-2's inputs) are unchanged, so the
  // change in L_2 comes from one term only. Check via the last input instead: x_{T−1} feeds depth 1 at
  // position T−2 and depth 2 at position T−3; changing h^0 at the last position changes nothing.
  const hidden = Float32Array.from(host(batch.hidden));
  for (let j = 0; j < d; j++) hidden[(T - 1) * d + j] += 1;
  const c = mtp.forward({ ...batch, hidden: f32(hidden, B * T) });
  assert.deepEqual(values(c.losses), values(a.losses));
});

function fdCheck(label: string, value: Float32Array, indices: number[], lossAt: () => number, analytic: Float32Array | ((i: number) => number)) {
  const h = 1e-2;
  let worst = 0;
  for (const i of indices) {
    const x0 = value[i];
    value[i] = x0 + h;
    const up = value[i];
    const lp = lossAt();
    value[i] = x0 - h;
    const down = value[i];
    const lm = lossAt();
    value[i] = x0;
    const fd = (lp - lm) / (up - down);
    const an = typeof analytic === "function" ? analytic(i) : analytic[i];
    const err = Math.abs(fd - an);
    assert.ok(err <= 2e-4 + 2e-2 * Math.abs(an), `${label}[${i}]: analytic ${an} vs finite difference ${fd}`);
    worst = Math.max(worst, Math.abs(an));
  }
  assert.ok(worst > 1e-4, `${label}: all checked gradients are ~0 (the check would be vacuous)`);
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i);

test("MTP gradient check (finite differences): own parameters, h^0, shared embedding rows, shared head — D = 2, λ = 0.3", () => {
  const { mtp, batch, embedding, head } = setup(2);
  const lambda = 0.3;
  const f = mtp.forward(batch);
  const dHidden = mtp.backward(f.cache, lambda);
  const lossAt = () => lambda * value(mtp.forward(batch).loss);
  for (const p of mtp.params()) fdCheck(p.name, host(p.value), all(host(p.value).length), lossAt, host(p.grad));
  fdCheck("hidden", host(batch.hidden), all(host(batch.hidden).length), lossAt, host(dHidden));
  fdCheck("embed.weight", host(embedding.weight.value), all(V * d), lossAt, host(embedding.weight.grad));
  for (const p of head.params() as NamedParam[]) fdCheck(p.name, host(p.value), all(host(p.value).length), lossAt, host(p.grad));
  // The last position of each sequence feeds no MTP module: exactly zero gradient.
  for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) assert.equal(host(dHidden)[(b * T + T - 1) * d + j], 0);
  // Names: mtp.{k}.…
  assert.deepEqual(mtp.params().map((p) => p.name).slice(0, 5), ["mtp.1.enorm.weight", "mtp.1.hnorm.weight", "mtp.1.eh_proj.weight", "mtp.1.block.w", "mtp.1.block.u"]);
});

test("MTP backward: gradients scale linearly with the weight, accumulate, and a cache is single-use", () => {
  const s1 = setup(1);
  const f1 = s1.mtp.forward(s1.batch);
  const d1 = host(s1.mtp.backward(f1.cache, 1));
  const s2 = setup(1);
  const f2 = s2.mtp.forward(s2.batch);
  const d2 = host(s2.mtp.backward(f2.cache, 0.1));
  for (let i = 0; i < d1.length; i++) assert.ok(Math.abs(d2[i] - 0.1 * d1[i]) <= 1e-6 + 1e-4 * Math.abs(d1[i]));
  const g1 = Float32Array.from(host(s1.mtp.modules[0].ehProj.grad));
  assert.throws(() => s1.mtp.backward(f1.cache, 1), /already used/);
  s1.mtp.backward(s1.mtp.forward(s1.batch).cache, 1);
  const g2 = host(s1.mtp.modules[0].ehProj.grad);
  for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(g2[i] - 2 * g1[i]) <= 1e-6 + 1e-4 * Math.abs(g1[i]));
  s1.mtp.zeroGrad();
  assert.ok(s1.mtp.params().every((p) => host(p.grad).every((g) => g === 0)));
  assert.ok(host(s1.embedding.weight.grad).some((g) => g !== 0), "zeroGrad leaves the shared embedding's gradients to the main model");
});

test("MTP: a few SGD steps on the MTP loss lower it (gradients point downhill)", () => {
  const { mtp, batch, embedding, head } = setup(2);
  const params = [...mtp.params(), embedding.weight, ...head.params()];
  const first = value(mtp.forward(batch).loss);
  for (let step = 0; step < 30; step++) {
    for (const p of params) host(p.grad).fill(0);
    const f = mtp.forward(batch);
    mtp.backward(f.cache, 1);
    for (const p of params) {
      const [v, g] = [host(p.value), host(p.grad)];
      for (let i = 0; i < v.length; i++) v[i] -= 0.5 * g[i];
    }
  }
  const last = value(mtp.forward(batch).loss);
  assert.ok(last < first * 0.7, `loss ${first} → ${last}`);
});

test("MTP: bad construction and inputs are refused naming the problem", () => {
  const { embedding, head, batch, mtp } = setup(1);
  assert.throws(() => new MultiTokenPrediction({ dim: d, blocks: [], embedding, head }), /blocks must be a non-empty array/);
  assert.throws(() => new MultiTokenPrediction({ dim: d + 1, blocks: [new IdentityBlock()], embedding, head }), /dim 5 but the embedding has dim 4/);
  assert.throws(() => new MultiTokenPrediction({ dim: d, blocks: [{} as never], embedding, head }), /block must implement MtpBlock/);
  assert.throws(() => new MultiTokenPrediction({ dim: d, blocks: [new IdentityBlock()], embedding: new TableEmbedding(V + 1, d), head }), /vocabulary/);
  assert.throws(() => mtp.forward({ ...batch, hidden: f32(new Float32Array(3), 1) }), /hidden \[batch·seqLen, dim\] must be an F32 tensor \[12, 4\], got F32 \[1, 3\]/);
  assert.throws(() => mtp.forward({ ...batch, inputs: i32(new Int32Array(3)) }), /inputs \[batch·seqLen\] must be an I32 tensor \[12\]/);
  const badInputs = Int32Array.from(tokensOf(batch).inputs);
  badInputs[3] = 99;
  assert.throws(() => mtp.forward({ ...batch, inputs: i32(badInputs) }), /token 99 at \d+ is outside \[0, 7\)/);
  assert.throws(() => mtp.backward(mtp.forward(batch).cache, NaN), /weight must be a finite number/);
});

test("MTP predict: module k's logits are the ones its loss scores (depth 1 and 2), and bad arguments throw", () => {
  const { mtp, batch } = setup(2);
  const f = mtp.forward(batch);
  const { targets } = tokensOf(batch);
  for (const depth of [1, 2]) {
    const logits = host(mtp.predict({ hidden: batch.hidden, inputs: batch.inputs, batch: B, seqLen: T }, depth));
    const len = T - depth;
    assert.equal(logits.length, B * len * V);
    // Mean cross-entropy of these logits against x_{i+depth+1} equals L_depth.
    let sum = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < len; i++) {
        const row = logits.subarray((b * len + i) * V, (b * len + i + 1) * V);
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((s, l) => s + Math.exp(l - mx), 0));
        sum += lse - row[targets[b * T + i + depth]];
      }
    }
    const L = value(f.losses[depth - 1]);
    assert.ok(Math.abs(sum / (B * len) - L) < 1e-5, `depth ${depth}: ${sum / (B * len)} vs ${L}`);
  }
  assert.throws(() => mtp.predict({ hidden: batch.hidden, inputs: batch.inputs, batch: B, seqLen: T }, 3), /depth must be an integer in 1\.\.2/);
  assert.throws(() => mtp.predict({ hidden: f32(host(batch.hidden).subarray(4), B * T - 1), inputs: batch.inputs, batch: B, seqLen: T }), /hidden \[batch·seqLen, dim\] must be an F32 tensor/);
});
