// npm run bench -w @octet/router
// 1. Routing throughput (tokens/s) at DeepSeek-V3's gate shape: 256 experts, topK 8, 8 groups,
//    topkGroup 4, on 65536 tokens — routeTokens on the native kernel (native/route.cc, when built) and
//    on its TypeScript path (the specification), against the naive baseline (the literal HF
//    transcription: same sigmoid, mask-fill, then a full sort per token), all in the same run, medians
//    of BENCH_REPEATS repetitions. The baseline runs on a slice of the tokens (it is slow); all are
//    reported per token.
// 2. Time to plan a placement for 256 experts on 8 nodes × 8 GPUs (64 redundant slots).
// Writes bench/results.json and bench/results.md.
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { routeTokens, type RouteOptions, type RouteResult } from "../src/route.js";
import { routeTokensReference } from "../src/route-reference.js";
import { planPlacement } from "../src/placement.js";
import { randomLogits, seededRandom } from "../src/testing/random.js";
import { nativeRouteKernel, nativeUnavailableReason, setRouterBackend } from "../src/native.js";

const tokens = 65536;
const experts = 256;
const topK = 8;
const baselineTokens = 4096;
const repeats = Number(process.env.BENCH_REPEATS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function time(fn: () => void, runs: number): number[] {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    ms.push(performance.now() - start);
  }
  return ms;
}

const logits = randomLogits(tokens, experts, 1);
const random = seededRandom(2);
const bias = Float32Array.from({ length: experts }, () => (random() - 0.5) * 0.2);
const options = (t: number): RouteOptions => ({ tokens: t, experts, topK, nGroup: 8, topkGroup: 4, bias, normTopkProb: true, routedScalingFactor: 2.5 });
const out: RouteResult = { indices: new Int32Array(tokens * topK), weights: new Float32Array(tokens * topK), scores: new Float32Array(tokens * experts) };

const kernel = nativeRouteKernel();
const info = kernel?.info();
const cpu = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`;
const path = info ? `native (${info.isa}; ${info.flags}; ${info.threads} threads; ${info.compiler})` : `TypeScript (native kernel unavailable: ${nativeUnavailableReason()})`;
console.log(`path: ${path}; node ${process.version}; ${cpu}`);

const same = (a: Float32Array | Int32Array, b: Float32Array | Int32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
let nativeMs: number | null = null;
let nativeNoScoresMs: number | null = null;
if (kernel) {
  time(() => routeTokens(logits, options(tokens), out), 3); // warm-up (pool threads, pages of out)
  nativeMs = median(time(() => routeTokens(logits, options(tokens), out), repeats * 2));
  // The kernel alone without the 64 MB scores store (routeTokens always returns scores).
  nativeNoScoresMs = median(time(() => kernel.routeSigmoid(logits, tokens, experts, topK, 8, 4, bias, true, 2.5, out.indices, out.weights, null), repeats * 2));
}
setRouterBackend("typescript");
time(() => routeTokens(logits, options(tokens), out), 1); // warm-up
const tsMs = median(time(() => routeTokens(logits, options(tokens), out), repeats));
const tsOut = routeTokens(logits, options(tokens));
setRouterBackend("native");
const nativeOut = kernel ? routeTokens(logits, options(tokens)) : null;
const nativeIdentical = nativeOut ? same(nativeOut.indices, tsOut.indices) && same(nativeOut.weights, tsOut.weights) && same(nativeOut.scores, tsOut.scores) : null;
const fastMs = nativeMs ?? tsMs;
const baselineLogits = logits.subarray(0, baselineTokens * experts);
time(() => routeTokensReference(baselineLogits, options(baselineTokens)), 1);
const baselineMs = median(time(() => routeTokensReference(baselineLogits, options(baselineTokens)), Math.max(3, Math.floor(repeats / 2))));
const perSecond = (ms: number, t = tokens) => t / (ms / 1000);
const fastTokensPerSecond = perSecond(fastMs);
const tsTokensPerSecond = perSecond(tsMs);
const nativeTokensPerSecond = nativeMs === null ? null : perSecond(nativeMs);
const nativeNoScoresTokensPerSecond = nativeNoScoresMs === null ? null : perSecond(nativeNoScoresMs);
const baselineTokensPerSecond = perSecond(baselineMs, baselineTokens);
// routeTokens (whichever path) and the baseline produce the same routing (checked here too, on the baseline's slice).
const check = routeTokens(baselineLogits, options(baselineTokens));
const reference = routeTokensReference(baselineLogits, options(baselineTokens));
const identical = same(check.indices, reference.indices) && same(check.weights, reference.weights);
const mtok = (v: number) => `${(v / 1e6).toFixed(3)} M tokens/s`;
if (nativeMs !== null && nativeTokensPerSecond !== null && nativeNoScoresMs !== null && nativeNoScoresTokensPerSecond !== null) {
  console.log(`native routing ${tokens} tokens: ${nativeMs.toFixed(1)} ms → ${mtok(nativeTokensPerSecond)} (${((nativeMs * 1e6) / (tokens * experts)).toFixed(2)} ns per token-expert pair; ${info!.threads} threads)`);
  console.log(`native kernel without the scores output: ${nativeNoScoresMs.toFixed(1)} ms → ${mtok(nativeNoScoresTokensPerSecond)}`);
}
console.log(`TypeScript routing ${tokens} tokens: ${tsMs.toFixed(1)} ms → ${mtok(tsTokensPerSecond)} (${((tsMs * 1e6) / (tokens * experts)).toFixed(1)} ns per token-expert pair)`);
if (nativeTokensPerSecond !== null) console.log(`ratio native / TypeScript: ${(nativeTokensPerSecond / tsTokensPerSecond).toFixed(1)}×; bit-identical (indices, weights, scores): ${nativeIdentical}`);
console.log(`baseline (full sort per token) on ${baselineTokens} tokens: ${mtok(baselineTokensPerSecond)}`);
console.log(`ratio routeTokens / baseline: ${(fastTokensPerSecond / baselineTokensPerSecond).toFixed(1)}× (TypeScript path: ${(tsTokensPerSecond / baselineTokensPerSecond).toFixed(1)}×); identical output: ${identical}`);

const loads = Array.from({ length: experts }, (_, i) => Math.round(100000 / Math.pow(((i * 37) % experts) + 1, 1.1)));
const placementOptions = { loads, numGroups: 8, numNodes: 8, gpusPerNode: 8, redundantExperts: 64 };
time(() => planPlacement(placementOptions), 3);
const placementMs = median(time(() => planPlacement(placementOptions), 21));
const placement = planPlacement(placementOptions);
console.log(`placement 256 experts (+64 replicas) on 8 nodes × 8 GPUs: ${placementMs.toFixed(3)} ms; balance ${placement.balanceBefore.toFixed(3)} → ${placement.balanceAfter.toFixed(3)} (${placement.mode})`);

const results = {
  date: new Date().toISOString(),
  node: process.version,
  cpu,
  path,
  native: info ?? null,
  repeats,
  routing: {
    shape: { tokens, experts, topK, nGroup: 8, topkGroup: 4 },
    nativeMs,
    nativeTokensPerSecond,
    nativeNoScoresMs,
    nativeNoScoresTokensPerSecond,
    typescriptMs: tsMs,
    typescriptTokensPerSecond: tsTokensPerSecond,
    ratioNativeToTypescript: nativeTokensPerSecond === null ? null : nativeTokensPerSecond / tsTokensPerSecond,
    nativeBitIdenticalToTypescript: nativeIdentical,
    fastMs,
    fastTokensPerSecond,
    baseline: "routeTokensReference (literal HF transcription, full sort per token)",
    baselineTokens,
    baselineTokensPerSecond,
    ratio: fastTokensPerSecond / baselineTokensPerSecond,
    identicalOutput: identical,
  },
  placement: { ...placementOptions, loads: "zipf-like, exponent 1.1", ms: placementMs, balanceBefore: placement.balanceBefore, balanceAfter: placement.balanceAfter, mode: placement.mode },
};
const dir = fileURLToPath(new URL(".", import.meta.url));
writeFileSync(`${dir}results.json`, JSON.stringify(results, null, 2) + "\n");
const row = (label: string, v: number | null, ms: number | null) => (v === null || ms === null ? "" : `| ${label} | ${mtok(v)} (${ms.toFixed(1)} ms) |\n`);
writeFileSync(
  `${dir}results.md`,
  `# @octet/router benchmark (latest run)\n\n` +
    `${results.date}, node ${results.node}, ${results.cpu}; path: ${results.path}. Medians of ${repeats}+ repetitions.\n\n` +
    `Routing: 65536 tokens × 256 experts, topK 8, 8 groups, topkGroup 4.\n\n` +
    `| measurement | value |\n|---|---|\n` +
    row("routeTokens, native kernel (scores included)", nativeTokensPerSecond, nativeMs) +
    row("native kernel without the scores output", nativeNoScoresTokensPerSecond, nativeNoScoresMs) +
    row("routeTokens, TypeScript path", tsTokensPerSecond, tsMs) +
    (nativeTokensPerSecond === null ? "" : `| ratio native / TypeScript | ${(nativeTokensPerSecond / tsTokensPerSecond).toFixed(1)}× (bit-identical: ${nativeIdentical}) |\n`) +
    `| baseline (full sort per token), same run | ${mtok(baselineTokensPerSecond)} |\n` +
    `| ratio routeTokens / baseline | ${(fastTokensPerSecond / baselineTokensPerSecond).toFixed(1)}× (identical output: ${identical}) |\n` +
    `| placement, 256 experts + 64 replicas on 8 × 8 GPUs | ${placementMs.toFixed(3)} ms (balance ${placement.balanceBefore.toFixed(3)} → ${placement.balanceAfter.toFixed(3)}) |\n`,
);
