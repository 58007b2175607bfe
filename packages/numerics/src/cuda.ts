// The CUDA backend of @octet/numerics: device tensors behind handles, FP8 quantization kernels equal bit for bit to
// quantizeReference, block-scaled FP8 GEMMs (the hand-written Hopper kernel and cuBLASLt), BF16 GEMM.
//
// The addon (cuda/build/octet_numerics_cuda.node, built by cuda/build.sh on a machine with nvcc) is optional:
// cudaStatus() says whether it loaded and found a usable GPU, and why not. The CPU functions of the package never
// depend on it. A CUDA function asked for when the backend is unavailable throws an Error saying why: there is no
// silent fallback to the CPU. Bad arguments are TypeErrors (wrong kind of value, dtype mismatch) and RangeErrors
// (shapes, K not a multiple of 128, blocks the kernel does not take), thrown before any device work.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Fp8Format, fp8Info } from "./formats.js";
import { type Block, type NonFiniteReport, type Quantized, type ScaleKind, type Shape2, gridShape, nonFiniteError, validateQuantized } from "./quantize.js";

// ---- the addon -----------------------------------------------------------------------------------------------------------

/** Element types of device tensors. bf16 tensors hold bfloat16 bit patterns (Uint16Array on the host). */
export type DeviceDtype = "fp32" | "bf16" | "e4m3" | "e5m2" | "u8" | "i32";
const DTYPE_CODE: Record<DeviceDtype, number> = { fp32: 0, bf16: 1, e4m3: 2, e5m2: 3, u8: 4, i32: 5 };
const DTYPE_BYTES: Record<DeviceDtype, number> = { fp32: 4, bf16: 2, e4m3: 1, e5m2: 1, u8: 1, i32: 4 };
const FORMAT_CODE = { e4m3: 0, e5m2: 1 } as const;

type Handle = object;
type Typed = Float32Array | Uint16Array | Uint8Array | Int32Array | Float64Array;

/** The raw module (argument order as in cuda/addon.cu). Exported for the GPU scripts; use the functions below. */
export interface CudaAddon {
  status(): RawStatus;
  alloc(bytes: number): Handle;
  free(h: Handle): void;
  upload(h: Handle, src: Typed, byteOffset?: number): void;
  download(h: Handle, dst: Typed, byteOffset?: number): void;
  memset(h: Handle, byte: number, bytes?: number, byteOffset?: number): void;
  copy(dst: Handle, src: Handle, bytes: number, dstOffset?: number, srcOffset?: number): void;
  copy2d(dst: Handle, dstOffset: number, dstPitch: number, src: Handle, srcOffset: number, srcPitch: number, widthBytes: number, height: number): void;
  transpose(input: Handle, inOffset: number, out: Handle, outOffset: number, rows: number, cols: number, eltBytes: number): void;
  synchronize(): void;
  fillRandom(h: Handle, dtype: number, n: number, seed: number, dist: number, scale: number): void;
  countNaN(h: Handle, dtype: number, n: number): number;
  quantize(x: Handle, inDtype: number, rows: number, cols: number, br: number, bc: number, fmt: number, pow2: boolean, data: Handle, scales: Handle, check: boolean): RawQuantStatus | undefined;
  quantizeBoth(x: Handle, inDtype: number, rows: number, cols: number, fmt: number, pow2: boolean, rdata: Handle, rscales: Handle, tdata: Handle, tscales: Handle, check: boolean): RawQuantStatus | undefined;
  dequantize(data: Handle, scales: Handle, rows: number, cols: number, br: number, bc: number, fmt: number, out: Handle, outDtype: number): void;
  castSelfTest(): { e4m3: { mismatches: number; first: number }; e5m2: { mismatches: number; first: number } };
  setKnob(name: string, value: number): void;
  transposeF32(input: Handle, rows: number, cols: number, out: Handle): void;
  transposeF32Grouped(input: Handle, offsets: Handle, experts: number, totalRows: number, cols: number, out: Handle): void;
  padRowsF32(input: Handle, rows: number, cols: number, ld: number, out: Handle): void;
  convert(input: Handle, inDtype: number, out: Handle, outDtype: number, n: number): void;
  gemmSm90(a: Handle, sa: Handle, b: Handle, sb: Handle, d: Handle, outDtype: number, M: number, N: number, K: number, ...offsets: number[]): void;
  groupedGemmSm90(a: Handle, sa: Handle, b: Handle, sb: Handle, d: Handle, outDtype: number, offsets: Int32Array, experts: number, N: number, K: number): void;
  gemmLt(a: Handle, fmtA: number, saLt: Handle, b: Handle, fmtB: number, sbLt: Handle, d: Handle, outDtype: number, M: number, N: number, K: number, ...offsets: number[]): void;
  gemmBf16Lt(a: Handle, b: Handle, d: Handle, outDtype: number, M: number, N: number, K: number): void;
  gemmF32Lt(a: Handle, b: Handle, d: Handle, M: number, N: number, K: number): void;
  releaseCublasLt(): void;
  eventCreate(): Handle;
  eventRecord(e: Handle): void;
  eventElapsed(start: Handle, end: Handle): number;
  captureBegin(): void;
  captureEnd(): Handle;
  graphLaunch(g: Handle, times?: number): void;
  timeGraph(g: Handle, warmup: number, reps: number): Float64Array;
  devicePointer(h: Handle, byteOffset?: number): bigint;
  streamPointer(): bigint;
  memoryStats(): DeviceMemoryStats;
  resetPeakMemory(): void;
}

/** The process's device memory: the stream-ordered pool every DeviceTensor comes from, and the device's totals. */
export interface DeviceMemoryStats {
  /** Bytes of live tensors. */
  usedBytes: number;
  /** High-water mark of usedBytes since the last resetPeakDeviceMemory(). */
  peakBytes: number;
  /** Bytes the pool holds from the driver (live tensors plus freed memory kept for reuse). */
  reservedBytes: number;
  freeBytes: number;
  totalBytes: number;
}

interface RawStatus {
  available: boolean;
  reason?: string;
  device?: string;
  computeCapability?: string;
  multiprocessors?: number;
  memoryBytes?: number;
  l2Bytes?: number;
  driverVersion: number;
  runtimeVersion: number;
  sm90: { built: boolean; reason?: string };
  cublasLt: { built: boolean; version?: string; reason?: string };
}
interface RawQuantStatus {
  count: number;
  first: number;
}

/** Where the addon is loaded from: $OCTET_CUDA_ADDON, else cuda/build/ of this package (from src/ and from dist/). */
export function cudaAddonPath(): string {
  return process.env.OCTET_CUDA_ADDON || join(dirname(fileURLToPath(import.meta.url)), "..", "cuda", "build", "octet_numerics_cuda.node");
}

let loaded: CudaAddon | null | undefined;
let loadReason: string | null = null;

/** The addon module, or null (loadReason says why). Loading touches no CUDA API. */
export function loadCudaAddon(): CudaAddon | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.OCTET_NUMERICS_CUDA === "off") {
    loadReason = "disabled by OCTET_NUMERICS_CUDA=off";
    return loaded;
  }
  const path = cudaAddonPath();
  if (!existsSync(path)) {
    loadReason = `CUDA addon not built (${path} is missing; run bash packages/numerics/cuda/build.sh on a machine with nvcc)`;
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as CudaAddon;
    for (const name of ["status", "alloc", "quantize", "quantizeBoth", "gemmSm90", "gemmLt", "timeGraph"] as const) {
      if (typeof addon[name] !== "function") throw new Error(`the addon lacks ${name}() (stale build?)`);
    }
    loaded = addon;
  } catch (err) {
    loadReason = `failed to load ${path}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return loaded;
}

export interface CudaStatus {
  /** True when the addon loaded and found a usable Hopper GPU. */
  available: boolean;
  /** Why not, when not available. */
  reason: string | null;
  device: string | null;
  computeCapability: string | null;
  multiprocessors: number | null;
  memoryBytes: number | null;
  l2Bytes: number | null;
  addonPath: string;
  /** The hand-written Hopper FP8 GEMMs (gemm_sm90.cu). */
  sm90: { available: boolean; reason: string | null };
  /** cuBLASLt (block-scaled FP8 and BF16 GEMMs). */
  cublasLt: { available: boolean; version: string | null; reason: string | null };
}

let cachedStatus: CudaStatus | undefined;

/** Whether the CUDA backend can run here, on which device, with which GEMM implementations, and why not. */
export function cudaStatus(): CudaStatus {
  if (cachedStatus) return cachedStatus;
  const addon = loadCudaAddon();
  const addonPath = cudaAddonPath();
  if (!addon) {
    const reason = loadReason ?? "CUDA addon unavailable";
    cachedStatus = {
      available: false, reason, device: null, computeCapability: null, multiprocessors: null, memoryBytes: null, l2Bytes: null, addonPath,
      sm90: { available: false, reason }, cublasLt: { available: false, version: null, reason },
    };
    return cachedStatus;
  }
  const s = addon.status();
  const noDevice = s.available ? null : (s.reason ?? "CUDA device unavailable");
  cachedStatus = {
    available: s.available,
    reason: noDevice,
    device: s.device ?? null,
    computeCapability: s.computeCapability ?? null,
    multiprocessors: s.multiprocessors ?? null,
    memoryBytes: s.memoryBytes ?? null,
    l2Bytes: s.l2Bytes ?? null,
    addonPath,
    sm90: { available: s.available && s.sm90.built, reason: noDevice ?? s.sm90.reason ?? null },
    cublasLt: { available: s.available && s.cublasLt.built, version: s.cublasLt.version ?? null, reason: noDevice ?? s.cublasLt.reason ?? null },
  };
  return cachedStatus;
}

/** The addon, or an Error saying why the CUDA backend cannot run (never a silent fallback). */
export function cuda(): CudaAddon {
  const st = cudaStatus();
  if (!st.available) throw new Error(`@octet/numerics CUDA backend unavailable: ${st.reason}`);
  return loaded!;
}

// ---- device tensors ------------------------------------------------------------------------------------------------------------

function isPositiveInt(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n > 0;
}

function checkShape(what: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length < 1 || !shape.every(isPositiveInt)) {
    throw new RangeError(`${what} must be an array of positive integers, got ${JSON.stringify(shape)}`);
  }
  return [...shape];
}

function checkDtype(what: string, dtype: unknown): DeviceDtype {
  if (typeof dtype !== "string" || !(dtype in DTYPE_CODE)) {
    throw new TypeError(`${what} must be one of ${Object.keys(DTYPE_CODE).join(", ")}, got ${JSON.stringify(dtype)}`);
  }
  return dtype as DeviceDtype;
}

const HOST_ARRAY: Record<DeviceDtype, new (n: number) => Typed> = {
  fp32: Float32Array, bf16: Uint16Array, e4m3: Uint8Array, e5m2: Uint8Array, u8: Uint8Array, i32: Int32Array,
};

/** A tensor in device memory. Freed by free() or, eventually, by the garbage collector. */
export class DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DeviceDtype;
  readonly size: number;
  readonly byteLength: number;
  /** @internal the addon's buffer handle */
  readonly handle: Handle;
  #freed = false;

  /** @internal use toDevice / emptyDevice */
  constructor(handle: Handle, shape: readonly number[], dtype: DeviceDtype) {
    this.handle = handle;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = shape.reduce((a, b) => a * b, 1);
    this.byteLength = this.size * DTYPE_BYTES[dtype];
  }

  get freed(): boolean {
    return this.#freed;
  }

  /** @internal */
  live(what: string): Handle {
    if (this.#freed) throw new Error(`${what}: the device tensor [${this.shape.join(", ")}] ${this.dtype} was freed`);
    return this.handle;
  }

  /**
   * A host copy: Float32Array (fp32), Uint16Array of bfloat16 bits (bf16), Uint8Array (FP8 codes, u8), Int32Array.
   * With start and count, only elements start .. start+count-1 of the flat tensor.
   */
  toHost(start = 0, count = this.size - start): Typed {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.size) {
      throw new RangeError(`toHost: elements ${start} .. ${start + count} are outside the tensor's ${this.size}`);
    }
    const out = new HOST_ARRAY[this.dtype](count);
    if (count > 0) cuda().download(this.live("toHost"), out, start * DTYPE_BYTES[this.dtype]);
    return out;
  }

  /** The values as float32 (fp32 as is, bf16 widened exactly). */
  toFloat32(): Float32Array {
    if (this.dtype === "fp32") return this.toHost() as Float32Array;
    if (this.dtype !== "bf16") throw new TypeError(`toFloat32: a ${this.dtype} tensor holds codes; dequantize it (dequantizeDevice)`);
    const bits = this.toHost() as Uint16Array;
    const out = new Float32Array(bits.length);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
    return out;
  }

  /** Release the device memory now (idempotent). */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    loaded?.free(this.handle);
  }
}

const ARRAY_DTYPE = new Map<unknown, DeviceDtype>([
  [Float32Array, "fp32"], [Uint16Array, "bf16"], [Int32Array, "i32"],
]);

/**
 * Copy a host array to a new device tensor. Float32Array → fp32, Uint16Array → bf16 (bit patterns), Int32Array → i32,
 * Uint8Array → the dtype given ("e4m3", "e5m2" or "u8").
 */
export function toDevice(array: Typed, shape: readonly number[], dtype?: DeviceDtype): DeviceTensor {
  const dims = checkShape("toDevice: shape", shape);
  const inferred = ARRAY_DTYPE.get(array?.constructor);
  let dt: DeviceDtype;
  if (array instanceof Uint8Array) {
    dt = checkDtype("toDevice: dtype", dtype ?? "u8");
    if (DTYPE_BYTES[dt] !== 1) throw new TypeError(`toDevice: a Uint8Array holds 1-byte elements, not ${dt}`);
  } else if (inferred) {
    dt = inferred;
    if (dtype !== undefined && dtype !== dt) throw new TypeError(`toDevice: a ${array.constructor.name} is ${dt}, not ${dtype}`);
  } else {
    throw new TypeError("toDevice: array must be a Float32Array, Uint16Array (bf16 bits), Int32Array or Uint8Array");
  }
  const n = dims.reduce((a, b) => a * b, 1);
  if (array.length !== n) throw new RangeError(`toDevice: the array has ${array.length} elements but shape [${dims.join(", ")}] needs ${n}`);
  const t = emptyDevice(dims, dt);
  cuda().upload(t.handle, array);
  return t;
}

/** A new device tensor, uninitialized, or filled: "nan" writes 0xFF bytes (NaN in fp32, bf16, e4m3 and e5m2). */
export function emptyDevice(shape: readonly number[], dtype: DeviceDtype, opts: { fill?: "nan" | "zero" } = {}): DeviceTensor {
  const dims = checkShape("emptyDevice: shape", shape);
  const dt = checkDtype("emptyDevice: dtype", dtype);
  const bytes = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dt];
  const addon = cuda();
  const t = new DeviceTensor(addon.alloc(bytes), dims, dt);
  if (opts.fill === "nan") addon.memset(t.handle, 0xff);
  else if (opts.fill === "zero") addon.memset(t.handle, 0);
  return t;
}

// ---- quantization ------------------------------------------------------------------------------------------------------------------

/** A quantized tensor on the device: FP8 codes [rows, cols] and fp32 scales over the block grid, laid out as Quantized. */
export class DeviceQuantized {
  readonly data: DeviceTensor;
  readonly scales: DeviceTensor;
  readonly shape: [number, number];
  readonly block: [number, number];
  readonly format: Fp8Format;
  /** Present when quantizeDevice was asked to report non-finite inputs. */
  nonFinite?: NonFiniteReport;
  /** @internal scales relaid out for cuBLASLt (VEC128: [K/128, M]; BLK128x128: K blocks padded to a multiple of 4) */
  ltScales?: DeviceTensor;
  /** @internal ltScales no longer matches scales (the tensor was quantized into again) */
  ltStale = false;
  /** @internal bumped each time the tensor is quantized into again */
  version = 0;

  /** @internal */
  constructor(data: DeviceTensor, scales: DeviceTensor, shape: [number, number], block: [number, number], format: Fp8Format) {
    this.data = data;
    this.scales = scales;
    this.shape = shape;
    this.block = block;
    this.format = format;
  }

  /** The host Quantized: equal bit for bit to quantizeReference of the same input. */
  toHost(): Quantized {
    const q: Quantized = {
      data: this.data.toHost() as Uint8Array,
      scales: this.scales.toHost() as Float32Array,
      shape: [this.shape[0], this.shape[1]],
      block: [this.block[0], this.block[1]],
      format: this.format,
    };
    if (this.nonFinite) q.nonFinite = { count: this.nonFinite.count, first: [this.nonFinite.first[0], this.nonFinite.first[1]] };
    return q;
  }

  free(): void {
    this.data.free();
    this.scales.free();
    this.ltScales?.free();
  }
}

/** Upload a host Quantized (e.g. weights quantized on the CPU). */
export function toDeviceQuantized(q: Quantized): DeviceQuantized {
  validateQuantized("toDeviceQuantized: q", q);
  const [gr, gc] = gridShape(q.shape, q.block);
  const data = toDevice(q.data, [q.shape[0], q.shape[1]], q.format);
  const scales = toDevice(q.scales, [gr, gc]);
  return new DeviceQuantized(data, scales, [q.shape[0], q.shape[1]], [q.block[0], q.block[1]], q.format);
}

export interface DeviceQuantizeOptions {
  block: Block;
  format?: Fp8Format;
  scale?: ScaleKind;
  /**
   * "throw" (default): a RangeError naming the first NaN/±inf input, as quantize does (waits for the device).
   * "report": encode them as non-finite codes and set `nonFinite` (waits for the device).
   * "unchecked": no check and no wait (non-finite inputs are encoded as with "report"); for pipelines and graphs.
   */
  nonFinite?: "throw" | "report" | "unchecked";
  /** Fill the outputs with 0xFF (NaN codes and NaN scales) before the kernel runs, so an unwritten element shows (checks). */
  poison?: boolean;
  /** Write into this result of an earlier call with the same shape, block and format (no allocation: graph capture). */
  into?: DeviceQuantized;
}

function inputTensor(what: string, x: DeviceTensor | Float32Array, shape?: Shape2): { t: DeviceTensor; owned: boolean } {
  if (x instanceof DeviceTensor) {
    if (x.dtype !== "fp32" && x.dtype !== "bf16") throw new TypeError(`${what}: x must be an fp32 or bf16 device tensor, got ${x.dtype}`);
    if (x.shape.length !== 2) throw new RangeError(`${what}: x must be 2-D [rows, cols], got [${x.shape.join(", ")}]`);
    x.live(what);
    return { t: x, owned: false };
  }
  if (x instanceof Float32Array) {
    const dims = checkShape(`${what}: shape`, shape);
    if (dims.length !== 2) throw new RangeError(`${what}: shape must be [rows, cols], got ${JSON.stringify(shape)}`);
    return { t: toDevice(x, dims), owned: true };
  }
  throw new TypeError(`${what}: x must be a DeviceTensor (fp32 or bf16) or a Float32Array with a shape`);
}

function checkQuantizeOptions(what: string, opts: { format?: unknown; scale?: unknown; nonFinite?: unknown }): void {
  fp8Info(opts.format ?? "e4m3");
  if (opts.scale !== undefined && opts.scale !== "fp32" && opts.scale !== "pow2") {
    throw new RangeError(`${what}: unknown scale kind ${JSON.stringify(opts.scale)}: expected "fp32" or "pow2"`);
  }
  if (opts.nonFinite !== undefined && !["throw", "report", "unchecked"].includes(opts.nonFinite as string)) {
    throw new RangeError(`${what}: nonFinite must be "throw", "report" or "unchecked", got ${JSON.stringify(opts.nonFinite)}`);
  }
}

function reuse(what: string, q: DeviceQuantized, shape: [number, number], block: [number, number], format: Fp8Format): DeviceQuantized {
  if (!(q instanceof DeviceQuantized)) throw new TypeError(`${what}: into must be a DeviceQuantized`);
  if (q.shape[0] !== shape[0] || q.shape[1] !== shape[1] || q.block[0] !== block[0] || q.block[1] !== block[1] || q.format !== format) {
    throw new RangeError(`${what}: into is ${describe(q)} but the result is [${shape}] ${format} in [${block}] blocks`);
  }
  q.data.live(what);
  q.scales.live(what);
  q.ltStale = true;
  q.version++;  // the scales change: cuBLASLt's copy of them is redone (in place) on its next use
  q.nonFinite = undefined;
  return q;
}

function poison(q: DeviceQuantized): void {
  cuda().memset(q.data.handle, 0xff);
  cuda().memset(q.scales.handle, 0xff);
}

function elementValue(t: DeviceTensor, index: number): number {
  if (t.dtype === "fp32") {
    const v = new Float32Array(1);
    cuda().download(t.handle, v, index * 4);
    return v[0];
  }
  const b = new Uint16Array(1);
  cuda().download(t.handle, b, index * 2);
  return new Float32Array(new Uint32Array([b[0] << 16]).buffer)[0];
}

function finishCheck(what: string, mode: string, status: RawQuantStatus | undefined, x: DeviceTensor, outputs: DeviceQuantized[], owned: boolean): void {
  if (!status) return;
  const cols = x.shape[1];
  if (mode === "throw") {
    if (status.count > 0) {
      const value = elementValue(x, status.first);
      if (owned) for (const o of outputs) o.free();
      const err = nonFiniteError(status.first, value, cols);
      err.message = err.message.replace(/^quantize:/, `${what}:`);
      throw err;
    }
    return;
  }
  const row = status.count > 0 ? Math.floor(status.first / cols) : -1;
  const col = status.count > 0 ? status.first - row * cols : -1;
  for (const o of outputs) o.nonFinite = { count: status.count, first: [row, col] };
}

/**
 * Fine-grained FP8 quantization on the device, equal bit for bit to quantizeReference (data and scales). Any block
 * shape: [1,128] and [128,128] run the tuned kernels, others a generic one. x: an fp32 or bf16 device tensor, or a
 * Float32Array with its shape (uploaded first).
 */
export function quantizeDevice(x: DeviceTensor, opts: DeviceQuantizeOptions): DeviceQuantized;
export function quantizeDevice(x: Float32Array, shape: Shape2, opts: DeviceQuantizeOptions): DeviceQuantized;
export function quantizeDevice(x: DeviceTensor | Float32Array, a: Shape2 | DeviceQuantizeOptions, b?: DeviceQuantizeOptions): DeviceQuantized {
  const what = "quantizeDevice";
  const opts = (x instanceof DeviceTensor ? a : b) as DeviceQuantizeOptions;
  if (opts === null || typeof opts !== "object") throw new TypeError(`${what}: options { block, format?, scale?, nonFinite? } are required`);
  const block = checkShape(`${what}: block`, opts.block);
  if (block.length !== 2) throw new RangeError(`${what}: block must be [rows, cols], got ${JSON.stringify(opts.block)}`);
  checkQuantizeOptions(what, opts);
  const { t, owned } = inputTensor(what, x, x instanceof DeviceTensor ? undefined : (a as Shape2));
  try {
    const [rows, cols] = t.shape as [number, number];
    const format = opts.format ?? "e4m3";
    const mode = opts.nonFinite ?? "throw";
    const [gr, gc] = gridShape([rows, cols], [block[0], block[1]]);
    const q = opts.into !== undefined ? reuse(what, opts.into, [rows, cols], [block[0], block[1]], format)
      : new DeviceQuantized(emptyDevice([rows, cols], format), emptyDevice([gr, gc], "fp32"), [rows, cols], [block[0], block[1]], format);
    const { data, scales } = q;
    if (opts.poison) poison(q);
    const status = cuda().quantize(t.handle, DTYPE_CODE[t.dtype], rows, cols, block[0], block[1], FORMAT_CODE[format], opts.scale === "pow2",
      data.handle, scales.handle, mode !== "unchecked");
    finishCheck(what, mode, status, t, [q], opts.into === undefined);
    return q;
  } finally {
    if (owned) t.free();
  }
}

export interface DeviceQuantizedBoth {
  /** [1,128] tiles of x: shape [rows, cols]. */
  rowwise: DeviceQuantized;
  /**
   * [1,128] tiles of xᵀ: shape [cols, rows] — the operand layout of the GEMMs that contract over x's rows (Wgrad).
   * Its toHost() equals quantizeReference(xᵀ, [cols, rows], { block: [1, 128] }); transposed back it is quantizeBoth's
   * `colwise` ([128,1] tiles of x).
   */
  transposed: DeviceQuantized;
}

/** Both layouts the backward pass needs from one read of x (each equal bit for bit to its separate quantization). */
export function quantizeBothDevice(x: DeviceTensor, opts: Omit<DeviceQuantizeOptions, "block" | "into"> & { into?: DeviceQuantizedBoth } = {}): DeviceQuantizedBoth {
  const what = "quantizeBothDevice";
  if (!(x instanceof DeviceTensor)) throw new TypeError(`${what}: x must be an fp32 or bf16 DeviceTensor (toDevice)`);
  checkQuantizeOptions(what, opts);
  const { t } = inputTensor(what, x);
  const [rows, cols] = t.shape as [number, number];
  if (rows > 65535 * 128) throw new RangeError(`${what}: at most ${65535 * 128} rows, got ${rows}`);
  const format = opts.format ?? "e4m3";
  const mode = opts.nonFinite ?? "throw";
  const rowwise = opts.into !== undefined ? reuse(what, opts.into.rowwise, [rows, cols], [1, 128], format)
    : new DeviceQuantized(emptyDevice([rows, cols], format), emptyDevice([rows, Math.ceil(cols / 128)], "fp32"), [rows, cols], [1, 128], format);
  const transposed = opts.into !== undefined ? reuse(what, opts.into.transposed, [cols, rows], [1, 128], format)
    : new DeviceQuantized(emptyDevice([cols, rows], format), emptyDevice([cols, Math.ceil(rows / 128)], "fp32"), [cols, rows], [1, 128], format);
  if (opts.poison) {
    poison(rowwise);
    poison(transposed);
  }
  const status = cuda().quantizeBoth(t.handle, DTYPE_CODE[t.dtype], rows, cols, FORMAT_CODE[format], opts.scale === "pow2",
    rowwise.data.handle, rowwise.scales.handle, transposed.data.handle, transposed.scales.handle, mode !== "unchecked");
  finishCheck(what, mode, status, t, [rowwise, transposed], opts.into === undefined);
  return { rowwise, transposed };
}

/** Codes times their block's scale in float32 (dequantize of the CPU path), as fp32 or its bf16 rounding. */
export function dequantizeDevice(q: DeviceQuantized, opts: { out?: "fp32" | "bf16"; into?: DeviceTensor } = {}): DeviceTensor {
  if (!(q instanceof DeviceQuantized)) throw new TypeError("dequantizeDevice: q must be a DeviceQuantized");
  const out = opts.out ?? "fp32";
  if (out !== "fp32" && out !== "bf16") throw new RangeError(`dequantizeDevice: out must be "fp32" or "bf16", got ${JSON.stringify(out)}`);
  const [rows, cols] = q.shape;
  const t = outputTensor("dequantizeDevice", opts.into, rows, cols, out);
  cuda().dequantize(q.data.live("dequantizeDevice"), q.scales.live("dequantizeDevice"), rows, cols, q.block[0], q.block[1], FORMAT_CODE[q.format], t.handle, DTYPE_CODE[out]);
  return t;
}

// ---- GEMMs -------------------------------------------------------------------------------------------------------------------

export type GemmImpl = "auto" | "sm90" | "cublaslt";
export type GemmOut = "bf16" | "fp32";

export interface DeviceMatmulOptions {
  /** Output element type (default bf16). */
  out?: GemmOut;
  /** "auto" (default): the faster of the two for this shape, measured once and cached (see gemmChoices()). */
  impl?: GemmImpl;
  /** Write into this [M, N] tensor of the out dtype instead of allocating one. */
  into?: DeviceTensor;
}

function describe(q: DeviceQuantized): string {
  return `[${q.shape[0]}, ${q.shape[1]}] ${q.format} in [${q.block[0]}, ${q.block[1]}] blocks`;
}

function checkOut(what: string, out: unknown): GemmOut {
  if (out === undefined) return "bf16";
  if (out !== "bf16" && out !== "fp32") throw new RangeError(`${what}: out must be "bf16" or "fp32", got ${JSON.stringify(out)}`);
  return out;
}

function checkImpl(what: string, impl: unknown): GemmImpl {
  const env = process.env.OCTET_CUDA_GEMM_IMPL;
  const v = impl ?? (env === "sm90" || env === "cublaslt" ? env : "auto");
  if (v !== "auto" && v !== "sm90" && v !== "cublaslt") throw new RangeError(`${what}: impl must be "auto", "sm90" or "cublaslt", got ${JSON.stringify(impl)}`);
  return v;
}

function outputTensor(what: string, into: DeviceTensor | undefined, M: number, N: number, out: GemmOut): DeviceTensor {
  if (into === undefined) return emptyDevice([M, N], out);
  if (!(into instanceof DeviceTensor)) throw new TypeError(`${what}: into must be a DeviceTensor`);
  if (into.dtype !== out || into.size !== M * N) {
    throw new RangeError(`${what}: into is [${into.shape.join(", ")}] ${into.dtype} but the result is [${M}, ${N}] ${out}`);
  }
  into.live(what);
  return into;
}

/** Why an implementation cannot run a shape, or null when it can. */
function implProblem(impl: "sm90" | "cublaslt", fa: Fp8Format, fb: Fp8Format, N: number, out: GemmOut, M = 4): string | null {
  const st = cudaStatus();
  if (impl === "sm90") {
    if (!st.sm90.available) return `the sm90 GEMM is unavailable: ${st.sm90.reason}`;
    if (fa !== "e4m3" || fb !== "e4m3") return `the sm90 GEMM takes e4m3 operands (got ${fa} · ${fb})`;
    return null;
  }
  if (!st.cublasLt.available) return `cuBLASLt is unavailable: ${st.cublasLt.reason}`;
  if (fa === "e5m2" && fb === "e5m2") return "cuBLASLt has no e5m2 · e5m2 FP8 GEMM";
  const align = out === "bf16" ? 8 : 4;
  if (N % align !== 0) return `cuBLASLt needs N to be a multiple of ${align} for ${out} output (rows of D 16-byte aligned), got N=${N}`;
  // Its 1x128 scales are [K/128][M] with M contiguous: M % 4 keeps their rows 16-byte aligned (seen on an H100 with
  // cuBLASLt 13.1: M=1 has no algorithm, M=100 runs).
  if (M % 4 !== 0) return `cuBLASLt's block-scaled path needs M (rows of a) to be a multiple of 4 (its 1x128 scale rows are 16-byte aligned), got M=${M}`;
  return null;
}

/** The VEC128 (activation) or BLK128x128 (weight) scale layout cuBLASLt reads, made once per operand. */
function ltScalesOf(q: DeviceQuantized, kind: "vec128" | "blk128"): DeviceTensor {
  if (q.ltScales && !q.ltScales.freed && !q.ltStale) return q.ltScales;
  const addon = cuda();
  const [rows, K] = q.shape;
  const kb = Math.ceil(K / 128);
  const nb = Math.ceil(rows / 128), kb4 = Math.ceil(kb / 4) * 4;
  if (!q.ltScales || q.ltScales.freed) q.ltScales = kind === "vec128" ? emptyDevice([kb, rows], "fp32") : emptyDevice([nb, kb4], "fp32");
  if (kind === "vec128") addon.transposeF32(q.scales.live("scaledMatmulDevice"), rows, kb, q.ltScales.handle);
  else addon.padRowsF32(q.scales.live("scaledMatmulDevice"), nb, kb, kb4, q.ltScales.handle);
  q.ltStale = false;
  return q.ltScales;
}

function launchGemm(impl: "sm90" | "cublaslt", a: DeviceQuantized, b: DeviceQuantized, d: DeviceTensor, out: GemmOut, M: number, N: number, K: number): void {
  const addon = cuda();
  if (impl === "sm90") {
    addon.gemmSm90(a.data.live("scaledMatmulDevice"), a.scales.live("scaledMatmulDevice"), b.data.live("scaledMatmulDevice"),
      b.scales.live("scaledMatmulDevice"), d.handle, DTYPE_CODE[out], M, N, K);
  } else {
    addon.gemmLt(a.data.live("scaledMatmulDevice"), FORMAT_CODE[a.format], ltScalesOf(a, "vec128").handle, b.data.live("scaledMatmulDevice"),
      FORMAT_CODE[b.format], ltScalesOf(b, "blk128").handle, d.handle, DTYPE_CODE[out], M, N, K);
  }
}

interface GemmChoice {
  impl: "sm90" | "cublaslt";
  /** Median milliseconds per call measured for each candidate (absent: not measured). */
  ms: { sm90?: number; cublaslt?: number };
  reason: string;
}
const choices = new Map<string, GemmChoice>();
let capturing = false;

/** The chooser's decisions so far, by "MxNxK fmtA·fmtB→out". */
export function gemmChoices(): Record<string, GemmChoice> {
  return Object.fromEntries(choices);
}

function timeCalls(fn: () => void, calls: number): number {
  const addon = cuda();
  const t: number[] = [];
  const e0 = addon.eventCreate(), e1 = addon.eventCreate();
  fn();  // warm-up (also makes cuBLASLt's plan and scale layouts)
  for (let i = 0; i < calls; i++) {
    addon.eventRecord(e0);
    fn();
    addon.eventRecord(e1);
    t.push(addon.eventElapsed(e0, e1));
  }
  return t.sort((x, y) => x - y)[t.length >> 1];
}

function chooseImpl(a: DeviceQuantized, b: DeviceQuantized, d: DeviceTensor, out: GemmOut, M: number, N: number, K: number): "sm90" | "cublaslt" {
  const key = `${M}x${N}x${K} ${a.format}·${b.format}→${out}`;
  const known = choices.get(key);
  if (known) return known.impl;
  const problems = { sm90: implProblem("sm90", a.format, b.format, N, out, M), cublaslt: implProblem("cublaslt", a.format, b.format, N, out, M) };
  const ok = (["sm90", "cublaslt"] as const).filter((i) => problems[i] === null);
  if (ok.length === 0) throw new Error(`scaledMatmulDevice: no GEMM implementation can run ${key}: ${problems.sm90}; ${problems.cublaslt}`);
  let choice: GemmChoice;
  if (ok.length === 1) {
    const other = ok[0] === "sm90" ? "cublaslt" : "sm90";
    choice = { impl: ok[0], ms: {}, reason: `only one can run it (${problems[other]})` };
  } else {
    if (capturing) throw new Error(`scaledMatmulDevice: impl "auto" has not measured ${key} yet and cannot while a graph is captured; call it once before capturing, or pass impl`);
    const ms = {
      sm90: timeCalls(() => launchGemm("sm90", a, b, d, out, M, N, K), 3),
      cublaslt: timeCalls(() => launchGemm("cublaslt", a, b, d, out, M, N, K), 3),
    };
    const impl = ms.sm90 <= ms.cublaslt ? "sm90" : "cublaslt";
    choice = { impl, ms, reason: "measured (median of 3 calls each)" };
  }
  choices.set(key, choice);
  return choice.impl;
}

/**
 * D [M,N] = a [M,K] · b [N,K]ᵀ with DeepSeek-V3's block scales: a in [1,128] tiles (activations), b in [128,128]
 * blocks (weights), FP32 promotion every 128 elements of K. K must be a multiple of 128; M and N are arbitrary for
 * the sm90 kernel (cuBLASLt needs N % 8 == 0 for bf16 output, N % 4 == 0 for fp32).
 */
export function scaledMatmulDevice(a: DeviceQuantized, b: DeviceQuantized, opts: DeviceMatmulOptions = {}): DeviceTensor {
  const what = "scaledMatmulDevice";
  if (!(a instanceof DeviceQuantized) || !(b instanceof DeviceQuantized)) throw new TypeError(`${what}: a and b must be DeviceQuantized (quantizeDevice / toDeviceQuantized)`);
  if (a.block[0] !== 1 || a.block[1] !== 128) throw new RangeError(`${what}: a must be in [1, 128] tiles (activations), got ${describe(a)}`);
  if (b.block[0] !== 128 || b.block[1] !== 128) throw new RangeError(`${what}: b must be in [128, 128] blocks (weights), got ${describe(b)}`);
  const [M, K] = a.shape;
  const N = b.shape[0];
  if (b.shape[1] !== K) throw new RangeError(`${what}: a is ${describe(a)} and b is ${describe(b)}; a·bᵀ needs the same K (columns) in both`);
  if (K % 128 !== 0) throw new RangeError(`${what}: K must be a multiple of 128, got ${K}`);
  const out = checkOut(what, opts.out);
  const impl = checkImpl(what, opts.impl);
  if (impl !== "auto") {
    const problem = implProblem(impl, a.format, b.format, N, out, M);
    if (problem) throw (problem.includes("unavailable") ? new Error(`${what}: ${problem}`) : new RangeError(`${what}: ${problem}`));
  }
  const d = outputTensor(what, opts.into, M, N, out);
  try {
    launchGemm(impl === "auto" ? chooseImpl(a, b, d, out, M, N, K) : impl, a, b, d, out, M, N, K);
  } catch (err) {
    if (!opts.into) d.free();
    throw err;
  }
  return d;
}

/** Expert weights stacked for the grouped GEMM: data [E, N, K], scales [E, ceil(N/128), K/128] (128x128 blocks). */
export class DeviceExperts {
  readonly data: DeviceTensor;
  readonly scales: DeviceTensor;
  readonly experts: number;
  /** [N, K] of each expert. */
  readonly shape: [number, number];
  readonly format: Fp8Format;
  /** @internal cuBLASLt's padded layout, [E, ceil(N/128), round_up(K/128, 4)] */
  ltScales?: DeviceTensor;

  /** @internal */
  constructor(data: DeviceTensor, scales: DeviceTensor, experts: number, shape: [number, number], format: Fp8Format) {
    this.data = data;
    this.scales = scales;
    this.experts = experts;
    this.shape = shape;
    this.format = format;
  }

  /** Each expert's Quantized. */
  toHost(): Quantized[] {
    const data = this.data.toHost() as Uint8Array, scales = this.scales.toHost() as Float32Array;
    const [N, K] = this.shape;
    const per = Math.ceil(N / 128) * Math.ceil(K / 128);
    return Array.from({ length: this.experts }, (_, e) => ({
      data: data.slice(e * N * K, (e + 1) * N * K), scales: scales.slice(e * per, (e + 1) * per),
      shape: [N, K] as [number, number], block: [128, 128] as [number, number], format: this.format,
    }));
  }

  free(): void {
    this.data.free();
    this.scales.free();
    this.ltScales?.free();
  }
}

/** Stack E quantized weights ([N, K] each, [128,128] blocks, one format) into one DeviceExperts (device copies). */
export function stackExpertsDevice(weights: readonly DeviceQuantized[]): DeviceExperts {
  const what = "stackExpertsDevice";
  if (!Array.isArray(weights) || weights.length < 1) throw new RangeError(`${what}: weights must be a non-empty array of DeviceQuantized`);
  const first = weights[0];
  for (const [e, w] of weights.entries()) {
    if (!(w instanceof DeviceQuantized)) throw new TypeError(`${what}: weights[${e}] is not a DeviceQuantized`);
    if (w.block[0] !== 128 || w.block[1] !== 128) throw new RangeError(`${what}: weights[${e}] must be in [128, 128] blocks, got ${describe(w)}`);
    if (w.shape[0] !== first.shape[0] || w.shape[1] !== first.shape[1] || w.format !== first.format) {
      throw new RangeError(`${what}: weights[${e}] is ${describe(w)} but weights[0] is ${describe(first)}`);
    }
  }
  const E = weights.length;
  const [N, K] = first.shape;
  const nb = Math.ceil(N / 128), kb = Math.ceil(K / 128);
  const data = emptyDevice([E, N, K], first.format);
  const scales = emptyDevice([E, nb, kb], "fp32");
  const addon = cuda();
  for (const [e, w] of weights.entries()) {
    addon.copy(data.handle, w.data.live(what), N * K, e * N * K, 0);
    addon.copy(scales.handle, w.scales.live(what), nb * kb * 4, e * nb * kb * 4, 0);
  }
  return new DeviceExperts(data, scales, E, [N, K], first.format);
}

export type GroupedImpl = "auto" | "sm90" | "loop-sm90" | "loop-cublaslt";

export interface GroupedMatmulOptions {
  out?: GemmOut;
  /** "sm90": one launch for all experts; "loop-…": one GEMM per expert; "auto": sm90 when built, else loop-cublaslt. */
  impl?: GroupedImpl;
  into?: DeviceTensor;
}

function checkOffsets(what: string, offsets: ArrayLike<number>, experts: number, rows: number): Int32Array {
  if (!offsets || typeof offsets.length !== "number") throw new TypeError(`${what}: offsets must be an array of experts + 1 integers`);
  if (offsets.length !== experts + 1) throw new RangeError(`${what}: offsets has ${offsets.length} entries; ${experts} experts need ${experts + 1}`);
  const o = new Int32Array(experts + 1);
  for (let e = 0; e <= experts; e++) {
    const v = offsets[e];
    if (!Number.isInteger(v) || v < 0 || v > rows) throw new RangeError(`${what}: offsets[${e}] = ${v} must be an integer in [0, ${rows}]`);
    if (e > 0 && v < o[e - 1]) throw new RangeError(`${what}: offsets must be non-decreasing (offsets[${e}] = ${v} < offsets[${e - 1}] = ${o[e - 1]})`);
    o[e] = v;
  }
  if (o[0] !== 0 || o[experts] !== rows) throw new RangeError(`${what}: offsets must start at 0 and end at a's ${rows} rows, got ${o[0]} … ${o[experts]}`);
  return o;
}

const groupedScaleCache = new WeakMap<DeviceQuantized, { key: string; version: number; scales: DeviceTensor; offsets: DeviceTensor }>();

/**
 * MoE experts: D [M_total, N], rows offsets[e] .. offsets[e+1] of a (tokens laid out contiguously by expert, the
 * dispatch plan of @octet/router) times expert e's weight. a: [M_total, K] in [1,128] tiles; b: stackExpertsDevice.
 */
export function groupedScaledMatmulDevice(a: DeviceQuantized, b: DeviceExperts, offsets: ArrayLike<number>, opts: GroupedMatmulOptions = {}): DeviceTensor {
  const what = "groupedScaledMatmulDevice";
  if (!(a instanceof DeviceQuantized)) throw new TypeError(`${what}: a must be a DeviceQuantized`);
  if (!(b instanceof DeviceExperts)) throw new TypeError(`${what}: b must be a DeviceExperts (stackExpertsDevice)`);
  if (a.block[0] !== 1 || a.block[1] !== 128) throw new RangeError(`${what}: a must be in [1, 128] tiles, got ${describe(a)}`);
  const [M, K] = a.shape;
  const [N, Kb] = b.shape;
  if (Kb !== K) throw new RangeError(`${what}: a has K=${K} columns but the experts are [${N}, ${Kb}]`);
  if (K % 128 !== 0) throw new RangeError(`${what}: K must be a multiple of 128, got ${K}`);
  const E = b.experts;
  const offs = checkOffsets(what, offsets, E, M);
  const out = checkOut(what, opts.out);
  let impl = opts.impl ?? "auto";
  if (!["auto", "sm90", "loop-sm90", "loop-cublaslt"].includes(impl)) throw new RangeError(`${what}: impl must be "auto", "sm90", "loop-sm90" or "loop-cublaslt", got ${JSON.stringify(impl)}`);
  if (impl === "auto") impl = cudaStatus().sm90.available && a.format === "e4m3" && b.format === "e4m3" ? "sm90" : "loop-cublaslt";
  let problem = implProblem(impl === "loop-cublaslt" ? "cublaslt" : "sm90", a.format, b.format, N, out);
  if (!problem && impl === "loop-cublaslt") {
    const e = Array.from({ length: E }, (_, i) => offs[i + 1] - offs[i]).findIndex((m) => m % 4 !== 0);
    if (e >= 0) problem = `cuBLASLt's block-scaled path needs every expert's rows to be a multiple of 4 (its 1x128 scale rows are 16-byte aligned); expert ${e} has ${offs[e + 1] - offs[e]}`;
  }
  if (problem) throw (problem.includes("unavailable") ? new Error(`${what}: ${problem}`) : new RangeError(`${what}: ${problem}`));
  const d = outputTensor(what, opts.into, M, N, out);
  const addon = cuda();
  const kb = K / 128, nb = Math.ceil(N / 128), elt = DTYPE_BYTES[out];
  try {
    if (impl === "sm90") {
      addon.groupedGemmSm90(a.data.live(what), a.scales.live(what), b.data.live(what), b.scales.live(what), d.handle, DTYPE_CODE[out], offs, E, N, K);
    } else if (impl === "loop-sm90") {
      for (let e = 0; e < E; e++) {
        const m = offs[e + 1] - offs[e];
        if (m === 0) continue;
        addon.gemmSm90(a.data.handle, a.scales.handle, b.data.handle, b.scales.handle, d.handle, DTYPE_CODE[out], m, N, K,
          offs[e] * K, offs[e] * kb * 4, e * N * K, e * nb * kb * 4, offs[e] * N * elt);
      }
    } else {
      const key = Array.from(offs).join(",");
      let cached = groupedScaleCache.get(a);
      if (!cached || cached.key !== key || cached.scales.freed) {
        const offsDev = toDevice(offs, [E + 1]);
        const scales = emptyDevice([M, kb], "fp32");
        addon.transposeF32Grouped(a.scales.live(what), offsDev.handle, E, M, kb, scales.handle);
        cached = { key, version: a.version, scales, offsets: offsDev };
        groupedScaleCache.set(a, cached);
      } else if (cached.version !== a.version) {
        addon.transposeF32Grouped(a.scales.live(what), cached.offsets.handle, E, M, kb, cached.scales.handle);
        cached.version = a.version;
      }
      if (!b.ltScales || b.ltScales.freed) {
        const kb4 = Math.ceil(kb / 4) * 4;
        b.ltScales = emptyDevice([E, nb, kb4], "fp32");
        addon.padRowsF32(b.scales.live(what), E * nb, kb, kb4, b.ltScales.handle);
      }
      const kb4 = Math.ceil(kb / 4) * 4;
      for (let e = 0; e < E; e++) {
        const m = offs[e + 1] - offs[e];
        if (m === 0) continue;
        addon.gemmLt(a.data.handle, FORMAT_CODE[a.format], cached.scales.handle, b.data.handle, FORMAT_CODE[b.format], b.ltScales.handle, d.handle,
          DTYPE_CODE[out], m, N, K, offs[e] * K, offs[e] * kb * 4, e * N * K, e * nb * kb4 * 4, offs[e] * N * elt);
      }
    }
  } catch (err) {
    if (!opts.into) d.free();
    throw err;
  }
  return d;
}

/** D [M,N] = a [M,K] · b [N,K]ᵀ for bf16 device tensors, fp32 accumulation (cuBLASLt), bf16 or fp32 output. */
export function matmulBf16Device(a: DeviceTensor, b: DeviceTensor, opts: { out?: GemmOut; into?: DeviceTensor } = {}): DeviceTensor {
  const what = "matmulBf16Device";
  if (!(a instanceof DeviceTensor) || !(b instanceof DeviceTensor)) throw new TypeError(`${what}: a and b must be DeviceTensors`);
  if (a.dtype !== "bf16" || b.dtype !== "bf16") throw new TypeError(`${what}: a and b must be bf16, got ${a.dtype} and ${b.dtype}`);
  if (a.shape.length !== 2 || b.shape.length !== 2) throw new RangeError(`${what}: a and b must be 2-D`);
  const [M, K] = a.shape;
  const [N, Kb] = b.shape;
  if (Kb !== K) throw new RangeError(`${what}: a is [${M}, ${K}] and b is [${N}, ${Kb}]; a·bᵀ needs the same K`);
  const out = checkOut(what, opts.out);
  const st = cudaStatus();
  if (st.available && !st.cublasLt.available) throw new Error(`${what}: cuBLASLt is unavailable: ${st.cublasLt.reason}`);
  const align = out === "bf16" ? 8 : 4;
  if (K % 8 !== 0 || N % align !== 0) throw new RangeError(`${what}: cuBLASLt needs K % 8 == 0 and N % ${align} == 0 (16-byte aligned rows), got K=${K}, N=${N}`);
  const d = outputTensor(what, opts.into, M, N, out);
  try {
    cuda().gemmBf16Lt(a.live(what), b.live(what), d.handle, DTYPE_CODE[out], M, N, K);
  } catch (err) {
    if (!opts.into) d.free();
    throw err;
  }
  return d;
}

/**
 * D [M,N] = a [M,K] · b [N,K]ᵀ for fp32 device tensors in true FP32 (cuBLASLt, CUBLAS_COMPUTE_32F: no TF32), fp32
 * output: the fp32 recipe's reference GEMM on the device.
 */
export function matmulF32Device(a: DeviceTensor, b: DeviceTensor, opts: { into?: DeviceTensor } = {}): DeviceTensor {
  const what = "matmulF32Device";
  if (!(a instanceof DeviceTensor) || !(b instanceof DeviceTensor)) throw new TypeError(`${what}: a and b must be DeviceTensors`);
  if (a.dtype !== "fp32" || b.dtype !== "fp32") throw new TypeError(`${what}: a and b must be fp32, got ${a.dtype} and ${b.dtype}`);
  if (a.shape.length !== 2 || b.shape.length !== 2) throw new RangeError(`${what}: a and b must be 2-D`);
  const [M, K] = a.shape;
  const [N, Kb] = b.shape;
  if (Kb !== K) throw new RangeError(`${what}: a is [${M}, ${K}] and b is [${N}, ${Kb}]; a·bᵀ needs the same K`);
  const st = cudaStatus();
  if (st.available && !st.cublasLt.available) throw new Error(`${what}: cuBLASLt is unavailable: ${st.cublasLt.reason}`);
  if (K % 4 !== 0 || N % 4 !== 0) throw new RangeError(`${what}: cuBLASLt needs K % 4 == 0 and N % 4 == 0 (16-byte aligned rows), got K=${K}, N=${N}`);
  const d = outputTensor(what, opts.into, M, N, "fp32");
  try {
    cuda().gemmF32Lt(a.live(what), b.live(what), d.handle, M, N, K);
  } catch (err) {
    if (!opts.into) d.free();
    throw err;
  }
  return d;
}

// ---- timing and utilities (the GPU scripts use them) -----------------------------------------------------------------------------

/** A captured CUDA graph: replay it, or time its replays with CUDA events. */
export class CudaGraph {
  /** @internal */
  readonly handle: Handle;
  /** @internal */
  constructor(handle: Handle) {
    this.handle = handle;
  }
  launch(times = 1): void {
    cuda().graphLaunch(this.handle, times);
  }
  /** Milliseconds of each of `reps` replays, after `warmup` untimed ones. */
  time(warmup: number, reps: number): Float64Array {
    return cuda().timeGraph(this.handle, warmup, reps);
  }
}

/**
 * Capture the device work fn() enqueues into a graph (nothing runs during capture). Calls that synchronize or
 * allocate throw inside it; run fn once before capturing so that plans, workspaces and scale layouts exist.
 */
export function captureGraph(fn: () => void): CudaGraph {
  const addon = cuda();
  addon.captureBegin();
  capturing = true;
  let failure: unknown = null;
  try {
    fn();
  } catch (err) {
    failure = err;
  }
  capturing = false;
  let graph: Handle | null = null;
  try {
    graph = addon.captureEnd();
  } catch (err) {
    if (!failure) failure = err;
  }
  if (failure) throw failure;
  return new CudaGraph(graph!);
}

/** Median milliseconds per call of fn (CUDA events around each of `reps` calls, after one warm-up call). */
export function timeDevice(fn: () => void, reps: number): number {
  return timeCalls(fn, reps);
}

/**
 * The raw device address of a tensor (plus a byte offset into it), for another addon of this process that runs
 * its kernels on the same memory (the model's op kernels). The address is valid while the tensor is alive.
 */
export function devicePointer(t: DeviceTensor, byteOffset = 0): bigint {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset > t.byteLength) {
    throw new RangeError(`devicePointer: byte offset ${byteOffset} is outside the tensor's ${t.byteLength} bytes`);
  }
  return cuda().devicePointer(t.live("devicePointer"), byteOffset);
}

/** The cudaStream_t all device work of the process runs on, in call order (for another addon's kernels). */
export function deviceStream(): bigint {
  return cuda().streamPointer();
}

/** Device memory in use, its peak, and what the pool holds (stream-ordered pool, cudaMallocAsync). */
export function deviceMemoryStats(): DeviceMemoryStats {
  return cuda().memoryStats();
}

/** Start a new peak (deviceMemoryStats().peakBytes) from the bytes in use now. */
export function resetPeakDeviceMemory(): void {
  cuda().resetPeakMemory();
}

/** Wait for all device work queued so far. */
export function synchronizeDevice(): void {
  cuda().synchronize();
}

/** Seeded pseudo-random fill on the device: "uniform" in (-scale, scale), "normal" with sd scale, "logUniform" 10^±scale. */
export function fillRandomDevice(t: DeviceTensor, seed: number, dist: "uniform" | "normal" | "logUniform" = "normal", scale = 1): void {
  const d = { uniform: 0, normal: 1, logUniform: 2 }[dist];
  if (d === undefined) throw new RangeError(`fillRandomDevice: unknown distribution ${JSON.stringify(dist)}`);
  if (t.dtype === "i32") throw new TypeError("fillRandomDevice: i32 tensors are not filled");
  cuda().fillRandom(t.live("fillRandomDevice"), DTYPE_CODE[t.dtype], t.size, seed >>> 0, d, scale);
}

/** Number of NaN elements of an fp32 or bf16 device tensor (e.g. outputs left unwritten after a NaN fill). */
export function countNaNDevice(t: DeviceTensor): number {
  if (t.dtype !== "fp32" && t.dtype !== "bf16") throw new TypeError(`countNaNDevice: fp32 or bf16 tensors only, got ${t.dtype}`);
  return cuda().countNaN(t.live("countNaNDevice"), DTYPE_CODE[t.dtype], t.size);
}

/** Device-to-device copy of `bytes` (default: all of src). */
export function copyDevice(dst: DeviceTensor, src: DeviceTensor, bytes = src.byteLength): void {
  if (bytes > dst.byteLength || bytes > src.byteLength) throw new RangeError(`copyDevice: ${bytes} bytes do not fit (src ${src.byteLength}, dst ${dst.byteLength})`);
  cuda().copy(dst.live("copyDevice"), src.live("copyDevice"), bytes);
}

/** fp32 ↔ bf16 on the device (fp32 → bf16 rounds to nearest even, NaN → 0xFFFF, as encodeBf16). */
export function convertDevice(t: DeviceTensor, to: "fp32" | "bf16"): DeviceTensor {
  if (t.dtype !== "fp32" && t.dtype !== "bf16") throw new TypeError(`convertDevice: fp32 or bf16 tensors only, got ${t.dtype}`);
  const out = emptyDevice(t.shape, to);
  cuda().convert(t.live("convertDevice"), DTYPE_CODE[t.dtype], out.handle, DTYPE_CODE[to], t.size);
  return out;
}

/**
 * The hardware FP8 cast path (cvt.rn.satfinite plus the overflow fix-up) against PyTorch's algorithm on all 2^32
 * float32 bit patterns, on the device: mismatches per format and the first mismatching bit pattern (-1: none).
 */
export function castSelfTestDevice(): { e4m3: { mismatches: number; first: number }; e5m2: { mismatches: number; first: number } } {
  return cuda().castSelfTest();
}

/**
 * Kernel tuning knobs, for benchmarks that compare variants in one run: "rows_unroll" (2 or 4 tiles in flight per
 * half-warp in the 1x128 kernel, bf16 input; default 4), "rows_blocks_per_sm" (0: the occupancy limit),
 * "both_variant" / "blocks_variant" (1: values held in registers; 2: cp.async tile in shared memory, the default
 * for blocks; both_variant 3, its default: 2 with the transposed codes stored in whole 32-byte sectors).
 */
export function setKernelKnob(name: "rows_unroll" | "rows_blocks_per_sm" | "both_variant" | "blocks_variant", value: number): void {
  cuda().setKnob(name, value);
}
