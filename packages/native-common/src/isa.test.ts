// octet/native/isa.h, compiled the way binding.gyp compiles the addons' kernels: one kernel file built three
// times (OCTET_ISA=avx512|avx2|scalar with OCTET_ISA_LEVEL=2|1|0, baseline flags), linked into one program
// that picks a copy with select_isa. Checks the choice against /proc/cpuinfo, OCTET_NATIVE_ISA's forcing and
// its errors, that the copies compute the same bits, and that no code shared between the copies (templates
// and inline functions the linker merges into one) was compiled with AVX: that code must run on every CPU.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, platform, tmpdir } from "node:os";
import { join } from "node:path";

const includeDir = createRequire(import.meta.url)("@octet/native-common/include-dir") as string;
const tool = (name: string) => spawnSync(name, ["--version"]).status === 0;
const skip =
  platform() !== "linux" || arch() !== "x64" ? "the per-ISA copies are built for x86-64 Linux only"
  : !tool("g++") ? "g++ is not installed"
  : !tool("objdump") || !tool("nm") ? "binutils (objdump, nm) are not installed"
  : false;

// The kernel: a sum of products in index order (vectorizable by the avx copies: -ffp-contract=off keeps it
// exact). fill_shared is a template defined before the region and instantiated inside it, as the standard
// library's are: a weak symbol of every copy (noinline keeps it out of line), with a loop the compiler
// vectorizes for whatever target it gets.
const KERNEL = String.raw`
#include <functional>
#include <vector>
#include <immintrin.h>
#include <octet/native/isa.h>
template <class T> __attribute__((noinline)) void fill_shared(T* p, int n, T v) { for (int i = 0; i < n; i++) p[i] = v; }
OCTET_ISA_BEGIN
namespace OCTET_ISA {
static void each(int n, const std::function<void(int)>& f) { for (int i = 0; i < n; i++) f(i); }
float kernel(const float* a, const float* b, int n) {
  std::vector<float> products((size_t)n);
  fill_shared(products.data(), n, 0.0f);
  for (int i = 0; i < n; i++) products[(size_t)i] = a[i] * b[i];
  float sum = 0.0f;
  each(1, [&](int) { sum = -0.0f; });
  for (int i = 0; i < n; i++) sum += products[(size_t)i];
#if OCTET_ISA_AVX512
  return sum + _mm512_reduce_add_ps(_mm512_setzero_ps());
#elif OCTET_ISA_AVX2
  return sum + _mm256_cvtss_f32(_mm256_setzero_ps());
#else
  return sum;
#endif
}
}  // namespace OCTET_ISA
OCTET_ISA_END
`;

const MAIN = String.raw`
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <octet/native/isa.h>
namespace scalar { float kernel(const float*, const float*, int); }
namespace avx2 { float kernel(const float*, const float*, int); }
namespace avx512 { float kernel(const float*, const float*, int); }
int main() {
  const bool compiled[3] = {true, true, true};
  float (*const copies[3])(const float*, const float*, int) = {scalar::kernel, avx2::kernel, avx512::kernel};
  octet_native::Isa isa;
  try {
    isa = octet_native::select_isa(compiled);
  } catch (const std::invalid_argument& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  float a[1000], b[1000];
  for (int i = 0; i < 1000; i++) { a[i] = 1.0f / (float)(i + 1); b[i] = (float)(i % 7) - 3.3f; }
  const float sum = copies[(int)isa](a, b, 1000);
  unsigned bits;
  std::memcpy(&bits, &sum, 4);
  std::printf("%s %08x %d %d\n", octet_native::isa_name(isa), bits, octet_native::cpu_supports(octet_native::Isa::avx2), octet_native::cpu_supports(octet_native::Isa::avx512));
  return 0;
}
`;

let work: string;
let program: string;
const objects: Record<string, string> = {};
const FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-I", includeDir];

before(() => {
  work = mkdtempSync(join(tmpdir(), "octet-native-isa-"));
  if (skip) return;
  writeFileSync(join(work, "kernel.cc"), KERNEL);
  writeFileSync(join(work, "main.cc"), MAIN);
  for (const [isa, level] of [["scalar", 0], ["avx2", 1], ["avx512", 2]] as const) {
    objects[isa] = join(work, `kernel_${isa}.o`);
    execFileSync("g++", [...FLAGS, `-DOCTET_ISA=${isa}`, `-DOCTET_ISA_LEVEL=${level}`, "-c", join(work, "kernel.cc"), "-o", objects[isa]]);
  }
  program = join(work, "isa_check");
  execFileSync("g++", [...FLAGS, join(work, "main.cc"), ...Object.values(objects), "-o", program]);
});
after(() => rmSync(work, { recursive: true, force: true }));

function run(forced: string | undefined): { status: number | null; out: string } {
  const env = { ...process.env };
  if (forced === undefined) delete env.OCTET_NATIVE_ISA; else env.OCTET_NATIVE_ISA = forced;
  const r = spawnSync(program, { env, encoding: "utf8" });
  return { status: r.status, out: r.stdout.trim() };
}

// What the CPU has, read independently of the header: the flags line of /proc/cpuinfo.
function cpuHas(): { avx2: boolean; avx512: boolean } {
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(/\s+/));
  const avx2 = ["avx", "avx2", "fma", "bmi1", "bmi2", "popcnt"].every((f) => flags.has(f));
  return { avx2, avx512: avx2 && ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].every((f) => flags.has(f)) };
}

test("unset, empty or auto picks the best copy the CPU runs (checked against /proc/cpuinfo)", { skip }, () => {
  const has = cpuHas();
  const best = has.avx512 ? "avx512" : has.avx2 ? "avx2" : "scalar";
  for (const value of [undefined, "", "auto"]) {
    const { status, out } = run(value);
    assert.equal(status, 0, out);
    assert.match(out, new RegExp(`^${best} [0-9a-f]{8} ${has.avx2 ? 1 : 0} ${has.avx512 ? 1 : 0}$`), `OCTET_NATIVE_ISA=${String(value)}`);
  }
});

test("OCTET_NATIVE_ISA forces each copy the CPU runs, and they compute the same bits", { skip }, () => {
  const has = cpuHas();
  const supported = ["scalar", ...(has.avx2 ? ["avx2"] : []), ...(has.avx512 ? ["avx512"] : [])];
  const sums = new Set<string>();
  for (const isa of supported) {
    const { status, out } = run(isa);
    assert.equal(status, 0, out);
    const [name, bits] = out.split(" ");
    assert.equal(name, isa);
    sums.add(bits);
  }
  assert.equal(sums.size, 1, `every copy gives the same sum: ${[...sums].join(", ")}`);
});

test("a forced ISA that is unknown, or that the CPU lacks, is an error naming it", { skip }, () => {
  assert.deepEqual(run("sse9"), { status: 2, out: 'error: OCTET_NATIVE_ISA must be avx512, avx2, scalar or auto, got "sse9"' });
  const has = cpuHas();
  for (const [isa, ok] of [["avx512", has.avx512], ["avx2", has.avx2]] as const) {
    if (!ok) assert.deepEqual(run(isa), { status: 2, out: `error: OCTET_NATIVE_ISA=${isa}: this CPU does not support it` });
  }
});

test("code the copies share (merged by the linker) is compiled for baseline x86-64: no AVX in it", { skip }, () => {
  for (const isa of ["avx2", "avx512"]) {
    const object = objects[isa];
    // Symbols the linker may merge across objects: weak (W, V) and unique global (u) ones.
    const shared = new Set(
      execFileSync("nm", [object], { encoding: "utf8" }).split("\n")
        .map((line) => line.trim().split(/\s+/))
        .filter((f) => f.length === 3 && /^[WVu]$/.test(f[1]))
        .map((f) => f[2]),
    );
    assert.ok([...shared].some((s) => s.includes("fill_shared")), `${isa}: the kernel instantiates fill_shared outside its namespace (${[...shared].join(", ")})`);
    // Functions whose code uses ymm or zmm registers.
    const withAvx = new Set<string>();
    let current = "";
    for (const line of execFileSync("objdump", ["-d", "--no-show-raw-insn", object], { encoding: "utf8", maxBuffer: 1 << 26 }).split("\n")) {
      const header = /^[0-9a-f]+ <(.+)>:$/.exec(line);
      if (header) current = header[1];
      else if (/%[yz]mm\d/.test(line)) withAvx.add(current);
    }
    assert.ok([...withAvx].some((f) => f.includes(isa)), `${isa}: its own kernel uses ${isa === "avx2" ? "ymm" : "zmm"} registers (${[...withAvx].join(", ")})`);
    const leaked = [...withAvx].filter((f) => shared.has(f));
    assert.deepEqual(leaked, [], `${isa}: shared functions compiled with AVX would run on CPUs without it`);
  }
});

test("OCTET_ISA_LEVEL without OCTET_ISA is a build error, not a copy outside its namespace", { skip }, () => {
  const r = spawnSync("g++", [...FLAGS, "-DOCTET_ISA_LEVEL=1", "-fsyntax-only", join(work, "kernel.cc")], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /OCTET_ISA_LEVEL is set without OCTET_ISA/);
  assert.ok(existsSync(program));
});
