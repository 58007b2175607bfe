// Speculative decoding with the trained MTP module: the batched measurement equals @octet/mtp's
// acceptanceRate() over the same prefixes (one forward pass per call), speculativeDecode() with the model
// reproduces plain greedy decoding, and the `spec` command measures a saved micro state.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { acceptanceRate, speculativeDecode } from "@octet/mtp";
import { presetConfig } from "./config.js";
import { measureAcceptance, speculativeModels } from "./speculative.js";
import { saveState } from "./state.js";
import { Trainer } from "./trainer.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");

// One trained micro model for the whole file (40 steps: enough for drafts to mean something).
const trained = new Trainer({ config: presetConfig("micro"), recipe: "fp8", seed: 1 });
for (let i = 0; i < 40; i++) trained.trainStep();

test("measureAcceptance (two batched passes per window) equals @octet/mtp's acceptanceRate over the same prefixes", () => {
  const model = trained.model;
  const T = model.cfg.seqLen;
  const L = T - 1;
  const m = measureAcceptance(model, trained.data.val, 2 * L);
  assert.equal(m.windows, 2);
  assert.equal(m.drafted, 2 * L);
  const sequences = [0, 1].map((w) => Array.from(trained.data.val.subarray(w * (L + 2), w * (L + 2) + L)));
  const ref = acceptanceRate({ ...speculativeModels(model), sequences });
  assert.equal(ref.total, m.drafted);
  assert.equal(ref.accepted, m.accepted);
  assert.equal(m.tokensPerStep, 1 + m.acceptanceRate);
  // After 40 steps the main model has learned something (random: 1/64) and drafts are often accepted.
  assert.ok(m.mainAccuracy > 0.1, `main accuracy ${m.mainAccuracy}`);
  assert.ok(m.acceptanceRate > 0.3, `acceptance ${m.acceptanceRate}`);
});

test("speculativeDecode with the model's main + MTP-1 reproduces plain greedy decoding", () => {
  const models = speculativeModels(trained.model);
  const prompt = Array.from(trained.data.val.subarray(0, 8));
  const out = speculativeDecode({ ...models, prompt, maxNewTokens: 16 });
  const greedy = [...prompt];
  for (let i = 0; i < 16; i++) greedy.push(models.mainNextToken(greedy));
  assert.deepEqual(out.tokens, greedy.slice(prompt.length));
  assert.ok(out.steps <= 16 && out.tokensPerStep >= 1);
  assert.throws(() => models.mainNextToken(new Array(trained.model.cfg.seqLen + 1).fill(0)), /does not fit the window/);
});

test("npm run spec: acceptance of a saved micro state as a JSON last line; no state / no MTP fail with a reason", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-spec-"));
  try {
    saveState(join(dir, "state.safetensors"), trained.exportState());
    const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/spec.ts", ...args], { cwd: pkg, encoding: "utf8" });
    const r = run("--state", dir, "--tokens", "40");
    assert.equal(r.status, 0, r.stderr);
    const last = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(last.drafted, 2 * 31); // whole windows of seqLen − 1 = 31 prefixes
    assert.equal(last.accepted, Math.round(last.acceptanceRate * last.drafted));
    assert.equal(last.step, 40);
    assert.match(r.stderr, /drafts of the second token accepted/);

    const missing = run("--state", join(dir, "nope"));
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /does not exist/);

    const noMtp = presetConfig("micro");
    noMtp.model.mtp.depth = 0;
    const plain = new Trainer({ config: noMtp, recipe: "fp8", seed: 1 });
    saveState(join(dir, "plain.safetensors"), plain.exportState());
    const r2 = run("--state", join(dir, "plain.safetensors"));
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /trained without MTP/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
