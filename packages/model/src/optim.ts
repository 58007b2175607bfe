// AdamW with FP32 master weights and FP32 gradients; moments in FP32 or BF16 (DeepSeek-V3 keeps them in
// BF16); global gradient-norm clipping; warm-up then cosine or WSD (warmup–stable–decay) learning rates.

import type { Backend, TensorHandle } from "./backend/backend.js";
import type { TrainConfig } from "./config.js";
import type { Parameter } from "./params.js";

/** Learning rate at a 0-based step. */
export function learningRate(cfg: TrainConfig, step: number): number {
  const { lr, minLr, warmupSteps, steps } = cfg;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (cfg.schedule === "cosine") {
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, steps - warmupSteps));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  }
  // WSD: constant lr, then a linear decay to minLr over the last decayFraction of the steps.
  const decaySteps = Math.max(1, Math.round(steps * cfg.decayFraction));
  const decayStart = steps - decaySteps;
  if (step < decayStart) return lr;
  return lr + (minLr - lr) * Math.min(1, (step - decayStart + 1) / decaySteps);
}

/**
 * Scale all gradients so their global L2 norm is at most maxNorm (0: no clipping). Returns the norm before, as
 * a 1-element tensor (it stays with the backend; the trainer reads it with the step's other scalars).
 */
export function clipGradNorm(params: Parameter[], maxNorm: number, be: Backend): TensorHandle {
  const grads = params.map((p) => p.grad);
  const norm = be.gradNorm(grads);
  be.clipByNorm(grads, norm, maxNorm);
  return norm;
}

export class AdamW {
  /** First and second moments by parameter name: backend tensors, F32 or BF16 (cfg.bf16Moments). */
  readonly m = new Map<string, TensorHandle>();
  readonly v = new Map<string, TensorHandle>();
  step = 0;

  constructor(
    private readonly params: Parameter[],
    private readonly cfg: TrainConfig,
    private readonly be: Backend,
  ) {
    const dtype = cfg.bf16Moments ? "BF16" : "F32";
    for (const p of params) {
      this.m.set(p.name, be.zeros(p.shape, dtype));
      this.v.set(p.name, be.zeros(p.shape, dtype));
    }
  }

  /** One update with learning rate lr (weight decay only on the parameters marked decay). */
  update(lr: number): void {
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.cfg;
    for (const p of this.params) {
      this.be.adamwUpdate(p.value, p.grad, this.m.get(p.name)!, this.v.get(p.name)!, {
        lr, beta1, beta2, eps, weightDecay: p.decay ? weightDecay : 0, step: this.step,
      });
    }
  }
}
