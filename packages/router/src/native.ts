// Loader of the router's native CPU kernel (native/*.cc and @octet/native-common's headers, compiled by the
// package's build script: `prebuildify --napi` runs node-gyp and keeps the binary in
// prebuilds/<platform>-<arch>/, which the npm package ships; a local `node-gyp rebuild` leaves it in
// build/Release/, which wins). The addon holds the kernel compiled for AVX-512, AVX2 and baseline x86-64 and
// runs the best copy the CPU supports (OCTET_NATIVE_ISA=avx512|avx2|scalar forces one). Optional at run
// time: when the addon is missing or disabled (OCTET_ROUTER_BACKEND=typescript, or
// setRouterBackend("typescript")) nativeRouteKernel() returns null, routeTokens runs its TypeScript
// implementation (the specification), and routerBackend() says which path runs and why; a missing or broken
// addon is also reported once on stderr (a process warning), as @octet/numerics does.
//
// The kernel trusts its caller for the meaning of its arguments (routeTokens validates first) but checks
// array types and lengths, so a wrong call throws instead of reading out of bounds.

import { type NativeAddonLoad, type NativeBuildInfo, type NativeIsa, loadNativeAddon, nativeAddonPath as addonPathIn } from "@octet/native-common";

/** Threads, the instruction set this process runs and the others the CPU supports, flags and compiler of the build. */
export type NativeRouterInfo = NativeBuildInfo;

export interface NativeRouterKernels {
  /**
   * routeTokens with scoreFunction "sigmoid", bit for bit (indices, weights, scores): fills indices and
   * weights [tokens, topK] and, unless it is null, scores [tokens, experts]. Returns the flat index of the
   * first NaN logit (the outputs are then unspecified), or -1.
   */
  routeSigmoid(
    logits: Float32Array, tokens: number, experts: number, topK: number, nGroup: number, topkGroup: number,
    bias: Float32Array, normTopkProb: boolean, routedScalingFactor: number,
    indices: Int32Array, weights: Float32Array, scores: Float32Array | null,
  ): number;
  /** Installs sigmoid.ts' table 2^(j/32), j = 0..31 (done by the loader). */
  setFractionPowers(table: Float64Array): void;
  /** The native scalar sigmoid (same algorithm as sigmoidF32), element-wise; for tests. */
  sigmoidF32(x: Float32Array): Float32Array;
  /** Threads, instruction set (the one running and the supported ones) and compiler flags of the build. */
  info(): NativeRouterInfo;
}

// The package root is one level above this file, from src/ (tsx) and from dist/.
const PACKAGE_ROOT = new URL("..", import.meta.url);

/** Path of the binary that loads (build/Release, else the prebuilt one for this platform), or null when there is none. */
export function nativeAddonPath(): string | null {
  return addonPathIn(PACKAGE_ROOT);
}

// The same expression as FRACTION_POWERS in sigmoid.ts, so the native kernel uses the very doubles V8's
// Math.pow produced (the route-native tests would notice if the two drifted apart).
const FRACTION_POWERS = Float64Array.from({ length: 32 }, (_, j) => Math.pow(2, j / 32));

let load: NativeAddonLoad<NativeRouterKernels> | undefined;
let loadedIsa: NativeIsa | null = null;
let forced: "native" | "typescript" | null = null;

function loadOnce(): NativeAddonLoad<NativeRouterKernels> {
  if (load === undefined) {
    load = loadNativeAddon<NativeRouterKernels>({
      packageRoot: PACKAGE_ROOT,
      packageName: "@octet/router",
      envVar: "OCTET_ROUTER_BACKEND",
      functions: ["routeSigmoid", "setFractionPowers", "sigmoidF32", "info"],
      initialize: (addon) => addon.setFractionPowers(FRACTION_POWERS),
    });
    loadedIsa = load.addon ? load.addon.info().isa : null;
    if (!load.addon && process.env.OCTET_ROUTER_BACKEND !== "typescript") {
      process.emitWarning(`@octet/router: native routing kernel unavailable (${load.reason}); using the TypeScript path`, { code: "OCTET_ROUTER_NATIVE" });
    }
  }
  return load;
}

/** The native kernel, or null when it is not built, fails to load or is disabled by OCTET_ROUTER_BACKEND. */
export function loadNativeRouterKernels(): NativeRouterKernels | null {
  return loadOnce().addon;
}

/** Why the native kernel is not available, or null when it is. */
export function nativeUnavailableReason(): string | null {
  return loadOnce().reason;
}

/**
 * Chooses the backend of routeTokens' sigmoid path for this process: "typescript" forces the TypeScript
 * implementation, "native" (the default) uses the kernel when it loaded. For tests and benchmarks.
 */
export function setRouterBackend(backend: "native" | "typescript"): void {
  if (backend !== "native" && backend !== "typescript") throw new RangeError(`backend must be "native" or "typescript", got ${String(backend)}`);
  forced = backend === "typescript" ? "typescript" : null;
}

/** The kernel routeTokens dispatches to, or null (TypeScript path). */
export function nativeRouteKernel(): NativeRouterKernels | null {
  return forced === "typescript" ? null : loadNativeRouterKernels();
}

export interface RouterBackendInfo {
  /** What routeTokens runs for scoreFunction "sigmoid" ("softmax" always runs in TypeScript). */
  path: "native" | "typescript";
  /** The native kernel's instruction set ("avx512", "avx2" or "scalar"); null on the TypeScript path. */
  isa: NativeIsa | null;
  /** Why the TypeScript path runs; null on the native path. */
  reason: string | null;
}

/** Which path routeTokens' sigmoid gate runs in this process, with which instruction set, and why (the router's numericsBackend()). */
export function routerBackend(): RouterBackendInfo {
  if (forced === "typescript") return { path: "typescript", isa: null, reason: 'forced by setRouterBackend("typescript")' };
  const { addon, reason } = loadOnce();
  return addon ? { path: "native", isa: loadedIsa, reason: null } : { path: "typescript", isa: null, reason };
}
