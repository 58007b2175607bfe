// Loader of the router's native CPU kernel (build/Release/octet_router.node, built by `node-gyp rebuild` in
// the package's build script from native/*.cc). Optional at run time: when the addon is missing or disabled
// (OCTET_ROUTER_BACKEND=typescript, or setRouterBackend("typescript")) nativeRouteKernel() returns null,
// routeTokens runs its TypeScript implementation (the specification), and nativeUnavailableReason() says why.
//
// The kernel trusts its caller for the meaning of its arguments (routeTokens validates first) but checks
// array types and lengths, so a wrong call throws instead of reading out of bounds.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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

/** Path of the addon: the package root is one level above this file, from src/ (tsx) and from dist/. */
export function nativeAddonPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..", "build", "Release", "octet_router.node");
}

// The same expression as FRACTION_POWERS in sigmoid.ts, so the native kernel uses the very doubles V8's
// Math.pow produced (the route-native tests would notice if the two drifted apart).
const FRACTION_POWERS = Float64Array.from({ length: 32 }, (_, j) => Math.pow(2, j / 32));

let loaded: NativeRouterKernels | null | undefined;
let reason: string | null = null;
let forced: "native" | "typescript" | null = null;

export function loadNativeRouterKernels(): NativeRouterKernels | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.OCTET_ROUTER_BACKEND === "typescript") {
    reason = "disabled by OCTET_ROUTER_BACKEND=typescript";
    return loaded;
  }
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    reason = `addon not built (${path} is missing; run npm run build -w @octet/router)`;
    return loaded;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as NativeRouterKernels;
    for (const name of ["routeSigmoid", "setFractionPowers", "sigmoidF32", "info"] as const) {
      if (typeof addon[name] !== "function") throw new Error(`the addon lacks ${name}() (stale build?)`);
    }
    addon.setFractionPowers(FRACTION_POWERS);
    loaded = addon;
    reason = null;
  } catch (err) {
    reason = `failed to load ${path}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return loaded;
}

/** Why the native kernel is not used, or null when it is available. */
export function nativeUnavailableReason(): string | null {
  loadNativeRouterKernels();
  return reason;
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
