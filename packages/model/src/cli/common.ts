// Shared pieces of the CLIs: config resolution, and one JSON object per line on stdout.

import { readFileSync } from "node:fs";
import { type Config, type RecipeName, RECIPE_NAMES, presetConfig, validateConfig } from "../config.js";

/** A preset name, or a path to a JSON config file. */
export function resolveConfig(nameOrPath: string): Config {
  if (nameOrPath.endsWith(".json")) return JSON.parse(readFileSync(nameOrPath, "utf8")) as Config;
  return presetConfig(nameOrPath);
}

export function parseRecipe(s: string): RecipeName {
  if (!(RECIPE_NAMES as readonly string[]).includes(s)) throw new RangeError(`unknown recipe ${JSON.stringify(s)}; expected one of ${RECIPE_NAMES.join(", ")}`);
  return s as RecipeName;
}

/** --device: "cpu" or "cuda". */
export function parseDevice(s: string): "cpu" | "cuda" {
  if (s !== "cpu" && s !== "cuda") throw new RangeError(`unknown device ${JSON.stringify(s)}; expected cpu or cuda`);
  return s;
}

export function parseIntOption(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** Validate early: unknown keys, bad groups, FP8 alignment — before any work starts. */
export function checkedConfig(config: Config, recipe: RecipeName, steps?: number): Config {
  const c = structuredClone(config);
  if (steps !== undefined) c.train.steps = steps;
  return validateConfig(c, recipe);
}

export function printJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export function fail(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${msg}\n`);
  process.exit(2);
}
