// Determinism (same seed → same losses, bit for bit), exact resume through a safetensors round trip,
// recipes tracking each other, and config rejection before training.

import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "./backend/cpu.js";
import { type Config, type RecipeName, presetConfig, validateConfig } from "./config.js";
import { decodeSafetensors, encodeSafetensors } from "./state.js";
import { host } from "./testing/gradcheck.js";
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
    for (const p of full.model.store.all()) assert.deepEqual(host(resumed.model.store.get(p.name).value), host(p.value), p.name);
    assert.ok(full.model.store.has("mtp.1.eh_proj.weight")); // the MTP module is part of the state
    assert.equal(full.model.moeLayers().length, 2); // main MoE layer + the MTP block's
    full.model.moeLayers().forEach((moe, i) => assert.deepEqual(resumed.model.moeLayers()[i].balancer.bias, moe.balancer.bias));
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

test("MTP: the step reports L_main and L_1 apart, λ follows the schedule, and λ changes the update", () => {
  const config = micro((c) => { c.train.mtpLambda = { kind: "piecewise", points: [[0, 0.3], [2, 0.1]] }; });
  const t = new Trainer({ config, recipe: "fp8", seed: 2 });
  const r = [t.trainStep(), t.trainStep(), t.trainStep()];
  assert.deepEqual(r.map((x) => x.lambda), [0.3, 0.3, 0.1]);
  for (const x of r) {
    assert.equal(x.mtpLosses.length, 1);
    assert.equal(x.mtpLoss, x.mtpLosses[0]);
    assert.ok(x.mtpLoss > 3 && x.mtpLoss < 5, `L_1 near ln 64 at the start: ${x.mtpLoss}`);
  }
  const e = t.evaluateAll(1);
  assert.equal(e.mtpLosses.length, 1);
  assert.equal(e.loss, t.evaluate(1));
  // λ = 0 vs the default schedule: the same first loss, different parameters after one step.
  const off = new Trainer({ config: micro((c) => { c.train.mtpLambda = 0; }), recipe: "fp8", seed: 2 });
  const on = new Trainer({ config, recipe: "fp8", seed: 2 });
  assert.equal(off.trainStep().loss, r[0].loss);
  assert.equal(on.trainStep().loss, r[0].loss);
  const w = "layers.1.attn.wo.weight";
  assert.notDeepEqual(host(off.model.store.get(w).value), host(on.model.store.get(w).value)); // MTP's gradient reaches the trunk
  // Without MTP: nothing reported, and no MTP tensors.
  const none = new Trainer({ config: micro((c) => { c.model.mtp.depth = 0; }), recipe: "fp8", seed: 2 });
  const n = none.trainStep();
  assert.equal(n.mtpLosses.length, 0);
  assert.ok(Number.isNaN(n.mtpLoss));
  assert.equal(n.loss, r[0].loss); // same main model, same initialization, same batch → same first loss
  assert.ok(!none.model.store.has("mtp.1.eh_proj.weight"));
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
  assert.throws(() => validateConfig(micro((c) => { c.model.mtp.depth = 32; })), /model\.mtp\.depth: must be less than seqLen \(32\)/);
  assert.throws(() => validateConfig(micro((c) => { c.train.mtpLambda = { kind: "piecewise", points: [[0, 0.3], [0, 0.1]] }; })), /train\.mtpLambda/);
  // Configs written before MTP (no model.mtp) still load, with MTP off.
  const old = micro() as unknown as { model: Record<string, unknown>; train: Record<string, unknown> };
  delete old.model.mtp;
  delete old.train.mtpLambda;
  assert.equal(validateConfig(old).model.mtp.depth, 0);
});

test("a NaN gradient skips the optimizer step, names the first tensor, leaves the state as it was, and the run goes on", () => {
  const t = new Trainer({ config: micro(), recipe: "fp32", seed: 3 });
  losses(t, 2);
  const before = t.exportState();
  // Fault injection after the real backward: one gradient gets a NaN.
  const params = t.model.store.all();
  const victim = params[Math.floor(params.length / 2)];
  const backward = t.model.backward.bind(t.model);
  t.model.backward = (lambda: number) => {
    backward(lambda);
    const g = Float32Array.from(t.be.toHost(victim.grad) as Float32Array);
    g[g.length - 1] = Number.NaN;
    t.be.copyFromHost(victim.grad, g);
  };
  const r = t.trainStep();
  assert.equal(r.skipped, true);
  assert.equal(r.nonFinite, `grad/${victim.name}`);
  assert.ok(Number.isNaN(r.gradNorm));
  assert.equal(r.skippedSteps, 1);
  assert.equal(r.step, 3);
  const after = t.exportState();
  for (const [name, x] of before.tensors) {
    if (name === "rng/data") continue; // the data moved on
    assert.deepEqual(after.tensors.get(name)!.data, x.data, `${name} changed in a skipped step`);
  }
  assert.equal(after.meta.adamStep, before.meta.adamStep);
  assert.equal(after.meta.skippedSteps, 1);
  t.model.backward = backward;
  const next = t.trainStep();
  assert.equal(next.skipped, false);
  assert.ok(Number.isFinite(next.loss) && Number.isFinite(next.gradNorm));
  assert.equal(next.skippedSteps, 1);
});

test("a NaN loss is named as the loss, and the skipped count survives export and import", () => {
  const t = new Trainer({ config: micro(), recipe: "fp32", seed: 3 });
  // The head's weights (after the router, which refuses NaN affinities with a RangeError of its own).
  const w = t.model.store.all().find((p) => p.name === "head.weight")!;
  const saved = Float32Array.from(t.be.toHost(w.value) as Float32Array);
  t.be.copyFromHost(w.value, new Float32Array(saved.length).fill(Number.NaN));
  const r = t.trainStep();
  assert.equal(r.skipped, true);
  assert.equal(r.nonFinite, "loss");
  t.be.copyFromHost(w.value, saved);
  const u = new Trainer({ config: micro(), recipe: "fp32", seed: 3 });
  u.importState(decodeSafetensors(encodeSafetensors(t.exportState())));
  assert.equal(u.skippedSteps, 1);
  assert.equal(u.trainStep().skipped, false);
});
