// The C++ headers: found through the include-dir export (as binding.gyp finds them), and pool.h compiled
// with the addons' flags into a small program that exercises the pool and the FP guard.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const includeDir = createRequire(import.meta.url)("@octet/native-common/include-dir") as string;
const compiler = spawnSync("g++", ["--version"]).status === 0 ? "g++" : null;
const skipCompile = compiler ? false : "g++ is not installed";

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), "octet-native-include-"));
});
after(() => rmSync(work, { recursive: true, force: true }));

test("include-dir names the directory that holds octet/native/{pool,napi}.h", () => {
  assert.equal(typeof includeDir, "string");
  for (const header of ["pool.h", "napi.h"]) assert.ok(existsSync(join(includeDir, "octet", "native", header)), header);
  // The same answer binding.gyp gets from `node -p` (a CommonJS script, resolved from a package directory).
  const fromNodeP = execFileSync(process.execPath, ["-p", "require('@octet/native-common/include-dir')"], { encoding: "utf8" }).trim();
  assert.equal(fromNodeP, includeDir);
});

const POOL_PROGRAM = String.raw`
#include <octet/native/pool.h>
#include <cstdio>
#include <cfloat>
#include <cstring>

int main(int argc, char** argv) {
  // Every task runs exactly once, on up to 4 threads, and run() returns after all of them.
  // Never destroyed, as the addons' pool: its workers wait on its condition variable until the process exits.
  octet_native::Pool& pool = *new octet_native::Pool(4);
  std::vector<std::atomic<int>> hits(1000);
  for (int round = 0; round < 20; round++) pool.run(1000, [&](int i) { hits[i].fetch_add(1); });
  for (auto& h : hits) if (h.load() != 20) { std::printf("bad-count %d\n", h.load()); return 1; }
  // A run() issued from a task finds the pool busy and runs serially on its thread.
  std::atomic<int> inner{0};
  pool.run(8, [&](int) { pool.run(5, [&](int) { inner.fetch_add(1); }); });
  if (inner.load() != 40) { std::printf("bad-nested %d\n", inner.load()); return 1; }
  // With FTZ/DAZ set (as some callers leave them), the guard restores IEEE subnormals, then FTZ/DAZ.
  volatile float tiny = FLT_MIN, half = 0.5f;
  _mm_setcsr(_mm_getcsr() | 0x8040u);
  float flushed = tiny * half;
  float exact;
  { octet_native::ExactFpGuard guard; exact = tiny * half; }
  const bool restored = (_mm_getcsr() & 0x8040u) == 0x8040u;
  // Bit patterns: printing the floats would convert them under the restored DAZ, which reads subnormals as 0.
  uint32_t flushed_bits, exact_bits;
  std::memcpy(&flushed_bits, &flushed, 4);
  std::memcpy(&exact_bits, &exact, 4);
  std::printf("threads=%d flushed=%08x exact=%08x restored=%d\n", octet_native::pool().threads(), flushed_bits, exact_bits, restored);
  return 0;
}
`;

test("pool.h: every task once, nested runs serial, FTZ/DAZ cleared inside ExactFpGuard only, OCTET_NUM_THREADS", { skip: skipCompile }, () => {
  const source = join(work, "pool_check.cc");
  const binary = join(work, "pool_check");
  writeFileSync(source, POOL_PROGRAM);
  execFileSync(compiler!, ["-std=c++17", "-O2", "-pthread", "-ffp-contract=off", "-I", includeDir, source, "-o", binary]);
  const run = (threads: string | undefined) => {
    const env = { ...process.env };
    if (threads === undefined) delete env.OCTET_NUM_THREADS; else env.OCTET_NUM_THREADS = threads;
    return execFileSync(binary, { env, encoding: "utf8" }).trim();
  };
  // FLT_MIN * 0.5 = 2^-127, the subnormal 0x00400000, which FTZ flushes to 0.
  assert.equal(run("3"), "threads=3 flushed=00000000 exact=00400000 restored=1");
  assert.match(run("1000"), /^threads=256 /, "at most 256 threads");
  assert.match(run("-2"), /^threads=[1-9]\d* /, "a non-positive count falls back to the hardware's");
});

test("napi.h compiles against the Node headers with the addons' flags", { skip: skipCompile }, (t) => {
  const nodeInclude = join(dirname(process.execPath), "..", "include", "node");
  if (!existsSync(join(nodeInclude, "node_api.h"))) {
    t.skip(`no Node headers at ${nodeInclude}`);
    return;
  }
  const source = join(work, "napi_check.cc");
  writeFileSync(source, `#include <octet/native/napi.h>\nnapi_value f(napi_env env, napi_callback_info info) {\n  return octet_native::guarded(env, [&] { octet_native::Args a(env, info, 1, "f"); return octet_native::num(env, (double)a.integer(0, "n", 1, 10.0)); });\n}\n`);
  execFileSync(compiler!, ["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-DNODE_GYP_MODULE_NAME=octet_check", "-I", includeDir, "-I", nodeInclude, source]);
});
