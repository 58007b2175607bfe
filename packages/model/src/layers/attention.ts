// Causal self-attention: plain multi-head attention (MHA) and DeepSeek-V2/V3's multi-head latent attention
// (MLA). Projections are Linears (through the recipe); the attention itself (QKᵀ, softmax, PV) runs in FP32
// on the backend, as DeepSeek-V3 keeps attention in higher precision.

import type { AttentionShape, Backend, TensorHandle } from "../backend/backend.js";
import type { ModelConfig } from "../config.js";
import type { ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import { Linear, type LinearState } from "./linear.js";
import { RMSNorm } from "./rmsnorm.js";

export interface AttentionLayer {
  /**
   * xn [B·T, C] → y [B·T, C], T = seqLen (the config's by default; an MTP block at depth k runs on
   * T − k positions); with save false, provideInput(xn) must come before backward.
   */
  forward(xn: TensorHandle, batch: number, save: boolean, seqLen?: number): TensorHandle;
  provideInput(xn: TensorHandle): void;
  backward(dy: TensorHandle): TensorHandle;
  readonly canRecompute: boolean;
  linears(): LinearState[];
}

interface Dims {
  batch: number;
  seqLen: number;
  tokens: number;
}

/** Multi-head attention with RoPE on the whole head. */
export class MultiHeadAttention implements AttentionLayer {
  private readonly wq: Linear;
  private readonly wk: Linear;
  private readonly wv: Linear;
  private readonly wo: Linear;
  private readonly headDim: number;
  private readonly be: Backend;
  private saved: { q: TensorHandle; k: TensorHandle; v: TensorHandle; attn: TensorHandle; shape: AttentionShape; dims: Dims } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number) {
    if (cfg.attention.kind !== "mha") throw new Error("MultiHeadAttention needs attention.kind mha");
    this.headDim = cfg.attention.headDim;
    const C = cfg.dModel;
    const HD = cfg.nHeads * this.headDim;
    this.wq = new Linear(store, `${name}.wq`, C, HD, precision, cfg.initStd);
    this.wk = new Linear(store, `${name}.wk`, C, HD, precision, cfg.initStd);
    this.wv = new Linear(store, `${name}.wv`, C, HD, precision, cfg.initStd);
    this.wo = new Linear(store, `${name}.wo`, HD, C, precision, outStd);
    this.be = store.be;
  }

  get canRecompute(): boolean {
    return this.wq.canRecompute;
  }

  forward(xn: TensorHandle, batch: number, save: boolean, T = this.cfg.seqLen): TensorHandle {
    const { nHeads: H, ropeTheta } = this.cfg;
    const D = this.headDim;
    const N = batch * T;
    const q = this.wq.forward(xn, save); // [B·T, H·D]
    const k = this.wk.forward(xn, save); // [B·T, H·D]
    const v = this.wv.forward(xn, save); // [B·T, H·D]
    this.be.rope(q, T, H, D, 0, D, ropeTheta, false);
    this.be.rope(k, T, H, D, 0, D, ropeTheta, false);
    const shape: AttentionShape = { batch, seqLen: T, heads: H, qkDim: D, vDim: D, scale: 1 / Math.sqrt(D) };
    const { out, saved } = this.be.attentionForward(q, k, v, shape); // [B·T, H·D]
    this.saved = { q, k, v, attn: saved, shape, dims: { batch, seqLen: T, tokens: N } };
    return this.wo.forward(out);
  }

  provideInput(xn: TensorHandle): void {
    for (const l of [this.wq, this.wk, this.wv]) l.provideInput(xn);
  }

  backward(dy: TensorHandle): TensorHandle {
    const { q, k, v, attn, shape, dims } = this.saved!;
    this.saved = null;
    const { nHeads: H, ropeTheta } = this.cfg;
    const D = this.headDim;
    const T = dims.seqLen;
    const dOut = this.wo.backward(dy); // [B·T, H·D]
    const { dq, dk, dv } = this.be.attentionBackward(dOut, q, k, v, attn, shape);
    this.be.rope(dq, T, H, D, 0, D, ropeTheta, true); // a rotation's transpose is its inverse
    this.be.rope(dk, T, H, D, 0, D, ropeTheta, true);
    const dxn = this.wq.backward(dq);
    this.be.addInPlace(dxn, this.wk.backward(dk));
    this.be.addInPlace(dxn, this.wv.backward(dv));
    return dxn;
  }

  linears(): LinearState[] {
    return [this.wq, this.wk, this.wv, this.wo];
  }
}

/**
 * Multi-head latent attention (DeepSeek-V2 §2.1, DeepSeek-V3 §2.1.1):
 *   c_q  = RMSNorm(x W_dq)                 [N, qLoraRank]         (or q = x W_q when qLoraRank = 0)
 *   q    = c_q W_uq → per head [q_nope | q_rope], RoPE on q_rope
 *   [c_kv | k_r] = x W_dkv                 [N, kvLoraRank + dr]   k_r: one RoPE key shared by all heads
 *   kv   = RMSNorm(c_kv) W_ukv → per head [k_nope | v]
 *   k    = per head [k_nope | RoPE(k_r)]
 * With recompute.mlaUp the up-projected q, k, v are dropped after the forward pass and rebuilt from the
 * small latents in the backward pass (DeepSeek-V3 recomputes the MLA up-projections).
 */
export class MultiHeadLatentAttention implements AttentionLayer {
  private readonly wqA: Linear | null; // [qr, C]
  private readonly qNorm: RMSNorm | null;
  private readonly wqB: Linear; // [H·(dn+dr), qr or C]
  private readonly wkvA: Linear; // [kvr + dr, C]
  private readonly kvNorm: RMSNorm;
  private readonly wkvB: Linear; // [H·(dn+dv), kvr]
  private readonly wo: Linear; // [C, H·dv]
  private readonly dn: number;
  private readonly dr: number;
  private readonly dv: number;
  private readonly qr: number;
  private readonly kvr: number;
  private readonly be: Backend;
  private saved: {
    dims: Dims;
    shape: AttentionShape;
    attn: TensorHandle; // what the attention backward needs besides q, k, v
    kr: TensorHandle; // [N, dr] after RoPE
    qkv: { q: TensorHandle; k: TensorHandle; v: TensorHandle } | null; // dropped under recompute.mlaUp
    xn: TensorHandle | null;
  } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number) {
    const a = cfg.attention;
    if (a.kind !== "mla") throw new Error("MultiHeadLatentAttention needs attention.kind mla");
    const C = cfg.dModel;
    const H = cfg.nHeads;
    this.dn = a.qkNopeHeadDim;
    this.dr = a.qkRopeHeadDim;
    this.dv = a.vHeadDim;
    this.qr = a.qLoraRank;
    this.kvr = a.kvLoraRank;
    this.be = store.be;
    const std = cfg.initStd;
    if (this.qr > 0) {
      this.wqA = new Linear(store, `${name}.wq_a`, C, this.qr, precision, std);
      this.qNorm = new RMSNorm(store, `${name}.q_norm`, this.qr, cfg.normEps);
      this.wqB = new Linear(store, `${name}.wq_b`, this.qr, H * (this.dn + this.dr), precision, std);
    } else {
      this.wqA = null;
      this.qNorm = null;
      this.wqB = new Linear(store, `${name}.wq`, C, H * (this.dn + this.dr), precision, std);
    }
    this.wkvA = new Linear(store, `${name}.wkv_a`, C, this.kvr + this.dr, precision, std);
    this.kvNorm = new RMSNorm(store, `${name}.kv_norm`, this.kvr, cfg.normEps);
    this.wkvB = new Linear(store, `${name}.wkv_b`, this.kvr, H * (this.dn + this.dv), precision, std);
    this.wo = new Linear(store, `${name}.wo`, H * this.dv, C, precision, outStd);
  }

  get canRecompute(): boolean {
    return this.wkvA.canRecompute;
  }

  private get recomputeUp(): boolean {
    return this.cfg.recompute.mlaUp && this.wqB.canRecompute;
  }

  /** Up-project the latents into per-head q [N, H·(dn+dr)], k [N, H·(dn+dr)], v [N, H·dv]. */
  private upProject(cqn: TensorHandle, ckvn: TensorHandle, kr: TensorHandle, T: number, save: boolean) {
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr, dv } = this;
    const q = this.wqB.forward(cqn, save); // [N, H·(dn+dr)]
    this.be.rope(q, T, H, dn + dr, dn, dr, ropeTheta, false);
    const kv = this.wkvB.forward(ckvn, save); // [N, H·(dn+dv)]
    const { k, v } = this.be.mlaHeads(kv, kr, H, dn, dv); // per head [k_nope | k_r], v
    return { q, k, v };
  }

  forward(xn: TensorHandle, batch: number, save: boolean, T = this.cfg.seqLen): TensorHandle {
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr, dv, kvr } = this;
    const N = batch * T;
    let cqn: TensorHandle;
    if (this.wqA) {
      const cq = this.wqA.forward(xn, save); // [N, qr]
      cqn = this.qNorm!.forward(cq); // [N, qr]
    } else {
      cqn = xn;
    }
    const ckvFull = this.wkvA.forward(xn, save); // [N, kvr + dr]
    const [ckv, kr] = this.be.splitColumns(ckvFull, kvr); // [N, kvr], [N, dr]
    this.be.rope(kr, T, 1, dr, 0, dr, ropeTheta, false);
    const ckvn = this.kvNorm.forward(ckv); // [N, kvr]
    const recompute = this.recomputeUp;
    const { q, k, v } = this.upProject(cqn, ckvn, kr, T, !recompute);
    const shape: AttentionShape = { batch, seqLen: T, heads: H, qkDim: dn + dr, vDim: dv, scale: 1 / Math.sqrt(dn + dr) };
    const { out, saved } = this.be.attentionForward(q, k, v, shape); // [N, H·dv]
    this.saved = { dims: { batch, seqLen: T, tokens: N }, shape, attn: saved, kr, qkv: recompute ? null : { q, k, v }, xn: this.wqA ? null : xn };
    return this.wo.forward(out);
  }

  provideInput(xn: TensorHandle): void {
    this.wqA?.provideInput(xn);
    this.wkvA.provideInput(xn);
    if (!this.wqA) this.saved!.xn = xn;
  }

  backward(dy: TensorHandle): TensorHandle {
    const s = this.saved!;
    this.saved = null;
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr } = this;
    const T = s.dims.seqLen;
    const dOut = this.wo.backward(dy); // [N, H·dv]
    // The up-projections' inputs (normalized latents) are recomputed from the kept latents.
    const qkv = s.qkv ?? this.upProject(this.qNorm ? this.qNorm.recompute() : s.xn!, this.kvNorm.recompute(), s.kr, T, true);
    const { dq, dk, dv: dV } = this.be.attentionBackward(dOut, qkv.q, qkv.k, qkv.v, s.attn, s.shape);
    // q: undo RoPE on the rope part, then through W_uq and the q norm.
    this.be.rope(dq, T, H, dn + dr, dn, dr, ropeTheta, true);
    let dxn: TensorHandle;
    if (this.wqA) {
      const dcqn = this.wqB.backward(dq); // [N, qr]
      const dcq = this.qNorm!.backward(dcqn);
      dxn = this.wqA.backward(dcq); // [N, C]
    } else {
      dxn = this.wqB.backward(dq);
    }
    // k, v: per-head [dk_nope | dv] for W_ukv; the shared rope key sums over heads.
    const { dkv, dkr } = this.be.mlaHeadsBackward(dk, dV, H, dn, dr); // [N, H·(dn+dv)], [N, dr]
    this.be.rope(dkr, T, 1, dr, 0, dr, ropeTheta, true);
    const dckvn = this.wkvB.backward(dkv); // [N, kvr]
    const dckv = this.kvNorm.backward(dckvn); // [N, kvr]
    this.be.addInPlace(dxn, this.wkvA.backward(this.be.concatColumns(dckv, dkr))); // [N, kvr + dr]
    return dxn;
  }

  linears(): LinearState[] {
    return [...(this.wqA ? [this.wqA] : []), this.wqB, this.wkvA, this.wkvB, this.wo];
  }
}
