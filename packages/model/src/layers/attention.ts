// Causal self-attention: plain multi-head attention (MHA) and DeepSeek-V2/V3's multi-head latent attention
// (MLA). Projections are Linears (through the recipe); the attention itself (QKᵀ, softmax, PV) runs in FP32
// on the backend, as DeepSeek-V3 keeps attention in higher precision.

import type { AttentionShape, Backend } from "../backend/backend.js";
import type { ModelConfig } from "../config.js";
import type { ParameterStore } from "../params.js";
import type { Precision } from "../precision.js";
import { Linear } from "./linear.js";
import { RMSNorm } from "./rmsnorm.js";

export interface AttentionLayer {
  /**
   * xn [B·T, C] → y [B·T, C], T = seqLen (the config's by default; an MTP block at depth k runs on
   * T − k positions); with save false, provideInput(xn) must come before backward.
   */
  forward(xn: Float32Array, batch: number, save: boolean, seqLen?: number): Float32Array;
  provideInput(xn: Float32Array): void;
  backward(dy: Float32Array): Float32Array;
  readonly canRecompute: boolean;
  linears(): Linear[];
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
  private saved: { q: Float32Array; k: Float32Array; v: Float32Array; probs: Float32Array; shape: AttentionShape; dims: Dims } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number, private readonly be: Backend) {
    if (cfg.attention.kind !== "mha") throw new Error("MultiHeadAttention needs attention.kind mha");
    this.headDim = cfg.attention.headDim;
    const C = cfg.dModel;
    const HD = cfg.nHeads * this.headDim;
    this.wq = new Linear(store, `${name}.wq`, C, HD, precision, cfg.initStd);
    this.wk = new Linear(store, `${name}.wk`, C, HD, precision, cfg.initStd);
    this.wv = new Linear(store, `${name}.wv`, C, HD, precision, cfg.initStd);
    this.wo = new Linear(store, `${name}.wo`, HD, C, precision, outStd);
  }

  get canRecompute(): boolean {
    return this.wq.canRecompute;
  }

  forward(xn: Float32Array, batch: number, save: boolean, T = this.cfg.seqLen): Float32Array {
    const { nHeads: H, ropeTheta } = this.cfg;
    const D = this.headDim;
    const N = batch * T;
    const q = this.wq.forward(xn, N, save); // [B·T, H, D]
    const k = this.wk.forward(xn, N, save); // [B·T, H, D]
    const v = this.wv.forward(xn, N, save); // [B·T, H, D]
    this.be.rope(q, N, T, H, D, 0, D, ropeTheta, false);
    this.be.rope(k, N, T, H, D, 0, D, ropeTheta, false);
    const shape: AttentionShape = { batch, seqLen: T, heads: H, qkDim: D, vDim: D, scale: 1 / Math.sqrt(D) };
    const { out, probs } = this.be.attentionForward(q, k, v, shape); // [B·T, H·D]
    this.saved = { q, k, v, probs, shape, dims: { batch, seqLen: T, tokens: N } };
    return this.wo.forward(out, N);
  }

  provideInput(xn: Float32Array): void {
    const N = this.saved!.dims.tokens;
    for (const l of [this.wq, this.wk, this.wv]) l.provideInput(xn, N);
  }

  backward(dy: Float32Array): Float32Array {
    const { q, k, v, probs, shape, dims } = this.saved!;
    this.saved = null;
    const { nHeads: H, ropeTheta } = this.cfg;
    const D = this.headDim;
    const { tokens: N, seqLen: T } = dims;
    const dOut = this.wo.backward(dy, N); // [B·T, H·D]
    const { dq, dk, dv } = this.be.attentionBackward(dOut, q, k, v, probs, shape);
    this.be.rope(dq, N, T, H, D, 0, D, ropeTheta, true); // a rotation's transpose is its inverse
    this.be.rope(dk, N, T, H, D, 0, D, ropeTheta, true);
    const dxn = this.wq.backward(dq, N);
    this.be.addInPlace(dxn, this.wk.backward(dk, N));
    this.be.addInPlace(dxn, this.wv.backward(dv, N));
    return dxn;
  }

  linears(): Linear[] {
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
  private saved: {
    dims: Dims;
    shape: AttentionShape;
    probs: Float32Array;
    cq: Float32Array | null; // [N, qr] latent before its norm (input of qNorm)
    ckv: Float32Array; // [N, kvr]
    kr: Float32Array; // [N, dr] after RoPE
    qkv: { q: Float32Array; k: Float32Array; v: Float32Array } | null; // dropped under recompute.mlaUp
    xn: Float32Array | null;
  } | null = null;

  constructor(store: ParameterStore, name: string, private readonly cfg: ModelConfig, precision: Precision, outStd: number, private readonly be: Backend) {
    const a = cfg.attention;
    if (a.kind !== "mla") throw new Error("MultiHeadLatentAttention needs attention.kind mla");
    const C = cfg.dModel;
    const H = cfg.nHeads;
    this.dn = a.qkNopeHeadDim;
    this.dr = a.qkRopeHeadDim;
    this.dv = a.vHeadDim;
    this.qr = a.qLoraRank;
    this.kvr = a.kvLoraRank;
    const std = cfg.initStd;
    if (this.qr > 0) {
      this.wqA = new Linear(store, `${name}.wq_a`, C, this.qr, precision, std);
      this.qNorm = new RMSNorm(store, `${name}.q_norm`, this.qr, cfg.normEps, be);
      this.wqB = new Linear(store, `${name}.wq_b`, this.qr, H * (this.dn + this.dr), precision, std);
    } else {
      this.wqA = null;
      this.qNorm = null;
      this.wqB = new Linear(store, `${name}.wq`, C, H * (this.dn + this.dr), precision, std);
    }
    this.wkvA = new Linear(store, `${name}.wkv_a`, C, this.kvr + this.dr, precision, std);
    this.kvNorm = new RMSNorm(store, `${name}.kv_norm`, this.kvr, cfg.normEps, be);
    this.wkvB = new Linear(store, `${name}.wkv_b`, this.kvr, H * (this.dn + this.dv), precision, std);
    this.wo = new Linear(store, `${name}.wo`, H * this.dv, C, precision, outStd);
  }

  get canRecompute(): boolean {
    return this.wkvA.canRecompute;
  }

  private get recomputeUp(): boolean {
    return this.cfg.recompute.mlaUp && this.wqB.canRecompute;
  }

  /** Up-project the latents into per-head q [N, H, dn+dr], k [N, H, dn+dr], v [N, H, dv]. */
  private upProject(cqn: Float32Array, ckvn: Float32Array, kr: Float32Array, N: number, T: number, save: boolean) {
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr, dv } = this;
    const dqk = dn + dr;
    const q = this.wqB.forward(cqn, N, save); // [N, H, dn+dr]
    this.be.rope(q, N, T, H, dqk, dn, dr, ropeTheta, false);
    const kv = this.wkvB.forward(ckvn, N, save); // [N, H, dn+dv]
    const k = new Float32Array(N * H * dqk); // [N, H, dn+dr]
    const v = new Float32Array(N * H * dv); // [N, H, dv]
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < H; h++) {
        const src = (t * H + h) * (dn + dv);
        const dst = (t * H + h) * dqk;
        k.set(kv.subarray(src, src + dn), dst);
        k.set(kr.subarray(t * dr, t * dr + dr), dst + dn);
        v.set(kv.subarray(src + dn, src + dn + dv), (t * H + h) * dv);
      }
    }
    return { q, k, v };
  }

  forward(xn: Float32Array, batch: number, save: boolean, T = this.cfg.seqLen): Float32Array {
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr, dv, kvr } = this;
    const N = batch * T;
    let cq: Float32Array | null = null;
    let cqn: Float32Array;
    if (this.wqA) {
      cq = this.wqA.forward(xn, N, save); // [N, qr]
      cqn = this.qNorm!.forward(cq, N); // [N, qr]
    } else {
      cqn = xn;
    }
    const ckvFull = this.wkvA.forward(xn, N, save); // [N, kvr + dr]
    const ckv = new Float32Array(N * kvr); // [N, kvr]
    const kr = new Float32Array(N * dr); // [N, dr]
    for (let t = 0; t < N; t++) {
      ckv.set(ckvFull.subarray(t * (kvr + dr), t * (kvr + dr) + kvr), t * kvr);
      kr.set(ckvFull.subarray(t * (kvr + dr) + kvr, (t + 1) * (kvr + dr)), t * dr);
    }
    this.be.rope(kr, N, T, 1, dr, 0, dr, ropeTheta, false);
    const ckvn = this.kvNorm.forward(ckv, N); // [N, kvr]
    const recompute = this.recomputeUp;
    const { q, k, v } = this.upProject(cqn, ckvn, kr, N, T, !recompute);
    const shape: AttentionShape = { batch, seqLen: T, heads: H, qkDim: dn + dr, vDim: dv, scale: 1 / Math.sqrt(dn + dr) };
    const { out, probs } = this.be.attentionForward(q, k, v, shape); // [N, H·dv]
    this.saved = { dims: { batch, seqLen: T, tokens: N }, shape, probs, cq, ckv, kr, qkv: recompute ? null : { q, k, v }, xn: this.wqA ? null : xn };
    return this.wo.forward(out, N);
  }

  provideInput(xn: Float32Array): void {
    const N = this.saved!.dims.tokens;
    this.wqA?.provideInput(xn, N);
    this.wkvA.provideInput(xn, N);
    if (!this.wqA) this.saved!.xn = xn;
  }

  backward(dy: Float32Array): Float32Array {
    const s = this.saved!;
    this.saved = null;
    const { nHeads: H, ropeTheta } = this.cfg;
    const { dn, dr, dv, kvr } = this;
    const dqk = dn + dr;
    const { tokens: N, seqLen: T } = s.dims;
    const dOut = this.wo.backward(dy, N); // [N, H·dv]
    // The up-projections' inputs (normalized latents) are recomputed from the kept latents.
    const qkv = s.qkv ?? this.upProject(this.qNorm ? this.qNorm.recompute() : s.xn!, this.kvNorm.recompute(), s.kr, N, T, true);
    const { dq, dk, dv: dV } = this.be.attentionBackward(dOut, qkv.q, qkv.k, qkv.v, s.probs, s.shape);
    // q: undo RoPE on the rope part, then through W_uq and the q norm.
    this.be.rope(dq, N, T, H, dqk, dn, dr, ropeTheta, true);
    let dxn: Float32Array;
    if (this.wqA) {
      const dcqn = this.wqB.backward(dq, N); // [N, qr]
      const dcq = this.qNorm!.backward(dcqn);
      dxn = this.wqA.backward(dcq, N); // [N, C]
    } else {
      dxn = this.wqB.backward(dq, N);
    }
    // k, v: gather per-head [dk_nope | dv] for W_ukv; the shared rope key sums over heads.
    const dkv = new Float32Array(N * H * (dn + dv)); // [N, H, dn+dv]
    const dkr = new Float32Array(N * dr); // [N, dr]
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < H; h++) {
        const src = (t * H + h) * dqk;
        const dst = (t * H + h) * (dn + dv);
        dkv.set(dk.subarray(src, src + dn), dst);
        dkv.set(dV.subarray((t * H + h) * dv, (t * H + h + 1) * dv), dst + dn);
        for (let i = 0; i < dr; i++) dkr[t * dr + i] += dk[src + dn + i];
      }
    }
    this.be.rope(dkr, N, T, 1, dr, 0, dr, ropeTheta, true);
    const dckvn = this.wkvB.backward(dkv, N); // [N, kvr]
    const dckv = this.kvNorm.backward(dckvn); // [N, kvr]
    const dckvFull = new Float32Array(N * (kvr + dr)); // [N, kvr + dr]
    for (let t = 0; t < N; t++) {
      dckvFull.set(dckv.subarray(t * kvr, (t + 1) * kvr), t * (kvr + dr));
      dckvFull.set(dkr.subarray(t * dr, (t + 1) * dr), t * (kvr + dr) + kvr);
    }
    this.be.addInPlace(dxn, this.wkvA.backward(dckvFull, N));
    return dxn;
  }

  linears(): Linear[] {
    return [...(this.wqA ? [this.wqA] : []), this.wqB, this.wkvA, this.wkvB, this.wo];
  }
}
