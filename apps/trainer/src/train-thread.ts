// A job's training thread: builds the Trainer, restores the state it is given, and trains step by step,
// posting each step's report, the parameters for the EMA, and the state at checkpoints to the main thread.
// It stops after the current step when the main thread sets the shared stop word (cancel, shutdown).

import { parentPort, workerData } from "node:worker_threads";
import { type NamedTensor, type TensorDtype, Trainer, type TrainingState } from "@octet/model";
import { loadJobData } from "./data.js";
import { CTRL_SAVE_BUSY, CTRL_STOP, type ThreadInit, type ThreadMessage, type WireTensor } from "./protocol.js";

const port = parentPort!;
const init = workerData as ThreadInit;
const control = new Int32Array(init.control);

function post(m: ThreadMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

function typed(dtype: string, bytes: Uint8Array): NamedTensor["data"] {
  let buf: ArrayBuffer;
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) buf = bytes.buffer as ArrayBuffer;
  else {
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    buf = copy.buffer;
  }
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "BF16":
      return new Uint16Array(buf);
    case "U32":
      return new Uint32Array(buf);
    case "I32":
      return new Int32Array(buf);
    default:
      throw new RangeError(`tensor dtype ${dtype} is not a model state dtype`);
  }
}

/** The whole state, copied (each tensor in its own buffer, to be transferred). */
function exportWire(trainer: Trainer): { tensors: WireTensor[]; meta: string } {
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
  let data;
  try {
    data = await loadJobData(spec, config, init.specHadData);
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
    for (const t of init.restore.tensors) tensors.set(t.name, { dtype: t.dtype as TensorDtype, shape: t.shape, data: typed(t.dtype, t.data) });
    const state: TrainingState = { tensors, meta: init.restore.meta };
    try {
      trainer.importState(state);
    } catch (e) {
      throw new Unrecoverable(`the run's checkpoint does not fit this job: ${(e as Error).message}`);
    }
  }
  const params: { name: string; shape: number[] }[] = [];
  for (const [name, t] of trainer.exportState().tensors) if (name.startsWith("param/")) params.push({ name: name.slice(6), shape: [...t.shape] });
  post({ type: "ready", step: trainer.step, params, entropyRate: data.entropyRate ?? null, unigramEntropy: data.unigramEntropy ?? null });
  // The main thread sets up the EMA for these parameters, then says "go".
  await new Promise((resolve) => port.once("message", resolve));

  const total = config.train.steps;
  const { evalEvery } = config.train;
  const every = spec.checkpoint.every;
  let loss: number | null = null;
  let valLoss: number | null = null;
  let lastSaved = trainer.step;
  let evaluatedAt = -1;
  while (trainer.step < total && Atomics.load(control, CTRL_STOP) === 0) {
    const r = trainer.trainStep();
    loss = r.loss;
    const m: ThreadMessage = { type: "step", step: r.step, loss: r.loss, tokens: r.tokens, ms: r.ms };
    if (r.step % evalEvery === 0 || r.step === total) {
      valLoss = trainer.evaluate();
      evaluatedAt = r.step;
      m.valLoss = valLoss;
    }
    post(m);
    if (init.emaEvery > 0 && r.step % init.emaEvery === 0) {
      const names: string[] = [];
      const arrays: Float32Array[] = [];
      for (const [name, t] of trainer.exportState().tensors) {
        if (!name.startsWith("param/")) continue;
        names.push(name.slice(6));
        arrays.push((t.data as Float32Array).slice());
      }
      post({ type: "ema", step: r.step, names, arrays }, arrays.map((a) => a.buffer as ArrayBuffer));
    }
    if (r.step % every === 0 && r.step < total && Atomics.load(control, CTRL_STOP) === 0 && Atomics.load(control, CTRL_SAVE_BUSY) === 0) {
      const w = exportWire(trainer);
      lastSaved = r.step;
      post({ type: "checkpoint", step: r.step, tensors: w.tensors, meta: w.meta, loss, valLoss }, w.tensors.map((t) => t.data.buffer as ArrayBuffer));
    }
  }
  const stopped = trainer.step < total;
  if (!stopped && evaluatedAt !== trainer.step) valLoss = trainer.evaluate();
  const final = trainer.step > lastSaved ? exportWire(trainer) : null;
  post({ type: "end", reason: stopped ? "stopped" : "done", step: trainer.step, loss, valLoss, final }, final ? final.tensors.map((t) => t.data.buffer as ArrayBuffer) : []);
}

main().catch((e: unknown) => {
  post({ type: "error", message: e instanceof Error ? e.message : String(e), unrecoverable: e instanceof Unrecoverable });
});
