// DeepSeek-V3 multi-token prediction (arXiv 2412.19437, §2.2). D sequential modules; for depth k and
// position i (0-based, inputs x_0..x_{T−1}, targets x_1..x_T, i.e. x_{i+1} = targets[i]):
//   h'^k_i = M_k · [RMSNorm(Emb(x_{i+k})) ; RMSNorm(h^{k−1}_i)]     (M_k: [d, 2d])
//   h^k    = TRM_k(h'^k)                                               (causal block, T − k positions)
//   P^k_i  = softmax(OutHead(h^k_i)),  predicting x_{i+k+1} = targets[i+k]
//   L_k    = mean over i = 0 .. T−k−1 of −log P^k_i[x_{i+k+1}]
// h^0 is the main model's last hidden state (what its head consumes). Positions i ≥ T − k, where
// x_{i+k+1} would lie past the window, are excluded: module k runs on T − k positions per sequence,
// and module k+1 uses the first T − k − 1 rows of h^k (the causal chain). The embedding and the head
// are the main model's. The concatenation puts the embedding first, as DeepSeek-V3's released weights
// (eh_proj, enorm, hnorm) do; the paper writes [h; emb] — the same model up to a column permutation.
// L_k is a mean over the T − k valid positions (the paper divides the sum by T; the difference is a
// factor (T − k)/T).

import type { TensorHandle } from "@octet/numerics";
import type { MtpBlock, MtpKernels, NamedParam, SeqShape, SharedEmbedding, SharedHead } from "./interfaces.js";
import { cpuMtpKernels } from "./kernels.js";
import { RMS_NORM_EPS } from "./ops.js";

/** Seeded N(0, 1) stream (splitmix32 + Box–Muller) for parameter initialization. */
export function normalStream(seed: number): () => number {
  let s = seed >>> 0;
  const u32 = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  return () => {
    const u = (u32() + 1) / 4294967297;
    const v = u32() / 4294967296;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export interface MtpModuleOptions {
  dim: number;
  block: MtpBlock;
  /** The kernels and tensors to compute with (default: @octet/mtp's CPU kernels on HostTensors). */
  kernels?: MtpKernels;
  /** Seeds the projection's initialization. Default 0. */
  seed?: number;
  /** Std of the projection's N(0, std²) init. Default 1/√(2·dim) (fan-in). DeepSeek-V3 uses 0.006. */
  initStd?: number;
  eps?: number;
}

interface ModuleCache {
  emb: TensorHandle;
  h: TensorHandle;
  eRstd: TensorHandle;
  hRstd: TensorHandle;
  z: TensorHandle;
  blockCache: unknown;
}

/** Throws a RangeError naming `what` unless t is an F32 tensor [rows, cols]. */
function checkMatrix(what: string, t: TensorHandle, rows: number, cols: number): void {
  const ok = t && t.dtype === "F32" && t.shape.length === 2 && t.shape[0] === rows && t.shape[1] === cols;
  if (!ok) throw new RangeError(`${what} must be an F32 tensor [${rows}, ${cols}], got ${t ? `${t.dtype} [${t.shape.join(", ")}]` : t}`);
}

/** Throws a RangeError naming `what` unless t is an I32 tensor [n]. */
function checkTokens(what: string, t: TensorHandle, n: number): void {
  const ok = t && t.dtype === "I32" && t.shape.length === 1 && t.shape[0] === n;
  if (!ok) throw new RangeError(`${what} must be an I32 tensor [${n}], got ${t ? `${t.dtype} [${t.shape.join(", ")}]` : t}`);
}

/** One MTP depth: its two RMSNorm gains, its projection and its block. */
export class MtpModule {
  readonly dim: number;
  readonly block: MtpBlock;
  readonly eps: number;
  readonly kernels: MtpKernels;
  /** enorm.weight [d] */
  readonly enorm: NamedParam;
  /** hnorm.weight [d] */
  readonly hnorm: NamedParam;
  /** eh_proj.weight [d, 2d], applied as z · Wᵀ with z = [enorm(e); hnorm(h)]. */
  readonly ehProj: NamedParam;

  constructor(options: MtpModuleOptions) {
    const { dim, block } = options;
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`MtpModule: dim must be a positive integer, got ${dim}`);
    if (!block || typeof block.forward !== "function" || typeof block.backward !== "function" || typeof block.params !== "function") {
      throw new TypeError("MtpModule: block must implement MtpBlock (forward, backward, params)");
    }
    const std = options.initStd ?? 1 / Math.sqrt(2 * dim);
    if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`MtpModule: initStd must be a non-negative finite number, got ${std}`);
    this.dim = dim;
    this.block = block;
    this.eps = options.eps ?? RMS_NORM_EPS;
    const k = (this.kernels = options.kernels ?? cpuMtpKernels);
    const ones = () => k.fromHost(new Float32Array(dim).fill(1), [dim]);
    this.enorm = { name: "enorm.weight", value: ones(), grad: k.zeros([dim]) };
    this.hnorm = { name: "hnorm.weight", value: ones(), grad: k.zeros([dim]) };
    const w = new Float32Array(dim * 2 * dim);
    const normal = normalStream(options.seed ?? 0);
    for (let i = 0; i < w.length; i++) w[i] = normal() * std;
    this.ehProj = { name: "eh_proj.weight", value: k.fromHost(w, [dim, 2 * dim]), grad: k.zeros([dim, 2 * dim]) };
  }

  /** Own parameters then the block's (prefixed "block."). */
  params(): NamedParam[] {
    return [this.enorm, this.hnorm, this.ehProj, ...this.block.params().map((p) => ({ ...p, name: `block.${p.name}` }))];
  }

  /** emb, h: [batch·seqLen, d] → h^k: [batch·seqLen, d]. */
  forward(emb: TensorHandle, h: TensorHandle, shape: SeqShape): { out: TensorHandle; cache: ModuleCache } {
    const k = this.kernels;
    const d = this.dim;
    const rows = shape.batch * shape.seqLen;
    const eNorm = k.rmsnormForward(emb, this.enorm.value, this.eps);
    const hNorm = k.rmsnormForward(h, this.hnorm.value, this.eps);
    const z = k.concatColumns(eNorm.y, hNorm.y); // [rows, 2d]
    const u = k.linearForward(z, this.ehProj.value);
    const { out, cache: blockCache } = this.block.forward(u, shape);
    checkMatrix("MtpModule: the block's output", out, rows, d);
    return { out, cache: { emb, h, eRstd: eNorm.rstd, hRstd: hNorm.rstd, z, blockCache } };
  }

  /** dOut → { dEmb, dH }; accumulates this module's (and its block's) gradients. */
  backward(dOut: TensorHandle, cache: ModuleCache): { dEmb: TensorHandle; dH: TensorHandle } {
    const k = this.kernels;
    const du = this.block.backward(dOut, cache.blockCache);
    const dz = k.linearBackward(du, cache.z, this.ehProj.value, this.ehProj.grad);
    const [dyE, dyH] = k.splitColumns(dz, this.dim);
    return {
      dEmb: k.rmsnormBackward(dyE, cache.emb, this.enorm.value, cache.eRstd, this.enorm.grad),
      dH: k.rmsnormBackward(dyH, cache.h, this.hnorm.value, cache.hRstd, this.hnorm.grad),
    };
  }
}

export interface MultiTokenPredictionOptions {
  dim: number;
  /** One block per depth; D = blocks.length ≥ 1 (DeepSeek-V3: D = 1). */
  blocks: MtpBlock[];
  embedding: SharedEmbedding;
  head: SharedHead;
  /** The kernels and tensors to compute with (default: @octet/mtp's CPU kernels on HostTensors). */
  kernels?: MtpKernels;
  seed?: number;
  initStd?: number;
  eps?: number;
}

export interface MtpBatch {
  /** The main model's last hidden states h^0: F32 [batch·seqLen, dim]. */
  hidden: TensorHandle;
  /** I32 [batch·seqLen] input tokens x_0..x_{T−1} per sequence. */
  inputs: TensorHandle;
  /** I32 [batch·seqLen] targets x_1..x_T (inputs shifted by one), as from a BatchLoader. */
  targets: TensorHandle;
  batch: number;
  seqLen: number;
}

export interface MtpForward {
  /** L_k for k = 1..D, each a 1-element tensor (read them with the kernels' read, together with the rest). */
  losses: TensorHandle[];
  /** (1/D) Σ_k L_k, a 1-element tensor: the training loss adds λ times this. */
  loss: TensorHandle;
  /** Positions scored at each depth: batch·(seqLen − k). */
  positions: number[];
  /** Opaque, for backward. */
  cache: MtpCache;
}

interface DepthCache {
  len: number;
  embTokens: TensorHandle;
  module: ModuleCache;
  head: unknown;
  dLogits: TensorHandle;
}

export interface MtpCache {
  batch: number;
  seqLen: number;
  depths: DepthCache[];
  used: boolean;
}

/** The D sequential MTP modules, their loss, and its backward. */
export class MultiTokenPrediction {
  readonly dim: number;
  readonly depth: number;
  readonly modules: MtpModule[];
  readonly embedding: SharedEmbedding;
  readonly head: SharedHead;
  readonly kernels: MtpKernels;

  constructor(options: MultiTokenPredictionOptions) {
    const { dim, blocks, embedding, head } = options;
    if (!Array.isArray(blocks) || blocks.length === 0) throw new RangeError("MultiTokenPrediction: blocks must be a non-empty array (one block per depth)");
    if (!embedding || typeof embedding.lookup !== "function" || typeof embedding.accumulateGrad !== "function") {
      throw new TypeError("MultiTokenPrediction: embedding must implement SharedEmbedding (lookup, accumulateGrad)");
    }
    if (!head || typeof head.forward !== "function" || typeof head.backward !== "function") {
      throw new TypeError("MultiTokenPrediction: head must implement SharedHead (forward, backward)");
    }
    if (embedding.dim !== dim || head.dim !== dim) {
      throw new RangeError(`MultiTokenPrediction: dim ${dim} but the embedding has dim ${embedding.dim} and the head ${head.dim}`);
    }
    if (embedding.vocabSize !== head.vocabSize) {
      throw new RangeError(`MultiTokenPrediction: the embedding's vocabulary (${embedding.vocabSize}) differs from the head's (${head.vocabSize})`);
    }
    this.dim = dim;
    this.depth = blocks.length;
    this.embedding = embedding;
    this.head = head;
    this.kernels = options.kernels ?? cpuMtpKernels;
    this.modules = blocks.map(
      (block, k) => new MtpModule({ dim, block, kernels: this.kernels, seed: ((options.seed ?? 0) + 0x632be5ab * (k + 1)) >>> 0, initStd: options.initStd, eps: options.eps }),
    );
  }

  /** Parameters owned by the MTP modules (not the shared embedding/head), named "mtp.{k}.…", k from 1. */
  params(): NamedParam[] {
    return this.modules.flatMap((m, k) => m.params().map((p) => ({ ...p, name: `mtp.${k + 1}.${p.name}` })));
  }

  /** Zeroes the gradients of the MTP modules' own parameters (the shared ones belong to the main model). */
  zeroGrad(): void {
    for (const p of this.params()) this.kernels.zero(p.grad);
  }

  forward(batch: MtpBatch): MtpForward {
    const { hidden, inputs, targets, batch: B, seqLen: T } = batch;
    const k = this.kernels;
    const D = this.depth;
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1) throw new RangeError(`MultiTokenPrediction: batch and seqLen must be positive integers, got ${B} and ${T}`);
    if (T <= D) throw new RangeError(`MultiTokenPrediction: seqLen ${T} leaves no position for depth ${D} (need seqLen > D)`);
    checkMatrix("MultiTokenPrediction: hidden [batch·seqLen, dim]", hidden, B * T, this.dim);
    checkTokens("MultiTokenPrediction: inputs [batch·seqLen]", inputs, B * T);
    checkTokens("MultiTokenPrediction: targets [batch·seqLen]", targets, B * T);
    const depths: DepthCache[] = [];
    const losses: TensorHandle[] = [];
    let prev = hidden; // h^{k−1}, rows b·(T−k+1) + i
    for (let depth = 1; depth <= D; depth++) {
      const step = this.runDepth(depth, prev, inputs, B, T);
      const tgt = k.sequenceRows(targets, B, T, depth, step.len); // x_{i+k+1} = targets[i + k]
      // The gradient is of (1/D)·L_k; backward scales it by λ.
      const { loss, dLogits } = k.crossEntropy(step.logits, tgt, 1 / D);
      losses.push(loss);
      depths.push({ len: step.len, embTokens: step.embTokens, module: step.module, head: step.head, dLogits });
      prev = step.out;
    }
    return { losses, loss: k.mean(losses), positions: depths.map((c) => B * c.len), cache: { batch: B, seqLen: T, depths, used: false } };
  }

  /**
   * Module k on h^{k−1} (rows b·(T−k+1) + i): its first T − k rows per sequence with the embeddings of
   * x_{i+k} = inputs[i + k], then the shared head. Returns h^k, the logits [B·(T−k), V] and the caches.
   */
  private runDepth(depth: number, prev: TensorHandle, inputs: TensorHandle, B: number, T: number) {
    const k = this.kernels;
    const len = T - depth;
    const rows = B * len;
    const h = k.sequenceRows(prev, B, T - depth + 1, 0, len); // [B·(T−k), d]
    const embTokens = k.sequenceRows(inputs, B, T, depth, len);
    const emb = this.embedding.lookup(embTokens);
    const { out, cache: module } = this.modules[depth - 1].forward(emb, h, { batch: B, seqLen: len });
    const { logits, cache: head } = this.head.forward(out, rows);
    return { len, rows, embTokens, out, module, head, logits };
  }

  /**
   * Inference: the logits [batch·(seqLen − depth), V] of module `depth` (default 1), row b·(seqLen −
   * depth) + i predicting x_{i+depth+1} from h^0 up to position i and inputs[i+1..i+depth]. Module 1's
   * argmax is the speculative draft of the token after next. No loss, nothing kept for backward.
   */
  predict(input: Omit<MtpBatch, "targets">, depth = 1): TensorHandle {
    const { hidden, inputs, batch: B, seqLen: T } = input;
    if (!Number.isInteger(depth) || depth < 1 || depth > this.depth) throw new RangeError(`MultiTokenPrediction.predict: depth must be an integer in 1..${this.depth}, got ${depth}`);
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T <= depth) throw new RangeError(`MultiTokenPrediction.predict: need batch ≥ 1 and seqLen > ${depth}, got ${B} and ${T}`);
    checkMatrix("MultiTokenPrediction.predict: hidden [batch·seqLen, dim]", hidden, B * T, this.dim);
    checkTokens("MultiTokenPrediction.predict: inputs [batch·seqLen]", inputs, B * T);
    let prev = hidden;
    let logits: TensorHandle | null = null;
    for (let k = 1; k <= depth; k++) {
      const step = this.runDepth(k, prev, inputs, B, T);
      prev = step.out;
      logits = step.logits;
    }
    return logits!;
  }

  /**
   * Backward of weight · (1/D) Σ_k L_k (weight = λ at this step): returns dL/dh^0 [batch·seqLen, dim]
   * to add to the main model's gradient of its last hidden state; adds into the gradients of the MTP
   * modules, the shared embedding and the shared head. A cache can be used once.
   */
  backward(cache: MtpCache, weight: number): TensorHandle {
    if (!cache || !Array.isArray(cache.depths)) throw new TypeError("MultiTokenPrediction.backward: cache must come from forward()");
    if (cache.used) throw new RangeError("MultiTokenPrediction.backward: this forward's cache was already used");
    if (typeof weight !== "number" || !Number.isFinite(weight)) throw new RangeError(`MultiTokenPrediction.backward: weight must be a finite number, got ${weight}`);
    cache.used = true;
    const k = this.kernels;
    const { batch: B, seqLen: T, depths } = cache;
    let dNext: TensorHandle | null = null; // gradient into h^k from module k+1 (rows b·(T−k−1) + i)
    for (let depth = this.depth; depth >= 1; depth--) {
      const c = depths[depth - 1];
      if (weight !== 1) k.scale(c.dLogits, weight); // the cache is used once: scaled in place
      const dOut = this.head.backward(c.dLogits, c.head);
      // Module k+1 read the first T − k − 1 rows of each sequence of h^k.
      if (dNext) k.addSequenceRows(dOut, dNext, B, c.len, 0);
      const { dEmb, dH } = this.modules[depth - 1].backward(dOut, c.module);
      this.embedding.accumulateGrad(c.embTokens, dEmb);
      dNext = dH;
    }
    // dNext covers the first T − 1 rows of h^0 per sequence; the last row gets no MTP gradient.
    return k.padSequenceRows(dNext!, B, T, 0);
  }
}
