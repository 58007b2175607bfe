// The CUDA sources under CPU emulation (cuda/emu/emu.h: a fiber per CUDA thread, lock-step warp shuffles, block
// barriers, host memory, graphs as recorded closures), so the kernels' indexing, reductions and edge handling, the
// Node-API layer, the TypeScript API and the GPU scripts themselves are exercised without a GPU:
//   1. quantize.cu's kernels against a transcription of quantizeReference, bit for bit, every variant and edge shape;
//   2. the addon built with the emulated runtime (and host stand-ins for the sm90 GEMM and cuBLASLt that read the
//      same operand layouts) running gpu/check.ts in its quick mode, and gpu/bench.ts on tiny shapes.
// The hardware FP8 cast is modelled here; the device check tests the real one on all 2^32 inputs. Fresh seed per run
// (printed; OCTET_TEST_SEED repeats it). Skipped, with the reason, when no C++20 compiler is found.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const cudaDir = join(pkg, "cuda");
const compiler = ["g++", "c++", "clang++"].find((c) => spawnSync(c, ["--version"]).status === 0);
const nodeInclude = [process.env.NODE_INCLUDE, join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"].find((d) => d && existsSync(join(d, "node_api.h")));
const seed = process.env.OCTET_TEST_SEED ?? String(Math.floor(Math.random() * 2 ** 32));
const FLAGS = ["-std=c++20", "-O2", "-ffp-contract=off", "-DOCTET_EMU", `-I${join(cudaDir, "emu", "shim")}`, `-I${cudaDir}`];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd: pkg });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

test(`quantize.cu kernels under CPU emulation equal the specification bit for bit (seed ${seed})`, { timeout: 300_000 }, async (t) => {
  if (!compiler) return t.skip("no C++ compiler (g++, c++, clang++) found");
  const dir = mkdtempSync(join(tmpdir(), "octet-emu-"));
  try {
    const exe = join(dir, "quantize_emu_test");
    const build = await run(compiler, [...FLAGS, join(cudaDir, "emu", "quantize_emu_test.cc"), "-o", exe]);
    assert.equal(build.code, 0, `${compiler} failed:\n${build.out}`);
    const r = await run(exe, [seed, "quick"]);
    t.diagnostic(r.out.trim().split("\n").slice(-1)[0]);
    assert.equal(r.code, 0, `emulated kernels differ from the specification:\n${r.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the addon under CPU emulation passes gpu/check.ts (quick) and runs gpu/bench.ts (tiny)", { timeout: 600_000 }, async (t) => {
  if (!compiler) return t.skip("no C++ compiler (g++, c++, clang++) found");
  if (!nodeInclude) return t.skip("node_api.h not found (NODE_INCLUDE, <node>/../include/node)");
  const dir = mkdtempSync(join(tmpdir(), "octet-emu-addon-"));
  try {
    const sources = ["quantize.cu", "util.cu", "addon.cu", join("emu", "gemm_emu.cc")];
    const builds = await Promise.all(sources.map((s, i) =>
      run(compiler, [...FLAGS, "-DOCTET_HAVE_SM90", "-fPIC", `-I${nodeInclude}`, "-x", "c++", "-c", join(cudaDir, s), "-o", join(dir, `${i}.o`)])));
    builds.forEach((b, i) => assert.equal(b.code, 0, `${sources[i]}:\n${b.out}`));
    const addon = join(dir, "octet_numerics_cuda.node");
    const link = await run(compiler, ["-shared", "-o", addon, ...sources.map((_, i) => join(dir, `${i}.o`))]);
    assert.equal(link.code, 0, link.out);
    const env = { OCTET_CUDA_ADDON: addon, OCTET_CHECK_QUICK: "1", OCTET_CHECK_SKIP_SELFTEST: "1", OCTET_CHECK_MAX_MNK: "2e8", OCTET_CHECK_SEED: seed, OCTET_BENCH_TINY: "1", OCTET_BENCH_REPS: "3" };
    const check = await run(process.execPath, ["--import", "tsx", "gpu/check.ts", "--json", join(dir, "check.json")], env);
    const summary = check.out.split("\n").find((l) => l.startsWith("SUMMARY")) ?? "(no summary)";
    t.diagnostic(`check: ${summary}`);
    assert.equal(check.code, 0, `gpu/check.ts under emulation:\n${check.out.split("\n").filter((l) => !l.startsWith("PASS")).join("\n")}`);
    const results = JSON.parse(readFileSync(join(dir, "check.json"), "utf8")).results as { status: string }[];
    assert.ok(results.filter((r) => r.status === "pass").length > 50, "most checks ran");
    const bench = await run(process.execPath, ["--import", "tsx", "gpu/bench.ts", "--json", join(dir, "bench.json"), "--xcheck", join(dir, "xcheck")], env);
    assert.equal(bench.code, 0, `gpu/bench.ts under emulation:\n${bench.out}`);
    assert.match(bench.out, /bench done/);
    const report = await run(process.execPath, ["--import", "tsx", "gpu/report.ts", dir], env);
    assert.equal(report.code, 0, report.out);
    assert.match(report.out, /## Block-scaled FP8 GEMM/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
