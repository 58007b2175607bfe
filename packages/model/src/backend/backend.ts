// The kernels every layer's arithmetic goes through. A backend implements this interface; the layers never
// loop over tensors themselves except to move rows around (views, splits), so a CUDA backend can replace
// the CPU one without touching them. Layouts are row-major; shapes are written next to each argument.

import type { Fp8Format, Quantized, ScaleKind } from "@octet/numerics";

export interface AttentionShape {
  batch: number;
  seqLen: number;
  heads: number;
  /** Query/key width per head. */
  qkDim: number;
  /** Value width per head. */
  vDim: number;
  scale: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step, for bias correction. */
  step: number;
}

/** AdamW moments: FP32, or BF16 bit patterns (DeepSeek-V3 keeps them in BF16). */
export type Moment = Float32Array | Uint16Array;

export interface Backend {
  readonly name: string;
  /** fp32 C [M,N] = a [M,K] · b [N,K]ᵀ. */
  matmul(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float32Array;
  /** BF16 bit patterns in, FP32 accumulation: C [M,N] = a [M,K] · b [N,K]ᵀ. */
  matmulBf16(a: Uint16Array, b: Uint16Array, M: number, N: number, K: number): Float32Array;
  /** float32 → BF16 bit patterns (round to nearest even). */
  toBf16(x: Float32Array): Uint16Array;
  /** Fine-grained FP8 quantization of x [rows, cols] (blocks [br, bc]). */
  quantize(x: Float32Array, rows: number, cols: number, block: [number, number], format: Fp8Format, scale: ScaleKind): Quantized;
  /** C = a · bᵀ of two quantized operands, FP32 promotion every promoteEvery elements of K. */
  scaledMatmul(a: Quantized, b: Quantized, promoteEvery: number): Float32Array;
  /**
   * Both FP8 layouts of x [rows, cols] in 1x128 tiles, from one read of x: q = x in [1,128] tiles (what
   * Fprop/Dgrad contract) and qT = xᵀ [cols, rows] in [1,128] tiles along rows (what Wgrad contracts).
   * Each equals quantize() of x, respectively of transpose(x), bit for bit.
   */
  quantizeTiles(x: Float32Array, rows: number, cols: number, format: Fp8Format, scale: ScaleKind): { q: Quantized; qT: Quantized };
  /** qᵀ: codes and scale grid transposed, block shape swapped; equals quantizing the transpose (exact). */
  transposeQuantized(q: Quantized): Quantized;
  /** y [cols, rows] = xᵀ for x [rows, cols] (float32, or BF16 / FP8 bit patterns). */
  transpose<A extends Float32Array | Uint16Array | Uint8Array>(x: A, rows: number, cols: number): A;

  /** y = x / rms(x) · weight per row; returns y [rows, cols] and rstd [rows]. */
  rmsnormForward(x: Float32Array, weight: Float32Array, rows: number, cols: number, eps: number): { y: Float32Array; rstd: Float32Array };
  /** dx [rows, cols]; adds ∂L/∂weight into dWeight [cols]. */
  rmsnormBackward(dy: Float32Array, x: Float32Array, weight: Float32Array, rstd: Float32Array, rows: number, cols: number, dWeight: Float32Array): Float32Array;

  /**
   * Rotary embedding, in place, on x viewed as [batch·seqLen, heads, stride], on the `dim` columns starting
   * at `offset` of each head (rotate-half pairing: i with i + dim/2). inverse rotates back (the backward).
   */
  rope(x: Float32Array, tokens: number, seqLen: number, heads: number, stride: number, offset: number, dim: number, theta: number, inverse: boolean): void;

  /** Causal softmax attention. q, k [B·T, H, qkDim], v [B·T, H, vDim] → out [B·T, H·vDim]; probs [B, H, T, T] kept for backward. */
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShape): { out: Float32Array; probs: Float32Array };
  attentionBackward(
    dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, s: AttentionShape,
  ): { dq: Float32Array; dk: Float32Array; dv: Float32Array };

  /** h = silu(gate) · up, elementwise. */
  swigluForward(gate: Float32Array, up: Float32Array): Float32Array;
  swigluBackward(dh: Float32Array, gate: Float32Array, up: Float32Array): { dGate: Float32Array; dUp: Float32Array };

  /** Mean cross-entropy of logits [rows, vocab] against targets [rows]; dLogits = ∂(mean loss)/∂logits. */
  crossEntropy(logits: Float32Array, targets: Int32Array, rows: number, vocab: number, wantGrad: boolean): { loss: number; dLogits: Float32Array | null };

  /** out [ids.length, cols] = table[ids]. */
  embeddingForward(table: Float32Array, ids: Int32Array, cols: number): Float32Array;
  /** dTable[ids[i]] += dOut[i]. */
  embeddingBackward(dOut: Float32Array, ids: Int32Array, cols: number, dTable: Float32Array): void;

  /** MoE permute: out [index.length, cols] = x[index]. */
  permuteRows(x: Float32Array, index: Int32Array, cols: number): Float32Array;
  /** MoE unpermute: out[index[r]] += scale[r] · x[r] (scale omitted: 1), out [outRows, cols]. */
  unpermuteAdd(x: Float32Array, index: Int32Array, cols: number, out: Float32Array, scale?: Float32Array): void;

  /** One AdamW step on a tensor (decoupled weight decay), moments updated in place. */
  adamwUpdate(param: Float32Array, grad: Float32Array, m: Moment, v: Moment, h: AdamWHyper): void;
  /** Σ x² in float64 (for the global gradient norm). */
  sumSquares(x: Float32Array): number;
  /** x *= a in place. */
  scale(x: Float32Array, a: number): void;
  /** y += x in place. */
  addInPlace(y: Float32Array, x: Float32Array): void;
}
