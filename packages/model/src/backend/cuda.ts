// The CUDA backend: every tensor of a step stays on the device (CudaTensor over numerics' stream-ordered pool).
// GEMMs go through @octet/numerics/cuda (cuBLASLt FP32 without TF32, BF16, block-scaled FP8 and its quantizers);
// everything else through the model's own kernels (packages/model/cuda, modelKernels()), which take raw device
// addresses and the process's one stream. Arithmetic follows CpuBackend (the specification); ops.h says which
// kernels are bit-exact with it. Host synchronizations are counted by kind (hostSyncs): read() is the step's
// one; the others are listed there (today: the grouped expert GEMMs' offsets, one per MoE layer and step).

import type { DType, DelayedScaler, Fp8Format, ScaleKind, TensorHandle } from "@octet/numerics";
import {
  type CudaAddon,
  DeviceQuantized,
  DeviceTensor,
  cuda,
  cudaStatus,
  deviceMemoryStats,
  deviceStream,
  dequantizeDevice,
  emptyDevice,
  matmulBf16Device,
  matmulF32Device,
  quantizeBothDevice,
  quantizeDevice,
  scaledMatmulDevice,
} from "@octet/numerics/cuda";
import type { MtpKernels } from "@octet/mtp";
import { type ModelKernels, modelKernels, modelKernelsUnavailable } from "../cuda/kernels.js";
import type { Precision } from "../precision.js";
import type { AdamWHyper, AttentionShape, Backend, GroupedGemms, HostArray, QuantizedTensor, RouteOptions, Routing } from "./backend.js";
import { DeviceGroupedGemms, type DeviceGroupedHost, deviceGroupedMode } from "./cuda-grouped.js";
import { PerExpertGroupedGemms, mat } from "./grouped.js";
import { CudaTensor, NUMERICS_DTYPE, elementBytes, elementCount, rowRange } from "./cuda-tensor.js";

export { CudaTensor } from "./cuda-tensor.js";

/** Why the CUDA backend cannot run here (no GPU, an addon not built), or null when it can. */
export function cudaBackendUnavailable(): string | null {
  const st = cudaStatus();
  if (!st.available) return `@octet/numerics' CUDA addon: ${st.reason}`;
  if (!st.cublasLt.available) return `cuBLASLt: ${st.cublasLt.reason}`;
  if (!modelKernels()) return `the model's kernels: ${modelKernelsUnavailable()}`;
  return null;
}

export interface CudaBackendOptions {
  /**
   * Attention precision: "fp32" (the fp32 recipe's) or "bf16" (BF16 operands, FP32 accumulation: the bf16 and
   * fp8 recipes', as DeepSeek-V3 keeps attention). Default: from the recipe of the first groupedGemms() call
   * (fp32 for fp32, else bf16), fp32 before one.
   */
  attention?: "fp32" | "bf16";
}

const HOST_ARRAY: Partial<Record<DType, new (n: number) => HostArray>> = {
  F32: Float32Array, BF16: Uint16Array, F8_E4M3: Uint8Array, F8_E5M2: Uint8Array, I32: Int32Array, U32: Uint32Array, F64: Float64Array, U8: Uint8Array,
};
const FP8_DTYPE: Record<Fp8Format, DType> = { e4m3: "F8_E4M3", e5m2: "F8_E5M2" };
const ATTN = { fp32: 0, bf16: 1 } as const;
const CE_NO_GRAD = 1;

function inferDtype(data: HostArray): DType {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Uint32Array) return "U32";
  if (data instanceof Float64Array) return "F64";
  throw new TypeError(`fromHost: a ${data?.constructor?.name ?? typeof data} holds bit patterns or codes; name its dtype (BF16, F8_E4M3, U8, …)`);
}

function dtypeIs(t: CudaTensor, dtype: DType, what: string): CudaTensor {
  if (t.dtype !== dtype) throw new TypeError(`${what}: expected a ${dtype} tensor, got ${t.dtype} [${t.shape.join(", ")}]`);
  return t;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** The attention forward's `saved`: lse [B, H, T] plus the FP32 output (the backward's D = rowsum(dO ∘ O)). */
class AttentionSaved extends CudaTensor {
  constructor(lse: CudaTensor, readonly out: CudaTensor) {
    super(lse.dtype, lse.shape, lse.buffer, lse.byteOffset);
  }
}

/** The gate's device results behind the Routing tensors, plus what its backward and the unpermute need. */
class CudaRouting implements Routing {
  constructor(
    readonly tokens: number,
    readonly experts: number,
    readonly topK: number,
    readonly options: RouteOptions,
    readonly indices: CudaTensor, // I32 [T, K]
    readonly scores: CudaTensor, // F32 [T, E]
    readonly tokenOfRow: CudaTensor,
    readonly assignmentOfRow: CudaTensor,
    readonly combineWeights: CudaTensor,
    readonly expertCounts: CudaTensor,
    readonly expertOffsets: CudaTensor,
    readonly rowOfAssignment: CudaTensor, // I32 [T·K]: the gather-form unpermute's map
  ) {}
  get rows(): number {
    return this.tokens * this.topK;
  }
}

export class CudaBackend implements Backend {
  readonly name = "cuda";
  /** Device → host synchronizations so far, by kind ("read", "expertOffsets", "toHost", …). */
  readonly hostSyncs = new Map<string, number>();
  /** Device copies made because a numerics function cannot take an offset view, or a GEMM needed padding. */
  readonly copies = { views: 0, gemmPadding: 0, fp8Dequantized: 0 };
  readonly mtpKernels: MtpKernels;
  private readonly addon: CudaAddon;
  private readonly k: ModelKernels;
  private readonly stream: bigint;
  private attention: "fp32" | "bf16" | undefined;
  private workspace: DeviceTensor | null = null;
  private readonly tokenOfRowOwner = new WeakMap<CudaTensor, CudaRouting>();
  private readonly hostOffsets = new WeakMap<CudaRouting, Int32Array>();
  private readonly sumSquaresOf = new WeakMap<CudaTensor, CudaTensor>();
  private readonly quantizedOf = new WeakMap<QuantizedTensor, DeviceQuantized>();
  private readonly hyper = new Map<string, CudaTensor>();
  private readonly segments = new Map<number, CudaTensor>();
  private bytesSinceCollect = 0;

  constructor(opts: CudaBackendOptions = {}) {
    if (opts.attention !== undefined && opts.attention !== "fp32" && opts.attention !== "bf16") {
      throw new RangeError(`CudaBackend: attention must be "fp32" or "bf16", got ${JSON.stringify(opts.attention)}`);
    }
    const why = cudaBackendUnavailable();
    if (why) throw new Error(`CudaBackend: no usable GPU here: ${why}`);
    this.addon = cuda();
    this.k = modelKernels()!;
    this.stream = deviceStream();
    this.attention = opts.attention;
    this.mtpKernels = this.makeMtpKernels();
  }

  /** Total host synchronizations so far. */
  get hostSyncCount(): number {
    let n = 0;
    for (const v of this.hostSyncs.values()) n += v;
    return n;
  }

  private sync(kind: string): void {
    this.hostSyncs.set(kind, (this.hostSyncs.get(kind) ?? 0) + 1);
  }

  // ---- device memory plumbing ----

  private alloc(dtype: DType, shape: readonly number[]): CudaTensor {
    const bytes = elementCount(shape, "alloc") * elementBytes(dtype, "alloc");
    this.bytesSinceCollect += bytes;
    return new CudaTensor(dtype, shape, bytes > 0 ? emptyDevice([bytes], "u8") : null, 0);
  }

  /** The device address of t's first element (null for an empty tensor). */
  private p(t: CudaTensor): bigint | null {
    return t.buffer ? this.addon.devicePointer(t.buffer.handle, t.byteOffset) : null;
  }

  private t(x: TensorHandle, what: string): CudaTensor {
    return CudaTensor.of(x, what);
  }

  private f32(x: TensorHandle, what: string): CudaTensor {
    return dtypeIs(this.t(x, what), "F32", what);
  }

  private i32(x: TensorHandle, what: string): CudaTensor {
    return dtypeIs(this.t(x, what), "I32", what);
  }

  /** Scratch memory for one kernel (reused: the stream orders its users). */
  private scratch(bytes: number): bigint | null {
    if (bytes <= 0) return null;
    if (!this.workspace || this.workspace.byteLength < bytes) this.workspace = emptyDevice([roundUp(bytes, 1 << 20)], "u8");
    return this.addon.devicePointer(this.workspace.handle, 0);
  }

  /** dst ← src, same size (device to device). */
  copyInto(dstH: TensorHandle, srcH: TensorHandle): void {
    const [dst, src] = [this.t(dstH, "copyInto: dst"), this.t(srcH, "copyInto: src")];
    if (dst.byteLength !== src.byteLength) throw new RangeError(`copyInto: [${src.shape.join(", ")}] ${src.dtype} does not fit [${dst.shape.join(", ")}] ${dst.dtype}`);
    if (dst.byteLength > 0) this.addon.copy(dst.buffer!.handle, src.buffer!.handle, dst.byteLength, dst.byteOffset, src.byteOffset);
  }

  /** A fresh contiguous copy of x at offset 0 (a new buffer). */
  private fresh(x: CudaTensor): CudaTensor {
    const y = this.alloc(x.dtype, x.shape);
    this.copyInto(y, x);
    return y;
  }

  /** x with a 16-byte aligned address (the attention and loss kernels' requirement): x itself, or a copy. */
  private aligned(x: CudaTensor): CudaTensor {
    if (x.byteOffset % 16 === 0) return x;
    this.copies.views++;
    return this.fresh(x);
  }

  /** numerics' DeviceTensor of x (shape as x's): an alias of x's buffer at offset 0, or a counted copy of a view. */
  private nt(x: CudaTensor, what: string): DeviceTensor {
    const dt = NUMERICS_DTYPE[x.dtype];
    if (!dt) throw new TypeError(`${what}: numerics takes no ${x.dtype} tensors`);
    if (x.size === 0) throw new RangeError(`${what}: an empty tensor [${x.shape.join(", ")}]`);
    let base = x;
    if (x.byteOffset !== 0) {
      this.copies.views++;
      base = this.fresh(x);
    }
    return new DeviceTensor(base.buffer!.handle, x.shape, dt);
  }

  /** A CudaTensor over a numerics DeviceTensor (its whole buffer). */
  private wrap(d: DeviceTensor, dtype: DType, shape: readonly number[] = d.shape): CudaTensor {
    this.bytesSinceCollect += d.byteLength;
    return new CudaTensor(dtype, shape, d, 0);
  }

  // ---- memory ----

  zeros(shape: readonly number[], dtype: DType = "F32"): TensorHandle {
    const t = this.alloc(dtype, shape);
    if (t.buffer) this.addon.memset(t.buffer.handle, 0, t.byteLength, 0);
    return t;
  }

  fromHost(data: HostArray, shape: readonly number[], dtype: DType = inferDtype(data)): TensorHandle {
    const t = this.alloc(dtype, shape);
    this.copyFromHost(t, data);
    return t;
  }

  copyFromHost(dstH: TensorHandle, data: HostArray): void {
    const dst = this.t(dstH, "copyFromHost: dst");
    const want = HOST_ARRAY[dst.dtype]!;
    if (data?.constructor !== want) throw new TypeError(`copyFromHost: a ${dst.dtype} tensor takes a ${want.name}, got ${data?.constructor?.name ?? typeof data}`);
    if (data.length !== dst.size) throw new RangeError(`copyFromHost: ${data.length} values for a tensor of ${dst.size}`);
    if (dst.size > 0) this.addon.upload(dst.buffer!.handle, data as never, dst.byteOffset);
  }

  toHost(x: TensorHandle): HostArray {
    const t = this.t(x, "toHost");
    const out = new (HOST_ARRAY[t.dtype]!)(t.size);
    if (t.size > 0) {
      this.sync("toHost");
      this.addon.download(t.buffer!.handle, out as never, t.byteOffset);
    }
    return out;
  }

  read(ts: readonly TensorHandle[]): number[][] {
    this.sync("read");
    const out = ts.map((x, i) => {
      const t = this.t(x, `read: tensor ${i}`);
      const a = new (HOST_ARRAY[t.dtype]!)(t.size);
      if (t.size > 0) this.addon.download(t.buffer!.handle, a as never, t.byteOffset);
      return Array.from(a as ArrayLike<number>);
    });
    this.collectIfNeeded();
    return out;
  }

  /**
   * Device buffers are freed by the garbage collector's finalizers, which JS heap pressure alone schedules rarely
   * (a handle is small); after many bytes of device tensors, ask for a collection at the step's read.
   */
  private collectIfNeeded(): void {
    if (this.bytesSinceCollect < 2 ** 31) return;
    this.bytesSinceCollect = 0;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) gc();
  }

  rows(x: TensorHandle, start: number, count: number): TensorHandle {
    const t = this.t(x, "rows");
    const r = rowRange(t.shape, t.dtype, t.byteOffset, start, count);
    return new CudaTensor(t.dtype, r.shape, r.byteLength > 0 ? t.buffer : null, r.byteLength > 0 ? r.byteOffset : 0);
  }

  zero(x: TensorHandle): void {
    const t = this.t(x, "zero");
    if (t.size > 0) this.addon.memset(t.buffer!.handle, 0, t.byteLength, t.byteOffset);
  }

  // ---- GEMMs and FP8 ----

  /**
   * C [M,N] = a · bᵀ through cuBLASLt (fp32 or bf16 operands), padding K and N with zeros where cuBLASLt needs
   * 16-byte aligned rows (zeros add nothing to the sums), then dropping the padded columns of C.
   */
  private gemm(kind: "F32" | "BF16", aH: TensorHandle, bH: TensorHandle, what: string): CudaTensor {
    const [a, b] = [dtypeIs(this.t(aH, `${what}: a`), kind, `${what}: a`), dtypeIs(this.t(bH, `${what}: b`), kind, `${what}: b`)];
    const [M, K] = mat(a, `${what}: a`);
    const [N, Kb] = mat(b, `${what}: b`);
    if (K !== Kb) throw new RangeError(`${what}: a [${M}, ${K}] and b [${N}, ${Kb}] differ in K`);
    if (M === 0 || N === 0) return this.alloc("F32", [M, N]);
    if (K === 0) return this.zeros([M, N]) as CudaTensor;
    const elt = kind === "F32" ? 4 : 2;
    const Kp = roundUp(K, 16 / elt);
    const Np = roundUp(N, 4);
    const pad = (x: CudaTensor, rows: number, rowsPadded: number): CudaTensor => {
      if (Kp === K && rowsPadded === rows) return x;
      this.copies.gemmPadding++;
      const y = this.zeros([rowsPadded, Kp], kind) as CudaTensor;
      this.addon.copy2d(y.buffer!.handle, 0, Kp * elt, x.buffer!.handle, x.byteOffset, K * elt, K * elt, rows);
      return y;
    };
    const ap = pad(a, M, M);
    const bp = pad(b, N, Np);
    const c = kind === "F32"
      ? matmulF32Device(this.nt(ap, what), this.nt(bp, what))
      : matmulBf16Device(this.nt(ap, what), this.nt(bp, what), { out: "fp32" });
    const cp = this.wrap(c, "F32", [M, Np]);
    if (Np === N) return cp;
    const out = this.alloc("F32", [M, N]);
    this.addon.copy2d(out.buffer!.handle, 0, N * 4, cp.buffer!.handle, 0, Np * 4, N * 4, M);
    return out;
  }

  matmul(a: TensorHandle, b: TensorHandle): TensorHandle {
    return this.gemm("F32", a, b, "matmul");
  }

  matmulBf16(a: TensorHandle, b: TensorHandle): TensorHandle {
    return this.gemm("BF16", a, b, "matmulBf16");
  }

  toBf16(x: TensorHandle): TensorHandle {
    const t = this.f32(x, "toBf16");
    const y = this.alloc("BF16", t.shape);
    if (t.size > 0) this.k.f32ToBf16(this.p(t), this.p(y), t.size, this.stream);
    return y;
  }

  private quantizedTensor(q: DeviceQuantized): QuantizedTensor {
    const [rows, cols] = q.shape;
    const qt: QuantizedTensor = {
      codes: this.wrap(q.data, FP8_DTYPE[q.format], [rows, cols]),
      scales: this.wrap(q.scales, "F32"),
      shape: [rows, cols],
      block: [q.block[0], q.block[1]],
      format: q.format,
    };
    this.quantizedOf.set(qt, q);
    return qt;
  }

  /** numerics' DeviceQuantized of a backend pair (the one it came from, or aliases / copies of its tensors). */
  private deviceQuantized(q: QuantizedTensor, what: string): DeviceQuantized {
    const known = this.quantizedOf.get(q);
    if (known) return known;
    const codes = dtypeIs(this.t(q.codes, `${what} codes`), FP8_DTYPE[q.format], `${what} codes`);
    const scales = this.f32(q.scales, `${what} scales`);
    const dq = new DeviceQuantized(this.nt(codes, what), this.nt(scales, what), [q.shape[0], q.shape[1]], [q.block[0], q.block[1]], q.format);
    this.quantizedOf.set(q, dq);
    return dq;
  }

  quantize(x: TensorHandle, block: readonly [number, number], format: Fp8Format, scale: ScaleKind): QuantizedTensor {
    const t = this.f32(x, "quantize: x");
    mat(t, "quantize: x");
    // "unchecked": no wait for the device; a NaN/Inf input becomes NaN codes and reaches the step's loss.
    return this.quantizedTensor(quantizeDevice(this.nt(t, "quantize"), { block: [block[0], block[1]], format, scale, nonFinite: "unchecked" }));
  }

  quantizeDelayed(x: TensorHandle, scaler: DelayedScaler): QuantizedTensor {
    // The amax history lives on the host (DelayedScaler): x comes to the host, counted.
    const [rows, cols] = mat(x, "quantizeDelayed: x");
    const host = this.toHost(this.f32(x, "quantizeDelayed: x")) as Float32Array;
    this.sync("quantizeDelayed");
    const q = scaler.quantize(host, [rows, cols]);
    const [gr, gc] = [Math.ceil(rows / q.block[0]), Math.ceil(cols / q.block[1])];
    return {
      codes: this.fromHost(q.data, [rows, cols], FP8_DTYPE[q.format]),
      scales: this.fromHost(q.scales, [gr, gc], "F32"),
      shape: [rows, cols], block: [q.block[0], q.block[1]], format: q.format,
    };
  }

  scaledMatmul(a: QuantizedTensor, b: QuantizedTensor, promoteEvery: number): TensorHandle {
    const [M, K] = a.shape;
    const [N, Kb] = b.shape;
    if (K !== Kb) throw new RangeError(`scaledMatmul: a [${M}, ${K}] and b [${N}, ${Kb}] differ in K`);
    // numerics' FP8 GEMMs: a in [1,128] tiles, b in [128,128] blocks, K a multiple of 128, promotion every 128
    // (DeepSeek-V3's Fprop and Dgrad). Other operands (Wgrad's two tiled operands, K = 64 or 96 at tiny) are
    // dequantized exactly to FP32 (codes · scale) and multiplied in FP32: the same products, rounded differently.
    const native = a.block[0] === 1 && a.block[1] === 128 && b.block[0] === 128 && b.block[1] === 128 && K % 128 === 0 && promoteEvery === 128;
    if (native) {
      const c = scaledMatmulDevice(this.deviceQuantized(a, "scaledMatmul: a"), this.deviceQuantized(b, "scaledMatmul: b"), { out: "fp32" });
      return this.wrap(c, "F32", [M, N]);
    }
    this.copies.fp8Dequantized++;
    const da = this.wrap(dequantizeDevice(this.deviceQuantized(a, "scaledMatmul: a"), { out: "fp32" }), "F32", [M, K]);
    const db = this.wrap(dequantizeDevice(this.deviceQuantized(b, "scaledMatmul: b"), { out: "fp32" }), "F32", [N, K]);
    return this.gemm("F32", da, db, "scaledMatmul");
  }

  quantizeTiles(x: TensorHandle, format: Fp8Format, scale: ScaleKind): { q: QuantizedTensor; qT: QuantizedTensor } {
    const t = this.f32(x, "quantizeTiles: x");
    mat(t, "quantizeTiles: x");
    const { rowwise, transposed } = quantizeBothDevice(this.nt(t, "quantizeTiles"), { format, scale, nonFinite: "unchecked" });
    return { q: this.quantizedTensor(rowwise), qT: this.quantizedTensor(transposed) };
  }

  transposeQuantized(q: QuantizedTensor): QuantizedTensor {
    const [rows, cols] = q.shape;
    const [br, bc] = q.block;
    const [gr, gc] = [Math.ceil(rows / br), Math.ceil(cols / bc)];
    const scales = this.f32(q.scales, "transposeQuantized: scales");
    return {
      codes: this.transpose(q.codes),
      scales: gr === 1 || gc === 1 ? this.reshape(this.fresh(scales), [gc, gr]) : this.transpose(scales),
      shape: [cols, rows],
      block: [bc, br],
      format: q.format,
    };
  }

  private reshape(t: CudaTensor, shape: readonly number[]): CudaTensor {
    return new CudaTensor(t.dtype, shape, t.buffer, t.byteOffset);
  }

  transpose(x: TensorHandle): TensorHandle {
    const t = this.t(x, "transpose");
    const [rows, cols] = mat(t, "transpose");
    if (!["F32", "BF16", "F8_E4M3", "F8_E5M2"].includes(t.dtype)) throw new TypeError(`transpose: ${t.dtype} is not F32, BF16 or FP8`);
    const y = this.alloc(t.dtype, [cols, rows]);
    if (t.size > 0) this.addon.transpose(t.buffer!.handle, t.byteOffset, y.buffer!.handle, 0, rows, cols, elementBytes(t.dtype, "transpose"));
    return y;
  }

  groupedGemms(precision: Precision, names: readonly string[]): GroupedGemms {
    this.attention ??= precision.name === "fp32" ? "fp32" : "bf16";
    const mode = process.env.OCTET_GROUPED_GEMMS === "per-expert" ? null : deviceGroupedMode(precision);
    if (mode) {
      // One grouped launch per GEMM with the offsets on the device; weights whose FP8 blocks would straddle two
      // experts go through the per-expert loop instead (decided per call from the weights' shape).
      const device = new DeviceGroupedGemms(this.deviceGroupedHost(), mode, names.length);
      const perExpert = this.perExpertGroupedGemms(precision, names);
      let last: GroupedGemms = device;
      const pick = (w: TensorHandle) => (last = DeviceGroupedGemms.takes(mode, names.length, w) ? device : perExpert);
      return {
        canRecompute: device.canRecompute && perExpert.canRecompute,
        fprop: (x, w, r, save) => pick(w).fprop(x, w, r, save),
        saveInput: (x, r) => last.saveInput(x, r),
        backward: (dy, w, grad) => pick(w).backward(dy, w, grad),
        exportState: (e) => perExpert.exportState(e),
        importState: (e, s) => perExpert.importState(e, s),
      };
    }
    return this.perExpertGroupedGemms(precision, names);
  }

  private deviceGroupedHost(): DeviceGroupedHost {
    return {
      k: this.k,
      stream: this.stream,
      p: (t) => this.p(t),
      alloc: (shape) => this.alloc("F32", shape),
      f32: (x, what) => this.f32(x, what),
      offsets: (r, what) => this.routingOf(r, what).expertOffsets,
      roundBf16: (x) => {
        const b = this.toBf16(x) as CudaTensor;
        const y = this.alloc("F32", x.shape);
        if (x.size > 0) this.k.bf16ToF32(this.p(b), this.p(y), x.size, this.stream);
        return y;
      },
      fakeQuant: (x, block, format, scale) => {
        const q = quantizeDevice(this.nt(x, "fakeQuant"), { block: [block[0], block[1]], format, scale, nonFinite: "unchecked" });
        return this.wrap(dequantizeDevice(q, { out: "fp32" }), "F32", x.shape);
      },
    };
  }

  private perExpertGroupedGemms(precision: Precision, names: readonly string[]): GroupedGemms {
    return new PerExpertGroupedGemms({
      be: this,
      routing: (r, what) => this.routingOf(r, what),
      offsets: (r) => this.expertOffsetsOnHost(r as CudaRouting),
      copyInto: (dst, src) => this.copyInto(dst, src),
    }, precision, names);
  }

  // ---- normalization, position, attention, activation, loss ----

  rmsnormForward(xH: TensorHandle, weightH: TensorHandle, eps: number): { y: TensorHandle; rstd: TensorHandle } {
    const x = this.f32(xH, "rmsnormForward: x");
    const [rows, cols] = mat(x, "rmsnormForward: x");
    const w = this.f32(weightH, "rmsnormForward: weight");
    if (w.size !== cols) throw new RangeError(`rmsnormForward: weight has ${w.size} elements for ${cols} columns`);
    const y = this.alloc("F32", [rows, cols]);
    const rstd = this.alloc("F32", [rows]);
    if (rows > 0) this.k.rmsnormForward(this.p(x), this.p(w), this.p(y), this.p(rstd), rows, cols, eps, this.stream);
    return { y, rstd };
  }

  rmsnormBackward(dyH: TensorHandle, xH: TensorHandle, weightH: TensorHandle, rstdH: TensorHandle, dWeightH: TensorHandle): TensorHandle {
    const x = this.f32(xH, "rmsnormBackward: x");
    const [rows, cols] = mat(x, "rmsnormBackward: x");
    const [dy, w, rstd, dW] = [this.f32(dyH, "rmsnormBackward: dy"), this.f32(weightH, "rmsnormBackward: weight"), this.f32(rstdH, "rmsnormBackward: rstd"), this.f32(dWeightH, "rmsnormBackward: dWeight")];
    if (dy.size !== x.size || w.size !== cols || rstd.size !== rows || dW.size !== cols) {
      throw new RangeError(`rmsnormBackward: dy [${dy.shape.join(", ")}], x [${rows}, ${cols}], weight [${w.shape.join(", ")}], rstd [${rstd.shape.join(", ")}], dWeight [${dW.shape.join(", ")}] do not fit`);
    }
    const dx = this.alloc("F32", [rows, cols]);
    if (rows === 0) return dx;
    const wsBytes = this.k.rmsnormBackwardWorkspaceBytes(rows, cols);
    this.k.rmsnormBackward(this.p(dy), this.p(x), this.p(w), this.p(rstd), this.p(dx), this.p(dW), rows, cols, this.scratch(wsBytes), wsBytes, this.stream);
    return dx;
  }

  rope(xH: TensorHandle, seqLen: number, heads: number, stride: number, offset: number, dim: number, theta: number, inverse: boolean): void {
    const x = this.f32(xH, "rope: x");
    if (x.size % (heads * stride) !== 0 || offset + dim > stride) {
      throw new RangeError(`rope: [${x.shape.join(", ")}] is not tokens × ${heads} heads × ${stride}, or columns ${offset} .. ${offset + dim} exceed a head`);
    }
    const tokens = x.size / (heads * stride);
    if (tokens > 0) this.k.rope(this.p(x), tokens, seqLen, heads, stride, offset, dim, theta, inverse ? 1 : 0, this.stream);
  }

  private attentionPrecision(): "fp32" | "bf16" {
    return this.attention ?? "fp32";
  }

  /** q, k, v (or dOut) in the attention precision's input type, 16-byte aligned. */
  private attentionInput(x: CudaTensor, precision: "fp32" | "bf16"): CudaTensor {
    return precision === "bf16" ? (this.toBf16(x) as CudaTensor) : this.aligned(x);
  }

  private checkAttention(s: AttentionShape, q: CudaTensor, k: CudaTensor, v: CudaTensor, what: string): void {
    const N = s.batch * s.seqLen;
    const ok = q.size === N * s.heads * s.qkDim && k.size === N * s.heads * s.qkDim && v.size === N * s.heads * s.vDim;
    if (!ok) throw new RangeError(`${what}: q [${q.shape.join(", ")}], k [${k.shape.join(", ")}], v [${v.shape.join(", ")}] do not fit ${s.batch}×${s.seqLen} tokens of ${s.heads} heads (${s.qkDim}, ${s.vDim})`);
  }

  attentionForward(qH: TensorHandle, kH: TensorHandle, vH: TensorHandle, s: AttentionShape): { out: TensorHandle; saved: TensorHandle } {
    const [q, k, v] = [this.f32(qH, "attentionForward: q"), this.f32(kH, "attentionForward: k"), this.f32(vH, "attentionForward: v")];
    this.checkAttention(s, q, k, v, "attentionForward");
    const precision = this.attentionPrecision();
    const N = s.batch * s.seqLen;
    // One buffer: lse [B, H, T], then (256-byte aligned) the FP32 output, which the backward reads for D.
    const lseBytes = roundUp(s.batch * s.heads * s.seqLen * 4, 256);
    const outBytes = N * s.heads * s.vDim * 4;
    const buf = emptyDevice([lseBytes + outBytes], "u8");
    this.bytesSinceCollect += lseBytes + outBytes;
    const lse = new CudaTensor("F32", [s.batch, s.heads, s.seqLen], buf, 0);
    const out = new CudaTensor("F32", [N, s.heads * s.vDim], buf, lseBytes);
    const [qi, ki, vi] = [q, k, v].map((x) => this.attentionInput(x, precision));
    this.k.attentionForward(ATTN[precision], this.p(qi), this.p(ki), this.p(vi), this.p(out), 0, this.p(lse),
      s.batch, s.seqLen, s.heads, s.qkDim, s.vDim, s.scale, this.stream);
    return { out, saved: new AttentionSaved(lse, out) };
  }

  attentionBackward(dOutH: TensorHandle, qH: TensorHandle, kH: TensorHandle, vH: TensorHandle, savedH: TensorHandle, s: AttentionShape): { dq: TensorHandle; dk: TensorHandle; dv: TensorHandle } {
    const [q, k, v] = [this.f32(qH, "attentionBackward: q"), this.f32(kH, "attentionBackward: k"), this.f32(vH, "attentionBackward: v")];
    const dOut = this.f32(dOutH, "attentionBackward: dOut");
    if (!(savedH instanceof AttentionSaved)) throw new TypeError("attentionBackward: saved was not made by the CUDA backend's attentionForward");
    this.checkAttention(s, q, k, v, "attentionBackward");
    const precision = this.attentionPrecision();
    const N = s.batch * s.seqLen;
    const dq = this.alloc("F32", [N, s.heads * s.qkDim]);
    const dk = this.alloc("F32", [N, s.heads * s.qkDim]);
    const dv = this.alloc("F32", [N, s.heads * s.vDim]);
    const [di, qi, ki, vi] = [dOut, q, k, v].map((x) => this.attentionInput(x, precision));
    const wsBytes = this.k.attentionBackwardWorkspaceBytes(s.batch, s.seqLen, s.heads);
    this.k.attentionBackward(ATTN[precision], this.p(di), this.p(qi), this.p(ki), this.p(vi), this.p(savedH.out), 0, this.p(savedH),
      this.p(dq), this.p(dk), this.p(dv), this.scratch(wsBytes), wsBytes, s.batch, s.seqLen, s.heads, s.qkDim, s.vDim, s.scale, this.stream);
    return { dq, dk, dv };
  }

  swigluForward(gateH: TensorHandle, upH: TensorHandle): TensorHandle {
    const [gate, up] = [this.f32(gateH, "swigluForward: gate"), this.f32(upH, "swigluForward: up")];
    if (gate.size !== up.size) throw new RangeError(`swigluForward: gate [${gate.shape.join(", ")}] and up [${up.shape.join(", ")}] differ in size`);
    const h = this.alloc("F32", gate.shape);
    if (h.size > 0) this.k.swigluForward(this.p(gate), this.p(up), this.p(h), h.size, this.stream);
    return h;
  }

  swigluBackward(dhH: TensorHandle, gateH: TensorHandle, upH: TensorHandle): { dGate: TensorHandle; dUp: TensorHandle } {
    const [dh, gate, up] = [this.f32(dhH, "swigluBackward: dh"), this.f32(gateH, "swigluBackward: gate"), this.f32(upH, "swigluBackward: up")];
    if (gate.size !== up.size || dh.size !== gate.size) throw new RangeError(`swigluBackward: dh, gate and up differ in size`);
    const dGate = this.alloc("F32", gate.shape);
    const dUp = this.alloc("F32", gate.shape);
    if (gate.size > 0) this.k.swigluBackward(this.p(dh), this.p(gate), this.p(up), this.p(dGate), this.p(dUp), gate.size, this.stream);
    return { dGate, dUp };
  }

  /** The fused loss kernel: mean loss (F64 [1]) and, unless noGrad, gradScale · ∂(mean loss)/∂logits. */
  private lossKernel(logitsH: TensorHandle, targetsH: TensorHandle, wantGrad: boolean, gradScale: number, what: string): { loss: CudaTensor; dLogits: CudaTensor | null } {
    const logits = this.f32(logitsH, `${what}: logits`);
    const [rows, vocab] = mat(logits, `${what}: logits`);
    const targets = this.i32(targetsH, `${what}: targets`);
    if (targets.size !== rows) throw new RangeError(`${what}: ${targets.size} targets for ${rows} rows`);
    if (vocab % 8 !== 0 || vocab > 131072) throw new RangeError(`${what}: the loss kernel needs a vocabulary that is a multiple of 8 up to 131072, got ${vocab}`);
    const loss = this.alloc("F64", [1]);
    const rowLoss = this.alloc("F32", [rows]);
    // The kernel writes dLogits over its input (Backend.crossEntropy consumes the logits): no second
    // [rows, vocab] FP32 tensor.
    const work = this.aligned(logits);
    if (rows > 0) this.k.crossEntropy(this.p(work), this.p(targets), this.p(rowLoss), null, rows, vocab, rows, 0, gradScale, wantGrad ? 0 : CE_NO_GRAD, this.stream);
    this.k.meanLoss(this.p(rowLoss), null, this.p(loss), rows, this.stream);
    return { loss, dLogits: wantGrad ? work : null };
  }

  crossEntropy(logits: TensorHandle, targets: TensorHandle, wantGrad: boolean): { loss: TensorHandle; dLogits: TensorHandle | null } {
    return this.lossKernel(logits, targets, wantGrad, 1, "crossEntropy");
  }

  // ---- rows ----

  embeddingForward(tableH: TensorHandle, idsH: TensorHandle): TensorHandle {
    const table = this.f32(tableH, "embeddingForward: table");
    const [vocab, cols] = mat(table, "embeddingForward: table");
    const ids = this.i32(idsH, "embeddingForward: ids");
    const out = this.alloc("F32", [ids.size, cols]);
    if (ids.size > 0) this.k.embeddingForward(this.p(table), this.p(ids), this.p(out), ids.size, cols, vocab, this.stream);
    return out;
  }

  embeddingBackward(dOutH: TensorHandle, idsH: TensorHandle, dTableH: TensorHandle): void {
    const dTable = this.f32(dTableH, "embeddingBackward: dTable");
    const [vocab, cols] = mat(dTable, "embeddingBackward: dTable");
    const [dOut, ids] = [this.f32(dOutH, "embeddingBackward: dOut"), this.i32(idsH, "embeddingBackward: ids")];
    if (dOut.size !== ids.size * cols) throw new RangeError(`embeddingBackward: dOut [${dOut.shape.join(", ")}] is not [${ids.size}, ${cols}]`);
    if (ids.size === 0) return;
    const wsBytes = this.k.embeddingBackwardWorkspaceBytes(ids.size, vocab);
    this.k.embeddingBackward(this.p(dOut), this.p(ids), this.p(dTable), ids.size, cols, vocab, this.scratch(wsBytes), wsBytes, this.stream);
  }

  /** Columns [from, from + width) of every row of src [rows, srcCols] into columns [to, …) of dst [rows, dstCols]. */
  private copyColumns(dst: CudaTensor, dstCols: number, to: number, src: CudaTensor, srcCols: number, from: number, width: number, rows: number): void {
    if (width === 0 || rows === 0) return;
    const e = elementBytes(src.dtype, "copyColumns");
    this.addon.copy2d(dst.buffer!.handle, dst.byteOffset + to * e, dstCols * e, src.buffer!.handle, src.byteOffset + from * e, srcCols * e, width * e, rows);
  }

  concatColumns(aH: TensorHandle, bH: TensorHandle): TensorHandle {
    const [a, b] = [this.f32(aH, "concatColumns: a"), this.f32(bH, "concatColumns: b")];
    const [rows, da] = mat(a, "concatColumns: a");
    const [rowsB, db] = mat(b, "concatColumns: b");
    if (rows !== rowsB) throw new RangeError(`concatColumns: ${rows} rows and ${rowsB} rows`);
    const out = this.alloc("F32", [rows, da + db]);
    this.copyColumns(out, da + db, 0, a, da, 0, da, rows);
    this.copyColumns(out, da + db, da, b, db, 0, db, rows);
    return out;
  }

  splitColumns(xH: TensorHandle, left: number): [TensorHandle, TensorHandle] {
    const x = this.f32(xH, "splitColumns: x");
    const [rows, w] = mat(x, "splitColumns: x");
    if (!Number.isInteger(left) || left < 0 || left > w) throw new RangeError(`splitColumns: left ${left} is outside 0..${w}`);
    const a = this.alloc("F32", [rows, left]);
    const b = this.alloc("F32", [rows, w - left]);
    this.copyColumns(a, left, 0, x, w, 0, left, rows);
    this.copyColumns(b, w - left, 0, x, w, left, w - left, rows);
    return [a, b];
  }

  mlaHeads(kvH: TensorHandle, krH: TensorHandle, H: number, dn: number, dv: number): { k: TensorHandle; v: TensorHandle } {
    const [kv, kr] = [this.f32(kvH, "mlaHeads: kv"), this.f32(krH, "mlaHeads: kr")];
    const [N, kvCols] = mat(kv, "mlaHeads: kv");
    const [Nr, dr] = mat(kr, "mlaHeads: kr");
    if (kvCols !== H * (dn + dv) || Nr !== N) throw new RangeError(`mlaHeads: kv [${N}, ${kvCols}] and kr [${Nr}, ${dr}] do not fit ${H} heads of [k_nope ${dn} | v ${dv}]`);
    const dqk = dn + dr;
    const k = this.alloc("F32", [N, H * dqk]);
    const v = this.alloc("F32", [N, H * dv]);
    // Rows of (token, head): k_nope and v out of kv; then the shared rope key into each head of k.
    this.copyColumns(k, dqk, 0, kv, dn + dv, 0, dn, N * H);
    this.copyColumns(v, dv, 0, kv, dn + dv, dn, dv, N * H);
    for (let h = 0; h < H; h++) this.copyColumns(k, H * dqk, h * dqk + dn, kr, dr, 0, dr, N);
    return { k, v };
  }

  mlaHeadsBackward(dkH: TensorHandle, dvH: TensorHandle, H: number, dn: number, dr: number): { dkv: TensorHandle; dkr: TensorHandle } {
    const [dk, dV] = [this.f32(dkH, "mlaHeadsBackward: dk"), this.f32(dvH, "mlaHeadsBackward: dv")];
    const [N, kCols] = mat(dk, "mlaHeadsBackward: dk");
    const [Nv, vCols] = mat(dV, "mlaHeadsBackward: dv");
    const dqk = dn + dr;
    if (kCols !== H * dqk || Nv !== N || vCols % H !== 0) throw new RangeError(`mlaHeadsBackward: dk [${N}, ${kCols}] and dv [${Nv}, ${vCols}] do not fit ${H} heads of [k_nope ${dn} | k_rope ${dr}]`);
    const dv = vCols / H;
    const dkv = this.alloc("F32", [N, H * (dn + dv)]);
    this.copyColumns(dkv, dn + dv, 0, dk, dqk, 0, dn, N * H);
    this.copyColumns(dkv, dn + dv, dn, dV, dv, 0, dv, N * H);
    // dkr = Σ over heads in head order, from zeros: the CPU's float32 sums (and its +0 for all-zero sums).
    const dkr = this.zeros([N, dr]) as CudaTensor;
    const part = this.alloc("F32", [N, dr]);
    for (let h = 0; h < H; h++) {
      this.copyColumns(part, dr, 0, dk, H * dqk, h * dqk + dn, dr, N);
      this.addInPlace(dkr, part);
    }
    return { dkv, dkr };
  }

  route(logitsH: TensorHandle, biasH: TensorHandle, o: RouteOptions): Routing {
    const logits = this.f32(logitsH, "route: logits");
    const [tokens, experts] = mat(logits, "route: logits");
    if (experts !== o.experts) throw new RangeError(`route: logits have ${experts} columns for ${o.experts} experts`);
    const bias = this.f32(biasH, "route: bias");
    if (bias.size !== experts) throw new RangeError(`route: bias has ${bias.size} elements for ${experts} experts`);
    const R = tokens * o.topK;
    const indices = this.alloc("I32", [tokens, o.topK]);
    const weights = this.alloc("F32", [tokens, o.topK]);
    const scores = this.alloc("F32", [tokens, experts]);
    this.k.routeSigmoid(this.p(logits), this.p(bias), tokens, experts, o.topK, o.nGroup, o.topkGroup, o.normTopkProb ? 1 : 0,
      o.routedScalingFactor, this.p(indices), this.p(weights), this.p(scores), null, this.stream);
    const counts = this.alloc("I32", [experts]);
    const offsets = this.alloc("I32", [experts + 1]);
    const tokenOfRow = this.alloc("I32", [R]);
    const assignmentOfRow = this.alloc("I32", [R]);
    const combineWeights = this.alloc("F32", [R]);
    const rowOfAssignment = this.alloc("I32", [R]);
    const wsBytes = this.k.planDispatchWorkspaceBytes(tokens, experts, o.topK);
    this.k.planDispatch(this.p(indices), this.p(weights), tokens, experts, o.topK, this.p(counts), this.p(offsets), this.p(tokenOfRow),
      this.p(assignmentOfRow), this.p(combineWeights), this.p(rowOfAssignment), null, this.scratch(wsBytes), wsBytes, this.stream);
    const r = new CudaRouting(tokens, experts, o.topK, { ...o }, indices, scores, tokenOfRow, assignmentOfRow, combineWeights, counts, offsets, rowOfAssignment);
    this.tokenOfRowOwner.set(tokenOfRow, r);
    return r;
  }

  /** @internal the routing as this backend made it */
  routingOf(r: Routing, what: string): CudaRouting {
    if (!(r instanceof CudaRouting)) throw new TypeError(`${what}: the routing was not made by the CUDA backend`);
    return r;
  }

  /** @internal the expert offsets on the host, read once per routing (a counted synchronization). */
  expertOffsetsOnHost(r: CudaRouting): Int32Array {
    let o = this.hostOffsets.get(r);
    if (!o) {
      o = new Int32Array(r.experts + 1);
      this.sync("expertOffsets");
      this.addon.download(r.expertOffsets.buffer!.handle, o, r.expertOffsets.byteOffset);
      this.hostOffsets.set(r, o);
    }
    return o;
  }

  routeBackward(routing: Routing, gradWeightsH: TensorHandle): TensorHandle {
    const r = this.routingOf(routing, "routeBackward");
    const g = this.f32(gradWeightsH, "routeBackward: gradWeights");
    if (g.size !== r.tokens * r.topK) throw new RangeError(`routeBackward: ${g.size} weight gradients for ${r.tokens}×${r.topK} assignments`);
    const dLogits = this.alloc("F32", [r.tokens, r.experts]);
    this.k.routeBackward(this.p(r.indices), this.p(r.scores), this.p(g), r.tokens, r.experts, r.topK, r.options.normTopkProb ? 1 : 0,
      r.options.routedScalingFactor, this.p(dLogits), this.stream);
    return dLogits;
  }

  permuteRows(xH: TensorHandle, indexH: TensorHandle): TensorHandle {
    const x = this.f32(xH, "permuteRows: x");
    const [inRows, cols] = mat(x, "permuteRows: x");
    const index = this.i32(indexH, "permuteRows: index");
    const out = this.alloc("F32", [index.size, cols]);
    if (index.size > 0) this.k.permuteRows(this.p(x), this.p(index), this.p(out), index.size, cols, inRows, this.stream);
    return out;
  }

  unpermuteAdd(xH: TensorHandle, indexH: TensorHandle, outH: TensorHandle, scaleH?: TensorHandle): void {
    const out = this.f32(outH, "unpermuteAdd: out");
    const [tokens, cols] = mat(out, "unpermuteAdd: out");
    const x = this.f32(xH, "unpermuteAdd: x");
    const index = this.i32(indexH, "unpermuteAdd: index");
    if (x.size !== index.size * cols) throw new RangeError(`unpermuteAdd: x [${x.shape.join(", ")}] is not [${index.size}, ${cols}]`);
    // The kernel gathers (deterministic, the CPU's order): it needs the routing's inverse map, so the index must
    // be a routing's tokenOfRow — the only index the MoE layer scatters by.
    const r = this.tokenOfRowOwner.get(index);
    if (!r) throw new TypeError("unpermuteAdd: the CUDA backend scatters by a routing's tokenOfRow only (its gather kernel needs the routing's inverse map)");
    if (r.tokens !== tokens) throw new RangeError(`unpermuteAdd: out has ${tokens} rows, the routing ${r.tokens} tokens`);
    const scale = scaleH ? this.f32(scaleH, "unpermuteAdd: scale") : null;
    if (tokens > 0) this.k.unpermuteAdd(this.p(x), this.p(r.rowOfAssignment), scale && this.p(scale), this.p(out), tokens, r.topK, cols, index.size, this.stream);
  }

  rowDots(aH: TensorHandle, bH: TensorHandle, indexH: TensorHandle, n: number): TensorHandle {
    const [a, b] = [this.f32(aH, "rowDots: a"), this.f32(bH, "rowDots: b")];
    const [rows, cols] = mat(a, "rowDots: a");
    if (a.size !== b.size) throw new RangeError(`rowDots: a [${a.shape.join(", ")}] and b [${b.shape.join(", ")}] differ in size`);
    const index = this.i32(indexH, "rowDots: index");
    if (index.size !== rows) throw new RangeError(`rowDots: ${index.size} indices for ${rows} rows`);
    const out = this.zeros([n]) as CudaTensor;
    if (rows > 0) this.k.rowDot(this.p(a), this.p(b), this.p(out), this.p(index), rows, cols, this.stream);
    return out;
  }

  scaleRows(xH: TensorHandle, wH: TensorHandle): void {
    const x = this.f32(xH, "scaleRows: x");
    const [rows, cols] = mat(x, "scaleRows: x");
    const w = this.f32(wH, "scaleRows: w");
    if (w.size !== rows) throw new RangeError(`scaleRows: ${w.size} weights for ${rows} rows`);
    if (rows > 0) this.k.scaleRows(this.p(x), this.p(w), rows, cols, this.stream);
  }

  // ---- optimizer and elementwise ----

  /** The device copy of AdamW's hyper-parameters (OctetAdamWHyper: 7 doubles), uploaded once per distinct set. */
  private hyperOf(h: AdamWHyper): CudaTensor {
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const values = [h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, c1, c2];
    const key = values.join(",");
    let t = this.hyper.get(key);
    if (!t) {
      if (this.hyper.size > 8) this.hyper.clear();
      t = this.fromHost(Float64Array.from(values), [7], "F64") as CudaTensor;
      this.hyper.set(key, t);
    }
    return t;
  }

  /** One segment [0, n) with weight decay on (OctetAdamWSegment: int64 offset, int64 size, int32 decay, int32). */
  private segmentOf(n: number): CudaTensor {
    let t = this.segments.get(n);
    if (!t) {
      const bytes = new ArrayBuffer(24);
      const v = new DataView(bytes);
      v.setBigInt64(0, 0n, true);
      v.setBigInt64(8, BigInt(n), true);
      v.setInt32(16, 1, true);
      t = this.alloc("U8", [24]);
      this.addon.upload(t.buffer!.handle, new Uint8Array(bytes), 0);
      this.segments.set(n, t);
    }
    return t;
  }

  adamwUpdate(paramH: TensorHandle, gradH: TensorHandle, mH: TensorHandle, vH: TensorHandle, h: AdamWHyper): void {
    const [param, grad] = [this.f32(paramH, "adamwUpdate: param"), this.f32(gradH, "adamwUpdate: grad")];
    const [m, v] = [this.t(mH, "adamwUpdate: m"), this.t(vH, "adamwUpdate: v")];
    const bf16 = m.dtype === "BF16";
    dtypeIs(m, bf16 ? "BF16" : "F32", "adamwUpdate: m");
    dtypeIs(v, bf16 ? "BF16" : "F32", "adamwUpdate: v");
    if (grad.size !== param.size || m.size !== param.size || v.size !== param.size) {
      throw new RangeError(`adamwUpdate: param [${param.shape.join(", ")}], grad [${grad.shape.join(", ")}] and moments [${m.shape.join(", ")}] differ in size`);
    }
    if (param.size === 0) return;
    const launch = bf16 ? this.k.adamwUpdateBf16 : this.k.adamwUpdateF32;
    // h.weightDecay is already 0 for the parameters without decay (AdamW.update): the segment always decays.
    launch(this.p(param), this.p(grad), this.p(m), this.p(v), param.size, this.p(this.segmentOf(param.size)), 1, this.p(this.hyperOf(h)), null, this.stream);
  }

  gradNorm(xs: readonly TensorHandle[]): TensorHandle {
    // All gradients laid end to end, one FP64 sum of squares (a fixed tree order, not the CPU's left to right).
    const ts = xs.map((x, i) => this.f32(x, `gradNorm: tensor ${i}`));
    const total = ts.reduce((n, t) => n + t.size, 0);
    const flat = this.alloc("F32", [total]);
    let at = 0;
    for (const t of ts) {
      if (t.size > 0) this.addon.copy(flat.buffer!.handle, t.buffer!.handle, t.byteLength, at, t.byteOffset);
      at += t.byteLength;
    }
    const ss = this.alloc("F64", [1]);
    const wsBytes = this.k.sumSquaresWorkspaceBytes(total);
    this.k.sumSquares(this.p(flat), total, this.p(ss), this.scratch(wsBytes), wsBytes, this.stream);
    const norm = this.alloc("F64", [1]);
    const unit = this.alloc("F64", [1]);
    this.k.clipCoefficient(this.p(ss), 0, this.p(norm), this.p(unit), null, this.stream);
    this.sumSquaresOf.set(norm, ss);
    return norm;
  }

  clipByNorm(xs: readonly TensorHandle[], normH: TensorHandle, maxNorm: number): void {
    const ss = this.sumSquaresOf.get(this.t(normH, "clipByNorm: norm"));
    if (!ss) throw new TypeError("clipByNorm: the norm was not made by this backend's gradNorm");
    const scale = this.alloc("F64", [1]);
    this.k.clipCoefficient(this.p(ss), maxNorm, null, this.p(scale), null, this.stream);
    for (const [i, x] of xs.entries()) {
      const t = this.f32(x, `clipByNorm: tensor ${i}`);
      if (t.size > 0) this.k.scaleDevice(this.p(t), t.size, this.p(scale), this.stream);
    }
  }

  scale(xH: TensorHandle, a: number): void {
    const x = this.f32(xH, "scale");
    if (x.size > 0) this.k.scale(this.p(x), x.size, a, this.stream);
  }

  addInPlace(yH: TensorHandle, xH: TensorHandle): void {
    const [y, x] = [this.f32(yH, "addInPlace: y"), this.f32(xH, "addInPlace: x")];
    if (y.size !== x.size) throw new RangeError(`addInPlace: [${y.shape.join(", ")}] and [${x.shape.join(", ")}] differ in size`);
    if (y.size > 0) this.k.addInplace(this.p(y), this.p(x), y.size, this.stream);
  }

  /** Device memory now and at its peak (numerics' pool). */
  memoryStats() {
    return deviceMemoryStats();
  }

  // ---- MTP ----

  /**
   * @octet/mtp's kernels on device tensors. RMSNorm's forward is the model's (the same arithmetic as mtp's:
   * float64 sums, y = f32((x·s)·gain)); its backward is the model's kernel, algebraically equal to mtp's but
   * rounded in another order (not bit-exact: ~1e-7 relative). The projection GEMMs are FP32 (as mtp's
   * matmulF32); the loss is the fused kernel with MTP's gradient scale. mean() of more than one loss reads them
   * to the host (counted as "mtpMean"); at depth 1 it is a device copy.
   */
  private makeMtpKernels(): MtpKernels {
    // An object literal of arrow functions over the backend (its methods would lose `this` when mtp calls them).
    const be: CudaBackend = this; // eslint-disable-line @typescript-eslint/no-this-alias
    return {
      fromHost: (data, shape) => be.fromHost(data, shape),
      zeros: (shape) => be.zeros(shape),
      zero: (x) => be.zero(x),
      scale: (x, a) => be.scale(x, a),
      read: (xs) => be.read(xs),
      rmsnormForward: (x, gain, eps) => be.rmsnormForward(x, gain, eps),
      rmsnormBackward: (dy, x, gain, rstd, gainGrad) => be.rmsnormBackward(dy, x, gain, rstd, gainGrad),
      concatColumns: (a, b) => be.concatColumns(a, b),
      splitColumns: (x, left) => be.splitColumns(x, left),
      linearForward: (x, w) => be.matmul(x, w),
      linearBackward(dy, x, w, wGrad) {
        be.addInPlace(wGrad, be.matmul(be.transpose(dy), be.transpose(x)));
        return be.matmul(dy, be.transpose(w));
      },
      crossEntropy(logits, targets, gradScale) {
        const { loss, dLogits } = be.lossKernel(logits, targets, true, gradScale, "mtp crossEntropy");
        return { loss, dLogits: dLogits! };
      },
      mean(xs) {
        if (xs.length === 0) throw new RangeError("mean: no tensors");
        if (xs.length === 1) return be.fresh(be.t(xs[0], "mean: tensor 0"));
        be.sync("mtpMean");
        const values = xs.map((x, i) => (be.toHost(be.t(x, `mean: tensor ${i}`)) as ArrayLike<number>)[0]);
        let sum = 0;
        for (const v of values) sum += v;
        return be.fromHost(Float64Array.of(sum / xs.length), [1], "F64");
      },
      sequenceRows(xH, batch, seqLen, start, len) {
        const x = be.t(xH, "sequenceRows: x");
        checkWindow("sequenceRows", x.shape[0], batch, seqLen, start, len);
        const rowBytes = x.shape[0] === 0 ? 0 : x.byteLength / x.shape[0];
        const out = be.alloc(x.dtype, [batch * len, ...x.shape.slice(1)]);
        if (out.byteLength > 0) {
          be.addon.copy2d(out.buffer!.handle, 0, len * rowBytes, x.buffer!.handle, x.byteOffset + start * rowBytes, seqLen * rowBytes, len * rowBytes, batch);
        }
        return out;
      },
      addSequenceRows(dstH, srcH, batch, seqLen, start) {
        const [dst, src] = [be.f32(dstH, "addSequenceRows: dst"), be.f32(srcH, "addSequenceRows: src")];
        const len = batch === 0 ? 0 : src.shape[0] / batch;
        checkWindow("addSequenceRows", dst.shape[0], batch, seqLen, start, len);
        for (let b = 0; b < batch; b++) be.addInPlace(be.rows(dst, b * seqLen + start, len), be.rows(src, b * len, len));
      },
      padSequenceRows(srcH, batch, seqLen, start) {
        const src = be.f32(srcH, "padSequenceRows: src");
        const len = batch === 0 ? 0 : src.shape[0] / batch;
        checkWindow("padSequenceRows", batch * seqLen, batch, seqLen, start, len);
        const out = be.zeros([batch * seqLen, ...src.shape.slice(1)]) as CudaTensor;
        const rowBytes = src.shape[0] === 0 ? 0 : src.byteLength / src.shape[0];
        if (src.byteLength > 0) {
          be.addon.copy2d(out.buffer!.handle, start * rowBytes, seqLen * rowBytes, src.buffer!.handle, src.byteOffset, len * rowBytes, len * rowBytes, batch);
        }
        return out;
      },
    };
  }
}

/** The sequence window checks of @octet/mtp's CPU kernels. */
function checkWindow(what: string, rows: number, batch: number, seqLen: number, start: number, len: number): void {
  if (![batch, seqLen, start, len].every((n) => Number.isInteger(n) && n >= 0) || rows !== batch * seqLen || start + len > seqLen) {
    throw new RangeError(`${what}: rows ${start} .. ${start + len} of ${batch} sequences of ${seqLen} do not fit ${rows} rows`);
  }
}

/**
 * A CUDA failure inside a backend op: the op, the shapes and dtypes of its tensor arguments, and the CUDA error
 * (`cause`). Kernels run asynchronously, so a fault (an illegal address, say) may surface in a later op; with
 * CUDA_LAUNCH_BLOCKING=1 every launch waits and the op named is the one that failed.
 */
export class CudaOpError extends Error {
  constructor(readonly op: string, readonly args: string, cause: Error) {
    super(`CUDA error in ${op}(${args}): ${cause.message}${process.env.CUDA_LAUNCH_BLOCKING === "1" ? "" : " (kernels run asynchronously: rerun with CUDA_LAUNCH_BLOCKING=1 to name the op that faulted)"}`, { cause });
    this.name = "CudaOpError";
  }
}

function describeArg(a: unknown): string {
  if (a instanceof CudaTensor) return `${a.dtype}[${a.shape.join(", ")}]`;
  if (Array.isArray(a)) return `[${a.map(describeArg).join(", ")}]`;
  if (typeof a === "number" || typeof a === "boolean") return String(a);
  return typeof a === "object" && a !== null ? "{…}" : String(a);
}

// One mechanism for every op: each method of CudaBackend reports a CUDA failure (a plain Error from the addons
// naming a CUDA or cuBLAS error; argument errors stay RangeError/TypeError) as a CudaOpError naming the outermost
// op and its shapes.
let opDepth = 0; // > 0 inside an op: the inner methods it calls pass errors through to it
for (const name of Object.getOwnPropertyNames(CudaBackend.prototype)) {
  const d = Object.getOwnPropertyDescriptor(CudaBackend.prototype, name);
  if (name === "constructor" || !d || typeof d.value !== "function") continue;
  const method = d.value as (...args: unknown[]) => unknown;
  Object.defineProperty(CudaBackend.prototype, name, {
    ...d,
    value: function (this: CudaBackend, ...args: unknown[]) {
      opDepth++;
      try {
        return method.apply(this, args);
      } catch (e) {
        if (opDepth > 1 || !(e instanceof Error) || e.constructor !== Error || !/\bcuda[A-Z]\w*|CUDA|cuBLAS/.test(e.message)) throw e;
        throw new CudaOpError(name, args.map(describeArg).join(", "), e);
      } finally {
        opDepth--;
      }
    },
  });
}
