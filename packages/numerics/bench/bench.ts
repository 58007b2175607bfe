// Benchmark of the CPU path of @octet/numerics: quantization GB/s and block-scaled GEMM GFLOP/s, native vs the
// TypeScript specification, next to the plain fp32 GEMM measured in the same run.
//   npm run bench -w @octet/numerics            (OCTET_NUMERICS_BACKEND=typescript: the TS path only)
// Writes bench/results.json and the CPU section of bench/RESULTS.md (between its cpu-bench markers).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { quantizeReference } from "../src/quantize.js";
import { scaledMatmulReference } from "../src/gemm.js";
import { loadNativeKernels, nativeUnavailableReason } from "../src/native.js";

const k = loadNativeKernels();
const cpu = cpus()[0]?.model ?? "unknown CPU";
const info = k?.info();
const path = k ? `native (${info!.isa}; ${info!.threads} threads; ${info!.flags}; ${info!.compiler})` : `typescript (${nativeUnavailableReason()})`;
console.log(`@octet/numerics benchmark — ${new Date().toISOString()} — ${cpu}, ${cpus().length} logical CPUs, Node ${process.version}`);
console.log(`code path: ${path}\n`);

interface Row {
  kernel: string;
  impl: "native" | "typescript";
  shape: string;
  metric: "GB/s" | "GFLOP/s";
  /** Throughput at the median time (the headline figure) and at the best time of the reps. */
  value: number;
  best: number;
  ms: number;
  reps: number;
}
const rows: Row[] = [];

function time(fn: () => unknown, reps: number, warmup = 1): { median: number; best: number } {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return { median: ts[Math.floor(ts.length / 2)], best: ts[0] };
}

function timePair(f: () => unknown, g: () => unknown, reps: number): [{ median: number; best: number }, { median: number; best: number }] {
  f(); g(); f(); g();
  const tf: number[] = [], tg: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now();
    f();
    tf.push(performance.now() - t0);
    t0 = performance.now();
    g();
    tg.push(performance.now() - t0);
  }
  const stats = (ts: number[]) => { ts.sort((x, y) => x - y); return { median: ts[Math.floor(ts.length / 2)], best: ts[0] }; };
  return [stats(tf), stats(tg)];
}

function record(kernel: string, impl: Row["impl"], shape: string, metric: Row["metric"], amount: number, t: { median: number; best: number }, reps: number): void {
  // GB/s = bytes / ns; GFLOP/s = flops / ns
  const value = amount / t.median / 1e6, best = amount / t.best / 1e6;
  rows.push({ kernel, impl, shape, metric, value, best, ms: t.median, reps });
  console.log(`  ${impl.padEnd(10)} ${kernel.padEnd(34)} ${shape.padEnd(16)} ${value.toFixed(2).padStart(9)} ${metric.padEnd(7)} (median ${t.median.toFixed(2)} ms of ${reps}; best ${best.toFixed(2)})`);
}

let state = 0x9e3779b9;
function random(): number {
  state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
  return state / 2 ** 32;
}
function matrix(r: number, c: number): Float32Array {
  const x = new Float32Array(r * c);
  for (let i = 0; i < x.length; i++) x[i] = (random() * 2 - 1) * (random() < 0.01 ? 50 : 1);
  return x;
}

// ---- quantization -------------------------------------------------------------------------------------
console.log("quantization, 4096 x 4096 float32 → e4m3 (bytes = 4 read + 1 written per element, + 4 per scale)");
const QR = 4096, QC = 4096;
const xq = matrix(QR, QC);
const qBytes = (br: number, bc: number) => QR * QC * 5 + 4 * Math.ceil(QR / br) * Math.ceil(QC / bc);
for (const [br, bc] of [[1, 128], [128, 128], [128, 1]] as const) {
  const label = `quantize [${br},${bc}]`;
  if (k) {
    const t = time(() => k.quantize(xq, QR, QC, br, bc, 0, false), 7);
    record(label, "native", `${QR}x${QC}`, "GB/s", qBytes(br, bc), t, 7);
  }
  if (br === 128 && bc === 1) continue; // the TS spec is the same loop nest for every block shape
  const t = time(() => quantizeReference(xq, [QR, QC], { block: [br, bc] }), 2);
  record(label, "typescript", `${QR}x${QC}`, "GB/s", qBytes(br, bc), t, 2);
}
if (k) {
  const bytes = QR * QC * 6 + 4 * (QR * Math.ceil(QC / 128) + Math.ceil(QR / 128) * QC);
  const t = time(() => k.quantizeTiledBoth(xq, QR, QC, 0, false), 7);
  record("quantizeTiledBoth [1,128]+[128,1]", "native", `${QR}x${QC}`, "GB/s", bytes, t, 7);
}

// ---- GEMM ---------------------------------------------------------------------------------------------
console.log("\nGEMM C[M,N] = A[M,K]·B[N,K]ᵀ (2·M·N·K flops; shapes M x N x K; A 1x128 tiles, B 128x128 blocks, e4m3, promoteEvery 128)");
const TS_SHAPE: [number, number, number] = [256, 256, 1024]; // the TS spec at 1024³ would take ~10 s
const gemmShapes: [number, number, number][] = [[1024, 1024, 1024], [4096, 1024, 1024], TS_SHAPE];
for (const [M, N, K] of gemmShapes) {
  const shape = `${M}x${N}x${K}`;
  const flops = 2 * M * N * K;
  const a = matrix(M, K), b = matrix(N, K);
  const qa = quantizeReference(a, [M, K], { block: [1, 128] });
  const qb = quantizeReference(b, [N, K], { block: [128, 128] });
  if (k) {
    const reps = M * N * K >= 2 ** 32 ? 9 : 15;
    // interleaved, so that both see the same (shared, noisy) machine
    const [ts, tf] = timePair(
      () => k.scaledMatmul(qa.data, qa.scales, M, K, 1, 128, 0, qb.data, qb.scales, N, 128, 128, 0, 128),
      () => k.matmulF32(a, b, M, N, K),
      reps,
    );
    record("scaledMatmul promoted", "native", shape, "GFLOP/s", flops, ts, reps);
    record("matmulF32 (plain fp32 peer)", "native", shape, "GFLOP/s", flops, tf, reps);
  }
  if (M * N * K <= TS_SHAPE[0] * TS_SHAPE[1] * TS_SHAPE[2]) {
    const ts = time(() => scaledMatmulReference(qa, qb), 2);
    record("scaledMatmul promoted", "typescript", shape, "GFLOP/s", flops, ts, 2);
    const tf = time(() => {
      const c = new Float32Array(M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let i = 0; i < K; i++) s += a[m * K + i] * b[n * K + i];
        c[m * N + n] = s;
      }
      return c;
    }, 2);
    record("matmulF32 (plain fp32 peer)", "typescript", shape, "GFLOP/s", flops, tf, 2);
  }
}

// ---- summary ------------------------------------------------------------------------------------------
const find = (kernel: string, impl: string, shape: string) => rows.find((r) => r.kernel === kernel && r.impl === impl && r.shape === shape);
const ratios: { shape: string; impl: string; scaledOverF32: number }[] = [];
for (const r of rows.filter((r) => r.kernel === "scaledMatmul promoted")) {
  const f = find("matmulF32 (plain fp32 peer)", r.impl, r.shape);
  if (f) ratios.push({ shape: r.shape, impl: r.impl, scaledOverF32: r.value / f.value });
}
const speedups: { kernel: string; shape: string; nativeOverTs: number }[] = [];
for (const r of rows.filter((r) => r.impl === "native")) {
  const t = find(r.kernel, "typescript", r.shape);
  if (t) speedups.push({ kernel: r.kernel, shape: r.shape, nativeOverTs: r.value / t.value });
}

const header = "| kernel | impl | shape | median | best | median ms |\n|---|---|---|---:|---:|---:|";
const table = [header, ...rows.map((r) => `| ${r.kernel} | ${r.impl} | ${r.shape} | ${r.value.toFixed(2)} ${r.metric} | ${r.best.toFixed(2)} ${r.metric} | ${r.ms.toFixed(2)} |`)].join("\n");
const ratioLines = [
  ...ratios.map((r) => `- scaledMatmul / fp32 matmul (${r.impl}, ${r.shape}): ${r.scaledOverF32.toFixed(2)} at the medians`),
  ...speedups.map((s) => `- native / typescript, ${s.kernel} ${s.shape}: ${s.nativeOverTs.toFixed(0)}x`),
].join("\n");
console.log(`\ncode path: ${path}\n\n${table}\n\n${ratioLines}`);

const date = new Date().toISOString();
const here = fileURLToPath(new URL(".", import.meta.url));
const results = { date, cpu, logicalCpus: cpus().length, node: process.version, path: k ? "native" : "typescript", native: info ?? null, reason: k ? null : nativeUnavailableReason(), tsGemmShape: TS_SHAPE.join("x"), rows, ratios, speedups };
writeFileSync(`${here}results.json`, JSON.stringify(results, null, 2) + "\n");
// RESULTS.md holds every path's current figures; this run replaces only the CPU section, between the markers.
const resultsMd = `${here}RESULTS.md`;
const START = "<!-- cpu-bench:start (written by bench/bench.ts) -->";
const END = "<!-- cpu-bench:end -->";
const doc = readFileSync(resultsMd, "utf8");
const start = doc.indexOf(START);
const end = doc.indexOf(END);
if (start < 0 || end < start) throw new Error(`${resultsMd}: the CPU section's markers are missing (${START} ... ${END}); bench.ts writes between them`);
const git = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: here, encoding: "utf8" });
const commit = git.status === 0 ? `commit ${git.stdout.trim()}` : "commit unknown (not a git checkout)";
const section =
  `${date} — ${cpu} (${cpus().length} logical CPUs), Node ${process.version}, ${commit}\n\nCode path: ${path}\n\n` +
    `Quantization: 4096x4096 float32 → e4m3, GB/s = (4 B read + 1 B written per element + 4 B per scale) / time (fused kernel: 2 B written).\n` +
    `GEMM: GFLOP/s = 2·M·N·K / time, shapes M x N x K, A 1x128 tiles, B 128x128 blocks, promoteEvery 128; each call includes decoding and packing. ` +
    `The TypeScript spec runs only at ${TS_SHAPE.join("x")} (1024³ would take ~10 s); the native kernels run there too for comparison.\n\n${table}\n\n${ratioLines}`;
writeFileSync(resultsMd, `${doc.slice(0, start + START.length)}\n${section}\n${doc.slice(end)}`);
console.log(`\nwrote ${here}results.json and the CPU section of RESULTS.md`);
