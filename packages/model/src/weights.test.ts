// Weights from a file into a model: the logits CLI (the CPU forward of a saved state, exactly the in-process
// model's), `train --init-from` (its first step is the step of a trainer holding those weights), and refusals.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "./backend/cpu.js";
import { presetConfig } from "./config.js";
import { Transformer } from "./model.js";
import { type TrainingState, saveState } from "./state.js";
import { Trainer } from "./trainer.js";
import { WEIGHTS_KIND, loadWeights, modelConfigOfState } from "./weights.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (script: string, args: string[]) => spawnSync(process.execPath, ["--import", "tsx", `src/cli/${script}.ts`, ...args], { cwd: pkg, encoding: "utf8" });

function trainedMicro(steps: number): Trainer {
  const config = presetConfig("micro");
  const t = new Trainer({ config, recipe: "fp32", seed: 3 });
  for (let i = 0; i < steps; i++) t.trainStep();
  return t;
}

/** The weights-only file octet-import writes: parameters and router biases, the model config in the metadata. */
function weightsOnly(state: TrainingState): TrainingState {
  const tensors = new Map([...state.tensors].filter(([n]) => n.startsWith("param/") || n.startsWith("router/")));
  return { tensors, meta: { kind: WEIGHTS_KIND, model: (state.meta.config as { model: unknown }).model } };
}

test("logits CLI: the saved weights' forward on the CPU equals the trained model's, bit for bit", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-logits-"));
  try {
    const t = trainedMicro(2);
    const state = weightsOnly(t.exportState());
    const path = join(dir, "w.safetensors");
    saveState(path, state);
    const seqs = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]];
    const r = run("logits", ["--state", path, "--tokens", JSON.stringify(seqs), "--out", join(dir, "l.json")]);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(readFileSync(join(dir, "l.json"), "utf8"));
    const V = t.config.model.vocabSize;
    assert.deepEqual(got.shape, [2, 6, V]);
    const want = t.model.be.toHost(t.model.predict(Int32Array.from(seqs.flat()), 6).logits) as Float32Array;
    assert.deepEqual(Float32Array.from(got.logits), want);
    // A model loaded in-process from the file agrees too, and a different model (other seed) does not.
    const m = new Transformer(modelConfigOfState(state), "fp32", new CpuBackend(), 99);
    const before = m.be.toHost(m.predict(Int32Array.from(seqs.flat()), 6).logits) as Float32Array;
    assert.notDeepEqual(before, want);
    loadWeights(m, state);
    assert.deepEqual(m.be.toHost(m.predict(Int32Array.from(seqs.flat()), 6).logits), want);

    const bad = run("logits", ["--state", path, "--tokens", JSON.stringify([[1, 2], [3]])]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /sequence 1 has 1 tokens/);
    const oov = run("logits", ["--state", path, "--tokens", JSON.stringify([[1, V]])]);
    assert.match(oov.stderr, new RegExp(`position 1: ${V} is not a token id`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loadWeights refuses a missing, mis-shaped or foreign tensor by name", () => {
  const t = trainedMicro(0);
  const state = weightsOnly(t.exportState());
  const m = new Transformer(modelConfigOfState(state), "fp32", new CpuBackend(), 1);
  const drop = new Map(state.tensors);
  drop.delete("router/0/bias");
  assert.throws(() => loadWeights(m, { ...state, tensors: drop }), /tensor "router\/0\/bias" is missing/);
  const reshaped = new Map(state.tensors);
  const w = reshaped.get("param/norm.weight")!;
  reshaped.set("param/norm.weight", { ...w, shape: [w.shape[0] / 2, 2] });
  assert.throws(() => loadWeights(m, { ...state, tensors: reshaped }), /tensor "param\/norm.weight" is \[\d+, 2\], the model has \[\d+\]/);
  const extra = new Map(state.tensors);
  extra.set("param/layers.9.attn_norm.weight", w);
  assert.throws(() => loadWeights(m, { ...state, tensors: extra }), /"param\/layers.9.attn_norm.weight" is not a parameter of this model/);
  assert.throws(() => modelConfigOfState({ tensors: new Map(), meta: { kind: "x" } }), /not an Octet state or weights file/);
});

test("train --init-from: the first step is that of a trainer holding the file's weights; the model config is the file's", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-init-from-"));
  try {
    const src = trainedMicro(3);
    const path = join(dir, "w.safetensors");
    saveState(path, weightsOnly(src.exportState()));
    // The reference: a fresh trainer (same seed) whose weights and router biases are the file's.
    const ref = new Trainer({ config: presetConfig("micro"), recipe: "fp32", seed: 5 });
    loadWeights(ref.model, weightsOnly(src.exportState()));
    const first = ref.trainStep();
    const out = join(dir, "run");
    const r = run("train", ["--config", "micro", "--recipe", "fp32", "--seed", "5", "--steps", "2", "--out", out, "--init-from", path]);
    assert.equal(r.status, 0, r.stderr);
    const steps = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.type === "step");
    assert.deepEqual(steps.map((s) => s.step), [1, 2]);
    assert.equal(steps[0].loss, first.loss);
    assert.equal(JSON.parse(r.stdout.trim().split("\n").pop()!).initFrom, path);
    const again = run("train", ["--config", "micro", "--recipe", "fp32", "--steps", "2", "--out", out, "--init-from", path]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /--init-from starts a new run, but .*state.safetensors exists/);
    writeFileSync(join(dir, "bad.safetensors"), "not a state");
    const bad = run("train", ["--config", "micro", "--recipe", "fp32", "--steps", "1", "--out", join(dir, "run2"), "--init-from", join(dir, "bad.safetensors")]);
    assert.notEqual(bad.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
