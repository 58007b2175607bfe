// The CPU backend: tensors are @octet/numerics' HostTensors (typed arrays); GEMMs and FP8 quantization run on
// numerics' native kernels (AVX-512 microkernel, both cores), attention as per-head native GEMMs, the router on
// @octet/router (host), and the cheap elementwise and row kernels as plain loops. This is the oracle a device
// backend is checked against. Everything here is deterministic: the native GEMM splits work by output tile,
// never by K, so the same inputs give the same bits whatever the thread timing.

import {
  type DType,
  type DelayedScaler,
  type Fp8Format,
  HostTensor,
  type Quantized,
  type ScaleKind,
  type TensorHandle,
  matmulBf16,
  matmulF32,
  quantize,
  quantizeBoth,
  scaledMatmul,
} from "@octet/numerics";
import { cpuMtpKernels } from "@octet/mtp";
import { type DispatchPlan, type RouteResult, planDispatch, routeTokens, routeTokensBackward } from "@octet/router";
import type { Precision } from "../precision.js";
import type { AdamWHyper, AttentionShape, Backend, GroupedGemms, HostArray, QuantizedTensor, RouteOptions, Routing } from "./backend.js";
import { PerExpertGroupedGemms, mat } from "./grouped.js";

/** Time spent in kernels, for the benchmark's GEMM fraction. */
export interface KernelTimes {
  gemmMs: number;
  quantizeMs: number;
  attentionMs: number;
  gemmFlops: number;
}

// ---- the arrays behind the handles --------------------------------------------------------------------------------

function host(t: TensorHandle, what: string): HostTensor {
  return HostTensor.of(t, what);
}

function typed<A>(t: TensorHandle, dtype: DType, what: string): A {
  const h = HostTensor.of(t, what);
  if (h.dtype !== dtype) throw new TypeError(`${what}: expected a ${dtype} tensor, got ${h.dtype} [${h.shape.join(", ")}]`);
  return h.data as A;
}

const f32 = (t: TensorHandle, what: string) => typed<Float32Array>(t, "F32", what);
const i32 = (t: TensorHandle, what: string) => typed<Int32Array>(t, "I32", what);

/** [rows, cols] of a 2-D tensor, or a RangeError naming `what`. */
function sizeOf(t: TensorHandle): number {
  let n = 1;
  for (const d of t.shape) n *= d;
  return n;
}

function sameSize(what: string, a: TensorHandle, b: TensorHandle): void {
  if (sizeOf(a) !== sizeOf(b)) throw new RangeError(`${what}: [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ in size`);
}

const F32 = (shape: readonly number[], data: Float32Array) => new HostTensor("F32", shape, data);

const FP8_DTYPE: Record<Fp8Format, DType> = { e4m3: "F8_E4M3", e5m2: "F8_E5M2" };

/** numerics' Quantized as the backend's tensor pair (no copy). */
function quantizedTensor(q: Quantized): QuantizedTensor {
  const [rows, cols] = q.shape;
  const [br, bc] = q.block;
  return {
    codes: new HostTensor(FP8_DTYPE[q.format], [rows, cols], q.data),
    scales: F32([Math.ceil(rows / br), Math.ceil(cols / bc)], q.scales),
    shape: [rows, cols],
    block: [br, bc],
    format: q.format,
  };
}

/** The backend's tensor pair as numerics' Quantized (no copy). */
function quantizedArrays(q: QuantizedTensor, what: string): Quantized {
  return {
    data: typed<Uint8Array>(q.codes, FP8_DTYPE[q.format], `${what} codes`),
    scales: f32(q.scales, `${what} scales`),
    shape: [q.shape[0], q.shape[1]],
    block: [q.block[0], q.block[1]],
    format: q.format,
  };
}

// Transposes in 32x32 tiles, which keep both sides in cache. One monomorphic loop per element type (a shared
// loop over three array kinds runs slower in V8).
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

function transposeArray<A extends Float32Array | Uint16Array | Uint8Array>(x: A, rows: number, cols: number): A {
  if (x instanceof Float32Array) return transposeF32(x, rows, cols) as A;
  if (x instanceof Uint16Array) return transposeU16(x, rows, cols) as A;
  return transposeU8(x as Uint8Array, rows, cols) as A;
}

const BF16_VIEW = new Float32Array(1);
const BF16_BITS = new Uint32Array(BF16_VIEW.buffer);

function bf16ToF32(bits: number): number {
  BF16_BITS[0] = bits << 16;
  return BF16_VIEW[0];
}

/** The typed array each host dtype comes as, for fromHost's inference (BF16 and FP8 codes must be named). */
function inferDtype(data: HostArray): DType {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Uint32Array) return "U32";
  if (data instanceof Float64Array) return "F64";
  throw new TypeError(`fromHost: a ${data?.constructor?.name ?? typeof data} holds bit patterns or codes; name its dtype (BF16, F8_E4M3, U8, …)`);
}

// ---- routing ------------------------------------------------------------------------------------------------------

/** The router's host results behind the Routing tensors (the plan's arrays, not copied). */
class CpuRouting implements Routing {
  readonly tokens: number;
  readonly experts: number;
  readonly topK: number;
  readonly rows: number;
  readonly tokenOfRow: TensorHandle;
  readonly assignmentOfRow: TensorHandle;
  readonly combineWeights: TensorHandle;
  readonly expertCounts: TensorHandle;
  readonly expertOffsets: TensorHandle;

  constructor(readonly route: RouteResult, readonly plan: DispatchPlan, readonly options: RouteOptions) {
    this.tokens = plan.tokens;
    this.experts = plan.experts;
    this.topK = plan.topK;
    this.rows = plan.rows;
    this.tokenOfRow = new HostTensor("I32", [plan.rows], plan.tokenOfRow);
    this.assignmentOfRow = new HostTensor("I32", [plan.rows], plan.assignmentOfRow);
    this.combineWeights = F32([plan.rows], plan.combineWeights);
    this.expertCounts = new HostTensor("I32", [plan.experts], plan.expertCounts);
    this.expertOffsets = new HostTensor("I32", [plan.experts + 1], plan.expertOffsets);
  }
}

function cpuRouting(r: Routing, what: string): CpuRouting {
  if (!(r instanceof CpuRouting)) throw new TypeError(`${what}: the routing was not made by the CPU backend`);
  return r;
}

// ---- the backend --------------------------------------------------------------------------------------------------

export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly times: KernelTimes = { gemmMs: 0, quantizeMs: 0, attentionMs: 0, gemmFlops: 0 };
  readonly mtpKernels = cpuMtpKernels;

  resetTimes(): void {
    this.times.gemmMs = this.times.quantizeMs = this.times.attentionMs = this.times.gemmFlops = 0;
  }

  // ---- memory ----

  zeros(shape: readonly number[], dtype: DType = "F32"): TensorHandle {
    return new HostTensor(dtype, shape);
  }

  fromHost(data: HostArray, shape: readonly number[], dtype: DType = inferDtype(data)): TensorHandle {
    return new HostTensor(dtype, shape, data.slice() as never);
  }

  copyFromHost(dst: TensorHandle, data: HostArray): void {
    const d = host(dst, "copyFromHost: dst").data as HostArray;
    if (data?.constructor !== d.constructor) throw new TypeError(`copyFromHost: a ${dst.dtype} tensor takes a ${d.constructor.name}, got ${data?.constructor?.name ?? typeof data}`);
    if (data.length !== d.length) throw new RangeError(`copyFromHost: ${data.length} values for a tensor of ${d.length}`);
    d.set(data as never);
  }

  toHost(t: TensorHandle): HostArray {
    return host(t, "toHost").data as HostArray;
  }

  read(ts: readonly TensorHandle[]): number[][] {
    return ts.map((t, i) => Array.from(host(t, `read: tensor ${i}`).data as ArrayLike<number>));
  }

  rows(x: TensorHandle, start: number, count: number): TensorHandle {
    const h = host(x, "rows");
    const rows = h.shape[0];
    if (h.shape.length < 1 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
      throw new RangeError(`rows: rows ${start} .. ${start + count} are outside [${h.shape.join(", ")}]`);
    }
    const width = rows === 0 ? 0 : h.data.length / rows;
    return new HostTensor(h.dtype, [count, ...h.shape.slice(1)], h.data.subarray(start * width, (start + count) * width) as never);
  }

  zero(x: TensorHandle): void {
    host(x, "zero").data.fill(0 as never);
  }

  // ---- GEMMs and FP8 ----

  /** The native FP32 GEMM on arrays, timed: C [M,N] = a [M,K] · b [N,K]ᵀ. */
  private gemm(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float32Array {
    const t0 = performance.now();
    const c = matmulF32(a, b, M, N, K);
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * M * N * K;
    return c;
  }

  matmul(a: TensorHandle, b: TensorHandle): TensorHandle {
    const [M, K] = mat(a, "matmul: a");
    const [N, Kb] = mat(b, "matmul: b");
    if (K !== Kb) throw new RangeError(`matmul: a [${M}, ${K}] and b [${N}, ${Kb}] differ in K`);
    return F32([M, N], this.gemm(f32(a, "matmul: a"), f32(b, "matmul: b"), M, N, K));
  }

  matmulBf16(a: TensorHandle, b: TensorHandle): TensorHandle {
    const [M, K] = mat(a, "matmulBf16: a");
    const [N, Kb] = mat(b, "matmulBf16: b");
    if (K !== Kb) throw new RangeError(`matmulBf16: a [${M}, ${K}] and b [${N}, ${Kb}] differ in K`);
    const t0 = performance.now();
    const c = matmulBf16(typed<Uint16Array>(a, "BF16", "matmulBf16: a"), typed<Uint16Array>(b, "BF16", "matmulBf16: b"), M, N, K);
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * M * N * K;
    return F32([M, N], c);
  }

  toBf16(x: TensorHandle): TensorHandle {
    // encodeBf16 of @octet/numerics bit for bit (round to nearest even, NaN → 0xFFFF), on the integer view.
    const d = f32(x, "toBf16");
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const out = new Uint16Array(d.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? 0xffff : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
    return new HostTensor("BF16", x.shape, out);
  }

  quantize(x: TensorHandle, block: readonly [number, number], format: Fp8Format, scale: ScaleKind): QuantizedTensor {
    const [rows, cols] = mat(x, "quantize: x");
    const t0 = performance.now();
    const q = quantize(f32(x, "quantize: x"), [rows, cols], { block: [block[0], block[1]], format, scale });
    this.times.quantizeMs += performance.now() - t0;
    return quantizedTensor(q);
  }

  quantizeDelayed(x: TensorHandle, scaler: DelayedScaler): QuantizedTensor {
    const [rows, cols] = mat(x, "quantizeDelayed: x");
    const t0 = performance.now();
    const { data, scales, shape, block, format } = scaler.quantize(f32(x, "quantizeDelayed: x"), [rows, cols]);
    this.times.quantizeMs += performance.now() - t0;
    return quantizedTensor({ data, scales, shape, block, format });
  }

  scaledMatmul(a: QuantizedTensor, b: QuantizedTensor, promoteEvery: number): TensorHandle {
    const t0 = performance.now();
    const c = scaledMatmul(quantizedArrays(a, "scaledMatmul: a"), quantizedArrays(b, "scaledMatmul: b"), { promoteEvery });
    this.times.gemmMs += performance.now() - t0;
    this.times.gemmFlops += 2 * a.shape[0] * b.shape[0] * a.shape[1];
    return F32([a.shape[0], b.shape[0]], c);
  }

  quantizeTiles(x: TensorHandle, format: Fp8Format, scale: ScaleKind): { q: QuantizedTensor; qT: QuantizedTensor } {
    const [rows, cols] = mat(x, "quantizeTiles: x");
    const t0 = performance.now();
    const { rowwise, colwise } = quantizeBoth(f32(x, "quantizeTiles: x"), [rows, cols], { format, scale });
    // colwise: [128,1] tiles of x = [1,128] tiles of xᵀ; transposing the bytes gives the GEMM's layout.
    const qT = this.transposeQuantized(quantizedTensor(colwise));
    this.times.quantizeMs += performance.now() - t0;
    return { q: quantizedTensor(rowwise), qT };
  }

  transposeQuantized(q: QuantizedTensor): QuantizedTensor {
    const { data, scales, shape: [rows, cols], block: [br, bc], format } = quantizedArrays(q, "transposeQuantized");
    const gr = Math.ceil(rows / br);
    const gc = Math.ceil(cols / bc);
    return quantizedTensor({
      data: transposeU8(data, rows, cols), // [cols, rows]
      scales: gr === 1 || gc === 1 ? scales.slice() : transposeF32(scales, gr, gc), // [gc, gr]
      shape: [cols, rows],
      block: [bc, br],
      format,
    });
  }

  transpose(x: TensorHandle): TensorHandle {
    const [rows, cols] = mat(x, "transpose");
    const h = host(x, "transpose");
    const d = h.data;
    if (!(d instanceof Float32Array || d instanceof Uint16Array || d instanceof Uint8Array)) throw new TypeError(`transpose: ${h.dtype} is not F32, BF16 or FP8`);
    return new HostTensor(h.dtype, [cols, rows], transposeArray(d, rows, cols) as never);
  }

  groupedGemms(precision: Precision, names: readonly string[]): GroupedGemms {
    return new PerExpertGroupedGemms({
      be: this,
      routing: cpuRouting,
      offsets: (r) => (r as CpuRouting).plan.expertOffsets,
      copyInto: (dst, src) => f32(dst, "groupedGemms").set(f32(src, "groupedGemms")),
    }, precision, names);
  }

  // ---- normalization, position, attention, activation, loss ----

  rmsnormForward(xt: TensorHandle, weight: TensorHandle, eps: number): { y: TensorHandle; rstd: TensorHandle } {
    const [rows, cols] = mat(xt, "rmsnormForward: x");
    const x = f32(xt, "rmsnormForward: x");
    const w = f32(weight, "rmsnormForward: weight");
    if (w.length !== cols) throw new RangeError(`rmsnormForward: weight has ${w.length} elements for ${cols} columns`);
    const y = new Float32Array(rows * cols); // [rows, cols]
    const rstd = new Float32Array(rows); // [rows]
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let ss = 0;
      for (let c = 0; c < cols; c++) ss += x[base + c] * x[base + c];
      const s = 1 / Math.sqrt(ss / cols + eps);
      rstd[r] = s;
      for (let c = 0; c < cols; c++) y[base + c] = x[base + c] * s * w[c];
    }
    return { y: F32([rows, cols], y), rstd: F32([rows], rstd) };
  }

  rmsnormBackward(dyt: TensorHandle, xt: TensorHandle, weight: TensorHandle, rstdt: TensorHandle, dWeight: TensorHandle): TensorHandle {
    const [rows, cols] = mat(xt, "rmsnormBackward: x");
    sameSize("rmsnormBackward: dy and x", dyt, xt);
    const [dy, x, w, rstd, dWt] = [
      f32(dyt, "rmsnormBackward: dy"), f32(xt, "rmsnormBackward: x"), f32(weight, "rmsnormBackward: weight"),
      f32(rstdt, "rmsnormBackward: rstd"), f32(dWeight, "rmsnormBackward: dWeight"),
    ];
    const dx = new Float32Array(rows * cols); // [rows, cols]
    const dw = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const s = rstd[r];
      // y = x·s·w, s = (mean x² + eps)^-1/2 → dx = s·(dy·w) − x·s³·mean(dy·w·x)
      let dot = 0;
      for (let c = 0; c < cols; c++) {
        dot += dy[base + c] * w[c] * x[base + c];
        dw[c] += dy[base + c] * x[base + c] * s;
      }
      const k = (s * s * s * dot) / cols;
      for (let c = 0; c < cols; c++) dx[base + c] = s * dy[base + c] * w[c] - x[base + c] * k;
    }
    for (let c = 0; c < cols; c++) dWt[c] += dw[c];
    return F32([rows, cols], dx);
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

  rope(xt: TensorHandle, seqLen: number, heads: number, stride: number, offset: number, dim: number, theta: number, inverse: boolean): void {
    const x = f32(xt, "rope: x");
    if (x.length % (heads * stride) !== 0 || offset + dim > stride) {
      throw new RangeError(`rope: [${xt.shape.join(", ")}] is not tokens × ${heads} heads × ${stride}, or columns ${offset} .. ${offset + dim} exceed a head`);
    }
    const tokens = x.length / (heads * stride);
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

  private checkAttention(what: string, s: AttentionShape, q: TensorHandle, k: TensorHandle, v: TensorHandle): void {
    const N = s.batch * s.seqLen;
    const want: [string, TensorHandle, number][] = [["q", q, s.qkDim], ["k", k, s.qkDim], ["v", v, s.vDim]];
    for (const [name, t, D] of want) {
      if (sizeOf(t) !== N * s.heads * D) throw new RangeError(`${what}: ${name} [${t.shape.join(", ")}] is not [B·T, H·${D}] = [${N}, ${s.heads * D}]`);
    }
  }

  attentionForward(qt: TensorHandle, kt: TensorHandle, vt: TensorHandle, s: AttentionShape): { out: TensorHandle; saved: TensorHandle } {
    this.checkAttention("attentionForward", s, qt, kt, vt);
    const [q, k, v] = [f32(qt, "attentionForward: q"), f32(kt, "attentionForward: k"), f32(vt, "attentionForward: v")];
    const t0 = performance.now();
    const { batch: B, seqLen: T, heads: H, qkDim: Dk, vDim: Dv } = s;
    const out = new Float32Array(B * T * H * Dv); // [B·T, H·Dv]
    const probs = new Float32Array(B * H * T * T); // [B, H, T, T], zero above the diagonal
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const qh = this.headSlice(q, s, b, h, Dk, false); // [T, Dk]
        const kh = this.headSlice(k, s, b, h, Dk, false); // [T, Dk]
        const vT = this.headSlice(v, s, b, h, Dv, true); // [Dv, T]
        const scores = this.gemm(qh, kh, T, T, Dk); // [T, T]
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
        const oh = this.gemm(p, vT, T, Dv, T); // [T, Dv]
        this.headScatter(out, oh, s, b, h, Dv);
      }
    }
    this.times.attentionMs += performance.now() - t0;
    return { out: F32([B * T, H * Dv], out), saved: F32([B, H, T, T], probs) };
  }

  attentionBackward(
    dOutT: TensorHandle, qt: TensorHandle, kt: TensorHandle, vt: TensorHandle, saved: TensorHandle, s: AttentionShape,
  ): { dq: TensorHandle; dk: TensorHandle; dv: TensorHandle } {
    this.checkAttention("attentionBackward", s, qt, kt, vt);
    sameSize("attentionBackward: dOut and v", dOutT, vt);
    const [dOut, q, k, v, probs] = [
      f32(dOutT, "attentionBackward: dOut"), f32(qt, "attentionBackward: q"), f32(kt, "attentionBackward: k"),
      f32(vt, "attentionBackward: v"), f32(saved, "attentionBackward: saved"),
    ];
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
        const dp = this.gemm(doh, vh, T, T, Dv); // [T, T] = dO · Vᵀ
        // dS = P ⊙ (dP − rowsum(P ⊙ dP)), times the softmax scale (folded in here).
        const ds = new Float32Array(T * T);
        for (let i = 0; i < T; i++) {
          const row = i * T;
          let dot = 0;
          for (let j = 0; j <= i; j++) dot += p[row + j] * dp[row + j];
          for (let j = 0; j <= i; j++) ds[row + j] = p[row + j] * (dp[row + j] - dot) * s.scale;
        }
        const kT = this.headSlice(k, s, b, h, Dk, true); // [Dk, T]
        const qT = this.headSlice(q, s, b, h, Dk, true); // [Dk, T]
        const dOT = this.headSlice(dOut, s, b, h, Dv, true); // [Dv, T]
        this.headScatter(dq, this.gemm(ds, kT, T, Dk, T), s, b, h, Dk); // dQ = dS · K
        const dsT = transposeF32(ds, T, T);
        this.headScatter(dk, this.gemm(dsT, qT, T, Dk, T), s, b, h, Dk); // dK = dSᵀ · Q
        const pT = transposeF32(p, T, T);
        this.headScatter(dv, this.gemm(pT, dOT, T, Dv, T), s, b, h, Dv); // dV = Pᵀ · dO
      }
    }
    this.times.attentionMs += performance.now() - t0;
    return { dq: F32(qt.shape, dq), dk: F32(kt.shape, dk), dv: F32(vt.shape, dv) };
  }

  swigluForward(gatet: TensorHandle, upt: TensorHandle): TensorHandle {
    sameSize("swigluForward: gate and up", gatet, upt);
    const [gate, up] = [f32(gatet, "swigluForward: gate"), f32(upt, "swigluForward: up")];
    const h = new Float32Array(gate.length);
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i];
      h[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
    return F32(gatet.shape, h);
  }

  swigluBackward(dht: TensorHandle, gatet: TensorHandle, upt: TensorHandle): { dGate: TensorHandle; dUp: TensorHandle } {
    sameSize("swigluBackward: gate and up", gatet, upt);
    sameSize("swigluBackward: dh and gate", dht, gatet);
    const [dh, gate, up] = [f32(dht, "swigluBackward: dh"), f32(gatet, "swigluBackward: gate"), f32(upt, "swigluBackward: up")];
    const dGate = new Float32Array(gate.length);
    const dUp = new Float32Array(gate.length);
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i];
      const sig = 1 / (1 + Math.exp(-g));
      const silu = g * sig;
      dUp[i] = dh[i] * silu;
      dGate[i] = dh[i] * up[i] * sig * (1 + g * (1 - sig));
    }
    return { dGate: F32(gatet.shape, dGate), dUp: F32(gatet.shape, dUp) };
  }

  crossEntropy(logitst: TensorHandle, targetst: TensorHandle, wantGrad: boolean): { loss: TensorHandle; dLogits: TensorHandle | null } {
    const [rows, vocab] = mat(logitst, "crossEntropy: logits");
    const logits = f32(logitst, "crossEntropy: logits");
    const targets = i32(targetst, "crossEntropy: targets");
    if (targets.length !== rows) throw new RangeError(`crossEntropy: ${targets.length} targets for ${rows} rows`);
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
    return { loss: new HostTensor("F64", [1], Float64Array.of(total / rows)), dLogits: dLogits && F32([rows, vocab], dLogits) };
  }

  // ---- rows ----

  embeddingForward(tablet: TensorHandle, idst: TensorHandle): TensorHandle {
    const [, cols] = mat(tablet, "embeddingForward: table");
    const table = f32(tablet, "embeddingForward: table");
    const ids = i32(idst, "embeddingForward: ids");
    const out = new Float32Array(ids.length * cols);
    for (let i = 0; i < ids.length; i++) out.set(table.subarray(ids[i] * cols, ids[i] * cols + cols), i * cols);
    return F32([ids.length, cols], out);
  }

  embeddingBackward(dOutt: TensorHandle, idst: TensorHandle, dTablet: TensorHandle): void {
    const [, cols] = mat(dTablet, "embeddingBackward: dTable");
    const [dOut, ids, dTable] = [f32(dOutt, "embeddingBackward: dOut"), i32(idst, "embeddingBackward: ids"), f32(dTablet, "embeddingBackward: dTable")];
    if (dOut.length !== ids.length * cols) throw new RangeError(`embeddingBackward: dOut [${dOutt.shape.join(", ")}] is not [${ids.length}, ${cols}]`);
    for (let i = 0; i < ids.length; i++) {
      const dst = ids[i] * cols;
      const src = i * cols;
      for (let c = 0; c < cols; c++) dTable[dst + c] += dOut[src + c];
    }
  }

  concatColumns(at: TensorHandle, bt: TensorHandle): TensorHandle {
    const [rows, da] = mat(at, "concatColumns: a");
    const [rowsB, db] = mat(bt, "concatColumns: b");
    if (rows !== rowsB) throw new RangeError(`concatColumns: ${rows} rows and ${rowsB} rows`);
    const [a, b] = [f32(at, "concatColumns: a"), f32(bt, "concatColumns: b")];
    const w = da + db;
    const out = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) {
      out.set(a.subarray(r * da, (r + 1) * da), r * w);
      out.set(b.subarray(r * db, (r + 1) * db), r * w + da);
    }
    return F32([rows, w], out);
  }

  splitColumns(xt: TensorHandle, left: number): [TensorHandle, TensorHandle] {
    const [rows, w] = mat(xt, "splitColumns: x");
    if (!Number.isInteger(left) || left < 0 || left > w) throw new RangeError(`splitColumns: left ${left} is outside 0..${w}`);
    const x = f32(xt, "splitColumns: x");
    const right = w - left;
    const a = new Float32Array(rows * left);
    const b = new Float32Array(rows * right);
    for (let r = 0; r < rows; r++) {
      a.set(x.subarray(r * w, r * w + left), r * left);
      b.set(x.subarray(r * w + left, (r + 1) * w), r * right);
    }
    return [F32([rows, left], a), F32([rows, right], b)];
  }

  mlaHeads(kvt: TensorHandle, krt: TensorHandle, H: number, dn: number, dv: number): { k: TensorHandle; v: TensorHandle } {
    const [N, kvCols] = mat(kvt, "mlaHeads: kv");
    const [Nr, dr] = mat(krt, "mlaHeads: kr");
    if (kvCols !== H * (dn + dv) || Nr !== N) throw new RangeError(`mlaHeads: kv [${N}, ${kvCols}] and kr [${Nr}, ${dr}] do not fit ${H} heads of [k_nope ${dn} | v ${dv}]`);
    const [kv, kr] = [f32(kvt, "mlaHeads: kv"), f32(krt, "mlaHeads: kr")];
    const dqk = dn + dr;
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
    return { k: F32([N, H * dqk], k), v: F32([N, H * dv], v) };
  }

  mlaHeadsBackward(dkt: TensorHandle, dvt: TensorHandle, H: number, dn: number, dr: number): { dkv: TensorHandle; dkr: TensorHandle } {
    const [N, kCols] = mat(dkt, "mlaHeadsBackward: dk");
    const [Nv, vCols] = mat(dvt, "mlaHeadsBackward: dv");
    const dqk = dn + dr;
    if (kCols !== H * dqk || Nv !== N || vCols % H !== 0) throw new RangeError(`mlaHeadsBackward: dk [${N}, ${kCols}] and dv [${Nv}, ${vCols}] do not fit ${H} heads of [k_nope ${dn} | k_rope ${dr}]`);
    const [dk, dV] = [f32(dkt, "mlaHeadsBackward: dk"), f32(dvt, "mlaHeadsBackward: dv")];
    const dv = vCols / H;
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
    return { dkv: F32([N, H * (dn + dv)], dkv), dkr: F32([N, dr], dkr) };
  }

  route(logitst: TensorHandle, bias: TensorHandle, o: RouteOptions): Routing {
    const [tokens, experts] = mat(logitst, "route: logits");
    if (experts !== o.experts) throw new RangeError(`route: logits have ${experts} columns for ${o.experts} experts`);
    // The router refuses NaN logits (a library's bad input). Inside a training step they come from a NaN
    // activation, and the step must run on to its NaN loss so that the trainer skips it and names the tensor: as
    // the CUDA gate, a NaN logit ranks below every number, and a token that has one gets NaN weights.
    const logits = f32(logitst, "route: logits");
    const nanTokens = rowsWithNaN(logits, experts);
    const route = routeTokens(nanTokens.length ? logits.map((z) => (z !== z ? -Infinity : z)) : logits, {
      tokens, experts, topK: o.topK, nGroup: o.nGroup, topkGroup: o.topkGroup,
      bias: f32(bias, "route: bias"), normTopkProb: o.normTopkProb, routedScalingFactor: o.routedScalingFactor,
    });
    for (const t of nanTokens) route.weights.fill(Number.NaN, t * o.topK, (t + 1) * o.topK);
    const plan = planDispatch(route.indices, route.weights, { tokens, experts, topK: o.topK });
    return new CpuRouting(route, plan, o);
  }

  routeBackward(routing: Routing, gradWeights: TensorHandle): TensorHandle {
    const r = cpuRouting(routing, "routeBackward");
    const { tokens, experts, topK } = r;
    // NaN upstream gradients (a step on its way to being skipped, see route): NaN rows, not the router's refusal.
    const g = f32(gradWeights, "routeBackward: gradWeights");
    const nanTokens = rowsWithNaN(g, topK);
    const dLogits = routeTokensBackward(r.route, nanTokens.length ? g.map((x) => (x !== x ? 0 : x)) : g, {
      tokens, experts, topK, normTopkProb: r.options.normTopkProb, routedScalingFactor: r.options.routedScalingFactor,
    });
    for (const t of nanTokens) dLogits.fill(Number.NaN, t * experts, (t + 1) * experts);
    return F32([tokens, experts], dLogits);
  }

  permuteRows(xt: TensorHandle, indext: TensorHandle): TensorHandle {
    const [, cols] = mat(xt, "permuteRows: x");
    const [x, index] = [f32(xt, "permuteRows: x"), i32(indext, "permuteRows: index")];
    const out = new Float32Array(index.length * cols);
    for (let r = 0; r < index.length; r++) out.set(x.subarray(index[r] * cols, index[r] * cols + cols), r * cols);
    return F32([index.length, cols], out);
  }

  unpermuteAdd(xt: TensorHandle, indext: TensorHandle, outt: TensorHandle, scalet?: TensorHandle): void {
    const [, cols] = mat(outt, "unpermuteAdd: out");
    const [x, index, out] = [f32(xt, "unpermuteAdd: x"), i32(indext, "unpermuteAdd: index"), f32(outt, "unpermuteAdd: out")];
    const scale = scalet ? f32(scalet, "unpermuteAdd: scale") : null;
    if (x.length !== index.length * cols) throw new RangeError(`unpermuteAdd: x [${xt.shape.join(", ")}] is not [${index.length}, ${cols}]`);
    for (let r = 0; r < index.length; r++) {
      const dst = index[r] * cols;
      const src = r * cols;
      const a = scale ? scale[r] : 1;
      for (let c = 0; c < cols; c++) out[dst + c] += a * x[src + c];
    }
  }

  rowDots(at: TensorHandle, bt: TensorHandle, indext: TensorHandle, n: number): TensorHandle {
    const [rows, cols] = mat(at, "rowDots: a");
    sameSize("rowDots: a and b", at, bt);
    const [a, b, index] = [f32(at, "rowDots: a"), f32(bt, "rowDots: b"), i32(indext, "rowDots: index")];
    if (index.length !== rows) throw new RangeError(`rowDots: ${index.length} indices for ${rows} rows`);
    const out = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += a[r * cols + c] * b[r * cols + c];
      out[index[r]] = dot;
    }
    return F32([n], out);
  }

  scaleRows(xt: TensorHandle, wt: TensorHandle): void {
    const [rows, cols] = mat(xt, "scaleRows: x");
    const [x, w] = [f32(xt, "scaleRows: x"), f32(wt, "scaleRows: w")];
    if (w.length !== rows) throw new RangeError(`scaleRows: ${w.length} weights for ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const a = w[r];
      for (let c = 0; c < cols; c++) x[r * cols + c] *= a;
    }
  }

  // ---- optimizer and elementwise ----

  adamwUpdate(paramt: TensorHandle, gradt: TensorHandle, mt: TensorHandle, vt: TensorHandle, h: AdamWHyper): void {
    const [param, grad] = [f32(paramt, "adamwUpdate: param"), f32(gradt, "adamwUpdate: grad")];
    const bf16 = mt.dtype === "BF16";
    const m16 = bf16 ? typed<Uint16Array>(mt, "BF16", "adamwUpdate: m") : new Uint16Array(0);
    const v16 = bf16 ? typed<Uint16Array>(vt, "BF16", "adamwUpdate: v") : new Uint16Array(0);
    const m32 = bf16 ? new Float32Array(0) : f32(mt, "adamwUpdate: m");
    const v32 = bf16 ? new Float32Array(0) : f32(vt, "adamwUpdate: v");
    if (grad.length !== param.length || (bf16 ? m16 : m32).length !== param.length || (bf16 ? v16 : v32).length !== param.length) {
      throw new RangeError(`adamwUpdate: param [${paramt.shape.join(", ")}], grad [${gradt.shape.join(", ")}] and moments [${mt.shape.join(", ")}] differ in size`);
    }
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const decay = 1 - h.lr * h.weightDecay;
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

  gradNorm(xs: readonly TensorHandle[]): TensorHandle {
    // Σ x² per tensor in float64, then over the tensors in order.
    let ss = 0;
    for (const [i, t] of xs.entries()) {
      const x = f32(t, `gradNorm: tensor ${i}`);
      let s = 0;
      for (let j = 0; j < x.length; j++) s += x[j] * x[j];
      ss += s;
    }
    return new HostTensor("F64", [1], Float64Array.of(Math.sqrt(ss)));
  }

  clipByNorm(xs: readonly TensorHandle[], normt: TensorHandle, maxNorm: number): void {
    const norm = typed<Float64Array>(normt, "F64", "clipByNorm: norm")[0];
    if (maxNorm > 0 && norm > maxNorm) {
      const s = maxNorm / (norm + 1e-6);
      for (const x of xs) this.scale(x, s);
    }
  }

  scale(xt: TensorHandle, a: number): void {
    const x = f32(xt, "scale");
    for (let i = 0; i < x.length; i++) x[i] *= a;
  }

  addInPlace(yt: TensorHandle, xt: TensorHandle): void {
    sameSize("addInPlace", yt, xt);
    const [y, x] = [f32(yt, "addInPlace: y"), f32(xt, "addInPlace: x")];
    for (let i = 0; i < y.length; i++) y[i] += x[i];
  }
}

/** The rows of a [rows, cols] matrix that hold a NaN. */
function rowsWithNaN(x: Float32Array, cols: number): number[] {
  const rows: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== x[i]) {
      const r = Math.floor(i / cols);
      rows.push(r);
      i = (r + 1) * cols - 1;
    }
  }
  return rows;
}
