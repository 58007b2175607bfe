// A job's training thread: loads the job's data, builds the Trainer, restores the state it is given, and runs
// @octet/model's training loop, posting each step's report, the parameters for the EMA, and the state at
// checkpoints to the main thread. It stops after the current step when the main thread sets the shared stop
// word (cancel, shutdown).

import { pathToFileURL } from "node:url";
import { parentPort, workerData } from "node:worker_threads";
import { type Backend, type NamedTensor, Trainer, type TrainingState, backendFor, checkFitsDevice, loadDataset, stateTensor, trainLoop } from "@octet/model";
import { classifyFailure, isDeviceLost, isOutOfMemory, memoryEstimateText } from "./failures.js";
import { CTRL_SAVE_BUSY, CTRL_STOP, type MemoryNow, type ThreadInit, type ThreadMessage, type WireTensor } from "./protocol.js";

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
class DeviceLost extends Error {}

/** What a device backend reports of its memory (CudaBackend.memoryStats, numerics' pool). */
type MemoryStats = { usedBytes: number; peakBytes: number; freeBytes: number; totalBytes: number };
type DeviceBackend = Backend & { memoryStats?: () => MemoryStats };

/**
 * The job's backend: none (the Trainer's CpuBackend) on the CPU; on "cuda", @octet/model's backendFor — or, in the
 * trainer's own tests on machines without a GPU, the module named by OCTET_TRAINER_TEST_CUDA_BACKEND (its
 * createBackend(recipe) stands in for the GPU). A backend that cannot be created is a lost device.
 */
async function openBackend(): Promise<DeviceBackend | undefined> {
  if (init.backend !== "cuda") return undefined;
  try {
    const stand = process.env.OCTET_TRAINER_TEST_CUDA_BACKEND;
    if (stand) {
      const mod = (await import(pathToFileURL(stand).href)) as { createBackend: (recipe: string) => DeviceBackend };
      return mod.createBackend(init.spec.recipe);
    }
    return backendFor("cuda", init.spec.recipe) as DeviceBackend;
  } catch (e) {
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    throw new DeviceLost(`GPU ${visible ?? "(CUDA_VISIBLE_DEVICES unset)"}: cannot train on it: ${(e as Error).message}`);
  }
}

let deviceAtStart: { freeBytes: number; totalBytes: number } | null = null;

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
  const backend = await openBackend();
  const memoryStats = backend?.memoryStats ? () => backend.memoryStats!() : null;
  // Whether trainer.parameters() returns fresh host copies (a device backend's toHost) or live buffers (the CPU's).
  const freshHost = backend !== undefined && backend.name !== "cpu";
  if (memoryStats) {
    const m = memoryStats();
    deviceAtStart = { freeBytes: m.freeBytes, totalBytes: m.totalBytes };
    // A config that cannot fit is refused before training, with the estimate (a RangeError: never retried).
    checkFitsDevice(config, spec.recipe, m.freeBytes, m.totalBytes);
  }
  let trainer: Trainer;
  try {
    trainer = new Trainer({ config, recipe: spec.recipe, seed: spec.seed, data, backend });
  } catch (e) {
    if (init.backend === "cuda" && (isOutOfMemory((e as Error).message) || isDeviceLost((e as Error).message))) throw e;
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
  post({
    type: "ready",
    step: trainer.step,
    params,
    entropyRate: data.entropyRate ?? null,
    unigramEntropy: data.unigramEntropy ?? null,
    backend: init.backend,
    visibleDevices: init.backend === "cuda" ? (process.env.CUDA_VISIBLE_DEVICES ?? null) : null,
  });
  // The main thread sets up the EMA for these parameters, then says "go".
  await new Promise((resolve) => port.once("message", resolve));

  let loss: number | null = null;
  let valLoss: number | null = null;
  // The final checkpoint goes with the "end" message, after the final evaluation.
  const finalCheckpoint: { state: WireState | null } = { state: null };
  // The stalls the loop pays for the EMA and checkpoints, reported with the next step message: the EMA's from the
  // end of onStep (trainLoop calls trainer.parameters() between onStep and onParameters) to the hand-off's end.
  let afterStep = 0;
  let emaStallMs = 0;
  let checkpointStallMs = 0;
  let memoryAt = 0;
  const result = trainLoop(trainer, {
    // The job reports the main model's validation loss only.
    evalMtp: false,
    onStep: (r, evaluation) => {
      loss = r.loss;
      const m: ThreadMessage = { type: "step", step: r.step, loss: r.loss, tokens: r.tokens, ms: r.ms, emaStallMs, checkpointStallMs };
      emaStallMs = 0;
      checkpointStallMs = 0;
      if (evaluation) {
        valLoss = evaluation.loss;
        m.valLoss = evaluation.loss;
      }
      if (memoryStats && performance.now() - memoryAt >= 1000) {
        memoryAt = performance.now();
        const s = memoryStats();
        m.memory = { usedBytes: s.usedBytes, peakBytes: s.peakBytes } satisfies MemoryNow;
      }
      post(m);
      afterStep = performance.now();
    },
    parametersEvery: init.emaEvery,
    onParameters: (step, parameters) => {
      // The CPU backend hands out its live buffers: copy them. A device backend's are fresh host copies already
      // (its toHost), transferred as they are — one device→host copy per push, which an asynchronous copy into
      // pinned buffers can later replace without changing this hand-off.
      const arrays = parameters.map((p) => (freshHost ? p.data : p.data.slice()));
      post({ type: "ema", step, names: parameters.map((p) => p.name), arrays }, arrays.map((a) => a.buffer as ArrayBuffer));
      emaStallMs += performance.now() - afterStep;
    },
    checkpointEvery: spec.checkpoint.every,
    onCheckpoint: (step, isFinal) => {
      const t0 = performance.now();
      try {
        if (isFinal) {
          finalCheckpoint.state = exportWire(trainer);
          return true;
        }
        // The main thread still stages the previous checkpoint: skip this one (the next or the final follows).
        if (Atomics.load(control, CTRL_SAVE_BUSY) !== 0) return false;
        const w = exportWire(trainer);
        post({ type: "checkpoint", step, tensors: w.tensors, meta: w.meta, loss, valLoss }, w.tensors.map((t) => t.data.buffer as ArrayBuffer));
        return true;
      } finally {
        checkpointStallMs += performance.now() - t0;
      }
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
  const message = e instanceof Error ? e.message : String(e);
  const kind = e instanceof Unrecoverable ? "unrecoverable" : e instanceof DeviceLost ? "device-lost" : classifyFailure(e, init.backend);
  // Out of memory on the GPU: the message and the model's estimate, side by side (never retried).
  const text = kind === "unrecoverable" && init.backend === "cuda" && isOutOfMemory(message) ? `${message}; ${memoryEstimateText(init.config, init.spec.recipe, deviceAtStart)}` : message;
  post({ type: "error", message: text, kind });
});
