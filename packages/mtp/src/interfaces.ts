// What @octet/mtp needs from the model that uses it. @octet/model depends on this package (never the
// reverse), so the transformer block, the shared embedding, the shared output head and the kernels the
// modules compute with come in through these interfaces; the MTP package owns only its RMSNorm gains and
// projections. Tensors are @octet/numerics' TensorHandles: whatever backend made them (the CPU's HostTensor,
// a device buffer) — the modules never read their memory, they call the kernels.

import type { TensorHandle } from "@octet/numerics";

/** A batch of `batch` sequences of `seqLen` positions, stored as rows b·seqLen + i. */
export interface SeqShape {
  batch: number;
  seqLen: number;
}

/** A parameter with its gradient accumulator (same shape). Optimizers update `value` in place. */
export interface NamedParam {
  name: string;
  value: TensorHandle;
  grad: TensorHandle;
}

/**
 * A transformer block (attention + FFN/MoE with their norms and residuals), applied to each sequence
 * independently and causally: row b·seqLen + i may depend on rows b·seqLen + j, j ≤ i, only. Position
 * i of every sequence is position i (RoPE etc. start at 0 for each sequence).
 */
export interface MtpBlock {
  /** x: [batch·seqLen, dim] → out: same shape. `cache` is whatever backward needs. */
  forward(x: TensorHandle, shape: SeqShape): { out: TensorHandle; cache: unknown };
  /** dOut → dx; adds this block's parameter gradients into its own accumulators. */
  backward(dOut: TensorHandle, cache: unknown): TensorHandle;
  /** The block's parameters (names relative to the block). */
  params(): NamedParam[];
}

/** The main model's token embedding, shared with the MTP modules. */
export interface SharedEmbedding {
  readonly vocabSize: number;
  readonly dim: number;
  /** tokens: I32 [n] → [n, dim] (a fresh tensor). */
  lookup(tokens: TensorHandle): TensorHandle;
  /** Adds dEmb [n, dim] into the gradient rows of `tokens` (repeated tokens accumulate). */
  accumulateGrad(tokens: TensorHandle, dEmb: TensorHandle): void;
}

/**
 * The main model's output head (e.g. final RMSNorm + linear to the vocabulary), shared with the MTP
 * modules. Its gradients accumulate into the main model's accumulators.
 */
export interface SharedHead {
  readonly vocabSize: number;
  readonly dim: number;
  /** h: [rows, dim] → logits: [rows, vocabSize]. */
  forward(h: TensorHandle, rows: number): { logits: TensorHandle; cache: unknown };
  /** dLogits → dh; adds the head's parameter gradients. */
  backward(dLogits: TensorHandle, cache: unknown): TensorHandle;
}

/**
 * The kernels the MTP modules compute with, on the model's tensors (F32 unless said otherwise). The model
 * passes its backend's; @octet/mtp's own CPU kernels (cpuMtpKernels, on HostTensors) are the default and
 * define the arithmetic. Every op returns new tensors unless it says "in place" or "adds into".
 */
export interface MtpKernels {
  /** A new tensor holding a copy of host values (initialization). */
  fromHost(data: Float32Array | Int32Array, shape: readonly number[]): TensorHandle;
  /** A new F32 tensor of zeros. */
  zeros(shape: readonly number[]): TensorHandle;
  /** x = 0, in place (gradient accumulators). */
  zero(x: TensorHandle): void;
  /** x *= a, in place. */
  scale(x: TensorHandle, a: number): void;
  /** Small tensors' values on the host (losses), one array per tensor: the only read back. */
  read(xs: readonly TensorHandle[]): number[][];

  /** y = x / sqrt(mean(x²) + eps) ⊙ gain per row of x [rows, d], gain [d]; rstd [rows] for backward. */
  rmsnormForward(x: TensorHandle, gain: TensorHandle, eps: number): { y: TensorHandle; rstd: TensorHandle };
  /** dx of rmsnormForward; adds ∂L/∂gain into gainGrad [d]. */
  rmsnormBackward(dy: TensorHandle, x: TensorHandle, gain: TensorHandle, rstd: TensorHandle, gainGrad: TensorHandle): TensorHandle;
  /** [a | b]: a [rows, da], b [rows, db] → [rows, da + db]. */
  concatColumns(a: TensorHandle, b: TensorHandle): TensorHandle;
  /** x [rows, cols] → [x[:, :left], x[:, left:]]. */
  splitColumns(x: TensorHandle, left: number): [TensorHandle, TensorHandle];
  /** y [rows, out] = x [rows, in] · Wᵀ, W [out, in] (a PyTorch Linear without bias). */
  linearForward(x: TensorHandle, w: TensorHandle): TensorHandle;
  /** dx = dy · W; adds dW = dyᵀ · x into wGrad. */
  linearBackward(dy: TensorHandle, x: TensorHandle, w: TensorHandle, wGrad: TensorHandle): TensorHandle;
  /**
   * Mean softmax cross-entropy of logits [rows, vocab] against targets (I32 [rows]) as a 1-element tensor, and
   * its gradient w.r.t. the logits scaled by gradScale (the gradient of gradScale · loss). The logits are consumed:
   * a device implementation may write the gradient over them.
   */
  crossEntropy(logits: TensorHandle, targets: TensorHandle, gradScale: number): { loss: TensorHandle; dLogits: TensorHandle };
  /** The mean of 1-element tensors (Σ in order, then ÷ n), a 1-element tensor. */
  mean(xs: readonly TensorHandle[]): TensorHandle;

  /**
   * Rows start .. start+len−1 of each of `batch` sequences of seqLen rows: x [batch·seqLen, …] (F32 or I32,
   * rows of any width; a 1-D tensor has rows of one element) → [batch·len, …].
   */
  sequenceRows(x: TensorHandle, batch: number, seqLen: number, start: number, len: number): TensorHandle;
  /** The inverse placement, adding: rows start .. start+len−1 of each sequence of dst [batch·seqLen, d] += src [batch·len, d]. */
  addSequenceRows(dst: TensorHandle, src: TensorHandle, batch: number, seqLen: number, start: number): void;
  /** The inverse placement into zeros: src [batch·len, d] → [batch·seqLen, d], src's rows at start .. start+len−1 of each sequence. */
  padSequenceRows(src: TensorHandle, batch: number, seqLen: number, start: number): TensorHandle;
}
