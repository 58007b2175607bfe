// Import boundaries: checks a layering table (layering.ts) against itself, against the workspaces'
// package.json files, and against every module reference in their code. Each check returns its
// violations, each naming where (file:line or package.json) and why; an empty list is a pass.

import type { ModuleReference } from "./imports.js";
import type { PackageJson, Workspace } from "./workspaces.js";

/** A library's layer (0 = lowest), or an app (above every library), or a tool (outside the graph). */
export type Layer = number | "app" | "tool";

export interface LayerRule {
  name: string;
  /** directory relative to the repository root */
  dir: string;
  layer: Layer;
  /**
   * What its code may import. A package name ("@octet/numerics") allows the package and all its subpaths;
   * a name with a subpath ("@octet/model/config") allows that entry point only.
   */
  imports: readonly string[];
  /** Packages whose bins it starts as child processes: it may declare them as dependencies, never import them. */
  runs?: readonly string[];
}

export interface Violation {
  /** "file:line" or "dir/package.json" */
  where: string;
  message: string;
}

const SCOPE = "@octet/";
const DEPENDENCY_SECTIONS = ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies"] as const;

function rank(layer: Layer): number {
  if (layer === "app") return 1_000;
  if (layer === "tool") return 2_000;
  return layer;
}

function layerName(layer: Layer): string {
  return typeof layer === "number" ? `layer ${layer}` : layer === "app" ? "an app" : "a tool";
}

/** "@octet/model/config" → { pkg: "@octet/model", subpath: "./config" }; "@octet/model" → subpath ".". */
export function splitSpecifier(specifier: string): { pkg: string; subpath: string } {
  const parts = specifier.split("/");
  const pkg = parts.slice(0, 2).join("/");
  const rest = parts.slice(2).join("/");
  return { pkg, subpath: rest ? `./${rest}` : "." };
}

/** The package an allowed-import entry is about ("@octet/model/config" → "@octet/model"). */
function packageOf(entry: string): string {
  return splitSpecifier(entry).pkg;
}

/** Whether a package's `exports` lets importers reach `subpath` ("." or "./x"). No `exports`: everything. */
export function exportsSubpath(pj: PackageJson, subpath: string): boolean {
  const exp = pj.exports;
  if (exp === undefined) return true;
  if (typeof exp === "string") return subpath === ".";
  const keys = Object.keys(exp);
  if (!keys.some((k) => k.startsWith("."))) return subpath === "."; // a conditions object for "." alone
  return keys.some((key) => {
    const star = key.indexOf("*");
    if (star < 0) return key === subpath;
    return subpath.startsWith(key.slice(0, star)) && subpath.endsWith(key.slice(star + 1));
  });
}

/** Code that only the workspace's own tests, benchmarks and scripts run: it may use devDependencies. */
export function isDevelopmentFile(pathInWorkspace: string): boolean {
  return (
    /\.test\.[cm]?[jt]sx?$/.test(pathInWorkspace) ||
    /^src\/testing\//.test(pathInWorkspace) ||
    /^(?:bench|gpu|scripts|interop|test)\//.test(pathInWorkspace)
  );
}

/** Problems with the table itself: unknown names, imports that are not strictly downward, apps imported. */
export function checkTable(rules: readonly LayerRule[]): string[] {
  const problems: string[] = [];
  const byName = new Map<string, LayerRule>();
  for (const rule of rules) {
    if (!rule.name.startsWith(SCOPE)) problems.push(`${rule.name}: not an ${SCOPE} package`);
    if (byName.has(rule.name)) problems.push(`${rule.name}: two rows`);
    if (typeof rule.layer === "number" && !(Number.isInteger(rule.layer) && rule.layer >= 0)) {
      problems.push(`${rule.name}: layer ${rule.layer} is not a non-negative integer`);
    }
    byName.set(rule.name, rule);
  }
  for (const rule of rules) {
    for (const entry of rule.imports) {
      const target = byName.get(packageOf(entry));
      if (!target) {
        problems.push(`${rule.name} may import ${entry}, which has no row`);
      } else if (target.layer === "app" || target.layer === "tool") {
        problems.push(`${rule.name} may import ${entry}, which is ${layerName(target.layer)}: nothing imports apps or tools`);
      } else if (rank(target.layer) >= rank(rule.layer)) {
        problems.push(`${rule.name} (${layerName(rule.layer)}) may import ${entry} (${layerName(target.layer)}): not downward`);
      }
    }
    for (const name of rule.runs ?? []) {
      if (rule.layer !== "app") problems.push(`${rule.name} runs ${name}: only apps start other programs`);
      if (!byName.has(name)) problems.push(`${rule.name} runs ${name}, which has no row`);
    }
  }
  return problems;
}

/** Workspaces without a row, rows without a workspace, and rows whose directory disagrees. */
export function checkRowsMatchWorkspaces(rules: readonly LayerRule[], workspaces: readonly Workspace[]): string[] {
  const problems: string[] = [];
  const rows = new Map(rules.map((r) => [r.name, r]));
  for (const ws of workspaces) {
    const row = rows.get(ws.name);
    if (!row) problems.push(`${ws.dir}: workspace ${ws.name} has no row in the layering table (tools/repo-checks/src/layering.ts)`);
    else if (row.dir !== ws.dir) problems.push(`${ws.name}: the table says ${row.dir}, the workspace is ${ws.dir}`);
  }
  const names = new Set(workspaces.map((w) => w.name));
  for (const row of rules) if (!names.has(row.name)) problems.push(`${row.name}: a row for a package that is not a workspace`);
  return problems;
}

/** Why `importer` may not reference `specifier`, or undefined when it may. */
function whyForbidden(importer: LayerRule, specifier: string, kind: ModuleReference["kind"], rows: Map<string, LayerRule>): string | undefined {
  const { pkg } = splitSpecifier(specifier);
  if (pkg === importer.name) return undefined; // a package may refer to itself by name
  const target = rows.get(pkg);
  if (!target) return `${pkg} is not a workspace of this repository`;
  if (importer.imports.some((entry) => entry === pkg || entry === specifier)) return undefined;
  // Resolving a package to start its bin (import.meta.resolve) is what `runs` is for; importing it is not.
  if (kind === "resolve" && importer.runs?.includes(pkg)) return undefined;
  const restricted = importer.imports.filter((entry) => packageOf(entry) === pkg);
  if (restricted.length > 0) {
    return `${importer.name} may use ${pkg} only through ${restricted.join(", ")}`;
  }
  if (target.layer === "app") {
    return importer.layer === "app"
      ? `an app imports another app (${pkg}); start it as a child process through its bin instead`
      : `a library imports an app (${pkg})`;
  }
  if (target.layer === "tool") return `${pkg} is a tool; nothing imports it`;
  if (rank(target.layer) > rank(importer.layer)) {
    return `an upward import: ${importer.name} (${layerName(importer.layer)}) → ${pkg} (${layerName(target.layer)})`;
  }
  if (rank(target.layer) === rank(importer.layer)) {
    return `a same-layer import: ${importer.name} → ${pkg} (both ${layerName(target.layer)})`;
  }
  return `${pkg} is not among what ${importer.name} may import (${importer.imports.join(", ") || "no Octet package"})`;
}

/** Every @octet reference in a workspace's code against the table, its package.json, and the target's exports. */
export function checkReferences(
  rules: readonly LayerRule[],
  workspaces: readonly Workspace[],
  references: readonly ModuleReference[],
): Violation[] {
  const rows = new Map(rules.map((r) => [r.name, r]));
  const byDir = [...workspaces].sort((a, b) => b.dir.length - a.dir.length);
  const byName = new Map(workspaces.map((w) => [w.name, w]));
  const violations: Violation[] = [];
  for (const ref of references) {
    if (!ref.specifier.startsWith(SCOPE)) continue;
    const where = `${ref.file}:${ref.line}`;
    const ws = byDir.find((w) => ref.file.startsWith(`${w.dir}/`));
    if (!ws) continue; // not workspace code
    const importer = rows.get(ws.name);
    if (!importer) {
      violations.push({ where, message: `${ws.name} has no row in the layering table` });
      continue;
    }
    const { pkg, subpath } = splitSpecifier(ref.specifier);
    const forbidden = whyForbidden(importer, ref.specifier, ref.kind, rows);
    if (forbidden) {
      violations.push({ where, message: `${ref.kind} "${ref.specifier}": ${forbidden}` });
      continue;
    }
    if (pkg === importer.name) continue;
    const pj = ws.packageJson;
    const dev = isDevelopmentFile(ref.file.slice(ws.dir.length + 1));
    const declared = Boolean(pj.dependencies?.[pkg] ?? pj.peerDependencies?.[pkg] ?? pj.optionalDependencies?.[pkg]) ||
      (dev && Boolean(pj.devDependencies?.[pkg]));
    if (!declared) {
      violations.push({
        where,
        message: `${ref.kind} "${ref.specifier}": ${pkg} is not in ${ws.dir}/package.json ${dev ? "dependencies or devDependencies" : "dependencies"}`,
      });
    }
    const target = byName.get(pkg);
    if (target && !exportsSubpath(target.packageJson, subpath)) {
      violations.push({ where, message: `${ref.kind} "${ref.specifier}": ${pkg}'s package.json exports no "${subpath}"` });
    }
  }
  return violations;
}

/** Every @octet dependency a package.json declares, against what the table lets that workspace use. */
export function checkManifests(rules: readonly LayerRule[], workspaces: readonly Workspace[]): Violation[] {
  const rows = new Map(rules.map((r) => [r.name, r]));
  const names = new Set(workspaces.map((w) => w.name));
  const violations: Violation[] = [];
  for (const ws of workspaces) {
    const rule = rows.get(ws.name);
    if (!rule) continue; // checkRowsMatchWorkspaces reports it
    const where = `${ws.dir}/package.json`;
    for (const section of DEPENDENCY_SECTIONS) {
      for (const dep of Object.keys(ws.packageJson[section] ?? {})) {
        if (!dep.startsWith(SCOPE)) continue;
        if (!names.has(dep)) {
          violations.push({ where, message: `${section}: ${dep} is not a workspace of this repository` });
          continue;
        }
        if (rule.layer === "tool") {
          if (section !== "devDependencies") violations.push({ where, message: `${section}: ${dep} — a tool depends on workspaces through devDependencies only` });
          continue;
        }
        const allowed = rule.imports.some((entry) => packageOf(entry) === dep) || (rule.runs?.includes(dep) ?? false);
        if (!allowed) {
          const target = rows.get(dep);
          const why = target ? whyForbidden(rule, dep, "import", rows) : undefined;
          violations.push({ where, message: `${section}: ${dep} — ${why ?? `not among what ${ws.name} may use`}` });
        }
      }
    }
  }
  return violations;
}

export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `  ${v.where}: ${v.message}`).join("\n");
}
