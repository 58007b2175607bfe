// The CUDA backend against the CPU backend, on the GPU machine (bundled by bundle.mjs; run by run.sh):
//   ops    every backend op on random inputs at tiny's shapes: elementwise 1e-5 relative, GEMMs within the
//          numerics tolerances, quantization bit-exact;
//   train  tiny fp32, bf16, fp8 for N steps (OCTET_GPU_STEPS, default 20) on cuda and cpu: losses per step and
//          their relative differences (fp32 target 1e-4);
//   det    two cuda runs of one seed: bit-identical losses.
// One phase per invocation (argv[2]); each prints JSON lines {phase, …} that report.ts turns into the table.

import type { TensorHandle } from "@octet/numerics";
import { CpuBackend } from "../src/backend/cpu.js";
import { CudaBackend } from "../src/backend/cuda.js";
import type { Backend } from "../src/backend/backend.js";
import { presetConfig, trainingMemoryEstimate, type RecipeName } from "../src/config.js";
import { makePrecision } from "../src/precision.js";
import { decodeSafetensors, encodeSafetensors } from "../src/state.js";
import { readFileSync } from "node:fs";
import { Trainer } from "../src/trainer.js";

const phase = process.argv[2] ?? "ops";
const out = (o: unknown) => process.stdout.write(`${JSON.stringify({ phase, ...(o as object) })}\n`);

let seed = 12345;
function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * scale;
  }
  return a;
}
function ints(n: number, max: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = seed % max;
  }
  return a;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return a.length !== b.length ? Infinity : num / (den || 1);
}
function bitsEqual(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function ops(): void {
  const cpu = new CpuBackend();
  const gpu = new CudaBackend({ attention: "fp32" });
  const both = <T>(f: (be: Backend) => T): [T, T] => [f(cpu), f(gpu)];
  const host = (be: Backend, t: TensorHandle) => Array.from(be.toHost(t) as ArrayLike<number>);
  const check = (op: string, tol: number | "bits", f: (be: Backend) => TensorHandle | TensorHandle[]) => {
    try {
      const [c, g] = both(f);
      const cs = Array.isArray(c) ? c : [c];
      const gs = Array.isArray(g) ? g : [g];
      const cv = cs.flatMap((t) => host(cpu, t));
      const gv = gs.flatMap((t) => host(gpu, t));
      const err = tol === "bits" ? (bitsEqual(cv, gv) ? 0 : relErr(gv, cv) || 1e-30) : relErr(gv, cv);
      out({ op, err, tol, pass: tol === "bits" ? err === 0 : err <= tol });
    } catch (e) {
      out({ op, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  };
  const T = 1024, C = 128, V = 256, E = 8, K = 2;
  const x = rand(T * C), w = rand(96 * C, 0.1), y = rand(T * C), g = rand(C, 1);
  const up = (be: Backend, a: Float32Array, shape: number[]) => be.fromHost(a, shape);
  check("matmul fp32 [1024,128]x[96,128]", 1e-5, (be) => be.matmul(up(be, x, [T, C]), up(be, w, [96, C])));
  check("matmul fp32 K=96 (padded)", 1e-5, (be) => be.matmul(up(be, rand(T * 96), [T, 96]), up(be, rand(64 * 96), [64, 96])));
  check("matmulBf16", 1e-5, (be) => be.matmulBf16(be.toBf16(up(be, x, [T, C])), be.toBf16(up(be, w, [96, C]))));
  check("toBf16", "bits", (be) => be.toBf16(up(be, x, [T, C])));
  check("transpose f32", "bits", (be) => be.transpose(up(be, x, [T, C])));
  check("quantize 1x128", "bits", (be) => { const q = be.quantize(up(be, x, [T, C]), [1, 128], "e4m3", "fp32"); return [q.codes, q.scales]; });
  check("quantize 128x128", "bits", (be) => { const q = be.quantize(up(be, w, [96, C]), [128, 128], "e4m3", "fp32"); return [q.codes, q.scales]; });
  check("quantizeTiles", "bits", (be) => { const { q, qT } = be.quantizeTiles(up(be, x, [T, C]), "e4m3", "fp32"); return [q.codes, q.scales, qT.codes, qT.scales]; });
  check("transposeQuantized", "bits", (be) => { const q = be.transposeQuantized(be.quantize(up(be, w, [96, C]), [128, 128], "e4m3", "fp32")); return [q.codes, q.scales]; });
  check("scaledMatmul fp8 (native)", 1e-5, (be) => be.scaledMatmul(be.quantize(up(be, x, [T, C]), [1, 128], "e4m3", "fp32"), be.quantize(up(be, w, [96, C]), [128, 128], "e4m3", "fp32"), 128));
  check("scaledMatmul fp8 (Wgrad, dequantized)", 1e-5, (be) => { const a = be.quantizeTiles(up(be, rand(T * 64), [T, 64]), "e4m3", "fp32").qT; const b = be.quantizeTiles(up(be, x, [T, C]), "e4m3", "fp32").qT; return be.scaledMatmul(a, b, 128); });
  check("rmsnormForward", 1e-5, (be) => { const r = be.rmsnormForward(up(be, x, [T, C]), up(be, g, [C]), 1e-6); return [r.y, r.rstd]; });
  check("rmsnormBackward", 1e-5, (be) => { const xt = up(be, x, [T, C]); const r = be.rmsnormForward(xt, up(be, g, [C]), 1e-6); const dW = be.zeros([C]); return [be.rmsnormBackward(up(be, y, [T, C]), xt, up(be, g, [C]), r.rstd, dW), dW]; });
  check("rope", 1e-5, (be) => { const t = up(be, rand(T * 4 * 48), [T, 4 * 48]); be.rope(t, 64, 4, 48, 32, 16, 10000, false); return t; });
  check("swigluForward", 1e-5, (be) => be.swigluForward(up(be, x, [T, C]), up(be, y, [T, C])));
  check("swigluBackward", 1e-5, (be) => { const r = be.swigluBackward(up(be, g.length ? rand(T * C) : x, [T, C]), up(be, x, [T, C]), up(be, y, [T, C])); return [r.dGate, r.dUp]; });
  check("crossEntropy", 1e-5, (be) => { const r = be.crossEntropy(up(be, rand(T * V, 4), [T, V]), be.fromHost(ints(T, V), [T]), true); return [be.fromHost(Float32Array.of(be.read([r.loss])[0][0]), [1]), r.dLogits!]; });
  check("embeddingForward", "bits", (be) => be.embeddingForward(up(be, rand(V * C), [V, C]), be.fromHost(ints(T, V), [T])));
  check("embeddingBackward", "bits", (be) => { const d = be.zeros([V, C]); be.embeddingBackward(up(be, x, [T, C]), be.fromHost(ints(T, V), [T]), d); return d; });
  check("concat/splitColumns", "bits", (be) => { const [a, b] = be.splitColumns(up(be, x, [T, C]), 80); return [a, b, be.concatColumns(b, a)]; });
  check("mlaHeads", "bits", (be) => { const r = be.mlaHeads(up(be, rand(T * 256), [T, 256]), up(be, rand(T * 16), [T, 16]), 4, 32, 32); return [r.k, r.v]; });
  check("mlaHeadsBackward", "bits", (be) => { const r = be.mlaHeadsBackward(up(be, rand(T * 192), [T, 192]), up(be, rand(T * 128), [T, 128]), 4, 32, 16); return [r.dkv, r.dkr]; });
  check("route+permute+unpermute+rowDots", 1e-5, (be) => {
    const r = be.route(up(be, rand(T * E), [T, E]), up(be, rand(E, 0.01), [E]), { experts: E, topK: K, nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 1 });
    const xd = be.permuteRows(up(be, x, [T, C]), r.tokenOfRow);
    const o = be.zeros([T, C]);
    be.unpermuteAdd(xd, r.tokenOfRow, o, r.combineWeights);
    const gw = be.rowDots(xd, be.permuteRows(up(be, y, [T, C]), r.tokenOfRow), r.assignmentOfRow, T * K);
    return [r.expertCounts, r.expertOffsets, r.tokenOfRow, r.combineWeights, o, gw, be.routeBackward(r, gw)];
  });
  check("adamwUpdate bf16 moments", "bits", (be) => { const p = up(be, x, [T, C]); const m = be.zeros([T, C], "BF16"); const v = be.zeros([T, C], "BF16"); for (let s = 1; s <= 3; s++) be.adamwUpdate(p, up(be, y, [T, C]), m, v, { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: s }); return [p, m, v]; });
  check("gradNorm+clipByNorm", 1e-12, (be) => { const a = up(be, x, [T, C]); const b = up(be, w, [96, C]); const n = be.gradNorm([a, b]); be.clipByNorm([a, b], n, 1); return [be.fromHost(Float64Array.of(be.read([n])[0][0]), [1]), a, b]; });
  // The experts' grouped GEMMs per recipe (the CUDA side reads the expert offsets on the device; the CPU loops
  // over experts): y, dx and the gradients added into grad, within the accumulation model (1e-5 relative).
  for (const recipe of ["fp32", "bf16", "fp8"] as const) {
    const [hid, names] = [128, Array.from({ length: E }, (_, e) => `check.experts.${e}.w1`)];
    const [xr, wr, dyr, gr] = [rand(T * K * C), rand(E * hid * C, 0.1), rand(T * K * hid), rand(E * hid * C, 0.01)];
    const logits = rand(T * E);
    check(`groupedGemms ${recipe} (y, dx, grad)`, 1e-5, (be) => {
      const r = be.route(up(be, logits, [T, E]), be.zeros([E]), { experts: E, topK: K, nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 1 });
      const gg = makePrecision(recipe, be).forExperts(names);
      const wt = up(be, wr, [E * hid, C]);
      const yv = gg.fprop(up(be, xr, [T * K, C]), wt, r);
      const grad = up(be, gr, [E * hid, C]);
      const dx = gg.backward(up(be, dyr, [T * K, hid]), wt, grad);
      return [yv, dx, grad];
    });
  }
  for (const [name, precision] of [["fp32", "fp32"], ["bf16", "bf16"]] as const) {
    const g2 = new CudaBackend({ attention: precision });
    const s = { batch: 16, seqLen: 64, heads: 4, qkDim: 48, vDim: 32, scale: 1 / Math.sqrt(48) };
    const [q, k, v, dO] = [rand(T * 192), rand(T * 192), rand(T * 128), rand(T * 128)];
    try {
      const run = (be: Backend) => { const [qt, kt, vt] = [be.fromHost(q, [T, 192]), be.fromHost(k, [T, 192]), be.fromHost(v, [T, 128])]; const f = be.attentionForward(qt, kt, vt, s); const b = be.attentionBackward(be.fromHost(dO, [T, 128]), qt, kt, vt, f.saved, s); return [f.out, b.dq, b.dk, b.dv].map((t) => Array.from(be.toHost(t) as Float32Array)); };
      const c = run(cpu), gg = run(g2);
      const errs = c.map((a, i) => relErr(gg[i], a));
      const tol = precision === "fp32" ? 1e-4 : 2e-3;
      out({ op: `attention ${name} (out, dq, dk, dv)`, err: Math.max(...errs), errs, tol, pass: Math.max(...errs) <= tol });
    } catch (e) {
      out({ op: `attention ${name}`, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
  out({ op: "copies", copies: gpu.copies, hostSyncs: Object.fromEntries(gpu.hostSyncs) });
}

function losses(recipe: RecipeName, backend: Backend | undefined, steps: number): { losses: number[]; ms: number } {
  const t = new Trainer({ config: presetConfig("tiny"), recipe, seed: 1, backend });
  const t0 = performance.now();
  const l: number[] = [];
  for (let i = 0; i < steps; i++) l.push(t.trainStep().loss);
  return { losses: l, ms: performance.now() - t0 };
}

const steps = Number(process.env.OCTET_GPU_STEPS ?? 20);
const recipes = (process.env.OCTET_GPU_RECIPES ?? "fp32 bf16 fp8").split(/\s+/).filter(Boolean) as RecipeName[];
if (phase === "ops") {
  try {
    ops();
  } catch (e) {
    out({ op: "setup", error: String(e instanceof Error ? e.stack : e), pass: false });
  }
}
else if (phase === "train") {
  for (const recipe of recipes) {
    try {
      const be = new CudaBackend({ attention: recipe === "fp32" ? "fp32" : "bf16" });
      const g = losses(recipe, be, steps);
      const syncs = be.hostSyncCount / steps;
      out({ recipe, device: "cuda", losses: g.losses, ms: g.ms, hostSyncsPerStep: syncs, hostSyncs: Object.fromEntries(be.hostSyncs), peakMemoryBytes: be.memoryStats().peakBytes });
      const c = losses(recipe, undefined, steps);
      const rel = g.losses.map((l, i) => Math.abs(l - c.losses[i]) / Math.abs(c.losses[i]));
      out({ recipe, device: "cpu", losses: c.losses, ms: c.ms, rel, maxRel: Math.max(...rel), pass: recipe === "fp32" ? Math.max(...rel) <= 1e-4 : Math.max(...rel) <= 5e-3 });
    } catch (e) {
      out({ recipe, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
} else if (phase === "det") {
  for (const recipe of recipes) {
    try {
      const a = losses(recipe, new CudaBackend(), steps).losses;
      const b = losses(recipe, new CudaBackend(), steps).losses;
      out({ recipe, a, b, pass: bitsEqual(a, b) });
    } catch (e) {
      out({ recipe, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
} else if (phase === "resume") {
  // Half the steps, the state through safetensors bytes into a new trainer on a new backend, the other half:
  // the same losses, bit for bit, as one uninterrupted run.
  for (const recipe of recipes) {
    try {
      const whole = losses(recipe, new CudaBackend(), steps).losses;
      const first = new Trainer({ config: presetConfig("tiny"), recipe, seed: 1, backend: new CudaBackend() });
      const a: number[] = [];
      for (let i = 0; i < steps >> 1; i++) a.push(first.trainStep().loss);
      const second = new Trainer({ config: presetConfig("tiny"), recipe, seed: 1, backend: new CudaBackend() });
      second.importState(decodeSafetensors(encodeSafetensors(first.exportState())));
      while (a.length < steps) a.push(second.trainStep().loss);
      out({ recipe, a: whole, b: a, pass: bitsEqual(whole, a) });
    } catch (e) {
      out({ recipe, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
} else if (phase === "long") {
  // tiny for its full 300 steps on the GPU against the CPU reference computed elsewhere (gpu/cpu-reference.ts,
  // carried as .carry/gpu-model/cpu-reference.json): fp32 within 1e-4 relative at each of the first 20 steps;
  // final validation losses within 0.5% for every recipe.
  const ref = JSON.parse(readFileSync(new URL("./cpu-reference.json", import.meta.url), "utf8")) as Record<string, { losses: number[]; valLoss: number; seconds: number }>;
  for (const recipe of recipes) {
    try {
      const c = ref[recipe];
      const be = new CudaBackend({ attention: recipe === "fp32" ? "fp32" : "bf16" });
      const t = new Trainer({ config: presetConfig("tiny"), recipe, seed: 1, backend: be });
      const t0 = performance.now();
      const l: number[] = [];
      let skipped = 0;
      while (t.step < t.config.train.steps) {
        const r = t.trainStep();
        l.push(r.loss);
        skipped += r.skipped ? 1 : 0;
      }
      const ms = performance.now() - t0;
      const valLoss = t.evaluate();
      const first20 = l.slice(0, 20).map((x, i) => Math.abs(x - c.losses[i]) / Math.abs(c.losses[i]));
      const valRel = Math.abs(valLoss - c.valLoss) / c.valLoss;
      const pass = valRel <= 5e-3 && (recipe !== "fp32" || Math.max(...first20) <= 1e-4);
      out({ recipe, steps: l.length, ms, cpuSeconds: c.seconds, valLoss, cpuValLoss: c.valLoss, valRel, first20Max: Math.max(...first20), finalLoss: l.at(-1), cpuFinalLoss: c.losses.at(-1), skipped, hostSyncsPerStep: be.hostSyncCount / l.length, peakMemoryBytes: be.memoryStats().peakBytes, pass });
    } catch (e) {
      out({ recipe, error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
} else if (phase === "small") {
  // gpu-small (issue 14's preset) for a few steps per recipe: it runs, its step time, and the device-memory
  // estimate (size.ts) beside the pool's measured peak.
  const n = Number(process.env.OCTET_GPU_SMALL_STEPS ?? 3);
  for (const recipe of (process.env.OCTET_GPU_SMALL_RECIPES ?? "bf16 fp8").split(/\s+/).filter(Boolean) as RecipeName[]) {
    try {
      const be = new CudaBackend({ attention: recipe === "fp32" ? "fp32" : "bf16" });
      const config = presetConfig("gpu-small");
      const t = new Trainer({ config, recipe, seed: 1, backend: be });
      const ms: number[] = [];
      const l: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = t.trainStep();
        ms.push(r.ms);
        l.push(r.loss);
      }
      const estimate = trainingMemoryEstimate(config, recipe).bytes;
      out({ recipe, config: "gpu-small", steps: n, ms, losses: l, tokensPerSec: 16384 / (Math.min(...ms) / 1000), hostSyncsPerStep: be.hostSyncCount / n, peakMemoryBytes: be.memoryStats().peakBytes, estimateBytes: estimate, pass: l.every(Number.isFinite) });
    } catch (e) {
      out({ recipe, config: "gpu-small", error: String(e instanceof Error ? e.stack : e), pass: false });
    }
  }
} else throw new RangeError(`unknown phase ${phase}`);
