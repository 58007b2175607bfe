// CI compile check of the CUDA sources: every file that needs only the CUDA runtime (and the Node-API headers) is
// compiled for sm_90a with nvcc, in parallel, into a temporary folder; the addon is linked with the cuBLASLt stub
// and loaded, and must report its status without a GPU. A broken kernel fails here even on a machine without one.
// cublaslt.cu needs cublasLt.h, which the CI machine lacks: it is compiled only where the header exists.
// Skipped, with the reason logged, when nvcc is not found ($NVCC, PATH, /usr/local/cuda/bin/nvcc).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const cudaDir = join(dirname(fileURLToPath(import.meta.url)), "..", "cuda");

function findNvcc(): string | null {
  for (const candidate of [process.env.NVCC, "nvcc", "/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc"]) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return candidate;
  }
  return null;
}

function findNodeInclude(): string | null {
  for (const d of [process.env.NODE_INCLUDE, join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"]) {
    if (d && existsSync(join(d, "node_api.h"))) return d;
  }
  return null;
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => resolve({ code: code ?? 1, output, ms: Date.now() - t0 }));
    child.on("error", (err) => resolve({ code: 1, output: String(err), ms: Date.now() - t0 }));
  });
}

/** Run jobs with at most `limit` at once. */
async function pool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }));
  return results;
}

/** gemm_sm90.cu -> gemm_sm90.o, gemm_sm90_plan.cc -> gemm_sm90_plan.o */
const objectName = (source: string): string => source.replace(/\.(cu|cc)$/, ".o");

const nvcc = findNvcc();
const nodeInclude = findNodeInclude();
const cublasHeader = [process.env.CUDA_HOME, "/usr/local/cuda"].map((d) => d && join(d, "include", "cublasLt.h")).find((p) => p && existsSync(p));

test("CUDA sources compile for sm_90a (nvcc), and the addon links and loads without a GPU", { timeout: 600_000 }, async (t) => {
  if (!nvcc) {
    t.diagnostic("skipped: nvcc not found ($NVCC, PATH, /usr/local/cuda/bin/nvcc)");
    t.skip("nvcc not found");
    return;
  }
  const out = mkdtempSync(join(tmpdir(), "octet-cuda-"));
  try {
    const sources = ["quantize.cu", "util.cu", "cublaslt_stub.cu"];
    // The Hopper GEMM: its C API and launches (with the kernels and PTX wrappers it includes) and its planner.
    const sm90Sources = ["gemm_sm90.cu", "gemm_sm90_plan.cc"];
    const sm90 = existsSync(join(cudaDir, "gemm_sm90.h")) && sm90Sources.every((s) => existsSync(join(cudaDir, s)));
    if (sm90) sources.push(...sm90Sources);
    if (nodeInclude) sources.push("addon.cu");
    else t.diagnostic("addon.cu not compiled: node_api.h not found (NODE_INCLUDE, <node>/../include/node)");
    if (cublasHeader) sources.push("cublaslt.cu");
    else t.diagnostic("cublaslt.cu not compiled: cublasLt.h not found (cuBLAS is not installed here)");
    const flags = ["-c", "-O3", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "-Xcompiler", "-fPIC", `-I${cudaDir}`];
    if (nodeInclude) flags.push(`-I${nodeInclude}`);
    if (sm90) flags.push("-DOCTET_HAVE_SM90");
    const t0 = Date.now();
    const results = await pool(sources.map((s) => () => run(nvcc, [...flags, join(cudaDir, s), "-o", join(out, objectName(s))])), Math.max(1, availableParallelism()));
    const failures: string[] = [];
    sources.forEach((s, i) => {
      t.diagnostic(`${s}: ${results[i].code === 0 ? "ok" : "FAILED"} in ${(results[i].ms / 1000).toFixed(1)} s`);
      if (results[i].code !== 0) failures.push(`${s}:\n${results[i].output}`);
      else if (/warning/i.test(results[i].output)) t.diagnostic(`${s} warnings:\n${results[i].output.trim()}`);
    });
    assert.equal(failures.length, 0, `nvcc failed:\n${failures.join("\n")}`);
    t.diagnostic(`compiled ${sources.length} sources in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    if (!nodeInclude) return;
    const objects = ["quantize.cu", "util.cu", "addon.cu", "cublaslt_stub.cu", ...(sm90 ? sm90Sources : [])].map((s) => join(out, objectName(s)));
    const target = join(out, "octet_numerics_cuda.node");
    const link = await run(nvcc, ["-shared", "-gencode=arch=compute_90a,code=sm_90a", "-o", target, ...objects, "-Xlinker", "-z", "-Xlinker", "undefs"]);
    assert.equal(link.code, 0, `nvcc link failed:\n${link.output}`);
    const addon = createRequire(import.meta.url)(target) as { status(): { available: boolean; reason?: string; sm90: { built: boolean }; cublasLt: { built: boolean } } };
    const status = addon.status();
    t.diagnostic(`linked addon loads; status: ${JSON.stringify(status)}`);
    assert.equal(typeof status.available, "boolean");
    if (!status.available) assert.match(String(status.reason), /CUDA|device|driver/i);
    assert.equal(status.sm90.built, sm90);
    assert.equal(status.cublasLt.built, false);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
