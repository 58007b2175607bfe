#!/usr/bin/env node
// npm run study:accumulation -w @octet/numerics [-- --size 32 --bits 14 --distribution uniform --json]
import { Command, InvalidArgumentError } from "commander";
import { type AccumulationStudyRow, runAccumulationStudy } from "./study.js";
import { numericsBackend } from "./backend.js";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

const program = new Command("octet-study-accumulation")
  .description("Error of limited (~14-bit) vs promoted (FP32 every 128) FP8 GEMM accumulation against float64")
  .option("--size <n>", "output rows = columns", positiveInt, 64)
  .option("--bits <n>", "significant bits of the limited accumulator", positiveInt, 14)
  .option("--promote-every <n>", "elements of K per promotion interval", positiveInt, 128)
  .option("--ks <list>", "comma-separated K values", "512,1024,2048,4096,8192,16384")
  .option("--distribution <d>", "uniform (all-positive, as the cuBLAS figures) or normal", "uniform")
  .option("--seed <n>", "random seed", positiveInt, 1)
  .option("--json", "JSON lines only", false)
  .parse();

const o = program.opts<{ size: number; bits: number; promoteEvery: number; ks: string; distribution: string; seed: number; json: boolean }>();
const Ks = o.ks.split(",").map((s) => Number(s.trim()));
if (Ks.some((k) => !Number.isInteger(k) || k <= 0)) program.error(`--ks must be positive integers, got "${o.ks}"`);
if (o.distribution !== "uniform" && o.distribution !== "normal") program.error(`--distribution must be uniform or normal, got "${o.distribution}"`);
if (o.bits > 24) program.error(`--bits must be at most 24, got ${o.bits}`);

const pct = (v: number) => `${(v * 100).toFixed(3)}%`.padStart(9);
const sci = (v: number) => v.toExponential(2).padStart(9);
const table = !o.json;
if (table) {
  console.log(`Accumulation study: ${o.size}x${o.size} outputs, ${o.distribution} inputs, E4M3 1x128 x 128x128, seed ${o.seed}, quantize path: ${numericsBackend().path}`);
  console.log(`limited = ${o.bits}-bit truncating accumulator over all K; promoted(${o.bits}b) = ${o.bits}-bit within ${o.promoteEvery}, FP32 across; promoted(fp32) = exact FP32 partials`);
  console.log("error vs float64 of the dequantized inputs (max relative | Frobenius relative)\n");
  console.log("     K |  limited max  frob     | promoted(14b) max frob  | promoted(fp32) max  frob");
}
runAccumulationStudy({
  Ks, size: o.size, accumulatorBits: o.bits, promoteEvery: o.promoteEvery, seed: o.seed,
  distribution: o.distribution as "uniform" | "normal",
  onRow: (r: AccumulationStudyRow) => {
    if (table) {
      console.log(`${String(r.K).padStart(6)} | ${pct(r.limitedMax)} ${pct(r.limitedFrobenius)} | ${pct(r.promotedLimitedMax)} ${pct(r.promotedLimitedFrobenius)} | ${sci(r.promotedMax)} ${sci(r.promotedFrobenius)}`);
    } else {
      console.log(JSON.stringify({ event: "row", ...r }));
    }
  },
});
if (table) {
  console.log("\nFor scale (H100, cuBLAS, 512x512, all-positive uniform): fast accumulation 0.70% at K=512, 1.6% at 1024, 7.1% at 4096, 25.7% at 16384; precise 0.06-0.09%.");
}
