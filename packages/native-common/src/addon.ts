// The loader of Octet's optional native addons. Where the binary is, node-gyp-build decides, as in most
// native npm packages: a local build (build/Release/*.node, from `node-gyp rebuild`) first, else the
// prebuilt binary shipped in the package for this platform and architecture
// (prebuilds/<platform>-<arch>/*.node, made by `prebuildify --napi` in the package's build script). A
// package calls loadNativeAddon once and caches the answer: the addon, or null and the reason it is not used
// (disabled by its environment variable, no binary for this platform, failed to load, stale). Callers fall
// back to their TypeScript implementation, which stays the specification.

import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
// CommonJS, without type declarations: path(dir) returns the binary's path or throws "No native build was found ...".
const nodeGypBuild = require("node-gyp-build") as { path(dir: string): string };

/** An instruction set a native addon's kernels are compiled for (octet/native/isa.h). */
export type NativeIsa = "avx512" | "avx2" | "scalar";

/** What an addon's info() reports (octet/native/napi.h's build_info). */
export interface NativeBuildInfo {
  /** Threads of the addon's pool (OCTET_NUM_THREADS, default all cores). */
  threads: number;
  /** The instruction set this process runs: the best the CPU supports, or OCTET_NATIVE_ISA. */
  isa: NativeIsa;
  /** What that copy of the kernels is, in words. */
  kernels: string;
  /** The instruction sets this build has and this CPU runs, best first (each can be forced with OCTET_NATIVE_ISA). */
  supported: NativeIsa[];
  /** The build's compiler flags. */
  flags: string;
  compiler: string;
}

export interface NativeAddonSpec<T> {
  /** The package's root directory, as a path or a file: URL (e.g. `new URL("..", import.meta.url)` from src/ or dist/). */
  packageRoot: string | URL;
  /** The package's name, for the hints in the reasons. */
  packageName: string;
  /** The environment variable that disables the addon when it is "typescript", e.g. "OCTET_NUMERICS_BACKEND". */
  envVar: string;
  /** Functions the addon must export; a build that lacks one is stale and is not used. */
  functions: readonly (keyof T & string)[];
  /** Runs once on the loaded addon before it is used (e.g. to install tables); a throw counts as a failed load. */
  initialize?: (addon: T) => void;
}

export interface NativeAddonLoad<T> {
  /** The addon, or null when it is not used. */
  addon: T | null;
  /** Why addon is null; null when the addon is used. */
  reason: string | null;
  /** The binary that was (or would have been) loaded; null when there is none for this platform. */
  path: string | null;
}

function rootPath(packageRoot: string | URL): string {
  const root = packageRoot instanceof URL ? fileURLToPath(packageRoot) : packageRoot;
  if (typeof root !== "string" || root === "") throw new TypeError(`packageRoot must be a non-empty path or a file: URL, got ${String(packageRoot)}`);
  return root;
}

/**
 * The binary node-gyp-build picks for a package: <packageRoot>/build/Release/*.node when there is a local
 * build, else the matching <packageRoot>/prebuilds/<platform>-<arch>/*.node; null when there is neither.
 */
export function nativeAddonPath(packageRoot: string | URL): string | null {
  const root = rootPath(packageRoot);
  try {
    return nodeGypBuild.path(root);
  } catch {
    return null;
  }
}

/** Loads a package's native addon, or says why it is not used. Never throws for a missing or broken addon. */
export function loadNativeAddon<T>(spec: NativeAddonSpec<T>): NativeAddonLoad<T> {
  validateSpec(spec);
  const root = rootPath(spec.packageRoot);
  const path = nativeAddonPath(root);
  if (process.env[spec.envVar] === "typescript") {
    return { addon: null, reason: `disabled by ${spec.envVar}=typescript`, path };
  }
  if (path === null) {
    return {
      addon: null,
      reason:
        `no native binary for ${platform()}-${arch()} (neither ${join(root, "build", "Release", "*.node")} nor a prebuilds/${platform()}-${arch()} binary; ` +
        `in the repository run npm run build -w ${spec.packageName}, in a project that installed it run npm rebuild ${spec.packageName} with a C++ compiler, make and python3)`,
      path,
    };
  }
  try {
    const addon = require(path) as T;
    for (const name of spec.functions) {
      if (typeof addon[name] !== "function") throw new Error(`the addon lacks ${name}() (stale build?)`);
    }
    spec.initialize?.(addon);
    return { addon, reason: null, path };
  } catch (err) {
    return { addon: null, reason: `failed to load ${path}: ${err instanceof Error ? err.message : String(err)}`, path };
  }
}

function validateSpec<T>(spec: NativeAddonSpec<T>): void {
  if (typeof spec !== "object" || spec === null) throw new TypeError("loadNativeAddon needs a spec object");
  for (const key of ["packageName", "envVar"] as const) {
    if (typeof spec[key] !== "string" || spec[key] === "") throw new TypeError(`${key} must be a non-empty string, got ${String(spec[key])}`);
  }
  if (!Array.isArray(spec.functions) || spec.functions.some((name) => typeof name !== "string" || name === "")) {
    throw new TypeError("functions must be an array of function names");
  }
  if (spec.initialize !== undefined && typeof spec.initialize !== "function") throw new TypeError("initialize must be a function");
}
