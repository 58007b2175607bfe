// The repository's npm workspaces as the root package.json declares them, with their package.json files.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: three levels above this file (tools/repo-checks/src). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The fields of a package.json these checks read. */
export interface PackageJson {
  name?: string;
  private?: boolean;
  bin?: string | Record<string, string>;
  exports?: string | Record<string, unknown>;
  scripts?: Record<string, string>;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export interface Workspace {
  /** npm name, e.g. "@octet/model" */
  name: string;
  /** directory relative to the repository root, with forward slashes, e.g. "packages/model" */
  dir: string;
  packageJson: PackageJson;
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/**
 * Every workspace of the root package.json, in a stable order (sorted by directory). Patterns are either a
 * directory or "dir/*" (the only forms npm's `workspaces` uses here); a pattern matching a directory twice
 * (packages/proto and packages/*) yields it once.
 */
export function listWorkspaces(root: string = REPO_ROOT): Workspace[] {
  const patterns = readJson<PackageJson>(join(root, "package.json")).workspaces ?? [];
  const dirs = new Set<string>();
  for (const pattern of patterns) {
    if (pattern.endsWith("/*")) {
      const parent = pattern.slice(0, -2);
      if (!existsSync(join(root, parent))) continue;
      for (const entry of readdirSync(join(root, parent), { withFileTypes: true })) {
        if (entry.isDirectory() && existsSync(join(root, parent, entry.name, "package.json"))) dirs.add(`${parent}/${entry.name}`);
      }
    } else if (pattern.includes("*")) {
      throw new RangeError(`workspace pattern ${JSON.stringify(pattern)}: only "dir" and "dir/*" are understood`);
    } else if (existsSync(join(root, pattern, "package.json"))) {
      dirs.add(pattern);
    }
  }
  return [...dirs].sort().map((dir) => {
    const packageJson = readJson<PackageJson>(join(root, dir, "package.json"));
    if (!packageJson.name) throw new TypeError(`${dir}/package.json has no "name"`);
    return { name: packageJson.name, dir, packageJson };
  });
}

/** The bin commands of a package.json, as { command: script path }. */
export function binsOf(pj: PackageJson): Record<string, string> {
  if (!pj.bin) return {};
  if (typeof pj.bin === "string") return pj.name ? { [pj.name.replace(/^@[^/]+\//, "")]: pj.bin } : {};
  return pj.bin;
}
