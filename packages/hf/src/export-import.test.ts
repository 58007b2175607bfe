// Octet → Hugging Face → Octet: names, config, RoPE layout, FP32 round trip bit for bit, BF16 and FP8 exports equal to
// numerics' own rounding and block quantization, packed experts, and the checkpointer as a source.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CheckpointStore } from "@octet/checkpointer";
import { type NamedTensor, loadState } from "@octet/model";
import { type Tensor, bytesOf, decodeBf16, dequantize, encodeBf16, quantize, typedArrayOf } from "@octet/numerics";
import { exportToHf } from "./export.js";
import { importFromHf } from "./import.js";
import { permuteRows, tensorPlan } from "./names.js";
import { editConfig, readHfDir, rewriteShards, trainedState, writeState } from "./testing/fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "octet-hf-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const state = trainedState(2);
const statePath = writeState(join(dir, "state.safetensors"), state);
const model = (state.meta.config as { model: import("@octet/model").ModelConfig }).model;
const f32 = (t: Tensor) => typedArrayOf("F32", t.data, { copy: true });
const param = (name: string) => state.tensors.get(name)!.data as Float32Array;

/** The state's weights: what an import must give back. */
function weightsOf(s: { tensors: Map<string, NamedTensor> }): Map<string, NamedTensor> {
  return new Map([...s.tensors].filter(([n]) => n.startsWith("param/") || n.startsWith("router/")));
}

test("FP32 export: HF names, config.json, index, shards; import gives every weight back bit for bit (both RoPE layouts)", async () => {
  for (const ropeInterleave of [true, false]) {
    const out = join(dir, `fp32-${ropeInterleave}`);
    const r = await exportToHf({ from: statePath, to: out, dtype: "fp32", ropeInterleave, maxShardBytes: 200_000 });
    assert.ok(r.files.length > 1, "small shards make several files");
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["DeepseekV3ForCausalLM"]);
    assert.equal(cfg.model_type, "deepseek_v3");
    assert.equal(cfg.tie_word_embeddings, false);
    assert.equal(cfg.rope_interleave, ropeInterleave);
    assert.deepEqual(
      [cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.first_k_dense_replace, cfg.n_routed_experts, cfg.n_shared_experts, cfg.num_experts_per_tok, cfg.n_group, cfg.topk_group],
      [model.vocabSize, model.dModel, model.nLayers, model.nDenseLayers, 8, 1, 2, 4, 2],
    );
    assert.deepEqual([cfg.q_lora_rank, cfg.kv_lora_rank, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim], [48, 32, 16, 8, 16]);
    assert.deepEqual([cfg.scoring_func, cfg.topk_method, cfg.num_nextn_predict_layers, cfg.rms_norm_eps, cfg.rope_theta], ["sigmoid", "noaux_tc", 1, 1e-6, 10000]);
    const index = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
    assert.deepEqual([...new Set(Object.values(index.weight_map))].sort(), r.files);
    const hf = readHfDir(out);
    assert.equal(index.metadata.total_size, [...hf.values()].reduce((n, t) => n + t.data.length, 0));
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...hf.keys()].sort());
    for (const name of ["model.layers.1.mlp.experts.7.down_proj.weight", "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.2.eh_proj.weight", "model.layers.2.shared_head.head.weight", "model.layers.2.mlp.experts.0.gate_proj.weight", "model.layers.0.mlp.gate_proj.weight"]) {
      assert.ok(hf.has(name), name);
    }
    assert.deepEqual(f32(hf.get("model.layers.1.mlp.gate.e_score_correction_bias")!), param("router/0/bias"));
    assert.ok(param("router/0/bias").some((b) => b !== 0), "the trained biases moved");
    assert.deepEqual(f32(hf.get("model.layers.2.mlp.gate.e_score_correction_bias")!), param("router/1/bias"), "the MTP layer's MoE is router 1");
    assert.deepEqual(hf.get("model.layers.2.shared_head.head.weight")!.data, hf.get("lm_head.weight")!.data);
    assert.deepEqual(f32(hf.get("model.layers.1.mlp.experts.3.up_proj.weight")!), param("param/layers.1.moe.experts.3.w3.weight"));
    // RoPE rows: q_b_proj per head [nope 16 | rope 8]; interleaved row 16 + 2i + 1 is Octet's row 16 + 4 + i.
    const q = f32(hf.get("model.layers.0.self_attn.q_b_proj.weight")!);
    const oq = param("param/layers.0.attn.wq_b.weight");
    const cols = 48;
    const row = (x: Float32Array, r: number) => Array.from(x.subarray(r * cols, (r + 1) * cols));
    const head = 24;
    if (ropeInterleave) {
      assert.deepEqual(row(q, head + 16 + 3), row(oq, head + 16 + 4 + 1));
      assert.deepEqual(row(q, head + 16 + 2), row(oq, head + 16 + 1));
      assert.notDeepEqual(q, oq);
    } else {
      assert.deepEqual(q, oq);
    }
    assert.deepEqual(row(q, head + 5), row(oq, head + 5), "nope rows stay");
    const back = join(dir, `back-${ropeInterleave}.safetensors`);
    const imp = await importFromHf({ from: out, to: back });
    assert.equal(imp.experts, "per-expert");
    const got = loadState(back);
    assert.equal(got.meta.kind, "octet.weights/v1");
    assert.deepEqual(got.meta.model, model);
    const want = weightsOf(state);
    assert.deepEqual([...got.tensors.keys()].sort(), [...want.keys()].sort());
    for (const [n, t] of want) assert.deepEqual(bytesOf(got.tensors.get(n)!.data), bytesOf(t.data), n);
  }
});

test("permuteRows: interleaving and its inverse are inverse permutations", () => {
  const x = Float32Array.from({ length: 2 * 6 * 3 }, (_, i) => i);
  const order = { kind: "rope" as const, heads: 2, stride: 6, offset: 2, dim: 4 };
  const p = permuteRows(x, 3, order);
  assert.deepEqual(Array.from(p.subarray(0, 18)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 9, 10, 11, 15, 16, 17]);
  assert.deepEqual(permuteRows(p, 3, order, true), x);
  // transformers' apply_rotary_pos_emb_interleave reads the stored rope part r as r.view(d/2, 2).transpose(-1, -2)
  // .reshape(d): z[j] = r[2j], z[d/2 + j] = r[2j + 1], then rotates halves — so z must be Octet's halves vector.
  const d = 8;
  const w = Float32Array.from({ length: d * 5 }, (_, i) => Math.sin(i + 1)); // a [d, 5] rope projection
  const input = Float32Array.from({ length: 5 }, (_, i) => i - 2);
  const mul = (m: Float32Array) => Array.from({ length: d }, (_, r) => m.subarray(r * 5, r * 5 + 5).reduce((a, v, c) => a + v * input[c], 0));
  const octet = mul(w);
  const stored = mul(permuteRows(w, 5, { kind: "rope", heads: 1, stride: d, offset: 0, dim: d }));
  const z = [...Array.from({ length: d / 2 }, (_, j) => stored[2 * j]), ...Array.from({ length: d / 2 }, (_, j) => stored[2 * j + 1])];
  assert.deepEqual(z, octet);
});

test("BF16 export equals numerics' BF16 rounding of the (permuted) weights; the correction bias stays F32; import widens exactly", async () => {
  const out = join(dir, "bf16");
  await exportToHf({ from: statePath, to: out });
  const hf = readHfDir(out);
  const plan = tensorPlan(model, { ropeInterleave: true });
  for (const e of plan) {
    const t = hf.get(e.hf)!;
    const x = permuteRows(param(e.octet.startsWith("router/") ? e.octet : e.octet), e.shape[1] ?? 1, e.rope);
    if (e.octet.startsWith("router/")) {
      assert.equal(t.dtype, "F32");
      assert.deepEqual(f32(t), x);
    } else {
      assert.equal(t.dtype, "BF16", e.hf);
      assert.deepEqual(typedArrayOf("BF16", t.data, { copy: true }), encodeBf16(x), e.hf);
    }
  }
  assert.equal(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).dtype, "bfloat16");
  const back = loadState((await importFromHf({ from: out, to: join(dir, "bf16.safetensors") })).to);
  for (const [n, t] of weightsOf(state)) {
    const want = n.startsWith("router/") ? t.data : decodeBf16(encodeBf16(t.data as Float32Array));
    assert.deepEqual(back.tensors.get(n)!.data, want, n);
  }
});

test("FP8 export: E4M3 codes and weight_scale_inv are numerics' 128x128 block quantization; embeddings, norms, gate, eh_proj and head stay BF16; import dequantizes to the same values", async () => {
  const out = join(dir, "fp8");
  await exportToHf({ from: statePath, to: out, dtype: "fp8" });
  const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
  assert.deepEqual(cfg.quantization_config, { quant_method: "fp8", fmt: "e4m3", activation_scheme: "dynamic", weight_block_size: [128, 128] });
  const hf = readHfDir(out);
  const plan = tensorPlan(model, { ropeInterleave: true });
  let quantized = 0;
  for (const e of plan) {
    const t = hf.get(e.hf)!;
    const scales = e.hf.endsWith(".weight") ? hf.get(e.hf.replace(/\.weight$/, ".weight_scale_inv")) : undefined;
    if (!e.fp8) {
      assert.notEqual(t.dtype, "F8_E4M3", e.hf);
      assert.equal(scales, undefined, e.hf);
      continue;
    }
    quantized++;
    const q = quantize(permuteRows(param(e.octet), e.shape[1], e.rope), [e.shape[0], e.shape[1]], { block: [128, 128], format: "e4m3" });
    assert.equal(t.dtype, "F8_E4M3");
    assert.deepEqual(t.data, q.data, e.hf);
    assert.deepEqual(scales!.shape, [Math.ceil(e.shape[0] / 128), Math.ceil(e.shape[1] / 128)]);
    assert.deepEqual(f32(scales!), q.scales, e.hf);
  }
  for (const n of ["model.embed_tokens.weight", "lm_head.weight", "model.layers.1.mlp.gate.weight", "model.layers.2.eh_proj.weight", "model.norm.weight", "model.layers.0.self_attn.kv_a_layernorm.weight"]) {
    assert.equal(hf.get(n)!.dtype, "BF16", n);
  }
  assert.equal(hf.get("model.layers.1.mlp.experts.5.gate_proj.weight")!.dtype, "F8_E4M3");
  assert.ok(quantized > 50);
  const back = loadState((await importFromHf({ from: out, to: join(dir, "fp8.safetensors") })).to);
  for (const e of plan) {
    if (e.copyOf) continue;
    const got = back.tensors.get(e.octet)!.data as Float32Array;
    const x = param(e.octet);
    let want: Float32Array;
    if (e.fp8) want = permuteRows(dequantize(quantize(permuteRows(x, e.shape[1], e.rope), [e.shape[0], e.shape[1]], { block: [128, 128], format: "e4m3" })), e.shape[1], e.rope, true);
    else want = e.octet.startsWith("router/") ? x : decodeBf16(encodeBf16(x));
    assert.deepEqual(got, want, e.octet);
  }
});

test("import reads experts packed as transformers 5.x holds them (gate_up_proj [E, 2I, C], down_proj [E, C, I])", async () => {
  const out = join(dir, "packed");
  await exportToHf({ from: statePath, to: out, dtype: "fp32" });
  const E = 8;
  rewriteShards(out, (tensors) => {
    const keep = tensors.filter((t) => !/\.mlp\.experts\.\d+\./.test(t.name));
    const layers = new Set(tensors.map((t) => /^(.*\.mlp\.experts)\.\d+\./.exec(t.name)?.[1]).filter((x): x is string => !!x));
    const byName = new Map(tensors.map((t) => [t.name, t]));
    for (const l of layers) {
      const part = (e: number, p: string) => byName.get(`${l}.${e}.${p}.weight`)!;
      if (!part(0, "gate_proj")) continue;
      const [I, C] = part(0, "gate_proj").shape;
      const gateUp = Buffer.concat(Array.from({ length: E }, (_, e) => Buffer.concat([part(e, "gate_proj").data, part(e, "up_proj").data])));
      const down = Buffer.concat(Array.from({ length: E }, (_, e) => part(e, "down_proj").data));
      keep.push({ name: `${l}.gate_up_proj`, dtype: "F32", shape: [E, 2 * I, C], data: gateUp }, { name: `${l}.down_proj`, dtype: "F32", shape: [E, C, I], data: down });
    }
    return keep;
  });
  assert.ok(!readHfDir(out).has("model.layers.1.mlp.experts.0.gate_proj.weight"));
  const imp = await importFromHf({ from: out, to: join(dir, "packed.safetensors") });
  assert.equal(imp.experts, "packed");
  const got = loadState(imp.to);
  for (const [n, t] of weightsOf(state)) assert.deepEqual(bytesOf(got.tensors.get(n)!.data), bytesOf(t.data), n);
  // A packed tensor of the wrong layout is refused by name.
  rewriteShards(out, (ts) => ts.map((t) => (t.name === "model.layers.1.mlp.experts.gate_up_proj" ? { ...t, shape: [E, t.shape[2], t.shape[1]] } : t)));
  await assert.rejects(importFromHf({ from: out, to: join(dir, "packed2.safetensors") }), /tensor "model.layers.1.mlp.experts.gate_up_proj" is \[8, 128, 256\]; config.json implies \[8, 256, 128\]/);
  assert.ok(!existsSync(join(dir, "packed2.safetensors")));
});

test("q_lora_rank null (queries projected directly) exports as q_proj and round-trips", async () => {
  const s = trainedState(1, (c) => {
    if (c.model.attention.kind === "mla") c.model.attention.qLoraRank = 0;
  });
  const p = writeState(join(dir, "noq.safetensors"), s);
  const out = join(dir, "noq");
  await exportToHf({ from: p, to: out, dtype: "fp32" });
  assert.equal(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).q_lora_rank, null);
  assert.ok(readHfDir(out).has("model.layers.0.self_attn.q_proj.weight"));
  const got = loadState((await importFromHf({ from: out, to: join(dir, "noq-back.safetensors") })).to);
  for (const [n, t] of weightsOf(s)) assert.deepEqual(bytesOf(got.tensors.get(n)!.data), bytesOf(t.data), n);
});

test("a checkpointer run or step directory exports the same files as the state file", async () => {
  const data = join(dir, "ckpt");
  const store = await CheckpointStore.open({ dataDir: data, checkFreeSpace: false });
  const tensors: Tensor[] = [...state.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: Uint8Array.from(bytesOf(t.data)) }));
  await store.save("run-a", 2, tensors, { "octet.model": JSON.stringify(state.meta) }).durable;
  await store.close();
  const ref = join(dir, "ref");
  await exportToHf({ from: statePath, to: ref });
  for (const from of [join(data, "runs", "run-a"), join(data, "runs", "run-a", "step-000000000002")]) {
    const out = join(dir, `from-ckpt-${from.length}`);
    await exportToHf({ from, to: out });
    for (const f of readdirSync(ref)) assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(ref, f)), f);
  }
});

test("a config Octet cannot write as DeepseekV3ForCausalLM is refused by name, nothing written", async () => {
  const s = trainedState(0, (c) => {
    c.model.attention = { kind: "mha", headDim: 32 };
  });
  const p = writeState(join(dir, "mha.safetensors"), s);
  await assert.rejects(exportToHf({ from: p, to: join(dir, "mha") }), /model.attention.kind: "mha"/);
  assert.ok(!existsSync(join(dir, "mha")));
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith(".mha")), []);
});

test("an HF config.json with shared head copies that differ from the main ones is refused (Octet's MTP shares them)", async () => {
  const out = join(dir, "mtp-copy");
  await exportToHf({ from: statePath, to: out, dtype: "fp32" });
  rewriteShards(out, (ts) => ts.map((t) => (t.name === "model.layers.2.shared_head.norm.weight" ? { ...t, data: bytesOf(new Float32Array(t.shape[0]).fill(2)) } : t)));
  await assert.rejects(importFromHf({ from: out, to: join(dir, "mtp-copy.safetensors") }), /tensor "model.layers.2.shared_head.norm.weight" differs from model.norm.weight/);
  assert.ok(!existsSync(join(dir, "mtp-copy.safetensors")));
  // Without its MTP layer (as DeepseekV3ForCausalLM.save_pretrained writes), the import needs mtpDepth 0.
  rewriteShards(out, (ts) => ts.filter((t) => !t.name.startsWith("model.layers.2.")));
  await assert.rejects(importFromHf({ from: out, to: join(dir, "nomtp.safetensors") }), /tensor "model.layers.2.embed_tokens.weight" is missing/);
  const r = await importFromHf({ from: out, to: join(dir, "nomtp.safetensors"), mtpDepth: 0 });
  assert.equal(r.config.model.mtp.depth, 0);
  editConfig(out, (c) => {
    c.num_nextn_predict_layers = 0;
  });
  assert.equal((await importFromHf({ from: out, to: join(dir, "nomtp2.safetensors") })).config.model.mtp.depth, 0);
});
