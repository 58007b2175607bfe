// What @octet/mtp needs from the model that uses it. @octet/model depends on this package (never the
// reverse), so the transformer block, the shared embedding and the shared output head come in through
// these interfaces; the MTP package owns only its RMSNorm gains and projections.

/** A batch of `batch` sequences of `seqLen` positions, stored as rows b·seqLen + i. */
export interface SeqShape {
  batch: number;
  seqLen: number;
}

/** A parameter with its gradient accumulator (same length). Optimizers update `value` in place. */
export interface NamedParam {
  name: string;
  value: Float32Array;
  grad: Float32Array;
}

/**
 * A transformer block (attention + FFN/MoE with their norms and residuals), applied to each sequence
 * independently and causally: row b·seqLen + i may depend on rows b·seqLen + j, j ≤ i, only. Position
 * i of every sequence is position i (RoPE etc. start at 0 for each sequence).
 */
export interface MtpBlock {
  /** x: [batch·seqLen, dim] → out: same shape. `cache` is whatever backward needs. */
  forward(x: Float32Array, shape: SeqShape): { out: Float32Array; cache: unknown };
  /** dOut → dx; adds this block's parameter gradients into its own accumulators. */
  backward(dOut: Float32Array, cache: unknown): Float32Array;
  /** The block's parameters (names relative to the block). */
  params(): NamedParam[];
}

/** The main model's token embedding, shared with the MTP modules. */
export interface SharedEmbedding {
  readonly vocabSize: number;
  readonly dim: number;
  /** tokens: [n] → [n, dim] (a fresh array). */
  lookup(tokens: Int32Array): Float32Array;
  /** Adds dEmb [n, dim] into the gradient rows of `tokens` (repeated tokens accumulate). */
  accumulateGrad(tokens: Int32Array, dEmb: Float32Array): void;
}

/**
 * The main model's output head (e.g. final RMSNorm + linear to the vocabulary), shared with the MTP
 * modules. Its gradients accumulate into the main model's accumulators.
 */
export interface SharedHead {
  readonly vocabSize: number;
  readonly dim: number;
  /** h: [rows, dim] → logits: [rows, vocabSize]. */
  forward(h: Float32Array, rows: number): { logits: Float32Array; cache: unknown };
  /** dLogits → dh; adds the head's parameter gradients. */
  backward(dLogits: Float32Array, cache: unknown): Float32Array;
}
