// One training run of the model CLIs: trainLoop with metrics as JSON lines, state saved under outDir
// (state.safetensors) every evalEvery steps and at the end, resumable exactly.

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Config, type RecipeName, validateConfig } from "./config.js";
import { type Dataset, loadDataset } from "./data/index.js";
import { trainLoop } from "./loop.js";
import { loadState, saveState } from "./state.js";
import { type StepReport, Trainer } from "./trainer.js";
import type { Backend } from "./backend/backend.js";
import { CudaBackend, cudaBackendUnavailable } from "./backend/cuda.js";
import { checkFitsDevice } from "./size.js";

/** Where a run trains: "cpu" (CpuBackend, the default) or "cuda" (CudaBackend: every tensor on the GPU). */
export type Device = "cpu" | "cuda";

/** The backend of a device; "cuda" without a usable GPU is an Error naming why. */
export function backendFor(device: Device, recipe: RecipeName): Backend | undefined {
  if (device === "cpu") return undefined;
  if (device !== "cuda") throw new RangeError(`unknown device ${JSON.stringify(device)}; expected "cpu" or "cuda"`);
  const why = cudaBackendUnavailable();
  if (why) throw new Error(`--device cuda: no usable GPU: ${why}`);
  return new CudaBackend({ attention: recipe === "fp32" ? "fp32" : "bf16" });
}

export interface RunOptions {
  config: Config;
  recipe: RecipeName;
  seed: number;
  outDir?: string;
  resume?: boolean;
  /** The tokens (default: loadDataset(config.data, config.model.vocabSize)). */
  data?: Dataset;
  /** Called after every step (progress display). */
  onStep?: (r: StepReport & { tokensPerSec: number; etaSec: number }, t: Trainer) => void;
  onEval?: (step: number, valLoss: number, valMtpLoss: number) => void;
  /**
   * Batches of the final evaluation (default: the config's evalBatches, as every evaluation); e.g.
   * Infinity for the whole validation split, where the final loss is compared across runs (parity).
   */
  finalEvalBatches?: number;
  /** "cpu" (default) or "cuda". */
  device?: Device;
}

export interface RunSummary {
  step: number;
  loss: number;
  valLoss: number;
  tokensPerSec: number;
  recipe: RecipeName;
  config: string;
  seed: number;
  /** MTP depth D (0: off), the last step's MTP loss (1/D) Σ_k L_k and its validation value (NaN without MTP). */
  mtpDepth: number;
  mtpLoss: number;
  valMtpLoss: number;
  entropyRate?: number;
  unigramEntropy?: number;
  order1Entropy?: number;
  params: number;
  seconds: number;
  resumedFrom: number | null;
  device: Device;
  /** The device memory pool's high-water mark (cuda), null on the CPU. */
  peakMemoryBytes: number | null;
  /** Device → host synchronizations of a training step (the median over the steps; 0 on the CPU). */
  hostSyncsPerStep: number;
  /** Optimizer steps skipped because the loss or a gradient held NaN/Inf (each logged with the tensor). */
  skippedSteps: number;
  /** The synchronizations of all steps and evaluations by kind (cuda; empty on the CPU). */
  hostSyncsByKind: Record<string, number>;
  curve: { step: number; valLoss: number }[];
}

export async function runTraining(opts: RunOptions): Promise<RunSummary> {
  const config = validateConfig(opts.config, opts.recipe);
  const data = opts.data ?? (await loadDataset(config.data, config.model.vocabSize));
  const device = opts.device ?? "cpu";
  const backend = backendFor(device, opts.recipe);
  if (backend instanceof CudaBackend) {
    const { freeBytes, totalBytes } = backend.memoryStats();
    checkFitsDevice(config, opts.recipe, freeBytes, totalBytes);
  }
  const trainer = new Trainer({ config, recipe: opts.recipe, seed: opts.seed, data, backend });
  const syncs = () => (backend instanceof CudaBackend ? backend.hostSyncCount : 0);
  const syncsPerStep: number[] = [];
  const statePath = opts.outDir ? join(opts.outDir, "state.safetensors") : null;
  const metricsPath = opts.outDir ? join(opts.outDir, "metrics.jsonl") : null;
  if (opts.outDir) mkdirSync(opts.outDir, { recursive: true });
  let resumedFrom: number | null = null;
  if (opts.resume && statePath && existsSync(statePath)) {
    trainer.importState(loadState(statePath));
    resumedFrom = trainer.step;
  } else if (metricsPath) {
    writeFileSync(metricsPath, "");
  }
  const log = (obj: unknown) => metricsPath && appendFileSync(metricsPath, `${JSON.stringify(obj)}\n`);
  const total = config.train.steps;
  const curve: { step: number; valLoss: number }[] = [];
  let tokens = 0;
  let ms = 0;
  const t0 = performance.now();
  let syncsBefore = syncs();
  const result = trainLoop(trainer, {
    finalEvalBatches: opts.finalEvalBatches,
    // The state is saved at every evaluation and at the end.
    checkpointEvery: config.train.evalEvery,
    onStep: (r) => {
      syncsPerStep.push(syncs() - syncsBefore);
      tokens += r.tokens;
      ms += r.ms;
      const tokensPerSec = (tokens / ms) * 1000;
      const mtp = r.mtpLosses.length ? { mtpLoss: r.mtpLoss, mtpLosses: r.mtpLosses, lambda: r.lambda } : {};
      log({ type: "step", step: r.step, loss: r.loss, ...mtp, lr: r.lr, gradNorm: r.gradNorm, tokensPerSec: r.tokens / r.ms * 1000, maxLoadRatio: r.maxLoadRatio, ...(r.skipped ? { skipped: true, nonFinite: r.nonFinite } : {}) });
      opts.onStep?.({ ...r, tokensPerSec, etaSec: ((total - r.step) * ms) / 1000 / Math.max(1, r.step - (resumedFrom ?? 0)) }, trainer);
      syncsBefore = syncs();
    },
    onEval: (e) => {
      curve.push({ step: e.step, valLoss: e.loss });
      log({ type: "eval", step: e.step, valLoss: e.loss, ...(e.mtpLosses.length ? { valMtpLoss: e.mtpLoss, valMtpLosses: e.mtpLosses } : {}) });
      opts.onEval?.(e.step, e.loss, e.mtpLoss);
    },
    onCheckpoint: () => {
      if (!statePath) return false;
      saveState(statePath, trainer.exportState());
      return true;
    },
  });
  const summary: RunSummary = {
    step: trainer.step,
    loss: result.last?.loss ?? NaN,
    valLoss: result.evaluation?.loss ?? NaN,
    tokensPerSec: ms > 0 ? (tokens / ms) * 1000 : 0,
    recipe: opts.recipe,
    config: config.name,
    seed: opts.seed,
    mtpDepth: config.model.mtp.depth,
    mtpLoss: result.last?.mtpLoss ?? NaN,
    valMtpLoss: result.evaluation?.mtpLoss ?? NaN,
    entropyRate: trainer.data.entropyRate,
    unigramEntropy: trainer.data.unigramEntropy,
    order1Entropy: trainer.data.order1Entropy,
    params: trainer.model.store.count(),
    seconds: (performance.now() - t0) / 1000,
    resumedFrom,
    device,
    peakMemoryBytes: backend instanceof CudaBackend ? backend.memoryStats().peakBytes : null,
    // Steps that ran an evaluation read more; the median is a plain step's count.
    hostSyncsPerStep: syncsPerStep.length ? [...syncsPerStep].sort((a, b) => a - b)[syncsPerStep.length >> 1] : 0,
    skippedSteps: trainer.skippedSteps,
    hostSyncsByKind: backend instanceof CudaBackend ? Object.fromEntries(backend.hostSyncs) : {},
    curve,
  };
  log({ type: "summary", ...summary });
  return summary;
}
