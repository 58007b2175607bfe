// The few kernels the MTP modules own: RMSNorm, the projection GEMM (through @octet/numerics'
// matmulF32, a·bᵀ), and softmax cross-entropy.

import { matmulF32 } from "@octet/numerics";

/** DeepSeek-V3's rms_norm_eps. */
export const RMS_NORM_EPS = 1e-6;

export interface RmsNormCache {
  x: Float32Array;
  inv: Float32Array; // 1 / rms per row
  rows: number;
  dim: number;
}

/** y = x / sqrt(mean(x²) + eps) ⊙ gain, per row of x [rows, dim]. */
export function rmsNormForward(x: Float32Array, gain: Float32Array, rows: number, eps = RMS_NORM_EPS): { y: Float32Array; cache: RmsNormCache } {
  const dim = gain.length;
  if (x.length !== rows * dim) throw new RangeError(`rmsNorm: x has ${x.length} elements, want rows·dim = ${rows * dim}`);
  const y = new Float32Array(x.length);
  const inv = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
    const s = 1 / Math.sqrt(ss / dim + eps);
    inv[r] = s;
    for (let j = 0; j < dim; j++) y[o + j] = x[o + j] * s * gain[j];
  }
  return { y, cache: { x, inv, rows, dim } };
}

/** Returns dx; adds dgain into `gainGrad`. */
export function rmsNormBackward(dy: Float32Array, gain: Float32Array, gainGrad: Float32Array, cache: RmsNormCache): Float32Array {
  const { x, inv, rows, dim } = cache;
  const dx = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const s = inv[r];
    let dot = 0; // Σ_j dxhat_j · xhat_j
    for (let j = 0; j < dim; j++) {
      const xhat = x[o + j] * s;
      gainGrad[j] += dy[o + j] * xhat;
      dot += dy[o + j] * gain[j] * xhat;
    }
    const m = dot / dim;
    for (let j = 0; j < dim; j++) dx[o + j] = s * (dy[o + j] * gain[j] - x[o + j] * s * m);
  }
  return dx;
}

/** [rows, cols] → [cols, rows]. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

/** y [rows, out] = x [rows, in] · Wᵀ with W [out, in] (a PyTorch Linear without bias). */
export function linearForward(x: Float32Array, w: Float32Array, rows: number, out: number, inDim: number): Float32Array {
  return matmulF32(x, w, rows, out, inDim);
}

/** dx = dy · W; adds dW = dyᵀ · x into wGrad. */
export function linearBackward(dy: Float32Array, x: Float32Array, w: Float32Array, wGrad: Float32Array, rows: number, out: number, inDim: number): Float32Array {
  const dW = matmulF32(transpose(dy, rows, out), transpose(x, rows, inDim), out, inDim, rows);
  for (let i = 0; i < dW.length; i++) wGrad[i] += dW[i];
  return matmulF32(dy, transpose(w, out, inDim), rows, inDim, out);
}

/**
 * Mean softmax cross-entropy of logits [rows, vocab] against targets [rows], and its gradient w.r.t.
 * the logits scaled by `gradScale` (the gradient of gradScale · loss).
 */
export function softmaxCrossEntropy(logits: Float32Array, targets: Int32Array, rows: number, vocab: number, gradScale: number): { loss: number; dLogits: Float32Array } {
  if (logits.length !== rows * vocab) throw new RangeError(`softmaxCrossEntropy: logits have ${logits.length} elements, want rows·vocab = ${rows * vocab}`);
  const dLogits = new Float32Array(logits.length);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * vocab;
    const t = targets[r];
    if (!(t >= 0 && t < vocab)) throw new RangeError(`softmaxCrossEntropy: target ${t} at row ${r} is outside the vocabulary [0, ${vocab})`);
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) if (logits[o + v] > max) max = logits[o + v];
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[o + v] - max);
    const lse = max + Math.log(sum);
    total += lse - logits[o + t];
    const g = gradScale / rows;
    for (let v = 0; v < vocab; v++) dLogits[o + v] = Math.exp(logits[o + v] - lse) * g;
    dLogits[o + t] -= g;
  }
  return { loss: total / rows, dLogits };
}
