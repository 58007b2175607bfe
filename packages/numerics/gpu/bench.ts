// Times the CUDA kernels of @octet/numerics on the GPU, in one run:
//   - quantization of an 8192x7168 bf16 tensor (GB/s counting bytes read + written) against the device copy bandwidth
//     (cudaMemcpy device→device, same run);
//   - block-scaled FP8 GEMM, the sm90 kernel and cuBLASLt, on DeepSeek-V3's shapes (M ∈ {64, 128, 4096}), and the
//     BF16 GEMM (cuBLASLt), TFLOP/s;
//   - grouped GEMM for 8 and 32 experts: one launch against a loop of per-expert calls.
// Timing: each measured call is captured ITERS times into a CUDA graph (operands rotated among enough copies to
// exceed twice the L2), the graph replayed after a warm-up, CUDA events around each replay, median of the replays.
// Usage: node bench.mjs [--json out.json] [--xcheck DIR] (DIR receives a quantization sample for peer.py to compare
// with PyTorch bit for bit). $OCTET_GPU_DEADLINE (epoch ms) time-boxes the run: what is left out is listed.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  DeviceQuantized, DeviceTensor, captureGraph, copyDevice, cudaStatus, emptyDevice, fillRandomDevice, gemmChoices,
  groupedScaledMatmulDevice, matmulBf16Device, quantizeBothDevice, quantizeDevice, scaledMatmulDevice, stackExpertsDevice,
  dequantizeDevice, timeDevice, synchronizeDevice, setKernelKnob, type DeviceExperts, type GroupedImpl,
} from "../src/cuda.js";
import { DSV3_M, DSV3_NK, argValue, elapsed, median, mulberry32, stamp, timeLeft, writeJson } from "./common.js";

const jsonPath = argValue("--json");
const xcheckDir = argValue("--xcheck");
const seed = process.env.OCTET_BENCH_SEED ? Number(process.env.OCTET_BENCH_SEED) >>> 0 : 20251123;
const rand = mulberry32(seed);
const REPS = Number(process.env.OCTET_BENCH_REPS ?? 7);
// OCTET_BENCH_TINY=1: small shapes only — a smoke test of the script itself (e.g. on the CPU emulation of the addon).
const TINY = process.env.OCTET_BENCH_TINY === "1";
const MEM_SHAPE: [number, number] = TINY ? [256, 1024] : [8192, 7168];
const GEMM_NK: [number, number][] = TINY ? [[256, 512]] : DSV3_NK;
const GEMM_M: number[] = TINY ? [64] : DSV3_M;
const GROUPED: { E: number[]; NK: [number, number][]; avg: number } = TINY ? { E: [4], NK: [[256, 256]], avg: 32 } : { E: [8, 32], NK: [[4096, 7168], [7168, 2048]], avg: 256 };
const skipped: string[] = [];

interface Timing {
  ms: number;
  min: number;
  max: number;
  iters: number;
  method: string;
}

/**
 * Median milliseconds of one call. launch(i) enqueues call i (rotating operand sets by i). Warm-up outside capture
 * (plans, workspaces, scale layouts), then a graph of `iters` calls sized to last ~4 ms, replayed REPS times.
 */
function timeCall(launch: (i: number) => void, sets: number): Timing {
  for (let i = 0; i < sets; i++) launch(i);
  synchronizeDevice();
  const est = Math.max(timeDevice(() => launch(0), 3), 1e-3);
  let iters = Math.min(64, Math.max(4, Math.ceil(4 / est)));
  iters = Math.ceil(iters / sets) * sets;
  try {
    const graph = captureGraph(() => {
      for (let i = 0; i < iters; i++) launch(i);
    });
    const t = Array.from(graph.time(2, REPS), (x) => x / iters);
    return { ms: median(t), min: Math.min(...t), max: Math.max(...t), iters, method: "graph" };
  } catch (err) {
    // Some calls cannot be captured (e.g. a host-to-device copy inside a library call): time a plain loop instead.
    const t: number[] = [];
    for (let r = 0; r < REPS; r++) {
      t.push(timeDevice(() => {
        for (let i = 0; i < iters; i++) launch(i);
      }, 1) / iters);
    }
    return { ms: median(t), min: Math.min(...t), max: Math.max(...t), iters, method: `loop (graph capture failed: ${(err as Error).message.slice(0, 120)})` };
  }
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "—";
}

// ---- copy and quantization -------------------------------------------------------------------------------------------------------

interface BandwidthRow {
  name: string;
  bytes: number;
  ms: number;
  GBps: number;
  vsCopy?: number;
  timing: Timing;
  error?: string;
}

function benchMemory(): { copy: BandwidthRow[]; quantize: BandwidthRow[] } {
  const [R, C] = MEM_SHAPE;
  const copy: BandwidthRow[] = [];
  const quantize: BandwidthRow[] = [];
  const measure = (list: BandwidthRow[], name: string, bytes: number, launch: (i: number) => void) => {
    try {
      const timing = timeCall(launch, 1);
      const row = { name, bytes, ms: timing.ms, GBps: bytes / timing.ms / 1e6, timing };
      list.push(row);
      console.log(`  ${name.padEnd(52)} ${fmt(timing.ms * 1000, 1).padStart(8)} µs  ${fmt(row.GBps, 0).padStart(6)} GB/s  (${timing.method}, ${timing.iters}/graph) [${elapsed()}]`);
    } catch (err) {
      list.push({ name, bytes, ms: NaN, GBps: NaN, timing: { ms: NaN, min: NaN, max: NaN, iters: 0, method: "failed" }, error: (err as Error).message });
      console.log(`  ${name.padEnd(52)} FAILED: ${(err as Error).message}`);
    }
  };
  console.log(`\n== device copy and quantization, ${R}x${C} (bytes read + written) [${elapsed()}]`);
  const x = emptyDevice([R, C], "bf16");
  fillRandomDevice(x, seed, "normal", 1);
  const y = emptyDevice([R, C], "bf16");
  measure(copy, `cudaMemcpy D2D ${(R * C * 2 / 2 ** 20).toFixed(0)} MiB (same bytes as the bf16 input)`, 2 * R * C * 2, () => copyDevice(y, x));
  {
    const n = TINY ? 1 << 20 : 1 << 29;
    const big = emptyDevice([n], "u8"), big2 = emptyDevice([n], "u8");
    measure(copy, `cudaMemcpy D2D ${n >> 20} MiB`, 2 * n, () => copyDevice(big2, big));
    big.free();
    big2.free();
  }
  y.free();
  const copyBw = Math.max(...copy.map((c) => c.GBps).filter(Number.isFinite));
  const scalesRow = 4 * R * Math.ceil(C / 128);
  const q = quantizeDevice(x, { block: [1, 128], nonFinite: "unchecked" });
  measure(quantize, "quantize 1x128 bf16→e4m3, fp32 scales", 2 * R * C + R * C + scalesRow, () => quantizeDevice(x, { block: [1, 128], nonFinite: "unchecked", into: q }));
  setKernelKnob("rows_unroll", 2);
  measure(quantize, "quantize 1x128 bf16→e4m3, fp32 scales (variant: 2 tiles in flight)", 2 * R * C + R * C + scalesRow, () => quantizeDevice(x, { block: [1, 128], nonFinite: "unchecked", into: q }));
  setKernelKnob("rows_unroll", 4);
  const qp = quantizeDevice(x, { block: [1, 128], scale: "pow2", nonFinite: "unchecked" });
  measure(quantize, "quantize 1x128 bf16→e4m3, pow2 scales", 2 * R * C + R * C + scalesRow, () => quantizeDevice(x, { block: [1, 128], scale: "pow2", nonFinite: "unchecked", into: qp }));
  qp.free();
  const q5 = quantizeDevice(x, { block: [1, 128], format: "e5m2", nonFinite: "unchecked" });
  measure(quantize, "quantize 1x128 bf16→e5m2, fp32 scales", 2 * R * C + R * C + scalesRow, () => quantizeDevice(x, { block: [1, 128], format: "e5m2", nonFinite: "unchecked", into: q5 }));
  q5.free();
  const both = quantizeBothDevice(x, { nonFinite: "unchecked" });
  measure(quantize, "quantize both: 1x128 of x and of xᵀ, one read", 2 * R * C + 2 * R * C + scalesRow + 4 * C * Math.ceil(R / 128),
    () => quantizeBothDevice(x, { nonFinite: "unchecked", into: both }));
  setKernelKnob("both_variant", 2);
  measure(quantize, "quantize both (variant 2: half-sector xᵀ stores)", 2 * R * C + 2 * R * C + scalesRow + 4 * C * Math.ceil(R / 128),
    () => quantizeBothDevice(x, { nonFinite: "unchecked", into: both }));
  setKernelKnob("both_variant", 1);
  measure(quantize, "quantize both (variant 1: registers)", 2 * R * C + 2 * R * C + scalesRow + 4 * C * Math.ceil(R / 128),
    () => quantizeBothDevice(x, { nonFinite: "unchecked", into: both }));
  setKernelKnob("both_variant", 3);
  both.rowwise.free();
  both.transposed.free();
  const qb = quantizeDevice(x, { block: [128, 128], nonFinite: "unchecked" });
  const blockBytes = 2 * R * C + R * C + 4 * Math.ceil(R / 128) * Math.ceil(C / 128);
  measure(quantize, "quantize 128x128 bf16→e4m3", blockBytes, () => quantizeDevice(x, { block: [128, 128], nonFinite: "unchecked", into: qb }));
  setKernelKnob("blocks_variant", 1);
  measure(quantize, "quantize 128x128 (variant 1: registers)", blockBytes, () => quantizeDevice(x, { block: [128, 128], nonFinite: "unchecked", into: qb }));
  setKernelKnob("blocks_variant", 2);
  qb.free();
  const x32 = emptyDevice([R, C], "fp32");
  fillRandomDevice(x32, seed + 1, "normal", 1);
  const q32 = quantizeDevice(x32, { block: [1, 128], nonFinite: "unchecked" });
  measure(quantize, "quantize 1x128 fp32→e4m3, fp32 scales", 4 * R * C + R * C + scalesRow, () => quantizeDevice(x32, { block: [1, 128], nonFinite: "unchecked", into: q32 }));
  q32.free();
  x32.free();
  const deq = dequantizeDevice(q, { out: "bf16" });
  measure(quantize, "dequantize 1x128 e4m3→bf16", R * C + scalesRow + 2 * R * C, () => dequantizeDevice(q, { out: "bf16", into: deq }));
  deq.free();
  q.free();
  x.free();
  for (const row of quantize) row.vsCopy = row.GBps / copyBw;
  return { copy, quantize };
}

// ---- GEMMs ---------------------------------------------------------------------------------------------------------------------------

interface GemmRow {
  M: number;
  N: number;
  K: number;
  impl: string;
  ms: number;
  tflops: number;
  sets: number;
  timing?: Timing;
  error?: string;
}

function benchGemms(l2: number): { rows: GemmRow[]; auto: Record<string, string> } {
  const st = cudaStatus();
  const rows: GemmRow[] = [];
  const auto: Record<string, string> = {};
  console.log(`\n== block-scaled FP8 GEMM (1x128 · 128x128 scales) and BF16 GEMM, bf16 output, TFLOP/s [${elapsed()}]`);
  console.log(`  ${"M x N x K".padEnd(20)} ${"sm90".padStart(8)} ${"cuBLASLt".padStart(9)} ${"bf16".padStart(8)}  sets  auto`);
  for (const [N, K] of GEMM_NK) {
    if (timeLeft() < 45_000) {
      skipped.push(`GEMM N×K=${N}×${K}: the run's deadline was near`);
      continue;
    }
    const bytesB = N * K;
    const sets = Math.max(1, Math.min(8, Math.ceil((2 * l2) / (bytesB + 64 * K))));
    const xb: DeviceTensor[] = [], qb: DeviceQuantized[] = [];
    for (let s = 0; s < sets; s++) {
      const t = emptyDevice([N, K], "bf16");
      fillRandomDevice(t, (rand() * 2 ** 32) >>> 0, "normal", 0.02);
      xb.push(t);
      qb.push(quantizeDevice(t, { block: [128, 128], nonFinite: "unchecked" }));
    }
    for (const M of GEMM_M) {
      const setsM = Math.max(1, Math.min(sets, Math.ceil((2 * l2) / (bytesB + M * K))));
      const xa: DeviceTensor[] = [], qa: DeviceQuantized[] = [];
      for (let s = 0; s < setsM; s++) {
        const t = emptyDevice([M, K], "bf16");
        fillRandomDevice(t, (rand() * 2 ** 32) >>> 0, "normal", 1);
        xa.push(t);
        qa.push(quantizeDevice(t, { block: [1, 128], nonFinite: "unchecked" }));
      }
      const d = emptyDevice([M, N], "bf16");
      const flops = 2 * M * N * K;
      const result: Record<string, number> = {};
      const impls: [string, boolean, (i: number) => void][] = [
        ["sm90", st.sm90.available, (i) => scaledMatmulDevice(qa[i % setsM], qb[i % setsM], { impl: "sm90", into: d })],
        ["cublaslt", st.cublasLt.available, (i) => scaledMatmulDevice(qa[i % setsM], qb[i % setsM], { impl: "cublaslt", into: d })],
        ["bf16", st.cublasLt.available, (i) => matmulBf16Device(xa[i % setsM], xb[i % setsM], { into: d })],
      ];
      for (const [impl, available, launch] of impls) {
        if (!available) {
          result[impl] = NaN;
          continue;
        }
        try {
          const timing = timeCall(launch, setsM);
          const tflops = flops / timing.ms / 1e9;
          rows.push({ M, N, K, impl, ms: timing.ms, tflops, sets: setsM, timing });
          result[impl] = tflops;
        } catch (err) {
          rows.push({ M, N, K, impl, ms: NaN, tflops: NaN, sets: setsM, error: (err as Error).message });
          result[impl] = NaN;
          console.log(`  ${M}x${N}x${K} ${impl} FAILED: ${(err as Error).message}`);
        }
      }
      let choice = "—";
      try {
        scaledMatmulDevice(qa[0], qb[0], { impl: "auto", into: d });
        const c = gemmChoices()[`${M}x${N}x${K} e4m3·e4m3→bf16`];
        choice = c ? c.impl : "?";
        auto[`${M}x${N}x${K}`] = choice;
      } catch (err) {
        choice = `error: ${(err as Error).message.slice(0, 60)}`;
      }
      console.log(`  ${`${M}x${N}x${K}`.padEnd(20)} ${fmt(result.sm90, 0).padStart(8)} ${fmt(result.cublaslt, 0).padStart(9)} ${fmt(result.bf16, 0).padStart(8)}  ${String(setsM).padStart(4)}  ${choice} [${elapsed()}]`);
      d.free();
      for (const t of xa) t.free();
      for (const q of qa) q.free();
    }
    for (const t of xb) t.free();
    for (const q of qb) q.free();
  }
  return { rows, auto };
}

// ---- grouped GEMM --------------------------------------------------------------------------------------------------------------------

interface GroupedRow {
  E: number;
  N: number;
  K: number;
  M: number;
  sizes: number[];
  impl: string;
  ms: number;
  tflops: number;
  timing?: Timing;
  error?: string;
}

function benchGrouped(): GroupedRow[] {
  const st = cudaStatus();
  const rows: GroupedRow[] = [];
  console.log(`\n== grouped GEMM (MoE experts), 256 tokens per expert on average, bf16 output, TFLOP/s [${elapsed()}]`);
  for (const E of GROUPED.E) {
    for (const [N, K] of GROUPED.NK) {
      if (timeLeft() < 30_000) {
        skipped.push(`grouped E=${E} N×K=${N}×${K}: the run's deadline was near`);
        continue;
      }
      // uneven, multiples of 16 (cuBLASLt's block-scaled path needs each expert's rows % 4 == 0; MoE dispatch pads so)
      const sizes = Array.from({ length: E }, () => 16 * Math.round((GROUPED.avg * (0.5 + rand())) / 16));
      const offsets = [0];
      for (const s of sizes) offsets.push(offsets[offsets.length - 1] + s);
      const M = offsets[E];
      let experts: DeviceExperts | null = null;
      let a: DeviceQuantized | null = null;
      let d: DeviceTensor | null = null;
      try {
        const ws: DeviceQuantized[] = [];
        const tmp = emptyDevice([N, K], "bf16");
        for (let e = 0; e < E; e++) {
          fillRandomDevice(tmp, (rand() * 2 ** 32) >>> 0, "normal", 0.02);
          ws.push(quantizeDevice(tmp, { block: [128, 128], nonFinite: "unchecked" }));
        }
        tmp.free();
        experts = stackExpertsDevice(ws);
        for (const w of ws) w.free();
        const xa = emptyDevice([M, K], "bf16");
        fillRandomDevice(xa, (rand() * 2 ** 32) >>> 0, "normal", 1);
        a = quantizeDevice(xa, { block: [1, 128], nonFinite: "unchecked" });
        xa.free();
        d = emptyDevice([M, N], "bf16");
      } catch (err) {
        rows.push({ E, N, K, M, sizes, impl: "setup", ms: NaN, tflops: NaN, error: (err as Error).message });
        console.log(`  E=${E} ${N}x${K}: setup FAILED: ${(err as Error).message}`);
        experts?.free();
        a?.free();
        continue;
      }
      const line: string[] = [];
      const impls: [GroupedImpl, boolean][] = [["sm90", st.sm90.available], ["loop-sm90", st.sm90.available], ["loop-cublaslt", st.cublasLt.available]];
      for (const [impl, available] of impls) {
        if (!available) continue;
        try {
          const timing = timeCall(() => groupedScaledMatmulDevice(a!, experts!, offsets, { impl, into: d! }), 1);
          const tflops = (2 * M * N * K) / timing.ms / 1e9;
          rows.push({ E, N, K, M, sizes, impl, ms: timing.ms, tflops, timing });
          line.push(`${impl} ${fmt(tflops, 0)} TFLOP/s (${fmt(timing.ms * 1000, 0)} µs, ${timing.method})`);
        } catch (err) {
          rows.push({ E, N, K, M, sizes, impl, ms: NaN, tflops: NaN, error: (err as Error).message });
          line.push(`${impl} FAILED: ${(err as Error).message.slice(0, 100)}`);
        }
      }
      console.log(`  E=${String(E).padStart(2)} M=${M} N=${N} K=${K}: ${line.join("; ")} [${elapsed()}]`);
      experts.free();
      a.free();
      d.free();
    }
  }
  return rows;
}

// ---- cross-check sample for peer.py --------------------------------------------------------------------------------------------------

function writeCrossCheck(dir: string): void {
  const [R, C] = TINY ? [64, 512] : [1024, 7168];
  mkdirSync(dir, { recursive: true });
  const x = emptyDevice([R, C], "bf16");
  fillRandomDevice(x, seed + 7, "logUniform", 4);
  writeFileSync(join(dir, "x.bf16"), x.toHost() as Uint16Array);
  for (const scale of ["fp32", "pow2"] as const) {
    const q = quantizeDevice(x, { block: [1, 128], scale });
    writeFileSync(join(dir, `data-${scale}.u8`), q.data.toHost() as Uint8Array);
    writeFileSync(join(dir, `scales-${scale}.f32`), q.scales.toHost() as Float32Array);
    q.free();
  }
  writeFileSync(join(dir, "meta.json"), JSON.stringify({ rows: R, cols: C, format: "e4m3", block: [1, 128] }));
  x.free();
  console.log(`\nwrote a quantization sample (${R}x${C} bf16, fp32 and pow2 scales) to ${dir} for peer.py to compare with PyTorch`);
}

function main(): number {
  const st = cudaStatus();
  console.log(`octet numerics CUDA bench — ${stamp()} UTC, seed ${seed}, ${REPS} timed graph replays per figure (median)`);
  if (!st.available) {
    console.log(`NO GPU: the CUDA backend is unavailable here: ${st.reason}`);
    writeJson(jsonPath, { available: false, reason: st.reason, date: new Date().toISOString() });
    return 3;
  }
  console.log(`device ${st.device}, ${st.multiprocessors} SMs, L2 ${((st.l2Bytes ?? 0) / 2 ** 20).toFixed(0)} MiB; sm90: ${st.sm90.available ? "yes" : st.sm90.reason}; cuBLASLt: ${st.cublasLt.available ? st.cublasLt.version : st.cublasLt.reason}`);
  const out: Record<string, unknown> = { available: true, date: new Date().toISOString(), device: st.device, status: st, seed, reps: REPS };
  const save = () => writeJson(jsonPath, { ...out, skipped });
  if (xcheckDir) {
    try {
      writeCrossCheck(xcheckDir);
    } catch (err) {
      console.log(`cross-check sample FAILED: ${(err as Error).message}`);
    }
  }
  try {
    Object.assign(out, benchMemory());
  } catch (err) {
    console.log(`memory benchmarks FAILED: ${(err as Error).message}`);
    out.memoryError = (err as Error).message;
  }
  save();
  try {
    const g = benchGemms(st.l2Bytes ?? 50 * 2 ** 20);
    out.gemm = g.rows;
    out.autoChoices = g.auto;
    out.gemmChoices = gemmChoices();
  } catch (err) {
    console.log(`GEMM benchmarks FAILED: ${(err as Error).message}`);
    out.gemmError = (err as Error).message;
  }
  save();
  try {
    out.grouped = benchGrouped();
  } catch (err) {
    console.log(`grouped GEMM benchmarks FAILED: ${(err as Error).message}`);
    out.groupedError = (err as Error).message;
  }
  save();
  if (skipped.length) console.log(`\nleft out (time box): ${skipped.join("; ")}`);
  console.log(`\nbench done [${elapsed()}]`);
  return 0;
}

process.exitCode = main();
