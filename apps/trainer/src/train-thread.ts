// A job's training thread: loads the job's data, builds the Trainer, restores the state it is given, and runs
// @octet/model's training loop, posting each step's report, the parameters for the EMA, and the state at
// checkpoints to the main thread. It stops after the current step when the main thread sets the shared stop
// word (cancel, shutdown).

import { parentPort, workerData } from "node:worker_threads";
import { type NamedTensor, Trainer, type TrainingState, loadDataset, stateTensor, trainLoop } from "@octet/model";
import { CTRL_SAVE_BUSY, CTRL_STOP, type ThreadInit, type ThreadMessage, type WireTensor } from "./protocol.js";

const port = parentPort!;
const init = workerData as ThreadInit;
const control = new Int32Array(init.control);

function post(m: ThreadMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

/** A training state as it crosses to the main thread. */
type WireState = { tensors: WireTensor[]; meta: string };

/** The whole state, copied (each tensor in its own buffer, to be transferred). */
function exportWire(trainer: Trainer): WireState {
  const s = trainer.exportState();
  const tensors: WireTensor[] = [];
  for (const [name, t] of s.tensors) {
    tensors.push({ name, dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice() });
  }
  return { tensors, meta: JSON.stringify(s.meta) };
}

class Unrecoverable extends Error {}

async function main(): Promise<void> {
  const { spec, config } = init;
  // The job's data is config.data: resolveConfig put the spec's data there (or kept the config's).
  let data;
  try {
    data = await loadDataset(config.data, config.model.vocabSize);
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) throw new Unrecoverable(`invalid job spec: data: ${e.message}`);
    throw e;
  }
  let trainer: Trainer;
  try {
    trainer = new Trainer({ config, recipe: spec.recipe, seed: spec.seed, data });
  } catch (e) {
    throw new Unrecoverable(`invalid job spec: ${(e as Error).message}`);
  }
  if (init.restore) {
    const tensors = new Map<string, NamedTensor>();
    for (const t of init.restore.tensors) tensors.set(t.name, stateTensor(t.name, t.dtype, t.shape, t.data));
    const state: TrainingState = { tensors, meta: init.restore.meta };
    try {
      trainer.importState(state);
    } catch (e) {
      throw new Unrecoverable(`the run's checkpoint does not fit this job: ${(e as Error).message}`);
    }
  }
  const params = trainer.parameters().map((p) => ({ name: p.name, shape: [...p.shape] }));
  post({ type: "ready", step: trainer.step, params, entropyRate: data.entropyRate ?? null, unigramEntropy: data.unigramEntropy ?? null });
  // The main thread sets up the EMA for these parameters, then says "go".
  await new Promise((resolve) => port.once("message", resolve));

  let loss: number | null = null;
  let valLoss: number | null = null;
  // The final checkpoint goes with the "end" message, after the final evaluation.
  const finalCheckpoint: { state: WireState | null } = { state: null };
  const result = trainLoop(trainer, {
    // The job reports the main model's validation loss only.
    evalMtp: false,
    onStep: (r, evaluation) => {
      loss = r.loss;
      const m: ThreadMessage = { type: "step", step: r.step, loss: r.loss, tokens: r.tokens, ms: r.ms };
      if (evaluation) {
        valLoss = evaluation.loss;
        m.valLoss = evaluation.loss;
      }
      post(m);
    },
    parametersEvery: init.emaEvery,
    onParameters: (step, parameters) => {
      const arrays = parameters.map((p) => p.data.slice());
      post({ type: "ema", step, names: parameters.map((p) => p.name), arrays }, arrays.map((a) => a.buffer as ArrayBuffer));
    },
    checkpointEvery: spec.checkpoint.every,
    onCheckpoint: (step, isFinal) => {
      if (isFinal) {
        finalCheckpoint.state = exportWire(trainer);
        return true;
      }
      // The main thread still stages the previous checkpoint: skip this one (the next or the final follows).
      if (Atomics.load(control, CTRL_SAVE_BUSY) !== 0) return false;
      const w = exportWire(trainer);
      post({ type: "checkpoint", step, tensors: w.tensors, meta: w.meta, loss, valLoss }, w.tensors.map((t) => t.data.buffer as ArrayBuffer));
      return true;
    },
    shouldStop: () => Atomics.load(control, CTRL_STOP) !== 0,
  });
  if (result.evaluation) valLoss = result.evaluation.loss;
  const final = finalCheckpoint.state;
  post(
    { type: "end", reason: result.stopped ? "stopped" : "done", step: result.step, loss, valLoss, final },
    final ? final.tensors.map((t) => t.data.buffer as ArrayBuffer) : [],
  );
}

main().catch((e: unknown) => {
  post({ type: "error", message: e instanceof Error ? e.message : String(e), unrecoverable: e instanceof Unrecoverable });
});
