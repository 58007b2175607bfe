// Determinism (same seed → same losses, bit for bit), exact resume through a safetensors round trip,
// recipes tracking each other, and config rejection before training.

import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "./backend/cpu.js";
import { type Config, type RecipeName, presetConfig, validateConfig } from "./config.js";
import { decodeSafetensors, encodeSafetensors } from "./state.js";
import { Trainer } from "./trainer.js";

function micro(over: (c: Config) => void = () => {}): Config {
  const c = presetConfig("micro");
  over(c);
  return c;
}

function losses(t: Trainer, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(t.trainStep().loss);
  return out;
}

test("same seed, config and data → identical losses (fp8)", () => {
  const a = losses(new Trainer({ config: micro(), recipe: "fp8", seed: 7 }), 5);
  const b = losses(new Trainer({ config: micro(), recipe: "fp8", seed: 7 }), 5);
  assert.deepEqual(a, b);
  const c = losses(new Trainer({ config: micro(), recipe: "fp8", seed: 8 }), 5);
  assert.notDeepEqual(a, c);
});

for (const recipe of ["fp8", "fp8-delayed", "bf16"] as RecipeName[]) {
  test(`resume at step k continues exactly as the uninterrupted run (${recipe})`, () => {
    const config = micro((c) => { c.train.bf16Moments = recipe !== "bf16"; });
    const full = new Trainer({ config, recipe, seed: 3 });
    const ref = losses(full, 8);
    const first = new Trainer({ config, recipe, seed: 3 });
    assert.deepEqual(losses(first, 4), ref.slice(0, 4));
    const bytes = encodeSafetensors(first.exportState());
    const resumed = new Trainer({ config, recipe, seed: 3 });
    resumed.importState(decodeSafetensors(bytes));
    assert.equal(resumed.step, 4);
    assert.deepEqual(losses(resumed, 4), ref.slice(4));
    for (const p of full.model.store.all()) assert.deepEqual(resumed.model.store.get(p.name).data, p.data, p.name);
    assert.deepEqual(resumed.model.moeLayers()[0].balancer.bias, full.model.moeLayers()[0].balancer.bias);
  });
}

test("fp8 training of a tiny model tracks fp32 and bf16", () => {
  const final: Record<string, number> = {};
  for (const recipe of ["fp32", "bf16", "fp8", "fp8-delayed"] as RecipeName[]) {
    const be = new CpuBackend();
    const t = new Trainer({ config: micro((c) => { c.train.steps = 30; }), recipe, seed: 5, backend: be });
    losses(t, 30);
    final[recipe] = t.evaluate(2);
    if (recipe.startsWith("fp8")) assert.ok(be.times.gemmFlops > 0);
  }
  assert.ok(final.fp32 < 3.5, `fp32 learned: ${final.fp32}`); // ln 64 = 4.16 at the start
  for (const r of ["bf16", "fp8", "fp8-delayed"]) {
    const rel = Math.abs(final[r] - final.fp32) / final.fp32;
    assert.ok(rel < 0.02, `${r} ends at ${final[r]}, fp32 at ${final.fp32} (relative ${rel})`);
  }
});

test("bad configs are rejected with the reason, before training", () => {
  assert.throws(() => validateConfig({ ...presetConfig("tiny"), extra: 1 }), /Unrecognized key/);
  assert.throws(
    () => validateConfig(micro((c) => { c.model.moe.nRoutedExperts = 6; c.model.moe.nGroup = 4; })),
    /model\.moe\.nGroup: nRoutedExperts \(6\) must be divisible by nGroup \(4\)/,
  );
  assert.throws(() => validateConfig(micro((c) => { c.model.dModel = 96; }), "fp8"), /model\.dModel: 96 is not a multiple of 128/);
  assert.doesNotThrow(() => validateConfig(micro((c) => { c.model.dModel = 96; }), "bf16"));
  assert.throws(() => new Trainer({ config: micro((c) => { c.model.moe.topK = 9; }), recipe: "fp8", seed: 1 }), /topK/);
});
