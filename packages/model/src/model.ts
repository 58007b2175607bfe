// The transformer: token embedding → blocks (RMSNorm → attention → residual, RMSNorm → FFN/MoE → residual)
// → final RMSNorm → output head → cross-entropy. The first nDenseLayers blocks use a dense SwiGLU, the rest
// DeepSeekMoE. The embedding, output head, gate, norms and attention stay in FP32; every other Linear runs
// its GEMMs through the recipe. forward() keeps what backward() needs; backward() fills the gradients.

import type { Backend } from "./backend/backend.js";
import type { ModelConfig, RecipeName } from "./config.js";
import { type AttentionLayer, MultiHeadAttention, MultiHeadLatentAttention } from "./layers/attention.js";
import { SwiGLU } from "./layers/ffn.js";
import type { Linear } from "./layers/linear.js";
import { MoE } from "./layers/moe.js";
import { RMSNorm } from "./layers/rmsnorm.js";
import { type Parameter, ParameterStore } from "./params.js";
import { type Precision, makePrecision } from "./precision.js";
import { Rng } from "./rng.js";

class Block {
  readonly norm1: RMSNorm;
  readonly attn: AttentionLayer;
  readonly norm2: RMSNorm;
  readonly ffn: SwiGLU | MoE;
  private recompute = false;

  constructor(store: ParameterStore, readonly index: number, private readonly cfg: ModelConfig, precision: Precision, private readonly be: Backend) {
    const name = `layers.${index}`;
    const outStd = cfg.initStd / Math.sqrt(2 * cfg.nLayers); // residual-branch outputs, GPT-2 style
    this.norm1 = new RMSNorm(store, `${name}.attn_norm`, cfg.dModel, cfg.normEps, be);
    this.attn = cfg.attention.kind === "mla"
      ? new MultiHeadLatentAttention(store, `${name}.attn`, cfg, precision, outStd, be)
      : new MultiHeadAttention(store, `${name}.attn`, cfg, precision, outStd, be);
    this.norm2 = new RMSNorm(store, `${name}.ffn_norm`, cfg.dModel, cfg.normEps, be);
    this.ffn = index < cfg.nDenseLayers
      ? new SwiGLU(store, `${name}.ffn`, cfg.dModel, cfg.ffnHidden, precision, cfg.initStd, outStd, be)
      : new MoE(store, `${name}.moe`, cfg, precision, outStd, be);
  }

  /** x [B·T, C] → [B·T, C]. */
  forward(x: Float32Array, batch: number): Float32Array {
    const N = batch * this.cfg.seqLen;
    // RMSNorm recomputation: the Linears after a norm do not keep its output; backward recomputes it.
    this.recompute = this.cfg.recompute.rmsnorm && this.attn.canRecompute && this.ffn.canRecompute;
    const save = !this.recompute;
    const a = this.attn.forward(this.norm1.forward(x, N), batch, save);
    this.be.addInPlace(a, x); // h = x + attn(norm1(x))
    const h = a;
    const f = this.ffn instanceof MoE ? this.ffn.forward(this.norm2.forward(h, N), N, save) : this.ffn.forward(this.norm2.forward(h, N), N, save);
    this.be.addInPlace(f, h); // out = h + ffn(norm2(h))
    return f;
  }

  /** dOut [B·T, C] → dx [B·T, C]. */
  backward(dOut: Float32Array): Float32Array {
    if (this.recompute) this.ffn.provideInput(this.norm2.recompute());
    const dh = this.norm2.backward(this.ffn.backward(dOut));
    this.be.addInPlace(dh, dOut);
    if (this.recompute) this.attn.provideInput(this.norm1.recompute());
    const dx = this.norm1.backward(this.attn.backward(dh));
    this.be.addInPlace(dx, dh);
    return dx;
  }

  linears(): Linear[] {
    return [...this.attn.linears(), ...this.ffn.linears()];
  }
}

export interface ForwardResult {
  loss: number;
}

export class Transformer {
  readonly store: ParameterStore;
  readonly precision: Precision;
  readonly blocks: Block[];
  readonly embedding: Parameter; // [V, C]
  readonly finalNorm: RMSNorm;
  readonly head: Parameter; // [V, C]
  private saved: { inputs: Int32Array; xf: Float32Array; dLogits: Float32Array | null; N: number } | null = null;

  constructor(readonly cfg: ModelConfig, readonly recipe: RecipeName, readonly be: Backend, seed: number) {
    this.store = new ParameterStore(new Rng(seed));
    this.precision = makePrecision(recipe, be);
    this.embedding = this.store.create("embed.weight", [cfg.vocabSize, cfg.dModel], { kind: "normal", std: 1 }, false);
    this.blocks = [];
    for (let i = 0; i < cfg.nLayers; i++) this.blocks.push(new Block(this.store, i, cfg, this.precision, be));
    this.finalNorm = new RMSNorm(this.store, "norm", cfg.dModel, cfg.normEps, be);
    this.head = this.store.create("head.weight", [cfg.vocabSize, cfg.dModel], { kind: "normal", std: cfg.initStd });
  }

  /** Mean cross-entropy of the batch; inputs, targets [B·T]. With wantGrad, backward() may follow. */
  forward(inputs: Int32Array, targets: Int32Array, wantGrad = true): number {
    const { seqLen: T, dModel: C, vocabSize: V } = this.cfg;
    const N = inputs.length;
    if (N % T !== 0) throw new RangeError(`inputs hold ${N} tokens, not a whole number of sequences of ${T}`);
    const batch = N / T;
    let x = this.be.embeddingForward(this.embedding.data, inputs, C); // [B·T, C]
    for (const block of this.blocks) x = block.forward(x, batch);
    const xf = this.finalNorm.forward(x, N); // [B·T, C]
    const logits = this.be.matmul(xf, this.head.data, N, V, C); // [B·T, V], FP32 head
    const { loss, dLogits } = this.be.crossEntropy(logits, targets, N, V, wantGrad);
    this.saved = wantGrad ? { inputs, xf, dLogits, N } : null;
    return loss;
  }

  /** Gradients of the last forward's loss, added into the parameter store. */
  backward(): void {
    const s = this.saved;
    if (!s || !s.dLogits) throw new Error("backward() needs a forward(…, wantGrad = true) first");
    this.saved = null;
    const { dModel: C, vocabSize: V } = this.cfg;
    const { N, dLogits, xf } = s;
    // head: logits = xf · Hᵀ → dxf = dLogits · H, dH = dLogitsᵀ · xf
    const dH = this.be.matmul(this.be.transpose(dLogits, N, V), this.be.transpose(xf, N, C), V, C, N); // [V, C]
    this.be.addInPlace(this.head.grad, dH);
    let dx = this.finalNorm.backward(this.be.matmul(dLogits, this.be.transpose(this.head.data, V, C), N, C, V)); // [B·T, C]
    for (let i = this.blocks.length - 1; i >= 0; i--) dx = this.blocks[i].backward(dx);
    this.be.embeddingBackward(dx, s.inputs, C, this.embedding.grad);
  }

  moeLayers(): MoE[] {
    return this.blocks.map((b) => b.ffn).filter((f): f is MoE => f instanceof MoE);
  }

  linears(): Linear[] {
    return this.blocks.flatMap((b) => b.linears());
  }
}
