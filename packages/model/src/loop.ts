// The one training loop: steps up to config.train.steps with the evaluation cadence, and hooks for what the
// caller does around them (metrics, progress, EMA pushes, checkpoints, stopping). The model CLI (run.ts) and
// the job trainer's worker thread are both thin callers of it, so they train, evaluate and save alike.
//
// Per step, in this order: trainStep → evaluation (every evalEvery steps and at the last step) → onStep →
// onEval → onParameters (every parametersEvery steps) → onCheckpoint (every checkpointEvery steps before the
// last). shouldStop is asked between steps. After the last step (or a stop): a final evaluation when the loop
// did not stop and the current step has none yet, then a final onCheckpoint when the state is newer than the
// last checkpoint a hook reported saved.

import type { StepReport, Trainer, TrainerParameter } from "./trainer.js";

/** Validation losses after a step. */
export interface Evaluation {
  step: number;
  /** The main model's next-token loss. */
  loss: number;
  /** L_k per MTP depth (empty without MTP, or when the loop evaluates the main model only). */
  mtpLosses: number[];
  /** (1/D) Σ_k L_k (NaN when mtpLosses is empty). */
  mtpLoss: number;
}

export interface TrainLoopOptions {
  /** Evaluate the MTP modules as well as the main model (default true; false runs the main model only). */
  evalMtp?: boolean;
  /**
   * Batches of the evaluation at the last step and of a final one (default: the config's evalBatches, as
   * every evaluation); e.g. Infinity for the whole validation split, where final losses are compared.
   */
  finalEvalBatches?: number;
  /** After every step, with the step's evaluation when it had one (null otherwise). */
  onStep?: (report: StepReport, evaluation: Evaluation | null) => void;
  /** After each step's evaluation (following onStep). The final evaluation is returned, not passed here. */
  onEval?: (evaluation: Evaluation) => void;
  /** Calls onParameters every this many steps (0, the default: never). */
  parametersEvery?: number;
  /** The parameters by name, live: a hook that keeps them (an EMA push) copies them. */
  onParameters?: (step: number, parameters: TrainerParameter[]) => void;
  /** Calls onCheckpoint every this many steps before the last (0, the default: only the final one). */
  checkpointEvery?: number;
  /**
   * A checkpoint is due at `step` (`final`: the loop has ended). The hook exports and saves the state, or
   * skips (e.g. while its previous save is busy); it returns whether it saved. A periodic checkpoint is not
   * offered when the loop is about to stop (the final one follows), and a final one only when the state is
   * newer than the last saved.
   */
  onCheckpoint?: (step: number, final: boolean) => boolean;
  /** Asked between steps (and before a periodic checkpoint); true ends the loop after the current step. */
  shouldStop?: () => boolean;
}

export interface TrainLoopResult {
  /** The loop ended before config.train.steps (shouldStop). */
  stopped: boolean;
  step: number;
  /** The report of the last step this loop ran (null when it ran none). */
  last: StepReport | null;
  /**
   * The latest evaluation (its `step` says of which step): when the loop did not stop, always of the current
   * step (a final one if the last step had none); null when the loop stopped before any.
   */
  evaluation: Evaluation | null;
}

function checkEvery(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`trainLoop: ${what} must be a non-negative integer, got ${n}`);
  return n;
}

/** Trains `trainer` from its current step to config.train.steps (or until shouldStop). */
export function trainLoop(trainer: Trainer, options: TrainLoopOptions = {}): TrainLoopResult {
  const { evalEvery, evalBatches, steps: total } = trainer.config.train;
  const evalMtp = options.evalMtp ?? true;
  const finalEvalBatches = options.finalEvalBatches ?? evalBatches;
  const parametersEvery = checkEvery("parametersEvery", options.parametersEvery ?? 0);
  const checkpointEvery = checkEvery("checkpointEvery", options.checkpointEvery ?? 0);
  const shouldStop = options.shouldStop ?? (() => false);

  const evaluate = (batches: number): Evaluation => {
    const e = trainer.evaluateAll(batches, evalMtp);
    const mtpLoss = e.mtpLosses.length ? e.mtpLosses.reduce((a, b) => a + b, 0) / e.mtpLosses.length : NaN;
    return { step: trainer.step, loss: e.loss, mtpLosses: e.mtpLosses, mtpLoss };
  };

  let last: StepReport | null = null;
  let evaluation: Evaluation | null = null;
  let lastSaved = trainer.step;
  while (trainer.step < total && !shouldStop()) {
    const r = trainer.trainStep();
    last = r;
    let stepEvaluation: Evaluation | null = null;
    if (r.step % evalEvery === 0 || r.step === total) {
      stepEvaluation = evaluate(r.step === total ? finalEvalBatches : evalBatches);
      evaluation = stepEvaluation;
    }
    options.onStep?.(r, stepEvaluation);
    if (stepEvaluation) options.onEval?.(stepEvaluation);
    if (parametersEvery > 0 && r.step % parametersEvery === 0) options.onParameters?.(r.step, trainer.parameters());
    if (checkpointEvery > 0 && r.step % checkpointEvery === 0 && r.step < total && !shouldStop()) {
      if (options.onCheckpoint?.(r.step, false)) lastSaved = r.step;
    }
  }
  const stopped = trainer.step < total;
  if (!stopped && evaluation?.step !== trainer.step) evaluation = evaluate(finalEvalBatches);
  if (trainer.step > lastSaved) options.onCheckpoint?.(trainer.step, true);
  return { stopped, step: trainer.step, last, evaluation };
}
