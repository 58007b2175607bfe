// The final table of a GPU run: our figures (bench.json) beside PyTorch's (peer.json), the targets of issue 7 and
// whether they are met, and the correctness summary (check.json). Prints markdown; writes results.md and results.json.
// Usage: node report.mjs DIR   (DIR holds check.json, bench.json, peer.json, build.log; any may be missing)
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DSV3_M, DSV3_NK } from "./common.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
const dir = process.argv[2] ?? ".";
function load(name: string): any {
  const p = join(dir, name);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, "utf8"));
  } catch (err) {
    return { parseError: (err as Error).message };
  }
}
const check = load("check.json"), bench = load("bench.json"), peer = load("peer.json");
const lines: string[] = [];
const out = (s = "") => lines.push(s);
const f0 = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(0) : "—");
const f2 = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(2) : "—");
const maxOf = (xs: number[]) => (xs.filter(Number.isFinite).length ? Math.max(...xs.filter(Number.isFinite)) : NaN);
const verdict = (ok: boolean | null) => (ok === null ? "n/a" : ok ? "**met**" : "**missed**");

out(`# @octet/numerics CUDA backend — GPU run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`);
out();
out(`Device: ${bench?.device ?? check?.device ?? peer?.device ?? "unknown"}; PyTorch ${peer?.torch ?? "—"} (CUDA ${peer?.cuda ?? "—"}); cuBLASLt ${bench?.status?.cublasLt?.version ?? "—"}; sm90 GEMM built: ${bench?.status?.sm90?.available ?? "—"}.`);
out();

// ---- correctness -----------------------------------------------------------------------------------------------------------
out("## Correctness (check)");
out();
if (!check) out("check.json missing: the check did not run or crashed (see check.log).");
else if (check.available === false) out(`No GPU: ${check.reason}`);
else {
  const rs: any[] = check.results ?? [];
  const n = (s: string) => rs.filter((r) => r.status === s).length;
  out(`${n("pass")} passed, ${n("fail")} failed, ${n("error")} errors, ${n("refused")} refused (unsupported shape, clear error), ${n("skip")} skipped; seed ${check.seed}.`);
  const bad = rs.filter((x) => x.status === "fail" || x.status === "error");
  for (const r of bad.slice(0, 15)) out(`- ${r.status.toUpperCase()} ${r.name}: ${r.detail}`);
  if (bad.length > 15) out(`- … and ${bad.length - 15} more (results.json, logs.txt)`);
  const gemmErr = rs.filter((r) => r.metrics?.frobenius !== undefined);
  if (gemmErr.length) {
    const worst = (kind: string) => maxOf(gemmErr.filter((r) => r.name.endsWith(kind)).map((r) => r.metrics.frobenius));
    out(`Largest GEMM error (relative Frobenius vs float64, passing and failing rows): bf16 output ${worst("bf16").toExponential(2)} (tolerance 2e-3), fp32 output ${worst("fp32").toExponential(2)} (tolerance 1e-5).`);
    const pairs = gemmErr.filter((r) => r.metrics.otherFrobenius !== undefined && /^GEMM sm90 .* fp32$/.test(r.name));
    if (pairs.length) out(`fp32 output, sm90 vs cuBLASLt on the same operands: ${pairs.map((r) => `${r.name.replace(/^GEMM sm90 | → fp32$/g, "")} ${r.metrics.frobenius.toExponential(2)} vs ${r.metrics.otherFrobenius.toExponential(2)}`).join("; ")}.`);
  }
}
out();

// ---- quantization ------------------------------------------------------------------------------------------------------------
out("## Quantization, 8192×7168 bf16 → e4m3 (GB/s, bytes read + written)");
out();
const ourCopy = maxOf((bench?.copy ?? []).map((c: any) => c.GBps));
const torchCopy = maxOf((peer?.copy ?? []).map((c: any) => c.GBps));
const copyBw = maxOf([ourCopy, torchCopy]);
const compiled = (peer?.quantize ?? []).find((q: any) => /compile/.test(q.name));
const eager = (peer?.quantize ?? []).find((q: any) => /eager/.test(q.name));
out(`Device copy: ${f0(ourCopy)} GB/s (cudaMemcpy, ours), ${f0(torchCopy)} GB/s (PyTorch copy_); the targets use the larger, ${f0(copyBw)} GB/s.`);
out(`PyTorch reference quantizer: ${f0(compiled?.GBps)} GB/s under torch.compile, ${f0(eager?.GBps)} GB/s eager.`);
out();
out("| kernel | GB/s | µs | vs copy | vs torch.compile | target |");
out("| --- | ---: | ---: | ---: | ---: | --- |");
for (const q of bench?.quantize ?? []) {
  const head = q.name === "quantize 1x128 bf16→e4m3, fp32 scales";
  const ratio = q.GBps / copyBw;
  out(`| ${q.name} | ${f0(q.GBps)} | ${f0(q.ms * 1000)} | ${f2(ratio)} | ${f2(q.GBps / compiled?.GBps)} | ${head ? `≥ 0.90 of copy: ${verdict(Number.isFinite(ratio) ? ratio >= 0.9 : null)}` : ""} |`);
}
if (peer?.xcheck) {
  const x = peer.xcheck;
  out();
  const line = (k: string, label: string) => (x[k] ? `${label}: ${x[k].codesDiffer} codes and ${x[k].scalesDiffer} scales differ` : null);
  out(`Cross-check with PyTorch's quantizer on the same bf16 input (1024×7168): ${[
    line("fp32", "fp32 scales, amax / 448.0 as written (a CUDA tensor divided by a Python scalar)"),
    line("fp32-exact", "fp32 scales, correctly rounded amax / 448 (the CPU path's definition)"),
    line("pow2", "pow2 scales"),
  ].filter(Boolean).join("; ")}.`);
}
out();

// ---- GEMMs ---------------------------------------------------------------------------------------------------------------------
out("## Block-scaled FP8 GEMM (1x128 / 128x128 scales), bf16 output, TFLOP/s");
out();
out("| M × N × K | ours sm90 | ours cuBLASLt | torch._scaled_mm | torch bf16 | ours bf16 (cuBLASLt) | sm90 / _scaled_mm | target | auto picks |");
out("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
const ours = (M: number, N: number, K: number, impl: string) => (bench?.gemm ?? []).find((r: any) => r.M === M && r.N === N && r.K === K && r.impl === impl)?.tflops;
const theirs = (M: number, N: number, K: number, re: RegExp) => (peer?.gemm ?? []).find((r: any) => r.M === M && r.N === N && r.K === K && re.test(r.impl))?.tflops;
const targets: { shape: string; ok: boolean | null }[] = [];
for (const M of DSV3_M) {
  for (const [N, K] of DSV3_NK) {
    const sm90 = ours(M, N, K, "sm90"), lt = ours(M, N, K, "cublaslt"), bf = ours(M, N, K, "bf16");
    const tsm = theirs(M, N, K, /_scaled_mm/), tbf = theirs(M, N, K, /bf16/);
    const peerLt = Number.isFinite(tsm) ? tsm : lt;  // cuBLASLt's block-scaled path: PyTorch's call, else ours
    const ratio = sm90 / peerLt;
    let target: string, ok: boolean | null;
    if (M === 4096) {
      const largest = N === 7168 && K === 16384;
      ok = Number.isFinite(ratio) ? ratio >= 1 && (!largest || sm90 >= 1300) : null;
      target = largest ? "≥ cuBLASLt and ≥ 1300" : "≥ cuBLASLt";
    } else {
      ok = Number.isFinite(ratio) ? ratio >= 2 : null;
      target = "≥ 2× cuBLASLt";
    }
    targets.push({ shape: `${M}×${N}×${K}`, ok });
    out(`| ${M} × ${N} × ${K} | ${f0(sm90)} | ${f0(lt)} | ${f0(tsm)} | ${f0(tbf)} | ${f0(bf)} | ${f2(ratio)} | ${target}: ${verdict(ok)} | ${bench?.autoChoices?.[`${M}x${N}x${K}`] ?? "—"} |`);
  }
}
const met = targets.filter((t) => t.ok === true).length, known = targets.filter((t) => t.ok !== null).length;
out();
out(`GEMM targets met on ${met} of ${known} measured shapes${known < targets.length ? ` (${targets.length - known} not measured)` : ""}.`);
out();

// ---- grouped ---------------------------------------------------------------------------------------------------------------------
out("## Grouped GEMM (MoE), bf16 output, TFLOP/s");
out();
out("| experts | M (tokens) | N × K | one launch (sm90) | loop of sm90 calls | loop of cuBLASLt calls | one launch / loop (sm90) |");
out("| ---: | ---: | --- | ---: | ---: | ---: | ---: |");
const groups = new Map<string, any[]>();
for (const r of bench?.grouped ?? []) {
  const k = `${r.E}|${r.M}|${r.N}|${r.K}`;
  groups.set(k, [...(groups.get(k) ?? []), r]);
}
for (const [k, rs] of groups) {
  const [E, M, N, K] = k.split("|");
  const g = (impl: string) => rs.find((r) => r.impl === impl)?.tflops;
  out(`| ${E} | ${M} | ${N} × ${K} | ${f0(g("sm90"))} | ${f0(g("loop-sm90"))} | ${f0(g("loop-cublaslt"))} | ${f2(g("sm90") / g("loop-sm90"))} |`);
}
out();
const skipped = [...(bench?.skipped ?? []), ...(peer?.skipped ?? [])];
if (skipped.length) out(`Left out by the time box: ${skipped.join("; ")}.`);
for (const [name, j] of [["bench", bench], ["peer", peer]] as const) {
  if (!j) out(`${name}.json missing: that step did not run or crashed (see ${name}.log).`);
  for (const key of Object.keys(j ?? {}).filter((x) => x.endsWith("Error"))) out(`${name} ${key}: ${j[key]}`);
}

const text = lines.join("\n");
console.log(text);
writeFileSync(join(dir, "results.md"), text + "\n");
writeFileSync(join(dir, "results.json"), JSON.stringify({ check: check && { ...check, status: undefined }, bench, peer }, null, 1) + "\n");
