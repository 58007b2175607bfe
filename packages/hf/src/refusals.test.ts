// Bad input is refused with the tensor's (or field's) name and nothing is written: truncated shards, missing
// tensors, dtypes and shapes that contradict config.json, headers that lie about offsets, unknown or
// unrepresentable config fields, paths outside the directory, existing outputs; and the two CLIs.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { exportToHf } from "./export.js";
import { parseHfConfig } from "./hf-config.js";
import { importFromHf } from "./import.js";
import { editConfig, rewriteShards, trainedState, writeState } from "./testing/fixtures.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "octet-hf-bad-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const statePath = writeState(join(dir, "state.safetensors"), trainedState(1));
const good = join(dir, "good");
await exportToHf({ from: statePath, to: good, dtype: "fp32", maxShardBytes: 300_000 });

let n = 0;
/** A fresh copy of the good export, edited, and the import's refusal: the message matches, no output appears. */
async function refused(edit: (d: string) => void, re: RegExp): Promise<void> {
  const d = join(dir, `case-${++n}`);
  cpSync(good, d, { recursive: true });
  edit(d);
  const to = join(dir, `out-${n}`, "w.safetensors");
  await assert.rejects(importFromHf({ from: d, to }), (e: Error) => {
    assert.match(e.message, re);
    return true;
  });
  assert.ok(!existsSync(to), "nothing written");
  if (existsSync(dirname(to))) assert.deepEqual(readdirSync(dirname(to)), [], "no temporary file left");
}

function shardOf(d: string, tensor: string): string {
  return join(d, JSON.parse(readFileSync(join(d, "model.safetensors.index.json"), "utf8")).weight_map[tensor]);
}

test("a truncated shard is refused naming the tensor it cuts", async () => {
  await refused((d) => {
    const f = shardOf(d, "lm_head.weight");
    truncateSync(f, readFileSync(f).length - 10);
  }, /tensor "[^"]+" at \[\d+, \d+\] runs past its end/);
});

test("a missing tensor is refused by name", async () => {
  await refused((d) => rewriteShards(d, (ts) => ts.filter((t) => t.name !== "model.layers.1.mlp.experts.3.up_proj.weight")), /tensor "model.layers.1.mlp.experts.3.up_proj.weight" is missing/);
  await refused((d) => rewriteShards(d, (ts) => ts.filter((t) => t.name !== "model.layers.1.mlp.gate.e_score_correction_bias")), /tensor "model.layers.1.mlp.gate.e_score_correction_bias" is missing/);
});

test("a dtype or shape that contradicts config.json is refused by name", async () => {
  await refused((d) => rewriteShards(d, (ts) => ts.map((t) => (t.name === "model.layers.0.self_attn.o_proj.weight" ? { ...t, dtype: "I32" } : t))), /tensor "model.layers.0.self_attn.o_proj.weight" is I32; expected F32 or BF16 or F16/);
  await refused((d) => rewriteShards(d, (ts) => ts.map((t) => (t.name === "model.layers.0.self_attn.kv_b_proj.weight" ? { ...t, shape: [t.shape[1], t.shape[0]] } : t))), /tensor "model.layers.0.self_attn.kv_b_proj.weight" is \[32, 128\]; config.json implies \[128, 32\]/);
  await refused((d) => editConfig(d, (c) => { c.moe_intermediate_size = 64; }), /tensor "model.layers.1.mlp.shared_experts.gate_proj.weight" is \[128, 128\]; config.json implies \[64, 128\]/);
  await refused((d) => rewriteShards(d, (ts) => (ts.some((t) => t.name === "lm_head.weight") ? [...ts, { name: "model.layers.0.mlp.extra.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) }] : ts)), /tensor "model.layers.0.mlp.extra.weight": not part of the model/);
});

test("a header that lies about offsets is refused naming the tensor", async () => {
  await refused((d) => {
    const f = shardOf(d, "model.norm.weight");
    const b = readFileSync(f);
    const len = Number(b.readBigUInt64LE(0));
    const header = JSON.parse(b.subarray(8, 8 + len).toString("utf8"));
    const e = header["model.norm.weight"];
    e.data_offsets = [e.data_offsets[0] + 4, e.data_offsets[1] + 4]; // same span, shifted onto the next tensor
    const json = Buffer.from(JSON.stringify(header));
    assert.ok(json.length <= len);
    Buffer.concat([json, Buffer.alloc(len - json.length, 0x20)]).copy(b, 8);
    writeFileSync(f, b);
  }, /tensor "[^"]+": (data_offsets \[\d+, \d+\] overlap the previous tensor|gap before data_offsets)/);
  await refused((d) => {
    const f = shardOf(d, "model.norm.weight");
    const b = readFileSync(f);
    const len = Number(b.readBigUInt64LE(0));
    const text = b.subarray(8, 8 + len).toString("utf8").replace(/("model\.norm\.weight":\{"dtype":"F32","shape":\[)(\d+)\]/, (_, a, dim) => `${a}${Number(dim) * 2}]`);
    Buffer.from(text).copy(b, 8);
    writeFileSync(f, b);
  }, /tensor "model.norm.weight": data_offsets span 512 bytes but F32\[256\] needs 1024/);
});

test("the index may not point outside the directory, nor disagree with the shards", async () => {
  await refused((d) => {
    const p = join(d, "model.safetensors.index.json");
    const idx = JSON.parse(readFileSync(p, "utf8"));
    idx.weight_map["model.norm.weight"] = "../state.safetensors";
    writeFileSync(p, JSON.stringify(idx));
  }, /weight_map\["model.norm.weight"\]: "..\/state.safetensors" is not a plain file name/);
  await refused((d) => {
    const p = join(d, "model.safetensors.index.json");
    const idx = JSON.parse(readFileSync(p, "utf8"));
    const files = [...new Set(Object.values(idx.weight_map))] as string[];
    idx.weight_map["lm_head.weight"] = files.find((f) => f !== idx.weight_map["lm_head.weight"]);
    writeFileSync(p, JSON.stringify(idx));
  }, /tensor "lm_head.weight" is in model-\d+-of-\d+.safetensors but model.safetensors.index.json puts it in/);
});

test("config.json: unknown fields, architectures and configs Octet cannot compute are refused by name", async () => {
  await refused((d) => editConfig(d, (c) => { c.new_thing = 1; }), /unknown fields "new_thing"/);
  await refused((d) => editConfig(d, (c) => { c.architectures = ["DeepseekV2ForCausalLM"]; }), /architectures \["DeepseekV2ForCausalLM"\]/);
  await refused((d) => editConfig(d, (c) => { c.rope_scaling = { type: "yarn", factor: 40, mscale: 1, mscale_all_dim: 1, original_max_position_embeddings: 4096 }; }), /rope_scaling .*yarn.*plain RoPE only/);
  await refused((d) => editConfig(d, (c) => { c.scoring_func = "softmax"; }), /scoring_func "softmax"; Octet computes only "sigmoid"/);
  await refused((d) => editConfig(d, (c) => { c.num_key_value_heads = 1; }), /num_key_value_heads 1 differs/);
  await refused((d) => editConfig(d, (c) => { c.tie_word_embeddings = true; }), /tie_word_embeddings true/);
  await refused((d) => editConfig(d, (c) => { c.n_shared_experts = 0; }), /n_shared_experts|nSharedExperts/);
  await refused((d) => editConfig(d, (c) => { c.quantization_config = { quant_method: "gptq" }; }), /quantization_config .*only block FP8/);
  // Accepted: the fields transformers 5.x writes that do not change the function, and rope_parameters.
  const c = JSON.parse(readFileSync(join(good, "config.json"), "utf8"));
  delete c.rope_theta;
  const p = parseHfConfig({ ...c, rope_parameters: { rope_type: "default", rope_theta: 5000 }, transformers_version: "5.17.0", pad_token_id: null });
  assert.equal(p.model.ropeTheta, 5000);
  assert.ok(p.ignored.includes("transformers_version"));
  assert.throws(() => parseHfConfig({ ...c, rope_parameters: { rope_type: "yarn", rope_theta: 5000, factor: 4 } }), /rope_parameters .*plain RoPE only/);
  assert.throws(() => parseHfConfig({ ...c, head_dim: 99 }), /head_dim 99; DeepSeek-V3 derives 8/);
  assert.equal(parseHfConfig({ ...c, head_dim: 8, qk_head_dim: 24, mlp_layer_types: ["dense", "sparse"] }).model.nDenseLayers, 1);
  assert.throws(() => parseHfConfig({ ...c, mlp_layer_types: ["sparse", "sparse"] }), /mlp_layer_types \["sparse","sparse"\]; Octet's layers are \["dense","sparse"\]/);
  assert.throws(() => parseHfConfig({ ...c, layer_types: ["full_attention", "sliding_attention"] }), /layer_types/);
});

test("output paths: an existing output needs force, the input is never overwritten, failures leave nothing", async () => {
  const out = join(dir, "exists");
  mkdirSync(out);
  writeFileSync(join(out, "keep"), "x");
  await assert.rejects(exportToHf({ from: statePath, to: out }), /--to .*exists already; pass --force/);
  assert.deepEqual(readdirSync(out), ["keep"]);
  await exportToHf({ from: statePath, to: out, force: true });
  assert.ok(existsSync(join(out, "config.json")) && !existsSync(join(out, "keep")));
  await assert.rejects(exportToHf({ from: statePath, to: dir, force: true }), /overlaps the input/);
  await assert.rejects(exportToHf({ from: statePath, to: join(dir, "x"), dtype: "int4" as "bf16" }), /dtype "int4"/);
  const w = join(dir, "w.safetensors");
  writeFileSync(w, "old");
  await assert.rejects(importFromHf({ from: good, to: w }), /exists already/);
  assert.equal(readFileSync(w, "utf8"), "old");
  await assert.rejects(importFromHf({ from: good, to: join(good, "model.safetensors.index.json"), force: true }), /overlaps the input|exists and is/);
  await importFromHf({ from: good, to: w, force: true });
  assert.notEqual(readFileSync(w, "utf8").slice(0, 3), "old");
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".tmp-") || f.includes(".old-")), []);
});

test("the CLIs: octet-export and octet-import run, and refuse bad input with a message and a non-zero exit", () => {
  const cli = (name: string, args: string[]) => spawnSync(process.execPath, ["--import", "tsx", `src/${name}.ts`, ...args], { cwd: pkg, encoding: "utf8" });
  const out = join(dir, "cli-out");
  const e = cli("cli-export", ["--from", statePath, "--to", out, "--dtype", "fp8", "--rope-interleave", "false"]);
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).dtype, "fp8");
  assert.equal(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).rope_interleave, false);
  const i = cli("cli-import", ["--from", out, "--to", join(dir, "cli.safetensors")]);
  assert.equal(i.status, 0, i.stderr);
  assert.deepEqual([JSON.parse(i.stdout).fp8, JSON.parse(i.stdout).ropeInterleave], [true, false]);
  const again = cli("cli-export", ["--from", statePath, "--to", out]);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /exists already; pass --force/);
  const badFlag = cli("cli-export", ["--from", statePath, "--to", join(dir, "y"), "--rope-interleave", "maybe"]);
  assert.notEqual(badFlag.status, 0);
  assert.match(badFlag.stderr, /expected true or false/);
  const missing = cli("cli-import", ["--from", join(dir, "nope"), "--to", join(dir, "z.safetensors")]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /not a directory/);
});
