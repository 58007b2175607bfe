// The CPU backend: GEMMs and FP8 quantization on @octet/numerics' native kernels (AVX-512 microkernel,
// both cores), attention as per-head native GEMMs, and the cheap elementwise kernels as plain loops.
// Everything here is deterministic: the native GEMM splits work by output tile, never by K, so the same
// inputs give the same bits whatever the thread timing.

import { type Fp8Format, type Quantized, type ScaleKind, matmulBf16, matmulF32, quantize, quantizeBoth, scaledMatmul } from "@octet/numerics";
import type { AdamWHyper, AttentionShape, Backend, Moment } from "./backend.js";

/** Time spent in kernels, for the benchmark's GEMM fraction. */
export interface KernelTimes {
  gemmMs: number;
  quantizeMs: number;
  attentionMs: number;
  gemmFlops: number;
}

// Transposes in 32x32 tiles, which keep both sides in cache.
function transposeF32(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += 32) {
    const r1 = Math.min(r0 + 32, rows);
    for (let c0 = 0; c0 < cols; c0 += 32) {
      const c1 = Math.min(c0 + 32, cols);
      for (let r = r0; r < r1; r++) for (let c = c0, src = r * cols; c < c1; c++) y[c * rows + r] = x[src + c];
    }
  }
  return y;
}

function transposeU16(x: Uint16Array, rows: number, cols: number): Uint16Array {
  const y = new Uint16Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += 32) {
    const r1 = Math.min(r0 + 32, rows);
    for (let c0 = 0; c0 < cols; c0 += 32) {
      const c1 = Math.min(c0 + 32, cols);
      for (let r = r0; r < r1; r++) for (let c = c0, src = r * cols; c < c1; c++) y[c * rows + r] = x[src + c];
    }
  }
  return y;
}

function transposeU8(x: Uint8Array, rows: number, cols: number): Uint8Array {
  const y = new Uint8Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += 32) {
    const r1 = Math.min(r0 + 32, rows);
    for (let c0 = 0; c0 < cols; c0 += 32) {
      const c1 = Math.min(c0 + 32, cols);
      for (let r = r0; r < r1; r++) for (let c = c0, src = r * cols; c < c1; c++) y[c * rows + r] = x[src + c];
    }
  }
  return y;
}

const BF16_VIEW = new Float32Array(1);
const BF16_BITS = new Uint32Array(BF16_VIEW.buffer);

function bf16ToF32(bits: number): number {
  BF16_BITS[0] = bits << 16;
  return BF16_VIEW[0];
}

export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly times: KernelTimes = { gemmMs: 0, quantizeMs: 0, attentionMs: 0, gemmFlops: 0 };

  resetTimes(): void {
    this.times.gemmMs = this.times.quantizeMs = this.times.attentionMs = this.times.gemmFlops = 0;
  }

  matmul(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float32Array {
    const t0 = performance.now();
    const c = matmulF32(a, b, M, N, K);
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * M * N * K;
    return c;
  }

  matmulBf16(a: Uint16Array, b: Uint16Array, M: number, N: number, K: number): Float32Array {
    const t0 = performance.now();
    const c = matmulBf16(a, b, M, N, K);
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * M * N * K;
    return c;
  }

  toBf16(x: Float32Array): Uint16Array {
    // encodeBf16 of @octet/numerics bit for bit (round to nearest even, NaN → 0xFFFF), on the integer view.
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const out = new Uint16Array(x.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? 0xffff : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
    return out;
  }

  quantize(x: Float32Array, rows: number, cols: number, block: [number, number], format: Fp8Format, scale: ScaleKind): Quantized {
    const t0 = performance.now();
    const q = quantize(x, [rows, cols], { block, format, scale });
    this.times.quantizeMs += performance.now() - t0;
    return q;
  }

  scaledMatmul(a: Quantized, b: Quantized, promoteEvery: number): Float32Array {
    const t0 = performance.now();
    const c = scaledMatmul(a, b, { promoteEvery });
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * a.shape[0] * b.shape[0] * a.shape[1];
    return c;
  }

  quantizeTiles(x: Float32Array, rows: number, cols: number, format: Fp8Format, scale: ScaleKind): { q: Quantized; qT: Quantized } {
    const t0 = performance.now();
    const { rowwise, colwise } = quantizeBoth(x, [rows, cols], { format, scale });
    // colwise: [128,1] tiles of x = [1,128] tiles of xᵀ; transposing the bytes gives the GEMM's layout.
    const qT = this.transposeQuantized(colwise);
    this.times.quantizeMs += performance.now() - t0;
    return { q: rowwise, qT };
  }

  transposeQuantized(q: Quantized): Quantized {
    const [rows, cols] = q.shape;
    const [br, bc] = q.block;
    const gr = Math.ceil(rows / br);
    const gc = Math.ceil(cols / bc);
    return {
      data: this.transpose(q.data, rows, cols), // [cols, rows]
      scales: gr === 1 || gc === 1 ? q.scales.slice() : this.transpose(q.scales, gr, gc), // [gc, gr]
      shape: [cols, rows],
      block: [bc, br],
      format: q.format,
    };
  }

  transpose<A extends Float32Array | Uint16Array | Uint8Array>(x: A, rows: number, cols: number): A {
    // One monomorphic loop per element type (a shared loop over three array kinds runs slower in V8).
    if (x instanceof Float32Array) return transposeF32(x, rows, cols) as A;
    if (x instanceof Uint16Array) return transposeU16(x, rows, cols) as A;
    return transposeU8(x as Uint8Array, rows, cols) as A;
  }

  rmsnormForward(x: Float32Array, weight: Float32Array, rows: number, cols: number, eps: number) {
    const y = new Float32Array(rows * cols); // [rows, cols]
    const rstd = new Float32Array(rows); // [rows]
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let ss = 0;
      for (let c = 0; c < cols; c++) ss += x[base + c] * x[base + c];
      const s = 1 / Math.sqrt(ss / cols + eps);
      rstd[r] = s;
      for (let c = 0; c < cols; c++) y[base + c] = x[base + c] * s * weight[c];
    }
    return { y, rstd };
  }

  rmsnormBackward(dy: Float32Array, x: Float32Array, weight: Float32Array, rstd: Float32Array, rows: number, cols: number, dWeight: Float32Array) {
    const dx = new Float32Array(rows * cols); // [rows, cols]
    const dw = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const s = rstd[r];
      // y = x·s·w, s = (mean x² + eps)^-1/2 → dx = s·(dy·w) − x·s³·mean(dy·w·x)
      let dot = 0;
      for (let c = 0; c < cols; c++) {
        dot += dy[base + c] * weight[c] * x[base + c];
        dw[c] += dy[base + c] * x[base + c] * s;
      }
      const k = (s * s * s * dot) / cols;
      for (let c = 0; c < cols; c++) dx[base + c] = s * dy[base + c] * weight[c] - x[base + c] * k;
    }
    for (let c = 0; c < cols; c++) dWeight[c] += dw[c];
    return dx;
  }

  private ropeTables = new Map<string, { cos: Float32Array; sin: Float32Array }>();

  private ropeTable(seqLen: number, dim: number, theta: number) {
    const key = `${seqLen}/${dim}/${theta}`;
    let t = this.ropeTables.get(key);
    if (!t) {
      const half = dim / 2;
      const cos = new Float32Array(seqLen * half); // [T, dim/2]
      const sin = new Float32Array(seqLen * half);
      for (let p = 0; p < seqLen; p++) {
        for (let i = 0; i < half; i++) {
          const angle = p / Math.pow(theta, (2 * i) / dim);
          cos[p * half + i] = Math.cos(angle);
          sin[p * half + i] = Math.sin(angle);
        }
      }
      t = { cos, sin };
      this.ropeTables.set(key, t);
    }
    return t;
  }

  rope(x: Float32Array, tokens: number, seqLen: number, heads: number, stride: number, offset: number, dim: number, theta: number, inverse: boolean): void {
    const { cos, sin } = this.ropeTable(seqLen, dim, theta);
    const half = dim / 2;
    const sign = inverse ? -1 : 1;
    for (let t = 0; t < tokens; t++) {
      const p = t % seqLen;
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * stride + offset;
        for (let i = 0; i < half; i++) {
          const c = cos[p * half + i];
          const s = sign * sin[p * half + i];
          const a = x[base + i];
          const b = x[base + i + half];
          x[base + i] = a * c - b * s;
          x[base + i + half] = b * c + a * s;
        }
      }
    }
  }

  /** Copy head h of sequence b out of x [B·T, H, D] into [T, D] (transposed: [D, T]). */
  private headSlice(x: Float32Array, s: AttentionShape, b: number, h: number, D: number, transposed: boolean): Float32Array {
    const T = s.seqLen;
    const out = new Float32Array(T * D);
    for (let t = 0; t < T; t++) {
      const src = ((b * T + t) * s.heads + h) * D;
      if (transposed) for (let d = 0; d < D; d++) out[d * T + t] = x[src + d];
      else out.set(x.subarray(src, src + D), t * D);
    }
    return out;
  }

  private headScatter(dst: Float32Array, src: Float32Array, s: AttentionShape, b: number, h: number, D: number): void {
    const T = s.seqLen;
    for (let t = 0; t < T; t++) dst.set(src.subarray(t * D, t * D + D), ((b * T + t) * s.heads + h) * D);
  }

  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShape) {
    const t0 = performance.now();
    const { batch: B, seqLen: T, heads: H, qkDim: Dk, vDim: Dv } = s;
    const out = new Float32Array(B * T * H * Dv); // [B·T, H·Dv]
    const probs = new Float32Array(B * H * T * T); // [B, H, T, T], zero above the diagonal
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const qh = this.headSlice(q, s, b, h, Dk, false); // [T, Dk]
        const kh = this.headSlice(k, s, b, h, Dk, false); // [T, Dk]
        const vt = this.headSlice(v, s, b, h, Dv, true); // [Dv, T]
        const scores = this.matmul(qh, kh, T, T, Dk); // [T, T]
        const p = probs.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T);
        for (let i = 0; i < T; i++) {
          const row = i * T;
          let max = -Infinity;
          for (let j = 0; j <= i; j++) {
            const z = scores[row + j] * s.scale;
            scores[row + j] = z;
            if (z > max) max = z;
          }
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            const e = Math.exp(scores[row + j] - max);
            p[row + j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j <= i; j++) p[row + j] *= inv;
        }
        const oh = this.matmul(p, vt, T, Dv, T); // [T, Dv]
        this.headScatter(out, oh, s, b, h, Dv);
      }
    }
    this.times.attentionMs += performance.now() - t0;
    return { out, probs };
  }

  attentionBackward(dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, s: AttentionShape) {
    const t0 = performance.now();
    const { batch: B, seqLen: T, heads: H, qkDim: Dk, vDim: Dv } = s;
    const dq = new Float32Array(q.length); // [B·T, H, Dk]
    const dk = new Float32Array(k.length); // [B·T, H, Dk]
    const dv = new Float32Array(v.length); // [B·T, H, Dv]
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const p = probs.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T); // [T, T]
        const doh = this.headSlice(dOut, s, b, h, Dv, false); // [T, Dv]
        const vh = this.headSlice(v, s, b, h, Dv, false); // [T, Dv]
        const dp = this.matmul(doh, vh, T, T, Dv); // [T, T] = dO · Vᵀ
        // dS = P ⊙ (dP − rowsum(P ⊙ dP)), times the softmax scale (folded in here).
        const ds = new Float32Array(T * T);
        for (let i = 0; i < T; i++) {
          const row = i * T;
          let dot = 0;
          for (let j = 0; j <= i; j++) dot += p[row + j] * dp[row + j];
          for (let j = 0; j <= i; j++) ds[row + j] = p[row + j] * (dp[row + j] - dot) * s.scale;
        }
        const kt = this.headSlice(k, s, b, h, Dk, true); // [Dk, T]
        const qt = this.headSlice(q, s, b, h, Dk, true); // [Dk, T]
        const dot = this.headSlice(dOut, s, b, h, Dv, true); // [Dv, T]
        this.headScatter(dq, this.matmul(ds, kt, T, Dk, T), s, b, h, Dk); // dQ = dS · K
        const dsT = this.transpose(ds, T, T);
        this.headScatter(dk, this.matmul(dsT, qt, T, Dk, T), s, b, h, Dk); // dK = dSᵀ · Q
        const pT = this.transpose(p, T, T);
        this.headScatter(dv, this.matmul(pT, dot, T, Dv, T), s, b, h, Dv); // dV = Pᵀ · dO
      }
    }
    this.times.attentionMs += performance.now() - t0;
    return { dq, dk, dv };
  }

  swigluForward(gate: Float32Array, up: Float32Array): Float32Array {
    const h = new Float32Array(gate.length);
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i];
      h[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
    return h;
  }

  swigluBackward(dh: Float32Array, gate: Float32Array, up: Float32Array) {
    const dGate = new Float32Array(gate.length);
    const dUp = new Float32Array(gate.length);
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i];
      const sig = 1 / (1 + Math.exp(-g));
      const silu = g * sig;
      dUp[i] = dh[i] * silu;
      dGate[i] = dh[i] * up[i] * sig * (1 + g * (1 - sig));
    }
    return { dGate, dUp };
  }

  crossEntropy(logits: Float32Array, targets: Int32Array, rows: number, vocab: number, wantGrad: boolean) {
    const dLogits = wantGrad ? new Float32Array(rows * vocab) : null; // [rows, vocab]
    let total = 0;
    for (let r = 0; r < rows; r++) {
      const base = r * vocab;
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) if (logits[base + j] > max) max = logits[base + j];
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[base + j] - max);
      const logZ = max + Math.log(sum);
      const target = targets[r];
      total += logZ - logits[base + target];
      if (dLogits) {
        const inv = 1 / rows;
        for (let j = 0; j < vocab; j++) dLogits[base + j] = Math.exp(logits[base + j] - logZ) * inv;
        dLogits[base + target] -= inv;
      }
    }
    return { loss: total / rows, dLogits };
  }

  embeddingForward(table: Float32Array, ids: Int32Array, cols: number): Float32Array {
    const out = new Float32Array(ids.length * cols);
    for (let i = 0; i < ids.length; i++) out.set(table.subarray(ids[i] * cols, ids[i] * cols + cols), i * cols);
    return out;
  }

  embeddingBackward(dOut: Float32Array, ids: Int32Array, cols: number, dTable: Float32Array): void {
    for (let i = 0; i < ids.length; i++) {
      const dst = ids[i] * cols;
      const src = i * cols;
      for (let c = 0; c < cols; c++) dTable[dst + c] += dOut[src + c];
    }
  }

  permuteRows(x: Float32Array, index: Int32Array, cols: number): Float32Array {
    const out = new Float32Array(index.length * cols);
    for (let r = 0; r < index.length; r++) out.set(x.subarray(index[r] * cols, index[r] * cols + cols), r * cols);
    return out;
  }

  unpermuteAdd(x: Float32Array, index: Int32Array, cols: number, out: Float32Array, scale?: Float32Array): void {
    for (let r = 0; r < index.length; r++) {
      const dst = index[r] * cols;
      const src = r * cols;
      const a = scale ? scale[r] : 1;
      for (let c = 0; c < cols; c++) out[dst + c] += a * x[src + c];
    }
  }

  adamwUpdate(param: Float32Array, grad: Float32Array, m: Moment, v: Moment, h: AdamWHyper): void {
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const decay = 1 - h.lr * h.weightDecay;
    const bf16 = m instanceof Uint16Array;
    const m16 = m as Uint16Array;
    const v16 = v as Uint16Array;
    const m32 = m as Float32Array;
    const v32 = v as Float32Array;
    const round = new Float32Array(2);
    const roundBits = new Uint32Array(round.buffer);
    for (let i = 0; i < param.length; i++) {
      const g = grad[i];
      let mi: number;
      let vi: number;
      if (bf16) {
        mi = h.beta1 * bf16ToF32(m16[i]) + (1 - h.beta1) * g;
        vi = h.beta2 * bf16ToF32(v16[i]) + (1 - h.beta2) * g * g;
        // Store rounded to BF16 (nearest even), and use the stored values so resume is exact.
        round[0] = mi;
        round[1] = vi;
        for (let j = 0; j < 2; j++) {
          const bits = roundBits[j];
          roundBits[j] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
        }
        m16[i] = roundBits[0] >>> 16;
        v16[i] = roundBits[1] >>> 16;
        mi = round[0];
        vi = round[1];
      } else {
        mi = m32[i] = h.beta1 * m32[i] + (1 - h.beta1) * g;
        vi = v32[i] = h.beta2 * v32[i] + (1 - h.beta2) * g * g;
      }
      param[i] = param[i] * decay - (h.lr * (mi / c1)) / (Math.sqrt(vi / c2) + h.eps);
    }
  }

  sumSquares(x: Float32Array): number {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return s;
  }

  scale(x: Float32Array, a: number): void {
    for (let i = 0; i < x.length; i++) x[i] *= a;
  }

  addInPlace(y: Float32Array, x: Float32Array): void {
    for (let i = 0; i < y.length; i++) y[i] += x[i];
  }
}
