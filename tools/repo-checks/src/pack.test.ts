// The npm packages as a user gets them: every public workspace is packed (`npm pack`, as `npm run pack:all`
// does), the tarballs are installed together into an empty project outside the repository with no C++
// compiler on PATH, and that project's @octet/numerics and @octet/router must run their native kernels (the
// prebuilt binaries shipped in the tarballs) and compute the same bits as their TypeScript specification.
// Then, with the prebuilt binary removed and a compiler present, `npm rebuild` compiles the router's kernel
// from the sources the tarball ships (the install-time fallback for platforms without a prebuilt binary).
//
// Needs the packages built (dist/, prebuilds/): turbo builds every workspace before this package's tests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { arch, platform, tmpdir } from "node:os";
import { delimiter, join, relative } from "node:path";
import { REPO_ROOT, listWorkspaces } from "./workspaces.js";

const publicPackages = listWorkspaces().filter((w) => w.packageJson.private !== true);
const NATIVE = ["@octet/numerics", "@octet/router"];
const COMPILERS = ["g++", "gcc", "c++", "cc", "clang", "clang++", "make"];

/** The first executable called name on the current PATH, or null. */
function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

// The environment npm and node get in the consumer project: only what locates the npm cache, the registry
// and its certificates, never the npm_* variables of a run inside this repository (npm_config_local_prefix
// would point npm at the workspace).
function consumerEnv(path: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: path, ...extra };
  for (const key of ["HOME", "TMPDIR", "LANG", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"]) {
    if (process.env[key] !== undefined) env[key] = process.env[key];
  }
  for (const key of ["cache", "registry", "userconfig", "cafile", "strict_ssl", "proxy", "https_proxy", "nodedir"]) {
    const value = process.env[`npm_config_${key}`];
    if (value !== undefined) env[`npm_config_${key}`] = value;
  }
  return env;
}

// What the CPU runs best, read from /proc/cpuinfo (Linux x86-64; the addons' own choice is what is checked).
function bestIsa(): "avx512" | "avx2" | "scalar" | null {
  if (platform() !== "linux" || arch() !== "x64") return null;
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(/\s+/));
  const avx2 = ["avx", "avx2", "fma", "bmi1", "bmi2", "popcnt"].every((f) => flags.has(f));
  if (avx2 && ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].every((f) => flags.has(f))) return "avx512";
  return avx2 ? "avx2" : "scalar";
}

// Run in the consumer project: quantization, the promoted GEMM and the gate on small inputs, a digest of
// every output, which path each package ran, and the native results against the specification in-process.
const CHECK = String.raw`
import { createHash } from "node:crypto";
import { numericsBackend, quantize, quantizeReference, scaledMatmul, scaledMatmulReference } from "@octet/numerics";
import { routeTokens, routerBackend } from "@octet/router";
let s = 1;
const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
const M = 64, N = 48, K = 256;
const a = Float32Array.from({ length: M * K }, () => (rand() - 0.5) * 8);
const b = Float32Array.from({ length: N * K }, () => (rand() - 0.5) * 8);
const qa = quantize(a, [M, K], { block: [1, 128] }), qb = quantize(b, [N, K], { block: [128, 128], scale: "pow2" });
const c = scaledMatmul(qa, qb);
const tokens = 100, experts = 256;
const logits = Float32Array.from({ length: tokens * experts }, () => (rand() - 0.5) * 6);
const bias = Float32Array.from({ length: experts }, () => (rand() - 0.5) * 0.2);
const r = routeTokens(logits, { tokens, experts, topK: 8, nGroup: 8, topkGroup: 4, bias, normTopkProb: true, routedScalingFactor: 2.5 });
const bytes = (x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const h = createHash("sha256");
for (const x of [qa.data, qa.scales, qb.data, qb.scales, c, r.indices, r.weights, r.scores]) h.update(bytes(x));
const spec = quantizeReference(a, [M, K], { block: [1, 128] });
process.stdout.write(JSON.stringify({
  numerics: numericsBackend(),
  router: routerBackend(),
  digest: h.digest("hex"),
  quantizeIsSpec: bytes(qa.data).equals(bytes(spec.data)) && bytes(qa.scales).equals(bytes(spec.scales)),
  scaledMatmulIsSpec: bytes(c).equals(bytes(scaledMatmulReference(qa, qb))),
}));
`;

interface CheckResult {
  numerics: { path: string; isa: string | null; reason: string | null };
  router: { path: string; isa: string | null; reason: string | null };
  digest: string;
  quantizeIsSpec: boolean;
  scaledMatmulIsSpec: boolean;
}

let work: string;
let consumer: string;
let noCompilerPath: string;
let packed: { name: string; filename: string; files: { path: string }[] }[] = [];

function runCheck(env: Record<string, string> = {}, path = noCompilerPath): CheckResult {
  const r = spawnSync(process.execPath, ["check.mjs"], { cwd: consumer, encoding: "utf8", env: consumerEnv(path, env) });
  assert.equal(r.status, 0, `check.mjs failed (${JSON.stringify(env)}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as CheckResult;
}

before(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), "octet-pack-")));
  for (const w of publicPackages) {
    if (!existsSync(join(REPO_ROOT, w.dir, "dist"))) assert.fail(`${w.name} is not built (${w.dir}/dist is missing): run npm run build first`);
  }
  // 1. Pack every public package, as npm run pack:all does.
  const tarballs = join(work, "tarballs");
  mkdirSync(tarballs);
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", tarballs, ...publicPackages.flatMap((w) => ["-w", w.dir])], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    maxBuffer: 1 << 26,
  });
  packed = JSON.parse(out.slice(out.indexOf("["))) as typeof packed;
  // 2. An empty project outside the repository, and a PATH with node, npm and a shell only.
  consumer = join(work, "consumer");
  mkdirSync(consumer);
  assert.ok(relative(REPO_ROOT, consumer).startsWith(".."), `${consumer} is outside ${REPO_ROOT}`);
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "octet-consumer", private: true, type: "module" }));
  writeFileSync(join(consumer, "check.mjs"), CHECK);
  const bin = join(work, "bin");
  mkdirSync(bin);
  const npm = which("npm");
  if (!npm) assert.fail("npm is not on PATH");
  symlinkSync(process.execPath, join(bin, "node"));
  symlinkSync(npm, join(bin, "npm"));
  symlinkSync("/bin/sh", join(bin, "sh"));
  noCompilerPath = bin;
  // 3. All the tarballs in one install: their dependencies on each other resolve to one another, not to the
  //    registry (where they are not published yet); the rest comes from the registry or npm's cache.
  const install = spawnSync(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", ...packed.map((p) => join(tarballs, p.filename))], {
    cwd: consumer,
    encoding: "utf8",
    env: consumerEnv(noCompilerPath),
  });
  assert.equal(install.status, 0, `npm install of the tarballs failed:\n${install.stdout}\n${install.stderr}`);
}, { timeout: 180_000 });
after(() => rmSync(work, { recursive: true, force: true }));

test("every public package packs, numerics and router with their prebuilt binary and the sources to rebuild it", { timeout: 180_000 }, () => {
  assert.deepEqual(packed.map((p) => p.name).sort(), publicPackages.map((w) => w.name).sort());
  for (const name of NATIVE) {
    const files = packed.find((p) => p.name === name)!.files.map((f) => f.path);
    const prebuilt = files.filter((f) => f.startsWith(`prebuilds/${platform()}-${arch()}/`) && f.endsWith(".node"));
    assert.equal(prebuilt.length, 1, `${name} ships one prebuilt binary for ${platform()}-${arch()}: ${files.filter((f) => f.startsWith("prebuilds/")).join(", ") || "none (run npm run build)"}`);
    assert.ok(files.includes("binding.gyp") && files.some((f) => /^native\/.*\.cc$/.test(f)), `${name} ships binding.gyp and native/*.cc`);
    assert.ok(!files.some((f) => f.startsWith("build/")), `${name} ships no local build/`);
  }
  const common = packed.find((p) => p.name === "@octet/native-common")!.files.map((f) => f.path);
  for (const header of ["isa.h", "napi.h", "pool.h"]) assert.ok(common.includes(`include/octet/native/${header}`), header);
});

test("the consumer's PATH has no C++ compiler or make", () => {
  for (const tool of COMPILERS) {
    const r = spawnSync(tool, ["--version"], { env: consumerEnv(noCompilerPath) });
    assert.equal((r.error as NodeJS.ErrnoException | undefined)?.code, "ENOENT", `${tool} must not be found`);
  }
});

test("installed from the tarballs, numerics and router run their prebuilt native kernels, bit-identical to the TypeScript path", () => {
  for (const name of NATIVE) {
    const dir = join(consumer, "node_modules", ...name.split("/"));
    assert.ok(existsSync(join(dir, "prebuilds")), `${name} was installed with its prebuilds/`);
    assert.ok(!existsSync(join(dir, "build")), `${name} was not compiled at install (no compiler): the prebuilt binary is what runs`);
  }
  const native = runCheck();
  const best = bestIsa();
  for (const [name, backend] of [["numerics", native.numerics], ["router", native.router]] as const) {
    assert.equal(backend.path, "native", `${name}: ${backend.reason}`);
    if (best) assert.equal(backend.isa, best, `${name} picks the best instruction set of this CPU`);
  }
  assert.ok(native.quantizeIsSpec && native.scaledMatmulIsSpec, "the native quantizer and GEMM equal the specification");
  const typescript = runCheck({ OCTET_NUMERICS_BACKEND: "typescript", OCTET_ROUTER_BACKEND: "typescript" });
  assert.equal(typescript.numerics.path, "typescript");
  assert.equal(typescript.router.path, "typescript");
  assert.equal(native.digest, typescript.digest, "native and TypeScript outputs are the same bits");
  // Every instruction set the CPU runs, forced, gives the same bits too.
  const forcible = best === "avx512" ? ["avx512", "avx2", "scalar"] : best === "avx2" ? ["avx2", "scalar"] : best ? ["scalar"] : [];
  for (const isa of forcible) {
    const forced = runCheck({ OCTET_NATIVE_ISA: isa });
    assert.deepEqual([forced.numerics.isa, forced.router.isa], [isa, isa]);
    assert.equal(forced.digest, native.digest, `OCTET_NATIVE_ISA=${isa}`);
  }
});

const compilerPath = process.env.PATH ?? "";
const canCompile = ["g++", "make", "python3"].every((tool) => which(tool) !== null);
test("without a prebuilt binary, npm rebuild compiles the kernel from the shipped sources", { skip: canCompile ? false : "needs g++, make and python3", timeout: 180_000 }, () => {
  const router = join(consumer, "node_modules", "@octet", "router");
  rmSync(join(router, "prebuilds"), { recursive: true, force: true });
  const without = runCheck();
  assert.equal(without.router.path, "typescript");
  assert.match(without.router.reason ?? "", /^no native binary for .*npm rebuild @octet\/router/);
  const rebuild = spawnSync("npm", ["rebuild", "@octet/router"], { cwd: consumer, encoding: "utf8", env: consumerEnv(compilerPath, { JOBS: "max" }) });
  assert.equal(rebuild.status, 0, `npm rebuild failed:\n${rebuild.stdout}\n${rebuild.stderr}`);
  assert.ok(readdirSync(join(router, "build", "Release")).some((f) => f.endsWith(".node")), "the install script compiled build/Release/*.node");
  const rebuilt = runCheck();
  assert.equal(rebuilt.router.path, "native", rebuilt.router.reason ?? "");
  assert.equal(rebuilt.digest, without.digest, "the compiled kernel gives the same bits");
});
