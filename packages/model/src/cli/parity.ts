// npm run parity -w @octet/model -- --config tiny [--seeds 1,2,3] [--steps N] [--out DIR] [--eval-batches N|all]
// DeepSeek-V3's claim at our scale: the same config trained with fp8 and with bf16 ends within 0.25%
// relative validation loss. Trains both for every seed, evaluates the final models on the whole validation
// split, writes the curves as an SVG and ends with one JSON line: fp8 and bf16 are the final validation
// losses averaged over the seeds, relDiff = |fp8 − bf16| / bf16 of those means.
//
// Why several seeds: two runs of the same seed in different precisions take different routing decisions
// within a few steps (top-K choices and the sign-based bias update amplify any rounding difference), so
// they end as two different runs of the same model, and their final losses differ by about ±0.2% in
// either direction (measured: bench/NOTES.md) — a run-to-run spread, not an FP8 effect, that one pair
// of runs cannot tell apart from one. The mean over seeds shrinks it; each seed's pair is reported too.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { lineChartSvg } from "@octet/plot";
import type { RecipeName } from "../config.js";
import { loadDataset } from "../data/index.js";
import { type RunSummary, runTraining } from "../run.js";
import { checkedConfig, fail, parseIntOption, printJson, resolveConfig } from "./common.js";

function parseSeeds(v: string): number[] {
  const seeds = v.split(",").map((s) => Number(s.trim()));
  if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new RangeError(`--seeds must be a comma-separated list of non-negative integers, got ${JSON.stringify(v)}`);
  if (new Set(seeds).size !== seeds.length) throw new RangeError(`--seeds has a repeated seed: ${v}`);
  return seeds;
}

function parseEvalBatches(v: string): number {
  if (v === "all") return Infinity;
  return parseIntOption("--eval-batches")(v);
}

const program = new Command()
  .name("octet-parity")
  .option("--config <name|file.json>", "preset name or JSON config file", "tiny")
  .option("--steps <n>", "training steps (overrides the config)", parseIntOption("--steps"))
  .option("--seeds <list>", "seeds; each trains both recipes (the same seed for both)", "1,2,3")
  .option("--seed <s>", "one seed (shorthand for --seeds S)")
  .option("--eval-batches <n|all>", "batches of the final evaluation (validation split)", "all")
  .option("--out <dir>", "where the runs, parity.svg and parity.json go", "runs/parity")
  .option("--threshold <x>", "relative difference to pass", "0.0025")
  .parse();

const o = program.opts<{ config: string; steps?: number; seeds: string; seed?: string; evalBatches: string; out: string; threshold: string }>();
try {
  const seeds = parseSeeds(o.seed ?? o.seeds);
  const finalEvalBatches = parseEvalBatches(o.evalBatches);
  if (finalEvalBatches === 0) throw new RangeError("--eval-batches must be at least 1");
  const recipes: RecipeName[] = ["bf16", "fp8"];
  const configs = recipes.map((r) => checkedConfig(resolveConfig(o.config), r, o.steps)); // both validated first
  // Both recipes train on the same tokens (the configs differ in nothing else).
  const data = await loadDataset(configs[0].data, configs[0].model.vocabSize);
  mkdirSync(o.out, { recursive: true });
  const train: Record<string, { x: number; y: number }[]> = {};
  const runs: Record<string, RunSummary>[] = [];
  for (const seed of seeds) {
    const bySeed: Record<string, RunSummary> = {};
    for (const [i, recipe] of recipes.entries()) {
      const pts: { x: number; y: number }[] = [];
      let ema = NaN;
      bySeed[recipe] = await runTraining({
        config: configs[i], recipe, seed, finalEvalBatches, data, outDir: join(o.out, seeds.length > 1 ? `seed${seed}` : "", recipe),
        onStep: (r) => {
          ema = Number.isNaN(ema) ? r.loss : 0.9 * ema + 0.1 * r.loss;
          pts.push({ x: r.step, y: ema });
          if (r.step % Math.max(1, Math.floor(configs[i].train.steps / 10)) === 0) {
            printJson({ type: "progress", seed, recipe, step: r.step, loss: r.loss, tokensPerSec: Math.round(r.tokensPerSec) });
          }
        },
      });
      if (seed === seeds[0]) train[recipe] = pts;
    }
    const rel = (bySeed.fp8.valLoss - bySeed.bf16.valLoss) / bySeed.bf16.valLoss;
    printJson({ type: "seed", seed, fp8: bySeed.fp8.valLoss, bf16: bySeed.bf16.valLoss, signedRelDiff: rel });
    runs.push(bySeed);
  }
  const mean = (r: RecipeName) => runs.reduce((s, x) => s + x[r].valLoss, 0) / runs.length;
  const fp8 = mean("fp8");
  const bf16 = mean("bf16");
  const relDiff = Math.abs(fp8 - bf16) / bf16;
  const first = runs[0];
  const svg = lineChartSvg({
    title: `${o.config}: fp8 vs bf16 (seeds ${seeds.join(",")}: mean final val ${fp8.toFixed(4)} vs ${bf16.toFixed(4)}, rel. diff ${(relDiff * 100).toFixed(3)}%)`,
    xLabel: "step",
    yLabel: "loss (nats/token)",
    series: [
      { name: `bf16 train (EMA, seed ${seeds[0]})`, color: "#1f77b4", points: train.bf16.slice(10) },
      { name: `fp8 train (EMA, seed ${seeds[0]})`, color: "#d62728", points: train.fp8.slice(10) },
      ...runs.flatMap((x, i) => [
        { name: `bf16 val (seed ${seeds[i]})`, color: "#1f77b4", dashed: true, points: x.bf16.curve.map((p) => ({ x: p.step, y: p.valLoss })) },
        { name: `fp8 val (seed ${seeds[i]})`, color: "#d62728", dashed: true, points: x.fp8.curve.map((p) => ({ x: p.step, y: p.valLoss })) },
      ]),
    ],
    width: 720,
    height: 420,
  });
  writeFileSync(join(o.out, "parity.svg"), svg);
  const result = {
    config: o.config, seeds, steps: configs[0].train.steps, finalEvalBatches: Number.isFinite(finalEvalBatches) ? finalEvalBatches : "all",
    fp8, bf16, relDiff, threshold: Number(o.threshold), pass: relDiff < Number(o.threshold),
    perSeed: runs.map((x, i) => ({ seed: seeds[i], fp8: x.fp8.valLoss, bf16: x.bf16.valLoss, signedRelDiff: (x.fp8.valLoss - x.bf16.valLoss) / x.bf16.valLoss })),
    fp8TrainLoss: first.fp8.loss, bf16TrainLoss: first.bf16.loss,
    entropyRate: first.fp8.entropyRate, unigramEntropy: first.fp8.unigramEntropy,
    curves: Object.fromEntries(runs.map((x, i) => [`seed${seeds[i]}`, { fp8: x.fp8.curve, bf16: x.bf16.curve }])),
    svg: join(o.out, "parity.svg"),
  };
  writeFileSync(join(o.out, "parity.json"), `${JSON.stringify(result, null, 2)}\n`);
  printJson(result);
} catch (err) {
  fail(err);
}
