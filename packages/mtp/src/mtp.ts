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

import type { MtpBlock, NamedParam, SeqShape, SharedEmbedding, SharedHead } from "./interfaces.js";
import { RMS_NORM_EPS, linearBackward, linearForward, rmsNormBackward, rmsNormForward, softmaxCrossEntropy, type RmsNormCache } from "./ops.js";

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
  /** Seeds the projection's initialization. Default 0. */
  seed?: number;
  /** Std of the projection's N(0, std²) init. Default 1/√(2·dim) (fan-in). DeepSeek-V3 uses 0.006. */
  initStd?: number;
  eps?: number;
}

interface ModuleCache {
  rows: number;
  eNorm: RmsNormCache;
  hNorm: RmsNormCache;
  z: Float32Array;
  blockCache: unknown;
}

/** One MTP depth: its two RMSNorm gains, its projection and its block. */
export class MtpModule {
  readonly dim: number;
  readonly block: MtpBlock;
  readonly eps: number;
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
    const ones = () => new Float32Array(dim).fill(1);
    this.enorm = { name: "enorm.weight", value: ones(), grad: new Float32Array(dim) };
    this.hnorm = { name: "hnorm.weight", value: ones(), grad: new Float32Array(dim) };
    const w = new Float32Array(dim * 2 * dim);
    const normal = normalStream(options.seed ?? 0);
    for (let i = 0; i < w.length; i++) w[i] = normal() * std;
    this.ehProj = { name: "eh_proj.weight", value: w, grad: new Float32Array(w.length) };
  }

  /** Own parameters then the block's (prefixed "block."). */
  params(): NamedParam[] {
    return [this.enorm, this.hnorm, this.ehProj, ...this.block.params().map((p) => ({ ...p, name: `block.${p.name}` }))];
  }

  /** emb, h: [batch·seqLen, d] → h^k: [batch·seqLen, d]. */
  forward(emb: Float32Array, h: Float32Array, shape: SeqShape): { out: Float32Array; cache: ModuleCache } {
    const d = this.dim;
    const rows = shape.batch * shape.seqLen;
    const eNorm = rmsNormForward(emb, this.enorm.value, rows, this.eps);
    const hNorm = rmsNormForward(h, this.hnorm.value, rows, this.eps);
    const z = new Float32Array(rows * 2 * d);
    for (let r = 0; r < rows; r++) {
      z.set(eNorm.y.subarray(r * d, r * d + d), r * 2 * d);
      z.set(hNorm.y.subarray(r * d, r * d + d), r * 2 * d + d);
    }
    const u = linearForward(z, this.ehProj.value, rows, d, 2 * d);
    const { out, cache: blockCache } = this.block.forward(u, shape);
    if (!(out instanceof Float32Array) || out.length !== rows * d) {
      throw new RangeError(`MtpModule: block returned ${out?.length} elements, want ${rows * d}`);
    }
    return { out, cache: { rows, eNorm: eNorm.cache, hNorm: hNorm.cache, z, blockCache } };
  }

  /** dOut → { dEmb, dH }; accumulates this module's (and its block's) gradients. */
  backward(dOut: Float32Array, cache: ModuleCache): { dEmb: Float32Array; dH: Float32Array } {
    const d = this.dim;
    const { rows } = cache;
    const du = this.block.backward(dOut, cache.blockCache);
    const dz = linearBackward(du, cache.z, this.ehProj.value, this.ehProj.grad, rows, d, 2 * d);
    const dyE = new Float32Array(rows * d);
    const dyH = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      dyE.set(dz.subarray(r * 2 * d, r * 2 * d + d), r * d);
      dyH.set(dz.subarray(r * 2 * d + d, r * 2 * d + 2 * d), r * d);
    }
    return {
      dEmb: rmsNormBackward(dyE, this.enorm.value, this.enorm.grad, cache.eNorm),
      dH: rmsNormBackward(dyH, this.hnorm.value, this.hnorm.grad, cache.hNorm),
    };
  }
}

export interface MultiTokenPredictionOptions {
  dim: number;
  /** One block per depth; D = blocks.length ≥ 1 (DeepSeek-V3: D = 1). */
  blocks: MtpBlock[];
  embedding: SharedEmbedding;
  head: SharedHead;
  seed?: number;
  initStd?: number;
  eps?: number;
}

export interface MtpBatch {
  /** The main model's last hidden states h^0: [batch·seqLen, dim]. */
  hidden: Float32Array;
  /** [batch·seqLen] input tokens x_0..x_{T−1} per sequence. */
  inputs: Int32Array;
  /** [batch·seqLen] targets x_1..x_T (inputs shifted by one), as from a BatchLoader. */
  targets: Int32Array;
  batch: number;
  seqLen: number;
}

export interface MtpForward {
  /** L_k for k = 1..D. */
  losses: number[];
  /** (1/D) Σ_k L_k: the training loss adds λ times this. */
  loss: number;
  /** Positions scored at each depth: batch·(seqLen − k). */
  positions: number[];
  /** Opaque, for backward. */
  cache: MtpCache;
}

interface DepthCache {
  len: number;
  embTokens: Int32Array;
  module: ModuleCache;
  head: unknown;
  dLogits: Float32Array;
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
    this.modules = blocks.map(
      (block, k) => new MtpModule({ dim, block, seed: ((options.seed ?? 0) + 0x632be5ab * (k + 1)) >>> 0, initStd: options.initStd, eps: options.eps }),
    );
  }

  /** Parameters owned by the MTP modules (not the shared embedding/head), named "mtp.{k}.…", k from 1. */
  params(): NamedParam[] {
    return this.modules.flatMap((m, k) => m.params().map((p) => ({ ...p, name: `mtp.${k + 1}.${p.name}` })));
  }

  /** Zeroes the gradients of the MTP modules' own parameters (the shared ones belong to the main model). */
  zeroGrad(): void {
    for (const p of this.params()) p.grad.fill(0);
  }

  forward(batch: MtpBatch): MtpForward {
    const { hidden, inputs, targets, batch: B, seqLen: T } = batch;
    const d = this.dim;
    const D = this.depth;
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1) throw new RangeError(`MultiTokenPrediction: batch and seqLen must be positive integers, got ${B} and ${T}`);
    if (T <= D) throw new RangeError(`MultiTokenPrediction: seqLen ${T} leaves no position for depth ${D} (need seqLen > D)`);
    if (!(hidden instanceof Float32Array) || hidden.length !== B * T * d) {
      throw new RangeError(`MultiTokenPrediction: hidden must be a Float32Array of batch·seqLen·dim = ${B * T * d}, got ${hidden?.length}`);
    }
    for (const [name, a] of [["inputs", inputs], ["targets", targets]] as const) {
      if (!(a instanceof Int32Array) || a.length !== B * T) throw new RangeError(`MultiTokenPrediction: ${name} must be an Int32Array of batch·seqLen = ${B * T}, got ${a?.length}`);
    }
    const V = this.head.vocabSize;
    const depths: DepthCache[] = [];
    const losses: number[] = [];
    let prev = hidden; // h^{k−1}, rows b·(T−k+1) + i
    for (let k = 1; k <= D; k++) {
      const step = this.runDepth(k, prev, inputs, B, T);
      const { len, rows } = step;
      const tgt = new Int32Array(rows); // x_{i+k+1} = targets[i + k]
      for (let b = 0; b < B; b++) for (let i = 0; i < len; i++) tgt[b * len + i] = targets[b * T + i + k];
      // The gradient is of (1/D)·L_k; backward scales it by λ.
      const { loss, dLogits } = softmaxCrossEntropy(step.logits, tgt, rows, V, 1 / D);
      losses.push(loss);
      depths.push({ len, embTokens: step.embTokens, module: step.module, head: step.head, dLogits });
      prev = step.out;
    }
    const loss = losses.reduce((s, l) => s + l, 0) / D;
    return { losses, loss, positions: depths.map((c) => B * c.len), cache: { batch: B, seqLen: T, depths, used: false } };
  }

  /**
   * Module k on h^{k−1} (rows b·(T−k+1) + i): its first T − k rows per sequence with the embeddings of
   * x_{i+k} = inputs[i + k], then the shared head. Returns h^k, the logits [B·(T−k), V] and the caches.
   */
  private runDepth(k: number, prev: Float32Array, inputs: Int32Array, B: number, T: number) {
    const d = this.dim;
    const len = T - k;
    const prevLen = T - k + 1;
    const rows = B * len;
    const h = new Float32Array(rows * d); // [B·(T−k), d]
    const embTokens = new Int32Array(rows);
    for (let b = 0; b < B; b++) {
      h.set(prev.subarray(b * prevLen * d, (b * prevLen + len) * d), b * len * d);
      for (let i = 0; i < len; i++) embTokens[b * len + i] = inputs[b * T + i + k];
    }
    const emb = this.embedding.lookup(embTokens);
    const { out, cache: module } = this.modules[k - 1].forward(emb, h, { batch: B, seqLen: len });
    const { logits, cache: head } = this.head.forward(out, rows);
    return { len, rows, embTokens, out, module, head, logits };
  }

  /**
   * Inference: the logits [batch·(seqLen − depth), V] of module `depth` (default 1), row b·(seqLen −
   * depth) + i predicting x_{i+depth+1} from h^0 up to position i and inputs[i+1..i+depth]. Module 1's
   * argmax is the speculative draft of the token after next. No loss, nothing kept for backward.
   */
  predict(input: Omit<MtpBatch, "targets">, depth = 1): Float32Array {
    const { hidden, inputs, batch: B, seqLen: T } = input;
    if (!Number.isInteger(depth) || depth < 1 || depth > this.depth) throw new RangeError(`MultiTokenPrediction.predict: depth must be an integer in 1..${this.depth}, got ${depth}`);
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T <= depth) throw new RangeError(`MultiTokenPrediction.predict: need batch ≥ 1 and seqLen > ${depth}, got ${B} and ${T}`);
    if (!(hidden instanceof Float32Array) || hidden.length !== B * T * this.dim) {
      throw new RangeError(`MultiTokenPrediction.predict: hidden must be a Float32Array of batch·seqLen·dim = ${B * T * this.dim}, got ${hidden?.length}`);
    }
    if (!(inputs instanceof Int32Array) || inputs.length !== B * T) throw new RangeError(`MultiTokenPrediction.predict: inputs must be an Int32Array of batch·seqLen = ${B * T}, got ${inputs?.length}`);
    let prev = hidden;
    let logits: Float32Array = new Float32Array(0);
    for (let k = 1; k <= depth; k++) {
      const step = this.runDepth(k, prev, inputs, B, T);
      prev = step.out;
      logits = step.logits;
    }
    return logits;
  }

  /**
   * Backward of weight · (1/D) Σ_k L_k (weight = λ at this step): returns dL/dh^0 [batch·seqLen, dim]
   * to add to the main model's gradient of its last hidden state; adds into the gradients of the MTP
   * modules, the shared embedding and the shared head. A cache can be used once.
   */
  backward(cache: MtpCache, weight: number): Float32Array {
    if (!cache || !Array.isArray(cache.depths)) throw new TypeError("MultiTokenPrediction.backward: cache must come from forward()");
    if (cache.used) throw new RangeError("MultiTokenPrediction.backward: this forward's cache was already used");
    if (typeof weight !== "number" || !Number.isFinite(weight)) throw new RangeError(`MultiTokenPrediction.backward: weight must be a finite number, got ${weight}`);
    cache.used = true;
    const d = this.dim;
    const { batch: B, seqLen: T, depths } = cache;
    let dNext: Float32Array | null = null; // gradient into h^k from module k+1 (rows b·(T−k−1) + i)
    for (let k = this.depth; k >= 1; k--) {
      const c = depths[k - 1];
      const len = c.len;
      const dLogits = weight === 1 ? c.dLogits : c.dLogits.map((g) => g * weight);
      const dOut = this.head.backward(dLogits, c.head);
      if (dNext) {
        const nextLen = len - 1;
        for (let b = 0; b < B; b++) for (let j = 0; j < nextLen * d; j++) dOut[b * len * d + j] += dNext[b * nextLen * d + j];
      }
      const { dEmb, dH } = this.modules[k - 1].backward(dOut, c.module);
      this.embedding.accumulateGrad(c.embTokens, dEmb);
      dNext = dH;
    }
    // dNext covers the first T − 1 rows of h^0 per sequence; the last row gets no MTP gradient.
    const dHidden = new Float32Array(B * T * d);
    const len = T - 1;
    for (let b = 0; b < B; b++) dHidden.set(dNext!.subarray(b * len * d, (b + 1) * len * d), b * T * d);
    return dHidden;
  }
}
