// The loader of Octet's optional native addons (build/Release/<file>.node, built by `node-gyp rebuild` in a
// package's build script). A package calls loadNativeAddon once and caches the answer: the addon, or null
// and the reason it is not used (disabled by its environment variable, not built, failed to load, stale).
// Callers fall back to their TypeScript implementation, which stays the specification.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeAddonSpec<T> {
  /** The package's root directory, as a path or a file: URL (e.g. `new URL("..", import.meta.url)` from src/ or dist/). */
  packageRoot: string | URL;
  /** The addon's file name under build/Release, e.g. "octet_numerics.node". */
  file: string;
  /** The package's name, for the "run npm run build -w <name>" hint. */
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
  /** Where the addon is (or would be). */
  path: string;
}

/** The path of a package's addon: <packageRoot>/build/Release/<file>. */
export function nativeAddonPath(packageRoot: string | URL, file: string): string {
  const root = packageRoot instanceof URL ? fileURLToPath(packageRoot) : packageRoot;
  if (typeof root !== "string" || root === "") throw new TypeError(`packageRoot must be a non-empty path or a file: URL, got ${String(packageRoot)}`);
  if (typeof file !== "string" || file === "") throw new TypeError(`file must be the addon's file name, got ${String(file)}`);
  return join(root, "build", "Release", file);
}

/** Loads a package's native addon, or says why it is not used. Never throws for a missing or broken addon. */
export function loadNativeAddon<T>(spec: NativeAddonSpec<T>): NativeAddonLoad<T> {
  validateSpec(spec);
  const path = nativeAddonPath(spec.packageRoot, spec.file);
  if (process.env[spec.envVar] === "typescript") {
    return { addon: null, reason: `disabled by ${spec.envVar}=typescript`, path };
  }
  if (!existsSync(path)) {
    return { addon: null, reason: `addon not built (${path} is missing; run npm run build -w ${spec.packageName})`, path };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as T;
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
