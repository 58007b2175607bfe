// The transformer: token embedding → blocks (RMSNorm → attention → residual, RMSNorm → FFN/MoE → residual)
// → final RMSNorm → output head → cross-entropy. The first nDenseLayers blocks use a dense SwiGLU, the rest
// DeepSeekMoE. The embedding, output head, gate, norms and attention stay in FP32; every other Linear runs
// its GEMMs through the recipe. forward() keeps what backward() needs; backward() fills the gradients.
//
// Multi-token prediction (model.mtp.depth = D > 0): @octet/mtp's D sequential modules run after the main
// model on its last hidden state h^0 (the final norm's input). This file hands them, through @octet/mtp's
// interfaces, one transformer block each (a Block like the last main block, on T − k positions), the
// embedding and the output head (final RMSNorm + head, shared, so their gradients collect both losses).
//   L = L_main + λ · (1/D) Σ_k L_k

import { type MtpBlock, type MtpForward, MultiTokenPrediction, type NamedParam, type SeqShape, type SharedEmbedding, type SharedHead } from "@octet/mtp";
import type { Backend, TensorHandle } from "./backend/backend.js";
import type { ModelConfig, RecipeName } from "./config.js";
import { type AttentionLayer, MultiHeadAttention, MultiHeadLatentAttention } from "./layers/attention.js";
import { SwiGLU } from "./layers/ffn.js";
import type { LinearState } from "./layers/linear.js";
import { MoE } from "./layers/moe.js";
import { RMSNorm } from "./layers/rmsnorm.js";
import { type Parameter, ParameterStore } from "./params.js";
import { type Precision, makePrecision } from "./precision.js";
import { Rng } from "./rng.js";

export class Block {
  readonly norm1: RMSNorm;
  readonly attn: AttentionLayer;
  readonly norm2: RMSNorm;
  readonly ffn: SwiGLU | MoE;
  private readonly be: Backend;
  private recompute = false;

  /** name: "layers.{i}" (main) or "mtp.{k}.block"; ffn: dense SwiGLU or DeepSeekMoE. */
  constructor(store: ParameterStore, readonly name: string, ffn: "dense" | "moe", private readonly cfg: ModelConfig, precision: Precision) {
    const outStd = cfg.initStd / Math.sqrt(2 * cfg.nLayers); // residual-branch outputs, GPT-2 style
    this.be = store.be;
    this.norm1 = new RMSNorm(store, `${name}.attn_norm`, cfg.dModel, cfg.normEps);
    this.attn = cfg.attention.kind === "mla"
      ? new MultiHeadLatentAttention(store, `${name}.attn`, cfg, precision, outStd)
      : new MultiHeadAttention(store, `${name}.attn`, cfg, precision, outStd);
    this.norm2 = new RMSNorm(store, `${name}.ffn_norm`, cfg.dModel, cfg.normEps);
    this.ffn = ffn === "dense"
      ? new SwiGLU(store, `${name}.ffn`, cfg.dModel, cfg.ffnHidden, precision, cfg.initStd, outStd)
      : new MoE(store, `${name}.moe`, cfg, precision, outStd);
  }

  /** x [B·T, C] → [B·T, C] (T = seqLen: the config's, or T − k in an MTP block). */
  forward(x: TensorHandle, batch: number, seqLen = this.cfg.seqLen): TensorHandle {
    // RMSNorm recomputation: the Linears after a norm do not keep its output; backward recomputes it.
    this.recompute = this.cfg.recompute.rmsnorm && this.attn.canRecompute && this.ffn.canRecompute;
    const save = !this.recompute;
    const a = this.attn.forward(this.norm1.forward(x), batch, save, seqLen);
    this.be.addInPlace(a, x); // h = x + attn(norm1(x))
    const h = a;
    const f = this.ffn.forward(this.norm2.forward(h), save);
    this.be.addInPlace(f, h); // out = h + ffn(norm2(h))
    return f;
  }

  /** dOut [B·T, C] → dx [B·T, C]. */
  backward(dOut: TensorHandle): TensorHandle {
    if (this.recompute) this.ffn.provideInput(this.norm2.recompute());
    const dh = this.norm2.backward(this.ffn.backward(dOut));
    this.be.addInPlace(dh, dOut);
    if (this.recompute) this.attn.provideInput(this.norm1.recompute());
    const dx = this.norm1.backward(this.attn.backward(dh));
    this.be.addInPlace(dx, dh);
    return dx;
  }

  linears(): LinearState[] {
    return [...this.attn.linears(), ...this.ffn.linears()];
  }
}

/** A Block as @octet/mtp's MtpBlock: parameters named relative to the block ("attn_norm.weight", …). */
class MtpTransformerBlock implements MtpBlock {
  constructor(readonly block: Block, private readonly store: ParameterStore) {}
  forward(x: TensorHandle, shape: SeqShape): { out: TensorHandle; cache: unknown } {
    // The Block keeps its activations itself (one forward before each backward), so no cache travels.
    return { out: this.block.forward(x, shape.batch, shape.seqLen), cache: null };
  }
  backward(dOut: TensorHandle): TensorHandle {
    return this.block.backward(dOut);
  }
  params(): NamedParam[] {
    const prefix = `${this.block.name}.`;
    return this.store.all().filter((p) => p.name.startsWith(prefix)).map((p) => ({ name: p.name.slice(prefix.length), value: p.value, grad: p.grad }));
  }
}

/** The main model's embedding table, shared with the MTP modules (gradients add into the same rows). */
class TransformerEmbedding implements SharedEmbedding {
  readonly vocabSize: number;
  readonly dim: number;
  constructor(private readonly table: Parameter, private readonly be: Backend) {
    [this.vocabSize, this.dim] = table.shape;
  }
  lookup(tokens: TensorHandle): TensorHandle {
    return this.be.embeddingForward(this.table.value, tokens); // [n, C]
  }
  accumulateGrad(tokens: TensorHandle, dEmb: TensorHandle): void {
    this.be.embeddingBackward(dEmb, tokens, this.table.grad);
  }
}

/**
 * The main model's output head — final RMSNorm then the FP32 head — shared with the MTP modules. It keeps
 * nothing itself (the main pass's RMSNorm object holds the main activations): each call's activations go
 * in the cache it returns.
 */
class TransformerHead implements SharedHead {
  readonly vocabSize: number;
  readonly dim: number;
  constructor(private readonly norm: RMSNorm, private readonly head: Parameter, private readonly eps: number, private readonly be: Backend) {
    [this.vocabSize, this.dim] = head.shape;
  }
  forward(h: TensorHandle): { logits: TensorHandle; cache: unknown } {
    const { y, rstd } = this.be.rmsnormForward(h, this.norm.weight.value, this.eps); // [rows, C], [rows]
    const logits = this.be.matmul(y, this.head.value); // [rows, V]
    return { logits, cache: { h, y, rstd } };
  }
  backward(dLogits: TensorHandle, cache: unknown): TensorHandle {
    const { h, y, rstd } = cache as { h: TensorHandle; y: TensorHandle; rstd: TensorHandle };
    const dH = this.be.matmul(this.be.transpose(dLogits), this.be.transpose(y)); // [V, C]
    this.be.addInPlace(this.head.grad, dH);
    const dy = this.be.matmul(dLogits, this.be.transpose(this.head.value)); // [rows, C]
    return this.be.rmsnormBackward(dy, h, this.norm.weight.value, rstd, this.norm.weight.grad);
  }
}

/** Losses of one forward pass, as 1-element backend tensors (the trainer reads them with the step's other scalars). */
export interface ForwardResult {
  /** The main model's mean cross-entropy (next token). */
  loss: TensorHandle;
  /** L_k, k = 1..D (empty without MTP). */
  mtpLosses: TensorHandle[];
  /** (1/D) Σ_k L_k (null without MTP): the training loss is loss + λ · mtpLoss. */
  mtpLoss: TensorHandle | null;
}

export class Transformer {
  readonly store: ParameterStore;
  readonly precision: Precision;
  readonly blocks: Block[];
  readonly embedding: Parameter; // [V, C]
  readonly finalNorm: RMSNorm;
  readonly head: Parameter; // [V, C]
  /** The MTP modules (null when model.mtp.depth is 0); their blocks follow in mtpBlocks. */
  readonly mtp: MultiTokenPrediction | null;
  readonly mtpBlocks: Block[];
  private saved: { inputs: TensorHandle; xf: TensorHandle; dLogits: TensorHandle | null; mtp: MtpForward | null } | null = null;

  constructor(readonly cfg: ModelConfig, readonly recipe: RecipeName, readonly be: Backend, seed: number) {
    this.store = new ParameterStore(Rng.fromU32Seed(seed), be);
    this.precision = makePrecision(recipe, be);
    this.embedding = this.store.create("embed.weight", [cfg.vocabSize, cfg.dModel], { kind: "normal", std: 1 }, false);
    this.blocks = [];
    for (let i = 0; i < cfg.nLayers; i++) this.blocks.push(new Block(this.store, `layers.${i}`, i < cfg.nDenseLayers ? "dense" : "moe", cfg, this.precision));
    this.finalNorm = new RMSNorm(this.store, "norm", cfg.dModel, cfg.normEps);
    this.head = this.store.create("head.weight", [cfg.vocabSize, cfg.dModel], { kind: "normal", std: cfg.initStd });
    // MTP: created after the main parameters, so a model without MTP draws the same initial values.
    this.mtpBlocks = [];
    this.mtp = null;
    const D = cfg.mtp.depth;
    if (D > 0) {
      // Each MTP block is of the kind of the last main block (DeepSeek-V3: MoE).
      const kind = cfg.nDenseLayers < cfg.nLayers ? "moe" : "dense";
      for (let k = 1; k <= D; k++) this.mtpBlocks.push(new Block(this.store, `mtp.${k}.block`, kind, cfg, this.precision));
      this.mtp = new MultiTokenPrediction({
        dim: cfg.dModel,
        blocks: this.mtpBlocks.map((b) => new MtpTransformerBlock(b, this.store)),
        embedding: new TransformerEmbedding(this.embedding, be),
        head: new TransformerHead(this.finalNorm, this.head, cfg.normEps, be),
        kernels: be.mtpKernels,
        seed,
        eps: cfg.normEps,
      });
      // The modules' own tensors (enorm, hnorm, eh_proj) join the store under @octet/mtp's names, so
      // AdamW, clipping and state export see them; the blocks' are in the store already (same tensors).
      for (const p of this.mtp.params()) {
        if (this.store.has(p.name)) {
          if (this.store.get(p.name).value !== p.value) throw new Error(`MTP parameter ${p.name} is not the store's tensor`);
          continue;
        }
        this.store.adopt(p.name, p.value, p.grad);
      }
    }
  }

  private checkTokens(inputs: Int32Array, seqLen: number): number {
    const N = inputs.length;
    if (N === 0 || N % seqLen !== 0) throw new RangeError(`inputs hold ${N} tokens, not a whole number of sequences of ${seqLen}`);
    return N / seqLen;
  }

  /** h^0 [B·T, C]: the last block's output (the final norm's input, what the MTP modules consume). */
  private trunk(inputs: TensorHandle, batch: number, seqLen: number): TensorHandle {
    let x = this.be.embeddingForward(this.embedding.value, inputs); // [B·T, C]
    for (const block of this.blocks) x = block.forward(x, batch, seqLen);
    return x;
  }

  /**
   * Losses of a batch; inputs, targets [B·T] (host tokens: uploaded here, the step's one copy to the backend).
   * With wantGrad, backward() may follow. withMtp (default: whenever MTP is configured) also runs the MTP
   * modules; seqLen (default the config's) may be shorter.
   */
  forward(inputs: Int32Array, targets: Int32Array, wantGrad = true, withMtp = true, seqLen = this.cfg.seqLen): ForwardResult {
    const batch = this.checkTokens(inputs, seqLen);
    const N = inputs.length;
    if (targets.length !== N) throw new RangeError(`targets hold ${targets.length} tokens for ${N} inputs`);
    const inputsT = this.be.fromHost(inputs, [N]);
    const targetsT = this.be.fromHost(targets, [N]);
    const x = this.trunk(inputsT, batch, seqLen); // [B·T, C] = h^0
    const xf = this.finalNorm.forward(x); // [B·T, C]
    const logits = this.be.matmul(xf, this.head.value); // [B·T, V], FP32 head
    const { loss, dLogits } = this.be.crossEntropy(logits, targetsT, wantGrad);
    // MTP after the main head: its head calls keep their own activations, not the final norm's.
    const mtp = this.mtp && withMtp ? this.mtp.forward({ hidden: x, inputs: inputsT, targets: targetsT, batch, seqLen }) : null;
    this.saved = wantGrad ? { inputs: inputsT, xf, dLogits, mtp } : null;
    return { loss, mtpLosses: mtp ? mtp.losses : [], mtpLoss: mtp ? mtp.loss : null };
  }

  /**
   * Gradients of the last forward's loss + mtpWeight · its MTP loss (mtpWeight = λ at this step), added
   * into the parameter store.
   */
  backward(mtpWeight = 0): void {
    const s = this.saved;
    if (!s || !s.dLogits) throw new Error("backward() needs a forward(…, wantGrad = true) first");
    this.saved = null;
    const { dLogits, xf } = s;
    // MTP first: its chain ends in dL/dh^0 (added below) and in the shared head's and embedding's grads.
    const dHidden = s.mtp ? this.mtp!.backward(s.mtp.cache, mtpWeight) : null; // [B·T, C]
    // head: logits = xf · Hᵀ → dxf = dLogits · H, dH = dLogitsᵀ · xf
    const dH = this.be.matmul(this.be.transpose(dLogits), this.be.transpose(xf)); // [V, C]
    this.be.addInPlace(this.head.grad, dH);
    let dx = this.finalNorm.backward(this.be.matmul(dLogits, this.be.transpose(this.head.value))); // [B·T, C]
    if (dHidden) this.be.addInPlace(dx, dHidden);
    for (let i = this.blocks.length - 1; i >= 0; i--) dx = this.blocks[i].backward(dx);
    this.be.embeddingBackward(dx, s.inputs, this.embedding.grad);
  }

  /**
   * Inference for speculative decoding: the main model's logits [B·T, V] at every position and MTP module
   * 1's logits [B·(T−1), V] at positions 0..T−2 of each sequence (module 1 at position i reads h^0_i and
   * the embedding of inputs[i + 1], and predicts the token after that one).
   */
  predict(inputs: Int32Array, seqLen = this.cfg.seqLen): { logits: TensorHandle; draftLogits: TensorHandle | null } {
    const batch = this.checkTokens(inputs, seqLen);
    const inputsT = this.be.fromHost(inputs, [inputs.length]);
    const x = this.trunk(inputsT, batch, seqLen);
    const logits = this.be.matmul(this.finalNorm.forward(x), this.head.value);
    let draftLogits: TensorHandle | null = null;
    if (this.mtp && seqLen > 1) draftLogits = this.mtp.predict({ hidden: x, inputs: inputsT, batch, seqLen }, 1);
    return { logits, draftLogits };
  }

  /** All MoE layers: the main blocks' in order, then the MTP blocks' (router state is indexed by this). */
  moeLayers(): MoE[] {
    return [...this.blocks, ...this.mtpBlocks].map((b) => b.ffn).filter((f): f is MoE => f instanceof MoE);
  }

  linears(): LinearState[] {
    return [...this.blocks, ...this.mtpBlocks].flatMap((b) => b.linears());
  }
}
