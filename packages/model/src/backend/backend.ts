// The kernels every layer's arithmetic goes through, on tensors the backend owns. A layer holds TensorHandles
// (@octet/numerics: shape, dtype, device) and calls these ops; it never reads or writes a tensor's memory —
// views, row ranges, head splits, concatenation, gradient accumulation, routing and the optimizer are ops here —
// so a CUDA backend can keep every tensor on the device for a whole step. Nothing in this interface requires a
// host array inside a step: the host only uploads each batch's tokens (fromHost) and reads the step's few
// scalars together (read). Layouts are row-major; tensors are F32 unless said otherwise; shapes are written
// next to each argument. Ops return new tensors unless they say "in place" or "adds into".

import type { DType, DelayedScaler, Fp8Format, ScaleKind, TensorHandle } from "@octet/numerics";
import type { MtpKernels } from "@octet/mtp";
import type { Precision } from "../precision.js";

export type { TensorHandle } from "@octet/numerics";

/** The typed arrays host data comes in and goes out as (F32, BF16 bits, FP8 codes, I32, U32, F64). */
export type HostArray = Float32Array | Uint16Array | Uint8Array | Int32Array | Uint32Array | Float64Array;

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

/**
 * A fine-grained FP8 operand the backend owns (numerics' Quantized as two tensors): codes [rows, cols] (F8_E4M3
 * or F8_E5M2) and dequantization scales (F32) over the block grid [ceil(rows/br), ceil(cols/bc)].
 */
export interface QuantizedTensor {
  readonly codes: TensorHandle;
  readonly scales: TensorHandle;
  readonly shape: readonly [number, number];
  readonly block: readonly [number, number];
  readonly format: Fp8Format;
}

/** The gate's choice as the router computes it (@octet/router's RouteOptions without the bias). */
export interface RouteOptions {
  experts: number;
  topK: number;
  nGroup: number;
  topkGroup: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
}

/**
 * One MoE forward pass's routing and dispatch plan, as backend tensors (a GPU keeps them on the device: the
 * grouped GEMMs read the offsets there). Rows of the expert-grouped buffer are grouped by expert, tokens in
 * increasing order within an expert; nothing is dropped, so rows = tokens · topK.
 */
export interface Routing {
  readonly tokens: number;
  readonly experts: number;
  readonly topK: number;
  readonly rows: number;
  /** I32 [rows]: the token each row comes from. */
  readonly tokenOfRow: TensorHandle;
  /** I32 [rows]: the assignment (t · topK + k) each row serves. */
  readonly assignmentOfRow: TensorHandle;
  /** F32 [rows]: the weight of each row's expert output in its token's sum. */
  readonly combineWeights: TensorHandle;
  /** I32 [experts]: rows per expert (the load statistics). */
  readonly expertCounts: TensorHandle;
  /** I32 [experts + 1]: expert e owns rows [offsets[e], offsets[e+1]). */
  readonly expertOffsets: TensorHandle;
}

/** Recipe state of one Linear's GEMMs (delayed scaling's amax histories), as state export saves it. */
export type GemmState = Record<string, { history: number[]; recorded: number }>;

/**
 * The GEMMs of one kind of expert Linear (w1, w3 or w2) of a MoE layer, over all its experts at once: x holds
 * the routed rows grouped by expert (Routing.expertOffsets) and w the experts' weights stacked [E·out, in].
 * Each expert's rows go through the recipe exactly as a Linear's would; experts that received no rows do nothing.
 */
export interface GroupedGemms {
  /** False when a second fprop would change state (delayed scaling): no recomputation. */
  readonly canRecompute: boolean;
  /** y [rows, out] = each expert's rows · W_eᵀ; keeps what backward needs unless save is false (saveInput follows). */
  fprop(x: TensorHandle, w: TensorHandle, routing: Routing, save?: boolean): TensorHandle;
  /** Replace the saved input by this one (recomputation in the backward pass). */
  saveInput(x: TensorHandle, routing: Routing): void;
  /** dy [rows, out] → dx [rows, in]; adds each expert's dW into its block of grad [E·out, in], then drops the saved input. */
  backward(dy: TensorHandle, w: TensorHandle, grad: TensorHandle): TensorHandle;
  exportState(expert: number): GemmState;
  importState(expert: number, state: GemmState): void;
}

export interface Backend {
  readonly name: string;

  // ---- memory ----------------------------------------------------------------------------------------------------
  /** A new tensor of zeros. */
  zeros(shape: readonly number[], dtype?: DType): TensorHandle;
  /** A new tensor holding a copy of host data: initialization, state import, each batch's tokens. */
  fromHost(data: HostArray, shape: readonly number[], dtype?: DType): TensorHandle;
  /** Copy host data into an existing tensor (same element count; the dtype's typed array). */
  copyFromHost(dst: TensorHandle, data: HostArray): void;
  /**
   * The tensor's values on the host, outside the step only (state export, EMA snapshots, inference results).
   * On the CPU this is the tensor's own memory (no copy); treat it as read-only and copy what you keep.
   */
  toHost(t: TensorHandle): HostArray;
  /**
   * Small tensors' values (the step's loss, MTP losses, gradient norm, expert loads), read together: the one
   * device → host synchronization of a step. One number array per tensor.
   */
  read(ts: readonly TensorHandle[]): number[][];
  /** Rows start .. start+count−1 of x [rows, …] as a tensor sharing x's memory (a view: no copy). */
  rows(x: TensorHandle, start: number, count: number): TensorHandle;
  /** x = 0, in place. */
  zero(x: TensorHandle): void;

  // ---- GEMMs and FP8 ---------------------------------------------------------------------------------------------
  /** fp32 C [M,N] = a [M,K] · b [N,K]ᵀ. */
  matmul(a: TensorHandle, b: TensorHandle): TensorHandle;
  /** BF16 operands, FP32 accumulation: C [M,N] = a [M,K] · b [N,K]ᵀ (F32). */
  matmulBf16(a: TensorHandle, b: TensorHandle): TensorHandle;
  /** F32 → BF16 (round to nearest even). */
  toBf16(x: TensorHandle): TensorHandle;
  /** Fine-grained FP8 quantization of x [rows, cols] (blocks [br, bc]). */
  quantize(x: TensorHandle, block: readonly [number, number], format: Fp8Format, scale: ScaleKind): QuantizedTensor;
  /** Per-tensor delayed scaling of x [rows, cols] with this scaler's amax history (which it records x's amax into). */
  quantizeDelayed(x: TensorHandle, scaler: DelayedScaler): QuantizedTensor;
  /** C [M,N] = a [M,K] · b [N,K]ᵀ of two quantized operands, FP32 promotion every promoteEvery elements of K. */
  scaledMatmul(a: QuantizedTensor, b: QuantizedTensor, promoteEvery: number): TensorHandle;
  /**
   * Both FP8 layouts of x [rows, cols] in 1x128 tiles, from one read of x: q = x in [1,128] tiles (what
   * Fprop/Dgrad contract) and qT = xᵀ [cols, rows] in [1,128] tiles along rows (what Wgrad contracts).
   * Each equals quantize() of x, respectively of transpose(x), bit for bit.
   */
  quantizeTiles(x: TensorHandle, format: Fp8Format, scale: ScaleKind): { q: QuantizedTensor; qT: QuantizedTensor };
  /** qᵀ: codes and scale grid transposed, block shape swapped; equals quantizing the transpose (exact). */
  transposeQuantized(q: QuantizedTensor): QuantizedTensor;
  /** y [cols, rows] = xᵀ for x [rows, cols] (F32, BF16 or FP8 codes). */
  transpose(x: TensorHandle): TensorHandle;
  /** The grouped GEMMs of a MoE layer's experts of one kind (names: each expert's Linear, in expert order). */
  groupedGemms(precision: Precision, names: readonly string[]): GroupedGemms;

  // ---- normalization, position, attention, activation, loss ------------------------------------------------------
  /** y = x / rms(x) · weight per row of x [rows, cols]; rstd [rows] for backward. */
  rmsnormForward(x: TensorHandle, weight: TensorHandle, eps: number): { y: TensorHandle; rstd: TensorHandle };
  /** dx [rows, cols]; adds ∂L/∂weight into dWeight [cols]. */
  rmsnormBackward(dy: TensorHandle, x: TensorHandle, weight: TensorHandle, rstd: TensorHandle, dWeight: TensorHandle): TensorHandle;
  /**
   * Rotary embedding, in place, on x viewed as [tokens, heads, stride] (tokens = batch·seqLen), on the `dim`
   * columns starting at `offset` of each head (rotate-half pairing: i with i + dim/2). inverse rotates back (the backward).
   */
  rope(x: TensorHandle, seqLen: number, heads: number, stride: number, offset: number, dim: number, theta: number, inverse: boolean): void;
  /**
   * Causal softmax attention. q, k [B·T, H·qkDim], v [B·T, H·vDim] → out [B·T, H·vDim], and `saved`: what the
   * backward needs besides q, k, v (the CPU keeps the probabilities [B, H, T, T]; a flash kernel its row statistics).
   */
  attentionForward(q: TensorHandle, k: TensorHandle, v: TensorHandle, s: AttentionShape): { out: TensorHandle; saved: TensorHandle };
  attentionBackward(
    dOut: TensorHandle, q: TensorHandle, k: TensorHandle, v: TensorHandle, saved: TensorHandle, s: AttentionShape,
  ): { dq: TensorHandle; dk: TensorHandle; dv: TensorHandle };
  /** h = silu(gate) · up, elementwise. */
  swigluForward(gate: TensorHandle, up: TensorHandle): TensorHandle;
  swigluBackward(dh: TensorHandle, gate: TensorHandle, up: TensorHandle): { dGate: TensorHandle; dUp: TensorHandle };
  /**
   * Mean cross-entropy of logits [rows, vocab] against targets (I32 [rows]) as a 1-element tensor;
   * dLogits = ∂(mean loss)/∂logits when wantGrad. With wantGrad the logits are consumed: a backend may write
   * dLogits over them (the CUDA backend does, so that a [tokens, vocab] FP32 tensor is not held twice).
   */
  crossEntropy(logits: TensorHandle, targets: TensorHandle, wantGrad: boolean): { loss: TensorHandle; dLogits: TensorHandle | null };

  // ---- rows: embedding, MLA heads, columns, MoE dispatch and combine -----------------------------------------------
  /** out [n, cols] = table [V, cols] rows ids (I32 [n]). */
  embeddingForward(table: TensorHandle, ids: TensorHandle): TensorHandle;
  /** dTable[ids[i]] += dOut[i], in order of i. */
  embeddingBackward(dOut: TensorHandle, ids: TensorHandle, dTable: TensorHandle): void;
  /** [a | b]: a [rows, da], b [rows, db] → [rows, da + db]. */
  concatColumns(a: TensorHandle, b: TensorHandle): TensorHandle;
  /** x [rows, cols] → [x[:, :left], x[:, left:]]. */
  splitColumns(x: TensorHandle, left: number): [TensorHandle, TensorHandle];
  /**
   * MLA's per-head keys and values: kv [N, H·(dn+dv)] (per head [k_nope | v]) and the shared rope key kr [N, dr]
   * → k [N, H·(dn+dr)] (per head [k_nope | kr]) and v [N, H·dv].
   */
  mlaHeads(kv: TensorHandle, kr: TensorHandle, heads: number, dn: number, dv: number): { k: TensorHandle; v: TensorHandle };
  /** Backward of mlaHeads: dkv [N, H·(dn+dv)] and dkr [N, dr] = Σ over heads (in head order) of each head's rope part. */
  mlaHeadsBackward(dk: TensorHandle, dv: TensorHandle, heads: number, dn: number, dr: number): { dkv: TensorHandle; dkr: TensorHandle };
  /**
   * The MoE gate on logits [tokens, E] with the balancer's bias [E] (for the choice only): sigmoid affinities,
   * group-limited top-K, normalized weights, and the dispatch plan.
   */
  route(logits: TensorHandle, bias: TensorHandle, o: RouteOptions): Routing;
  /** ∂L/∂logits [tokens, E] from ∂L/∂(combine weights) [tokens·topK], through the weights (never the choice or the bias). */
  routeBackward(routing: Routing, gradWeights: TensorHandle): TensorHandle;
  /** MoE permute: out [index.length, cols] = x[index] (index I32). */
  permuteRows(x: TensorHandle, index: TensorHandle): TensorHandle;
  /** MoE unpermute: out[index[r]] += scale[r] · x[r] (scale omitted: 1), in order of r; out [outRows, cols]. */
  unpermuteAdd(x: TensorHandle, index: TensorHandle, out: TensorHandle, scale?: TensorHandle): void;
  /** out [n] with out[index[r]] = ⟨a[r], b[r]⟩ for a, b [R, cols] (the combine weights' gradient); index I32 [R]. */
  rowDots(a: TensorHandle, b: TensorHandle, index: TensorHandle, n: number): TensorHandle;
  /** x[r] *= w[r] for x [R, cols], w [R], in place. */
  scaleRows(x: TensorHandle, w: TensorHandle): void;

  // ---- optimizer and elementwise -----------------------------------------------------------------------------------
  /** One AdamW step on a tensor (decoupled weight decay); moments m, v (F32 or BF16) updated in place. */
  adamwUpdate(param: TensorHandle, grad: TensorHandle, m: TensorHandle, v: TensorHandle, h: AdamWHyper): void;
  /** √(Σ over the tensors of Σ x²), the global gradient norm, as a 1-element tensor. */
  gradNorm(xs: readonly TensorHandle[]): TensorHandle;
  /** Scale every tensor by maxNorm / (norm + 1e-6) when maxNorm > 0 and norm (1 element) > maxNorm, in place. */
  clipByNorm(xs: readonly TensorHandle[], norm: TensorHandle, maxNorm: number): void;
  /** x *= a, in place. */
  scale(x: TensorHandle, a: number): void;
  /** y += x, in place. */
  addInPlace(y: TensorHandle, x: TensorHandle): void;

  /** The MTP modules' kernels (@octet/mtp's arithmetic) on this backend's tensors. */
  readonly mtpKernels: MtpKernels;
}
