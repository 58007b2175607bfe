// Loader of the router's native CPU kernel (build/Release/octet_router.node, built by `node-gyp rebuild` in
// the package's build script from native/*.cc and @octet/native-common's headers). Optional at run time: when
// the addon is missing or disabled (OCTET_ROUTER_BACKEND=typescript, or setRouterBackend("typescript"))
// nativeRouteKernel() returns null, routeTokens runs its TypeScript implementation (the specification), and
// routerBackend() says which path runs and why.
//
// The kernel trusts its caller for the meaning of its arguments (routeTokens validates first) but checks
// array types and lengths, so a wrong call throws instead of reading out of bounds.

import { type NativeAddonLoad, loadNativeAddon, nativeAddonPath as addonPathIn } from "@octet/native-common";

export interface NativeRouterInfo {
  threads: number;
  isa: string;
  flags: string;
  compiler: string;
}

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
  /** Threads, ISA and compiler flags of the build. */
  info(): NativeRouterInfo;
}

// The package root is one level above this file, from src/ (tsx) and from dist/.
const PACKAGE_ROOT = new URL("..", import.meta.url);
const ADDON_FILE = "octet_router.node";

/** Path of the addon (whether or not it is built). */
export function nativeAddonPath(): string {
  return addonPathIn(PACKAGE_ROOT, ADDON_FILE);
}

// The same expression as FRACTION_POWERS in sigmoid.ts, so the native kernel uses the very doubles V8's
// Math.pow produced (the route-native tests would notice if the two drifted apart).
const FRACTION_POWERS = Float64Array.from({ length: 32 }, (_, j) => Math.pow(2, j / 32));

let load: NativeAddonLoad<NativeRouterKernels> | undefined;
let forced: "native" | "typescript" | null = null;

function loadOnce(): NativeAddonLoad<NativeRouterKernels> {
  load ??= loadNativeAddon<NativeRouterKernels>({
    packageRoot: PACKAGE_ROOT,
    file: ADDON_FILE,
    packageName: "@octet/router",
    envVar: "OCTET_ROUTER_BACKEND",
    functions: ["routeSigmoid", "setFractionPowers", "sigmoidF32", "info"],
    initialize: (addon) => addon.setFractionPowers(FRACTION_POWERS),
  });
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
  /** Why the TypeScript path runs; null on the native path. */
  reason: string | null;
}

/** Which path routeTokens' sigmoid gate runs in this process, and why (the router's numericsBackend()). */
export function routerBackend(): RouterBackendInfo {
  if (forced === "typescript") return { path: "typescript", reason: 'forced by setRouterBackend("typescript")' };
  const { addon, reason } = loadOnce();
  return addon ? { path: "native", reason: null } : { path: "typescript", reason };
}
