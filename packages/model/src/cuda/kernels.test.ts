// The model's CUDA kernels where no GPU is: CI compiles every kernel and the addon with nvcc (packages/model/cuda/
// build.sh into a temporary folder), loads the addon in a child process, and checks its contract — every kernel the
// backend needs is bound, arguments are checked (TypeError naming the kernel), and a kernel that refuses its sizes
// reports the CUDA error instead of launching. Skipped, with the reason, where nvcc or the Node-API headers are missing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MODEL_KERNELS, MODEL_WORKSPACE_QUERIES, modelKernelsPath } from "./kernels.js";

const buildScript = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cuda", "build.sh");

function nvccFound(): boolean {
  for (const c of [process.env.NVCC, "nvcc", "/usr/local/cuda/bin/nvcc"]) if (c && spawnSync(c, ["--version"]).status === 0) return true;
  return false;
}
function nodeInclude(): string | null {
  for (const d of [process.env.NODE_INCLUDE, join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"]) {
    if (d && existsSync(join(d, "node_api.h"))) return d;
  }
  return null;
}

test("without the addon, the loader says why and how to build it", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e",
    `import { modelKernels, modelKernelsUnavailable } from ${JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), "kernels.ts"))};
     process.stdout.write(JSON.stringify({ k: modelKernels(), why: modelKernelsUnavailable() }));`],
  { encoding: "utf8", env: { ...process.env, OCTET_MODEL_CUDA_ADDON: "/nonexistent/octet_model_cuda.node" } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.k, null);
  assert.match(out.why, /not built .*\/nonexistent\/octet_model_cuda\.node.*cuda\/build\.sh/);
  assert.match(modelKernelsPath(), /cuda\/build\/octet_model_cuda\.node$/);
});

const inc = nodeInclude();
const skip = !nvccFound() ? "nvcc not found" : !inc ? "Node-API headers not found" : false;

test("every kernel compiles for sm_90a and the addon binds them, checking arguments before any launch", { skip, timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-model-cuda-"));
  try {
    const b = spawnSync("bash", [buildScript], { encoding: "utf8", env: { ...process.env, NODE_INCLUDE: inc!, OCTET_MODEL_CUDA_BUILD_DIR: dir } });
    assert.equal(b.status, 0, `build.sh failed:\n${b.stdout}\n${b.stderr}`);
    const addon = join(dir, "octet_model_cuda.node");
    const script = `
      import { modelKernels, modelKernelsUnavailable } from ${JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), "kernels.ts"))};
      const k = modelKernels();
      if (!k) throw new Error(modelKernelsUnavailable());
      const errors = [];
      const attempt = (f) => { try { f(); errors.push(null); } catch (e) { errors.push({ type: e.constructor.name, message: e.message }); } };
      attempt(() => k.routeSigmoid(1));                                  // wrong arity
      attempt(() => k.routeStatusReset("x", 0n));                        // a string where an address goes
      attempt(() => k.planDispatchWorkspaceBytes(1.5, 8, 2));            // not an integer
      attempt(() => k.routeStatusReset(null, 0n));                       // refused by the kernel: null status
      process.stdout.write(JSON.stringify({ names: Object.keys(k), errors, ws: k.planDispatchWorkspaceBytes(16384, 64, 6) }));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, OCTET_MODEL_CUDA_ADDON: addon } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { names: string[]; errors: ({ type: string; message: string } | null)[]; ws: number };
    for (const name of [...MODEL_KERNELS, ...MODEL_WORKSPACE_QUERIES]) assert.ok(out.names.includes(name), `${name} is bound`);
    const [arity, address, integer, refused] = out.errors;
    assert.deepEqual([arity?.type, address?.type, integer?.type], ["TypeError", "TypeError", "TypeError"]);
    assert.match(arity!.message, /octet_route_sigmoid: expected 14 arguments, got 1/);
    assert.match(address!.message, /argument 0 must be a device address/);
    assert.match(integer!.message, /argument 0 must be an integer/);
    assert.equal(refused?.type, "Error");
    assert.match(refused!.message, /octet_route_status_reset failed: cudaErrorInvalidValue/);
    assert.ok(out.ws > 0 && Number.isInteger(out.ws), `plan_dispatch workspace ${out.ws} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
