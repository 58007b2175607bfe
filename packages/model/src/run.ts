// One training run: steps with periodic evaluation, metrics as JSON lines, state saved under outDir
// (state.safetensors) every evalEvery steps and at the end, resumable exactly.

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, RecipeName } from "./config.js";
import { loadState, saveState } from "./state.js";
import { type StepReport, Trainer } from "./trainer.js";

export interface RunOptions {
  config: Config;
  recipe: RecipeName;
  seed: number;
  outDir?: string;
  resume?: boolean;
  /** Called after every step (progress display). */
  onStep?: (r: StepReport & { tokensPerSec: number; etaSec: number }, t: Trainer) => void;
  onEval?: (step: number, valLoss: number, valMtpLoss: number) => void;
  /**
   * Batches of the final evaluation (default: the config's evalBatches, as every evaluation); e.g.
   * Infinity for the whole validation split, where the final loss is compared across runs (parity).
   */
  finalEvalBatches?: number;
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
  curve: { step: number; valLoss: number }[];
}

export function runTraining(opts: RunOptions): RunSummary {
  const trainer = new Trainer({ config: opts.config, recipe: opts.recipe, seed: opts.seed });
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
  const total = opts.config.train.steps;
  const { evalEvery } = opts.config.train;
  const curve: { step: number; valLoss: number }[] = [];
  let lastLoss = NaN;
  let lastMtpLoss = NaN;
  let valLoss = NaN;
  let valMtpLoss = NaN;
  const evaluate = (batches = opts.config.train.evalBatches) => {
    const e = trainer.evaluateAll(batches);
    valLoss = e.loss;
    valMtpLoss = e.mtpLosses.length ? e.mtpLosses.reduce((a, b) => a + b, 0) / e.mtpLosses.length : NaN;
    return e;
  };
  let tokens = 0;
  let ms = 0;
  const t0 = performance.now();
  while (trainer.step < total) {
    const r = trainer.trainStep();
    lastLoss = r.loss;
    lastMtpLoss = r.mtpLoss;
    tokens += r.tokens;
    ms += r.ms;
    const tokensPerSec = (tokens / ms) * 1000;
    const mtp = r.mtpLosses.length ? { mtpLoss: r.mtpLoss, mtpLosses: r.mtpLosses, lambda: r.lambda } : {};
    log({ type: "step", step: r.step, loss: r.loss, ...mtp, lr: r.lr, gradNorm: r.gradNorm, tokensPerSec: r.tokens / r.ms * 1000, maxLoadRatio: r.maxLoadRatio });
    opts.onStep?.({ ...r, tokensPerSec, etaSec: ((total - r.step) * ms) / 1000 / Math.max(1, r.step - (resumedFrom ?? 0)) }, trainer);
    if (r.step % evalEvery === 0 || r.step === total) {
      const e = evaluate(r.step === total && opts.finalEvalBatches !== undefined ? opts.finalEvalBatches : undefined);
      curve.push({ step: r.step, valLoss });
      log({ type: "eval", step: r.step, valLoss, ...(e.mtpLosses.length ? { valMtpLoss, valMtpLosses: e.mtpLosses } : {}) });
      opts.onEval?.(r.step, valLoss, valMtpLoss);
      if (statePath) saveState(statePath, trainer.exportState());
    }
  }
  if (Number.isNaN(valLoss)) evaluate(opts.finalEvalBatches);
  const summary: RunSummary = {
    step: trainer.step,
    loss: lastLoss,
    valLoss,
    tokensPerSec: ms > 0 ? (tokens / ms) * 1000 : 0,
    recipe: opts.recipe,
    config: opts.config.name,
    seed: opts.seed,
    mtpDepth: opts.config.model.mtp.depth,
    mtpLoss: lastMtpLoss,
    valMtpLoss,
    entropyRate: trainer.data.entropyRate,
    unigramEntropy: trainer.data.unigramEntropy,
    order1Entropy: trainer.data.order1Entropy,
    params: trainer.model.store.count(),
    seconds: (performance.now() - t0) / 1000,
    resumedFrom,
    curve,
  };
  log({ type: "summary", ...summary });
  return summary;
}
