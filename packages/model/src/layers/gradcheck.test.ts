// Every op's backward against central finite differences (float32 kernels, float64 projection; tolerance:
// relative Frobenius error below 1e-2 over the checked entries; see testing/gradcheck.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import type { TensorHandle } from "../backend/backend.js";
import { CpuBackend } from "../backend/cpu.js";
import { type ModelConfig, presetConfig } from "../config.js";
import { ParameterStore } from "../params.js";
import { makePrecision } from "../precision.js";
import { Rng, host, numericalGrad, project, randn, relError, tensor } from "../testing/gradcheck.js";
import { MultiHeadAttention, MultiHeadLatentAttention, type AttentionLayer } from "./attention.js";
import { SwiGLU } from "./ffn.js";
import { Linear } from "./linear.js";
import { MoE } from "./moe.js";

const be = new CpuBackend();
const TOL = 1e-2;

function check(name: string, analytic: ArrayLike<number>, loss: () => number, x: Float32Array, h = 1e-2, limit = 200) {
  const err = relError(analytic, numericalGrad(loss, x, h, limit));
  assert.ok(err < TOL, `${name}: relative error ${err.toExponential(2)} ≥ ${TOL}`);
}

test("kernel: rmsnorm", () => {
  const rng = Rng.fromU32Seed(1);
  const [R, C] = [5, 12];
  const x = randn(R * C, rng);
  const w = randn(C, rng);
  const r = randn(R * C, rng);
  const [xt, wt, rt] = [tensor(x, [R, C]), tensor(w, [C]), tensor(r, [R, C])];
  const L = () => project(host(be.rmsnormForward(xt, wt, 1e-6).y), r);
  const { rstd } = be.rmsnormForward(xt, wt, 1e-6);
  const dw = new Float32Array(C);
  const dx = be.rmsnormBackward(rt, xt, wt, rstd, tensor(dw, [C]));
  check("dx", host(dx), L, x);
  check("dweight", dw, L, w);
});

test("kernel: swiglu, cross-entropy, rope", () => {
  const rng = Rng.fromU32Seed(2);
  const g = randn(40, rng);
  const u = randn(40, rng);
  const r = randn(40, rng);
  const [gt, ut] = [tensor(g, [40]), tensor(u, [40])];
  const { dGate, dUp } = be.swigluBackward(tensor(r, [40]), gt, ut);
  check("dgate", host(dGate), () => project(host(be.swigluForward(gt, ut)), r), g);
  check("dup", host(dUp), () => project(host(be.swigluForward(gt, ut)), r), u);

  const [R, V] = [6, 9];
  const logits = randn(R * V, rng);
  const targets = be.fromHost(Int32Array.from({ length: R }, (_, i) => (i * 5) % V), [R]);
  const lt = tensor(logits, [R, V]);
  const { dLogits } = be.crossEntropy(lt, targets, true);
  check("dlogits", host(dLogits!), () => be.read([be.crossEntropy(lt, targets, false).loss])[0][0], logits);

  // RoPE is linear: its backward is the inverse rotation applied to the upstream gradient.
  const [N, T, H, stride, off, dim] = [8, 4, 2, 10, 2, 6];
  const x = randn(N * H * stride, rng);
  const ry = randn(N * H * stride, rng);
  const L = () => {
    const y = Float32Array.from(x);
    be.rope(tensor(y, [N, H * stride]), T, H, stride, off, dim, 10000, false);
    return project(y, ry);
  };
  const dx = Float32Array.from(ry);
  be.rope(tensor(dx, [N, H * stride]), T, H, stride, off, dim, 10000, true);
  check("rope dx", dx, L, x);
});

test("kernel: causal attention", () => {
  const rng = Rng.fromU32Seed(3);
  const s = { batch: 2, seqLen: 5, heads: 2, qkDim: 6, vDim: 4, scale: 1 / Math.sqrt(6) };
  const N = s.batch * s.seqLen;
  const q = randn(N * s.heads * s.qkDim, rng);
  const k = randn(N * s.heads * s.qkDim, rng);
  const v = randn(N * s.heads * s.vDim, rng);
  const r = randn(N * s.heads * s.vDim, rng);
  const [qt, kt, vt] = [tensor(q, [N, s.heads * s.qkDim]), tensor(k, [N, s.heads * s.qkDim]), tensor(v, [N, s.heads * s.vDim])];
  const L = () => project(host(be.attentionForward(qt, kt, vt, s).out), r);
  const { saved } = be.attentionForward(qt, kt, vt, s);
  const { dq, dk, dv } = be.attentionBackward(tensor(r, [N, s.heads * s.vDim]), qt, kt, vt, saved, s);
  check("dq", host(dq), L, q);
  check("dk", host(dk), L, k);
  check("dv", host(dv), L, v);
  // Causality: the first token's output does not depend on later keys.
  const out1 = host(be.attentionForward(qt, kt, vt, s).out).slice(0, s.heads * s.vDim);
  k[(1 * s.heads) * s.qkDim] += 5;
  assert.deepEqual(host(be.attentionForward(qt, kt, vt, s).out).slice(0, s.heads * s.vDim), out1);
});

test("layer: Linear (fp32 recipe) dx and dW", () => {
  const rng = Rng.fromU32Seed(4);
  const store = new ParameterStore(rng, be);
  const lin = new Linear(store, "l", 7, 5, makePrecision("fp32", be), 0.5);
  const T = 6;
  const x = randn(T * 7, rng);
  const r = randn(T * 5, rng);
  const xt = tensor(x, [T, 7]);
  lin.forward(xt);
  const dx = lin.backward(tensor(r, [T, 5]));
  const L = () => project(host(lin.forward(xt)), r);
  check("dx", host(dx), L, x);
  check("dW", host(lin.weight.grad), L, host(lin.weight.value));
});

function microModel(over: Partial<ModelConfig> = {}): ModelConfig {
  const m = presetConfig("micro").model;
  return {
    ...m,
    dModel: 16, nHeads: 2, seqLen: 4, ffnHidden: 12,
    attention: { kind: "mla", qLoraRank: 8, kvLoraRank: 6, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 3 },
    moe: { ...m.moe, nRoutedExperts: 4, nGroup: 2, topkGroup: 1, topK: 2, expertHidden: 6, nSharedExperts: 1 },
    initStd: 0.3,
    ...over,
  };
}

function checkLayer(name: string, build: (store: ParameterStore) => {
  forward: (x: TensorHandle, save: boolean) => TensorHandle; backward: (dy: TensorHandle) => TensorHandle; provideInput?: (x: TensorHandle) => void;
}, inDim: number, outDim: number, tokens: number, recompute: boolean, paramsToCheck: string[], h = 1e-2) {
  const rng = Rng.fromU32Seed(5);
  const store = new ParameterStore(rng, be);
  const layer = build(store);
  const x = randn(tokens * inDim, rng);
  const r = randn(tokens * outDim, rng);
  const xt = tensor(x, [tokens, inDim]);
  layer.forward(xt, !recompute);
  if (recompute) layer.provideInput!(xt);
  const dx = layer.backward(tensor(r, [tokens, outDim]));
  const L = () => project(host(layer.forward(xt, true)), r);
  check(`${name} dx`, host(dx), L, x, h);
  for (const p of paramsToCheck) check(`${name} d${p}`, host(store.get(p).grad), L, host(store.get(p).value), h, 60);
}

for (const recompute of [false, true]) {
  test(`layer: MHA (recompute inputs ${recompute})`, () => {
    const cfg = microModel({ attention: { kind: "mha", headDim: 4 } });
    let layer!: AttentionLayer;
    checkLayer("mha", (store) => {
      layer = new MultiHeadAttention(store, "a", cfg, makePrecision("fp32", be), 0.3);
      return { forward: (x, save) => layer.forward(x, 2, save), backward: (dy) => layer.backward(dy), provideInput: (x) => layer.provideInput(x) };
    }, 16, 16, 8, recompute, ["a.wq.weight", "a.wk.weight", "a.wv.weight", "a.wo.weight"]);
  });

  test(`layer: MLA (recompute up-projections and inputs ${recompute})`, () => {
    for (const qLoraRank of [8, 0]) {
      const base = microModel();
      const cfg = microModel({
        attention: { ...(base.attention as Extract<ModelConfig["attention"], { kind: "mla" }>), qLoraRank },
        recompute: { rmsnorm: recompute, mlaUp: recompute },
      });
      let layer!: AttentionLayer;
      const params = qLoraRank ? ["a.wq_a.weight", "a.q_norm.weight", "a.wq_b.weight"] : ["a.wq.weight"];
      checkLayer(`mla q${qLoraRank}`, (store) => {
        layer = new MultiHeadLatentAttention(store, "a", cfg, makePrecision("fp32", be), 0.3);
        return { forward: (x, save) => layer.forward(x, 2, save), backward: (dy) => layer.backward(dy), provideInput: (x) => layer.provideInput(x) };
      }, 16, 16, 8, recompute, [...params, "a.wkv_a.weight", "a.kv_norm.weight", "a.wkv_b.weight", "a.wo.weight"]);
    }
  });
}

test("layer: SwiGLU FFN", () => {
  checkLayer("ffn", (store) => {
    const f = new SwiGLU(store, "f", 8, 10, makePrecision("fp32", be), 0.4, 0.4);
    return { forward: (x, save) => f.forward(x, save), backward: (dy) => f.backward(dy), provideInput: (x) => f.provideInput(x) };
  }, 8, 8, 6, true, ["f.w1.weight", "f.w2.weight", "f.w3.weight"]);
});

test("layer: DeepSeekMoE (routed + shared experts, gate through the router)", () => {
  const cfg = microModel();
  for (const recompute of [false, true]) {
    checkLayer("moe", (store) => {
      const m = new MoE(store, "m", cfg, makePrecision("fp32", be), 0.3);
      return { forward: (x, save) => m.forward(x, save), backward: (dy) => m.backward(dy), provideInput: (x) => m.provideInput(x) };
    }, 16, 16, 10, recompute, ["m.gate.weight", "m.shared.w1.weight", "m.experts.0.w2.weight", "m.experts.3.w1.weight"], 1e-3);
  }
});
