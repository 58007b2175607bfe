// The scheduler validates job specs with @octet/model's config entry point only: loading the orchestrator must
// not load the model, its kernels (@octet/numerics), the router or MTP. A child process imports the
// orchestrator's entry with a module hook that records every resolved URL, and the test reads the record.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

// Runs in the module loader's thread: appends each resolved URL to the file named at registration.
const recorderHooks = `
import { appendFileSync } from "node:fs";
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  appendFileSync(log, resolved.url + "\\n");
  return resolved;
}
`;

const dataUrl = (js: string) => `data:text/javascript,${encodeURIComponent(js)}`;

/** Every module URL resolved while importing `entry` (a file path) in a fresh node with tsx. */
function modulesLoadedBy(entry: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), "octet-module-graph-"));
  try {
    const log = join(dir, "modules.txt");
    const register = `import { register } from "node:module"; register(${JSON.stringify(dataUrl(recorderHooks))}, { data: { log: ${JSON.stringify(log)} } });`;
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "--import", dataUrl(register), "--input-type=module", "-e", `await import(${JSON.stringify(pathToFileURL(entry).href)});`],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, `importing ${entry} failed: ${r.stderr}`);
    return [...new Set(readFileSync(log, "utf8").trim().split("\n"))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The workspace package a module URL belongs to ("model" for …/packages/model/… or …/@octet/model/…), if any. */
function octetPackage(url: string): string | null {
  const m = /\/(?:packages|node_modules\/@octet)\/([^/]+)\//.exec(url);
  return m ? m[1] : null;
}

test("the orchestrator loads @octet/model's config entry only: no model, numerics, router or MTP", () => {
  const entry = join(import.meta.dirname, "index.ts");
  const urls = modulesLoadedBy(entry);
  // The recorder sees the graph: the entry, @octet/jobs, and the config module through it.
  assert.ok(urls.some((u) => u.endsWith("/apps/orchestrator/src/index.ts")), "the entry itself is recorded");
  assert.ok(urls.some((u) => octetPackage(u) === "jobs"), "@octet/jobs is loaded");
  const fromModel = urls.filter((u) => octetPackage(u) === "model");
  assert.ok(fromModel.some((u) => /\/model\/dist\/config\.js$/.test(u)), `@octet/model/config is loaded: ${fromModel.join(", ")}`);

  const beyondConfig = fromModel.filter((u) => !/\/model\/dist\/config\.js$/.test(u));
  assert.deepEqual(beyondConfig, [], "nothing of @octet/model but its config entry");
  for (const pkg of ["numerics", "router", "mtp"]) {
    assert.deepEqual(urls.filter((u) => octetPackage(u) === pkg), [], `nothing of @octet/${pkg}`);
  }
});
