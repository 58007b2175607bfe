// What each entry point loads. The layering test reads import statements; this one imports the built entry
// points in fresh processes, with a module hook that records every resolved URL, so it also sees what the
// dependencies pull in at run time. The rules (docs/ARCHITECTURE.md):
// - a library root is the library only: the model's training thread imports @octet/model, @octet/numerics,
//   @octet/router and @octet/mtp, and must not load gRPC (servers are at `…/service`, CUDA at `…/cuda`);
// - the scheduler (the orchestrator and @octet/jobs) validates model configs through @octet/model/config and
//   never loads the model, its kernels, the router or MTP.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./workspaces.js";

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

/** Every module URL resolved while importing `specifier` in a fresh node (from the repo root), and its export names. */
function load(specifier: string): { urls: string[]; exports: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "octet-entry-"));
  try {
    const log = join(dir, "modules.txt");
    const register = `import { register } from "node:module"; register(${JSON.stringify(dataUrl(recorderHooks))}, { data: { log: ${JSON.stringify(log)} } });`;
    const main = `const m = await import(${JSON.stringify(specifier)}); process.stdout.write(JSON.stringify(Object.keys(m)));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--import", dataUrl(register), "--input-type=module", "-e", main], {
      cwd: REPO_ROOT, encoding: "utf8", env: { ...process.env, OCTET_NUMERICS_BACKEND: "typescript", OCTET_ROUTER_BACKEND: "typescript" },
    });
    assert.equal(r.status, 0, `importing ${specifier} failed: ${r.stderr}`);
    return { urls: [...new Set(readFileSync(log, "utf8").trim().split("\n"))], exports: JSON.parse(r.stdout) as string[] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The workspace package a module URL belongs to ("model" for …/packages/model/… or …/@octet/model/…), if any. */
function octetPackage(url: string): string | null {
  const m = /\/(?:packages|apps|node_modules\/@octet)\/([^/]+)\//.exec(url);
  return m ? m[1] : null;
}

const grpc = (urls: string[]) => urls.filter((u) => u.includes("/@grpc/grpc-js/"));

const libraryRoots: { entry: string; exports: string[]; notExported: string[] }[] = [
  { entry: "@octet/numerics", exports: ["quantize", "scaledMatmul", "numericsBackend", "encodeFp8", "RECIPES", "serialize"], notExported: ["startNumericsServer", "numericsHandlers", "cudaStatus", "toDevice", "scaledMatmulDevice"] },
  { entry: "@octet/router", exports: ["routeTokens", "AuxFreeBalancer", "planDispatch", "planPlacement", "routerBackend"], notExported: ["startRouterServer", "loadBalancerHandlers", "LoadBalancerStore"] },
  { entry: "@octet/mtp", exports: ["MultiTokenPrediction", "lambdaAt"], notExported: [] },
  { entry: "@octet/model", exports: ["Trainer", "trainLoop", "loadDataset", "Rng"], notExported: [] },
  { entry: "@octet/ema-keeper", exports: ["EmaKeeper", "decayAt"], notExported: ["startEmaServer", "EmaClient"] },
  { entry: "@octet/checkpointer", exports: ["CheckpointStore", "serialize", "stepDirName"], notExported: ["startCheckpointServer", "CheckpointClient"] },
];

for (const root of libraryRoots) {
  test(`${root.entry}: the root is the library, it loads no gRPC and exports no service or CUDA API`, () => {
    const { urls, exports } = load(root.entry);
    assert.deepEqual(grpc(urls), []);
    for (const name of root.exports) assert.ok(exports.includes(name), `${root.entry} exports ${name}`);
    for (const name of root.notExported) assert.ok(!exports.includes(name), `${name} belongs to a subpath of ${root.entry}, not its root`);
  });
}

test("the recorder sees gRPC where it is loaded: the service subpaths load @grpc/grpc-js", () => {
  for (const entry of ["@octet/numerics/service", "@octet/router/service", "@octet/ema-keeper/service", "@octet/checkpointer/service"]) {
    const { urls, exports } = load(entry);
    assert.ok(grpc(urls).length > 0, `${entry} loads @grpc/grpc-js`);
    assert.ok(exports.some((n) => /^start\w+Server$/.test(n)), `${entry} exports its server`);
  }
});

for (const entry of ["@octet/orchestrator", "@octet/jobs"]) {
  test(`${entry} loads @octet/model's config entry only: no model, numerics, router or MTP`, () => {
    const { urls } = load(entry);
    const fromModel = urls.filter((u) => octetPackage(u) === "model");
    assert.ok(fromModel.some((u) => /\/model\/dist\/config\.js$/.test(u)), `@octet/model/config is loaded: ${fromModel.join(", ")}`);
    // The config entry is config.js and size.js (what a config costs: parameters, device memory; types only).
    assert.deepEqual(fromModel.filter((u) => !/\/model\/dist\/(config|size)\.js$/.test(u)), [], "nothing of @octet/model but its config entry");
    for (const pkg of ["numerics", "router", "mtp"]) assert.deepEqual(urls.filter((u) => octetPackage(u) === pkg), [], `nothing of @octet/${pkg}`);
  });
}
