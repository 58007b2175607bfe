// The training loop: batches → forward → backward → clip → AdamW → router bias update, with evaluation and
// exact save/resume. Same seed, config, recipe and data → the same losses bit for bit on the CPU backend;
// a run resumed from the state saved at step k continues exactly as the uninterrupted run.

import { type LambdaSchedule, lambdaAt } from "@octet/mtp";
import { AuxFreeBalancer } from "@octet/router";
import type { Backend, TensorHandle } from "./backend/backend.js";
import { CpuBackend } from "./backend/cpu.js";
import { type Config, type RecipeName, mtpLambdaSchedule, validateConfig } from "./config.js";
import { BatchLoader, type BatchLoaderPosition, type Dataset, evalBatches, syntheticDataset } from "./data/index.js";
import { Transformer } from "./model.js";
import { AdamW, clipGradNorm, learningRate } from "./optim.js";
import type { NamedTensor, TrainingState } from "./state.js";

export interface StepReport {
  step: number;
  /** The main model's next-token loss (the MTP loss is reported apart). */
  loss: number;
  /** (1/D) Σ_k L_k of the MTP modules (NaN without MTP); the objective was loss + lambda · mtpLoss. */
  mtpLoss: number;
  /** L_k per depth (empty without MTP). */
  mtpLosses: number[];
  /** λ at this step (0 without MTP). */
  lambda: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  ms: number;
  /** max/mean expert load over the MoE layers this step. */
  maxLoadRatio: number;
  /**
   * The optimizer step was skipped: the loss or a gradient held NaN/Inf. `nonFinite` names the first tensor that
   * did ("loss", "mtpLoss", or "grad/<parameter>" in parameter order); weights, moments and router biases are
   * unchanged, and the data moved on (the step counts).
   */
  skipped: boolean;
  nonFinite: string | null;
  /** Steps skipped so far in this run, resumes included. */
  skippedSteps: number;
}

export interface TrainerOptions {
  config: unknown;
  recipe: RecipeName;
  seed: number;
  backend?: Backend;
  /**
   * The tokens to train on: `await loadDataset(config.data, config.model.vocabSize)`. Optional only for
   * synthetic data, which is generated here when absent; files must be loaded by the caller.
   */
  data?: Dataset;
}

/**
 * A trainable tensor by name: its FP32 master weights on the host (the backend's toHost: on the CPU the live
 * weights themselves, from a device a copy; copy `data` to keep a snapshot).
 */
export interface TrainerParameter {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

function defaultDataset(config: Config): Dataset {
  if (config.data.kind !== "synthetic") {
    throw new TypeError(`Trainer: data of kind "${config.data.kind}" is read from files; pass data: await loadDataset(config.data, config.model.vocabSize)`);
  }
  return syntheticDataset(config.data.seed, config.model.vocabSize);
}

export class Trainer {
  readonly config: Config;
  readonly recipe: RecipeName;
  readonly seed: number;
  readonly be: Backend;
  readonly data: Dataset;
  readonly model: Transformer;
  readonly optimizer: AdamW;
  readonly loader: BatchLoader;
  /** λ of the MTP loss per step (model.mtp.depth > 0). */
  readonly mtpLambda: LambdaSchedule;
  step = 0;
  /** Optimizer steps skipped for NaN/Inf (StepReport.skipped), saved with the state. */
  skippedSteps = 0;

  constructor(opts: TrainerOptions) {
    this.config = validateConfig(opts.config, opts.recipe);
    this.recipe = opts.recipe;
    this.seed = opts.seed;
    this.be = opts.backend ?? new CpuBackend();
    this.data = opts.data ?? defaultDataset(this.config);
    if (this.data.vocabSize !== this.config.model.vocabSize) {
      throw new RangeError(`invalid config: model.vocabSize ${this.config.model.vocabSize} differs from the data's vocabulary (${this.data.vocabSize})`);
    }
    this.model = new Transformer(this.config.model, opts.recipe, this.be, opts.seed);
    this.optimizer = new AdamW(this.model.store.all(), this.config.train, this.be);
    this.loader = new BatchLoader(this.data.train, { batchSize: this.config.train.batchSize, seqLen: this.config.model.seqLen, seed: opts.seed });
    this.mtpLambda = mtpLambdaSchedule(this.config.train);
  }

  /** The trainable parameters in creation order, by name (the names of state export, without its `param/`). */
  parameters(): TrainerParameter[] {
    return this.model.store.all().map((p) => ({ name: p.name, shape: p.shape, data: this.be.toHost(p.value) as Float32Array }));
  }

  trainStep(): StepReport {
    const t0 = performance.now();
    const batch = this.loader.next();
    this.model.store.zeroGrads();
    const f = this.model.forward(batch.inputs, batch.targets, true);
    const lambda = this.model.mtp ? lambdaAt(this.mtpLambda, this.step) : 0;
    this.model.backward(lambda); // ∇(L_main + λ · (1/D) Σ_k L_k)
    const norm = clipGradNorm(this.model.store.all(), this.config.train.gradClip, this.be);
    // The step's one read from the backend: losses, gradient norm and expert loads together.
    const moes = this.model.moeLayers();
    const D = f.mtpLosses.length;
    const values = this.be.read([f.loss, ...f.mtpLosses, ...(f.mtpLoss ? [f.mtpLoss] : []), norm, ...moes.map((m) => m.loads)]);
    const loss = values[0][0];
    const mtpLosses = values.slice(1, 1 + D).map((v) => v[0]);
    const mtpLoss = f.mtpLoss ? values[1 + D][0] : NaN;
    const gradNorm = values[f.mtpLoss ? 2 + D : 1][0];
    const loads = values.slice(values.length - moes.length);
    const lr = learningRate(this.config.train, this.step);
    // Decided before the update, from the values already read: a non-finite loss or gradient norm skips the
    // optimizer and the bias update (as Megatron-LM and Transformer Engine's loss scalers skip an overflowing step).
    const nonFinite = Number.isFinite(loss) && Number.isFinite(gradNorm) && !(this.model.mtp && !Number.isFinite(mtpLoss))
      ? null
      : this.firstNonFinite(loss, mtpLoss);
    if (nonFinite !== null) {
      this.skippedSteps++;
      this.step++;
      return {
        step: this.step, loss, mtpLoss, mtpLosses, lambda, lr, gradNorm, tokens: batch.inputs.length,
        ms: performance.now() - t0, maxLoadRatio: NaN, skipped: true, nonFinite, skippedSteps: this.skippedSteps,
      };
    }
    this.optimizer.update(lr);
    let maxLoadRatio = 0;
    moes.forEach((moe, i) => {
      let max = 0;
      let sum = 0;
      for (const l of loads[i]) {
        max = Math.max(max, l);
        sum += l;
      }
      maxLoadRatio = Math.max(maxLoadRatio, max / (sum / loads[i].length));
      moe.updateBias(loads[i]);
    });
    this.step++;
    return {
      step: this.step, loss, mtpLoss, mtpLosses, lambda,
      lr, gradNorm, tokens: batch.inputs.length, ms: performance.now() - t0, maxLoadRatio,
      skipped: false, nonFinite: null, skippedSteps: this.skippedSteps,
    };
  }

  /** The first tensor of a skipped step that holds NaN/Inf: the losses, else the gradients in parameter order. */
  private firstNonFinite(loss: number, mtpLoss: number): string {
    if (!Number.isFinite(loss)) return "loss";
    if (this.model.mtp && !Number.isFinite(mtpLoss)) return "mtpLoss";
    // Only on this rare path: one more read, of every gradient (clipping left them as they were: a NaN norm
    // is not above the threshold).
    for (const p of this.model.store.all()) {
      const g = this.be.toHost(p.grad) as Float32Array;
      for (let i = 0; i < g.length; i++) if (!Number.isFinite(g[i])) return `grad/${p.name}`;
    }
    return "gradNorm"; // the norm overflowed while every gradient is finite
  }

  /** Mean main-model loss over the first evalBatches batches of the validation split (deterministic windows). */
  evaluate(maxBatches = this.config.train.evalBatches): number {
    return this.evaluateAll(maxBatches, false).loss;
  }

  /** Validation losses: the main model's and, with MTP (withMtp), each depth's L_k, token-weighted means. */
  evaluateAll(maxBatches = this.config.train.evalBatches, withMtp = true): { loss: number; mtpLosses: number[] } {
    let total = 0;
    let count = 0;
    const D = withMtp && this.model.mtp ? this.model.mtp.depth : 0;
    const mtpTotal = new Array<number>(D).fill(0);
    let mtpRows = 0; // per sequence-batch: batch·(T − k) positions at depth k
    const T = this.config.model.seqLen;
    for (const b of evalBatches(this.data.val, { batchSize: this.config.train.batchSize, seqLen: T, maxBatches })) {
      const f = this.model.forward(b.inputs, b.targets, false, D > 0);
      const [[loss], ...mtpLosses] = this.be.read([f.loss, ...f.mtpLosses]);
      total += loss * b.inputs.length;
      count += b.inputs.length;
      const batch = b.inputs.length / T;
      mtpLosses.forEach(([l], k) => { mtpTotal[k] += l * batch * (T - k - 1); });
      mtpRows += batch;
    }
    return { loss: total / count, mtpLosses: mtpTotal.map((s, k) => s / (mtpRows * (T - k - 1))) };
  }

  exportState(): TrainingState {
    const tensors = new Map<string, NamedTensor>();
    const hostOf = (t: TensorHandle) => this.be.toHost(t) as Float32Array | Uint16Array;
    for (const p of this.model.store.all()) {
      tensors.set(`param/${p.name}`, { dtype: "F32", shape: [...p.shape], data: hostOf(p.value) as Float32Array });
      const m = this.optimizer.m.get(p.name)!;
      const v = this.optimizer.v.get(p.name)!;
      const dtype = m.dtype === "BF16" ? "BF16" : "F32";
      tensors.set(`adam.m/${p.name}`, { dtype, shape: [...p.shape], data: hostOf(m) } as NamedTensor);
      tensors.set(`adam.v/${p.name}`, { dtype, shape: [...p.shape], data: hostOf(v) } as NamedTensor);
    }
    const balancers: Record<string, { step: number }> = {};
    this.model.moeLayers().forEach((moe, i) => {
      const s = moe.balancer.toState();
      tensors.set(`router/${i}/bias`, { dtype: "F32", shape: [s.experts], data: Float32Array.from(s.bias) });
      balancers[i] = { step: s.step };
    });
    const scalers: Record<string, Record<string, number>> = {};
    for (const lin of this.model.linears()) {
      for (const [op, s] of Object.entries(lin.exportState())) {
        tensors.set(`scaler/${lin.name}/${op}`, { dtype: "F32", shape: [s.history.length], data: Float32Array.from(s.history) });
        (scalers[lin.name] ??= {})[op] = s.recorded;
      }
    }
    const position = this.loader.position();
    tensors.set("rng/data", { dtype: "U32", shape: [4], data: Uint32Array.from(position.rng) });
    return {
      tensors,
      meta: {
        kind: "octet.model/v1",
        step: this.step,
        adamStep: this.optimizer.step,
        recipe: this.recipe,
        seed: this.seed,
        config: this.config,
        dataPosition: position,
        balancers,
        scalers,
        skippedSteps: this.skippedSteps,
      },
    };
  }

  importState(state: TrainingState): void {
    const meta = state.meta as { kind?: string; step: number; adamStep: number; recipe: string; dataPosition: BatchLoaderPosition; balancers: Record<string, { step: number }>; scalers: Record<string, Record<string, number>> };
    if (meta.kind !== "octet.model/v1") throw new RangeError("importState: not an octet.model/v1 state");
    if (meta.recipe !== this.recipe) throw new RangeError(`importState: the state was trained with recipe ${meta.recipe}, not ${this.recipe}`);
    const get = (name: string) => {
      const t = state.tensors.get(name);
      if (!t) throw new RangeError(`importState: missing tensor ${name}`);
      return t;
    };
    for (const p of this.model.store.all()) {
      const t = get(`param/${p.name}`);
      const size = p.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== size) throw new RangeError(`importState: ${p.name} has ${t.data.length} elements, want ${size}`);
      this.be.copyFromHost(p.value, t.data);
      for (const [kind, moments] of [["adam.m", this.optimizer.m], ["adam.v", this.optimizer.v]] as const) {
        const m = moments.get(p.name)!;
        const saved = get(`${kind}/${p.name}`);
        if (saved.dtype !== m.dtype) throw new RangeError(`importState: ${kind}/${p.name} is ${saved.dtype}, this run keeps ${m.dtype} moments (train.bf16Moments)`);
        this.be.copyFromHost(m, saved.data);
      }
    }
    this.model.moeLayers().forEach((moe, i) => {
      const bias = get(`router/${i}/bias`).data as Float32Array;
      const restored = { experts: bias.length, step: meta.balancers[i].step, gamma: moe.balancer.gamma, bias: Array.from(bias) };
      moe.balancer = AuxFreeBalancer.fromState(restored);
    });
    for (const lin of this.model.linears()) {
      const ops = meta.scalers[lin.name];
      if (!ops) continue;
      const s: Record<string, { history: number[]; recorded: number }> = {};
      for (const [op, recorded] of Object.entries(ops)) s[op] = { history: Array.from(get(`scaler/${lin.name}/${op}`).data), recorded };
      lin.importState(s);
    }
    this.loader.restore(meta.dataPosition);
    this.step = meta.step;
    this.optimizer.step = meta.adamStep;
    this.skippedSteps = (state.meta as { skippedSteps?: number }).skippedSteps ?? 0;
  }
}
