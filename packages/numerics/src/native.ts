// Loader of the native CPU kernels (native/*.cc and @octet/native-common's headers, compiled by the package's
// build script: `prebuildify --napi` runs node-gyp and keeps the binary in prebuilds/<platform>-<arch>/, which
// the npm package ships; a local `node-gyp rebuild` leaves it in build/Release/, which wins). The addon holds
// the kernels compiled for AVX-512, AVX2 and baseline x86-64 and runs the best copy the CPU supports
// (OCTET_NATIVE_ISA=avx512|avx2|scalar forces one). Optional at run time: when the addon is missing or
// disabled (OCTET_NUMERICS_BACKEND=typescript) loadNativeKernels() returns null and nativeUnavailableReason()
// says why (@octet/native-common's loadNativeAddon).
//
// Every kernel trusts its caller for the meaning of its arguments (the TypeScript wrappers validate at the
// edge) but checks array types and lengths, so a wrong call throws instead of reading out of bounds.

import { type NativeAddonLoad, type NativeBuildInfo, loadNativeAddon, nativeAddonPath as addonPathIn } from "@octet/native-common";

/** FP8 format codes of the native interface. */
export const NATIVE_FORMAT = { e4m3: 0, e5m2: 1 } as const;
export type NativeFormatCode = 0 | 1;

export interface NativeQuantized {
  /** FP8 codes, row-major [rows, cols]. */
  data: Uint8Array;
  /** Row-major over the block grid [ceil(rows/blockRows), ceil(cols/blockCols)]. */
  scales: Float32Array;
}

export interface NativeQuantizeResult extends NativeQuantized {
  /** Flat index of the first NaN or ±inf input, or -1 (data and scales are then meaningless). */
  firstNonFinite: number;
}

export interface NativeTiledBoth {
  /** [1,128] tiles: scales grid [rows, ceil(cols/128)]. */
  rowwise: NativeQuantized;
  /** [128,1] tiles (same [rows, cols] data layout): scales grid [ceil(rows/128), cols]. */
  colwise: NativeQuantized;
  firstNonFinite: number;
}

/** Threads, the instruction set this process runs and the others the CPU supports, flags and compiler of the build. */
export type NativeInfo = NativeBuildInfo;

export interface NativeKernels {
  /** Fine-grained FP8 quantization; equals quantizeReference bit for bit (data and scales). */
  quantize(x: Float32Array, rows: number, cols: number, blockRows: number, blockCols: number, format: number, pow2: boolean): NativeQuantizeResult;
  /** The [1,128] and [128,1] quantizations of x in one read (each equals the separate quantize call). */
  quantizeTiledBoth(x: Float32Array, rows: number, cols: number, format?: number, pow2?: boolean): NativeTiledBoth;
  /**
   * C [M,N] = A [M,K] · B [N,K]ᵀ with DeepSeek-V3's promotion: each interval of promoteEvery (default 128) K
   * elements is summed in fp32 from the decoded codes, then scaled by f32(sa·sb) and added to the fp32 result.
   */
  scaledMatmul(
    aData: Uint8Array, aScales: Float32Array, M: number, K: number, aBlockRows: number, aBlockCols: number, aFormat: number,
    bData: Uint8Array, bScales: Float32Array, N: number, bBlockRows: number, bBlockCols: number, bFormat: number,
    promoteEvery?: number,
  ): Float32Array;
  /** fp32 C [M,N] = a [M,K] · b [N,K]ᵀ. */
  matmulF32(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float32Array;
  /** BF16 bit patterns widened to fp32, fp32 accumulation: C [M,N] = a [M,K] · b [N,K]ᵀ. */
  matmulBf16(aBits: Uint16Array, bBits: Uint16Array, M: number, N: number, K: number): Float32Array;
  /** encodeFp8 of formats.ts, bit for bit (saturate: clamp finite values to ±max first). */
  encodeFp8(x: Float32Array, format: number, saturate?: boolean): Uint8Array;
  decodeFp8(codes: Uint8Array, format: number): Float32Array;
  /** encodeBf16 of formats.ts, bit for bit (NaN → 0xFFFF). */
  encodeBf16(x: Float32Array): Uint16Array;
  /** Threads, instruction set (the one running and the supported ones) and compiler flags of the build. */
  info(): NativeInfo;
}

// The package root is one level above this file, from src/ (tsx) and from dist/.
const PACKAGE_ROOT = new URL("..", import.meta.url);

/** Path of the binary that loads (build/Release, else the prebuilt one for this platform), or null when there is none. */
export function nativeAddonPath(): string | null {
  return addonPathIn(PACKAGE_ROOT);
}

let load: NativeAddonLoad<NativeKernels> | undefined;

function loadOnce(): NativeAddonLoad<NativeKernels> {
  load ??= loadNativeAddon<NativeKernels>({
    packageRoot: PACKAGE_ROOT,
    packageName: "@octet/numerics",
    envVar: "OCTET_NUMERICS_BACKEND",
    functions: ["quantize", "quantizeTiledBoth", "scaledMatmul", "matmulF32", "matmulBf16", "encodeFp8", "decodeFp8", "encodeBf16", "info"],
  });
  return load;
}

/** The native kernels, or null (see nativeUnavailableReason). Loaded once per process. */
export function loadNativeKernels(): NativeKernels | null {
  return loadOnce().addon;
}

/** Why loadNativeKernels() returns null, or null when the native kernels are available. */
export function nativeUnavailableReason(): string | null {
  return loadOnce().reason;
}
