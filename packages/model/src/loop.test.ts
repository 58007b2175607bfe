// The one training loop: the same losses as stepping the Trainer by hand, and its hooks' cadence — evaluation
// every evalEvery steps and at the last, parameters every N steps by name, periodic and final checkpoints (a
// skipped one leaves the final to the end), and stopping between steps.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type Config, presetConfig } from "./config.js";
import { type Evaluation, trainLoop } from "./loop.js";
import { Trainer } from "./trainer.js";

function micro(steps: number, evalEvery: number): Config {
  const c = presetConfig("micro");
  c.train.steps = steps;
  c.train.evalEvery = evalEvery;
  c.train.evalBatches = 1;
  return c;
}

test("trainLoop: the losses of trainStep by hand; evaluation every evalEvery steps and at the last", () => {
  const config = micro(7, 3);
  const byHand = new Trainer({ config, recipe: "fp8", seed: 4 });
  const want: number[] = [];
  for (let i = 0; i < 7; i++) want.push(byHand.trainStep().loss);
  const wantVal = byHand.evaluateAll(1).loss;

  const trainer = new Trainer({ config, recipe: "fp8", seed: 4 });
  const losses: number[] = [];
  const evaluatedSteps: number[] = [];
  const order: string[] = [];
  const result = trainLoop(trainer, {
    onStep: (r, e) => {
      losses.push(r.loss);
      order.push(`step ${r.step}${e ? " evaluated" : ""}`);
    },
    onEval: (e) => {
      evaluatedSteps.push(e.step);
      order.push(`eval ${e.step}`);
    },
  });
  assert.deepEqual(losses, want);
  assert.deepEqual(evaluatedSteps, [3, 6, 7]);
  assert.deepEqual(order.slice(0, 4), ["step 1", "step 2", "step 3 evaluated", "eval 3"]);
  assert.equal(result.stopped, false);
  assert.equal(result.step, 7);
  assert.equal(result.last?.loss, want[6]);
  assert.equal(result.evaluation?.step, 7);
  assert.equal(result.evaluation?.loss, wantVal);
  // micro has one MTP module: its validation loss comes with the main one unless evalMtp is off.
  assert.equal(result.evaluation?.mtpLosses.length, 1);
  assert.equal(result.evaluation?.mtpLoss, result.evaluation?.mtpLosses[0]);
  const mainOnly = trainLoop(new Trainer({ config, recipe: "fp8", seed: 4 }), { evalMtp: false });
  assert.equal(mainOnly.evaluation?.loss, wantVal);
  assert.deepEqual(mainOnly.evaluation?.mtpLosses, []);
  assert.ok(Number.isNaN(mainOnly.evaluation?.mtpLoss));
});

test("trainLoop: parameters every N steps by name, as state export names them", () => {
  const trainer = new Trainer({ config: micro(5, 5), recipe: "bf16", seed: 1 });
  const pushes: { step: number; names: string[]; first: Float32Array }[] = [];
  trainLoop(trainer, {
    parametersEvery: 2,
    onParameters: (step, params) => pushes.push({ step, names: params.map((p) => p.name), first: params[0].data.slice() }),
  });
  assert.deepEqual(pushes.map((p) => p.step), [2, 4]);
  const exported = [...trainer.exportState().tensors.keys()].filter((n) => n.startsWith("param/")).map((n) => n.slice("param/".length));
  assert.deepEqual(pushes[0].names, exported);
  // The parameters are the live weights: step 4's snapshot differs from step 2's, and the last step moved them again.
  assert.notDeepEqual(pushes[0].first, pushes[1].first);
  assert.notDeepEqual(trainer.parameters()[0].data, pushes[1].first);
  assert.equal(trainer.parameters()[0].data, trainer.be.toHost(trainer.model.store.all()[0].value)); // on the CPU: no copy
});

test("trainLoop: periodic checkpoints before the last step, a final one when the state is newer than the last saved", () => {
  const calls: [number, boolean][] = [];
  trainLoop(new Trainer({ config: micro(6, 6), recipe: "fp32", seed: 1 }), {
    checkpointEvery: 2,
    onCheckpoint: (step, final) => {
      calls.push([step, final]);
      return true;
    },
  });
  // Step 6 is the last: it is the final checkpoint, not a periodic one as well.
  assert.deepEqual(calls, [[2, false], [4, false], [6, true]]);

  // A stop asked for during a periodic checkpoint: no final checkpoint of the same step when the hook saved,
  // one when it skipped (its previous save still busy).
  for (const saves of [true, false]) {
    const calls2: [number, boolean][] = [];
    let stop = false;
    trainLoop(new Trainer({ config: micro(6, 6), recipe: "fp32", seed: 1 }), {
      checkpointEvery: 2,
      shouldStop: () => stop,
      onCheckpoint: (step, final) => {
        calls2.push([step, final]);
        stop = true;
        return saves;
      },
    });
    assert.deepEqual(calls2, saves ? [[2, false]] : [[2, false], [2, true]]);
  }

  // Resumed at the end: nothing to train, nothing newer to save.
  const done = new Trainer({ config: micro(2, 2), recipe: "fp32", seed: 1 });
  done.trainStep();
  done.trainStep();
  const none: number[] = [];
  const r = trainLoop(done, { checkpointEvery: 1, onCheckpoint: (step) => none.push(step) > 0 });
  assert.deepEqual(none, []);
  assert.equal(r.last, null);
  assert.equal(r.evaluation?.step, 2, "a final evaluation of the current step");
});

test("trainLoop: shouldStop ends it between steps, with no periodic checkpoint at the stop, a final one, no final evaluation", () => {
  const trainer = new Trainer({ config: micro(10, 2), recipe: "fp32", seed: 2 });
  let asked = 0;
  const checkpoints: [number, boolean][] = [];
  const evaluations: Evaluation[] = [];
  const r = trainLoop(trainer, {
    checkpointEvery: 3,
    onCheckpoint: (step, final) => checkpoints.push([step, final]) > 0,
    onEval: (e) => evaluations.push(e),
    // Asked before each step and before each periodic checkpoint; stop once step 3 ran.
    shouldStop: () => {
      asked++;
      return trainer.step >= 3;
    },
  });
  assert.equal(r.stopped, true);
  assert.equal(r.step, 3);
  assert.equal(trainer.step, 3);
  assert.deepEqual(checkpoints, [[3, true]]);
  assert.deepEqual(evaluations.map((e) => e.step), [2]);
  assert.equal(r.evaluation?.step, 2, "the latest evaluation; none is added at a stop");
  assert.ok(asked >= 4);
});

test("trainLoop: bad cadences are refused naming the option", () => {
  const trainer = new Trainer({ config: micro(2, 2), recipe: "fp32", seed: 1 });
  assert.throws(() => trainLoop(trainer, { checkpointEvery: -1 }), { name: "RangeError", message: /checkpointEvery must be a non-negative integer/ });
  assert.throws(() => trainLoop(trainer, { parametersEvery: 1.5 }), /parametersEvery/);
  assert.equal(trainer.step, 0);
});
