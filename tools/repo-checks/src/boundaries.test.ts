// Import boundaries of the repository, against the layering table in layering.ts (the single source):
// first that the checker catches each kind of violation (on a small made-up repository), then the real tree.

import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  checkManifests, checkReferences, checkRowsMatchWorkspaces, checkTable, exportsSubpath, formatViolations,
  isDevelopmentFile, type LayerRule,
} from "./boundaries.js";
import { referencesIn, referencesUnder } from "./imports.js";
import { LAYERING } from "./layering.js";
import { listWorkspaces, REPO_ROOT, type Workspace } from "./workspaces.js";

describe("the checker (on a made-up repository)", () => {
  const rules: LayerRule[] = [
    { name: "@octet/base", dir: "packages/base", layer: 0, imports: [] },
    { name: "@octet/mid", dir: "packages/mid", layer: 1, imports: ["@octet/base"] },
    { name: "@octet/peer", dir: "packages/peer", layer: 1, imports: ["@octet/base"] },
    { name: "@octet/top", dir: "packages/top", layer: 2, imports: ["@octet/mid/config"] },
    { name: "@octet/app-a", dir: "apps/a", layer: "app", imports: ["@octet/mid"], runs: ["@octet/app-b"] },
    { name: "@octet/app-b", dir: "apps/b", layer: "app", imports: [] },
  ];
  const ws = (name: string, dir: string, deps: string[] = [], extra: Workspace["packageJson"] = {}): Workspace => ({
    name, dir, packageJson: { name, dependencies: Object.fromEntries(deps.map((d) => [d, "0.1.0"])), ...extra },
  });
  const workspaces = [
    ws("@octet/base", "packages/base"),
    ws("@octet/mid", "packages/mid", ["@octet/base"], { exports: { ".": "./dist/index.js", "./config": "./dist/config.js" } }),
    ws("@octet/peer", "packages/peer", ["@octet/base"]),
    ws("@octet/top", "packages/top", ["@octet/mid"]),
    ws("@octet/app-a", "apps/a", ["@octet/mid", "@octet/app-b"]),
    ws("@octet/app-b", "apps/b"),
  ];
  const check = (file: string, code: string) => checkReferences(rules, workspaces, referencesIn(code, file));

  it("accepts what the table allows, and a package naming itself", () => {
    assert.deepEqual(check("packages/mid/src/a.ts", `import { x } from "@octet/base";\nimport { y } from "@octet/mid";`), []);
    assert.deepEqual(check("packages/top/src/a.ts", `import type { C } from "@octet/mid/config";`), []);
    assert.deepEqual(check("apps/a/src/a.ts", `const p = import.meta.resolve("@octet/app-b");`), []);
  });

  it("an upward import, naming file and line", () => {
    const v = check("packages/base/src/a.ts", `// a comment: import "@octet/mid" does not count\n\nimport { m } from "@octet/mid";`);
    assert.equal(v.length, 1);
    assert.equal(v[0].where, "packages/base/src/a.ts:3");
    assert.match(v[0].message, /upward import: @octet\/base \(layer 0\) → @octet\/mid \(layer 1\)/);
  });

  it("a same-layer import", () => {
    const v = check("packages/mid/src/a.ts", `export { p } from "@octet/peer";`);
    assert.match(formatViolations(v), /packages\/mid\/src\/a\.ts:1: export-from "@octet\/peer": a same-layer import/);
  });

  it("a lower layer that the row does not list", () => {
    const v = check("packages/top/src/a.ts", `const m = await import("@octet/base");`);
    assert.match(v[0].message, /dynamic-import "@octet\/base": @octet\/base is not among what @octet\/top may import/);
  });

  it("a subpath restriction: the package root where only a subpath is allowed", () => {
    const v = check("packages/top/src/a.ts", `import { everything } from "@octet/mid";`);
    assert.match(v[0].message, /@octet\/top may use @octet\/mid only through @octet\/mid\/config/);
  });

  it("an app importing an app, even one it runs", () => {
    const v = check("apps/a/src/a.ts", `import { JobClient } from "@octet/app-b";`);
    assert.match(v[0].message, /an app imports another app \(@octet\/app-b\)/);
  });

  it("an import not declared in package.json (dependencies for code, devDependencies too for tests)", () => {
    const code = `import { x } from "@octet/base";`;
    const undeclared = [...workspaces.slice(0, 1), ws("@octet/mid", "packages/mid", [], { devDependencies: { "@octet/base": "0.1.0" } })];
    const inCode = checkReferences(rules, undeclared, referencesIn(code, "packages/mid/src/a.ts"));
    assert.match(inCode[0].message, /@octet\/base is not in packages\/mid\/package\.json dependencies$/);
    assert.deepEqual(checkReferences(rules, undeclared, referencesIn(code, "packages/mid/src/a.test.ts")), []);
  });

  it("a subpath the target does not export, and an unknown package", () => {
    const v = check("packages/top/src/a.ts", `import "@octet/mid/internal";\nimport "@octet/nowhere";`);
    assert.equal(v.length, 2);
    assert.match(v[0].message, /may use @octet\/mid only through @octet\/mid\/config/);
    assert.match(v[1].message, /@octet\/nowhere is not a workspace/);
    const allowed: LayerRule[] = rules.map((r) => (r.name === "@octet/top" ? { ...r, imports: ["@octet/mid"] } : r));
    const notExported = checkReferences(allowed, workspaces, referencesIn(`import "@octet/mid/internal";`, "packages/top/src/a.ts"));
    assert.match(notExported[0].message, /@octet\/mid's package\.json exports no "\.\/internal"/);
  });

  it("package.json dependencies against the same table", () => {
    assert.deepEqual(checkManifests(rules, workspaces), []);
    const replaced = new Map([
      ["@octet/base", ws("@octet/base", "packages/base", ["@octet/mid"])],
      ["@octet/app-b", ws("@octet/app-b", "apps/b", [], { devDependencies: { "@octet/app-a": "0.1.0" } })],
    ]);
    const v = checkManifests(rules, workspaces.map((w) => replaced.get(w.name) ?? w));
    assert.deepEqual(v.map((x) => x.where), ["packages/base/package.json", "apps/b/package.json"]);
    assert.match(v[0].message, /dependencies: @octet\/mid — an upward import/);
    assert.match(v[1].message, /devDependencies: @octet\/app-a — an app imports another app/);
  });

  it("the table itself: only strictly downward imports, no app imported, every name a row", () => {
    assert.deepEqual(checkTable(rules), []);
    const broken: LayerRule[] = [
      ...rules.filter((r) => r.name !== "@octet/mid"),
      { name: "@octet/mid", dir: "packages/mid", layer: 1, imports: ["@octet/peer", "@octet/app-a", "@octet/ghost"], runs: ["@octet/app-b"] },
    ];
    const problems = checkTable(broken).join("\n");
    assert.match(problems, /@octet\/mid \(layer 1\) may import @octet\/peer \(layer 1\): not downward/);
    assert.match(problems, /may import @octet\/app-a, which is an app/);
    assert.match(problems, /may import @octet\/ghost, which has no row/);
    assert.match(problems, /@octet\/mid runs @octet\/app-b: only apps start other programs/);
  });

  it("finds every kind of module reference, and none in comments or strings", () => {
    const code = [
      `import a from "@octet/a";`,
      `import type { B } from "@octet/b";`,
      `export * from "@octet/c";`,
      `const d = await import("@octet/d");`,
      `type E = import("@octet/e").E;`,
      `const f = require("@octet/f");`,
      "const g = import.meta.resolve(`@octet/g`);",
      `// import "@octet/comment";`,
      `const s = "import '@octet/string'";`,
      `import h = require("@octet/h");`,
    ].join("\n");
    const refs = referencesIn(code, "x.ts");
    assert.deepEqual(refs.map((r) => [r.specifier, r.kind, r.line]), [
      ["@octet/a", "import", 1], ["@octet/b", "import", 2], ["@octet/c", "export-from", 3],
      ["@octet/d", "dynamic-import", 4], ["@octet/e", "import-type", 5], ["@octet/f", "require", 6],
      ["@octet/g", "resolve", 7], ["@octet/h", "require", 10],
    ]);
  });

  it("exports and development files", () => {
    assert.equal(exportsSubpath({ exports: { ".": "./a.js", "./service": "./s.js" } }, "./service"), true);
    assert.equal(exportsSubpath({ exports: { ".": "./a.js" } }, "./service"), false);
    assert.equal(exportsSubpath({ exports: { "./gen/*": "./g/*.js" } }, "./gen/x"), true);
    assert.equal(exportsSubpath({ exports: { import: "./a.js", types: "./a.d.ts" } }, "."), true);
    assert.equal(exportsSubpath({}, "./anything"), true);
    assert.equal(isDevelopmentFile("src/x.test.ts"), true);
    assert.equal(isDevelopmentFile("src/testing/harness.ts"), true);
    assert.equal(isDevelopmentFile("bench/bench.ts"), true);
    assert.equal(isDevelopmentFile("src/index.ts"), false);
  });
});

describe("this repository", () => {
  const workspaces = listWorkspaces();

  it("the layering table is consistent: strictly downward, apps imported by nothing", () => {
    assert.deepEqual(checkTable(LAYERING), []);
  });

  it("every workspace has exactly its row, and every row is a workspace", () => {
    assert.deepEqual(checkRowsMatchWorkspaces(LAYERING, workspaces), []);
  });

  it("package.json dependencies follow the table", () => {
    const violations = checkManifests(LAYERING, workspaces);
    assert.equal(violations.length, 0, `package.json dependencies against tools/repo-checks/src/layering.ts:\n${formatViolations(violations)}`);
  });

  it("every import, export-from and dynamic import follows the table, is declared, and is exported", () => {
    const references = workspaces.flatMap((w) => referencesUnder(REPO_ROOT, join(REPO_ROOT, w.dir)));
    assert.ok(references.length > 100, `only ${references.length} module references found: is the scan broken?`);
    const violations = checkReferences(LAYERING, workspaces, references);
    assert.equal(violations.length, 0, `imports against tools/repo-checks/src/layering.ts:\n${formatViolations(violations)}`);
  });
});
