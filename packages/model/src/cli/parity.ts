// npm run parity -w @octet/model -- --config tiny [--steps N] [--seed S] [--out DIR]
// DeepSeek-V3's claim at our scale: the same config trained with fp8 and with bf16 ends within 0.25%
// relative validation loss. Trains both, writes both curves as an SVG, ends with one JSON line.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import type { RecipeName } from "../config.js";
import { lineChartSvg } from "../plot.js";
import { type RunSummary, runTraining } from "../run.js";
import { checkedConfig, fail, parseIntOption, printJson, resolveConfig } from "./common.js";

const program = new Command()
  .name("octet-parity")
  .option("--config <name|file.json>", "preset name or JSON config file", "tiny")
  .option("--steps <n>", "training steps (overrides the config)", parseIntOption("--steps"))
  .option("--seed <s>", "seed (the same for both runs)", parseIntOption("--seed"), 1)
  .option("--out <dir>", "where the runs, parity.svg and parity.json go", "runs/parity")
  .option("--threshold <x>", "relative difference to pass", "0.0025")
  .parse();

const o = program.opts<{ config: string; steps?: number; seed: number; out: string; threshold: string }>();
try {
  const recipes: RecipeName[] = ["bf16", "fp8"];
  const configs = recipes.map((r) => checkedConfig(resolveConfig(o.config), r, o.steps)); // both validated first
  mkdirSync(o.out, { recursive: true });
  const train: Record<string, { x: number; y: number }[]> = {};
  const runs: Record<string, RunSummary> = {};
  recipes.forEach((recipe, i) => {
    const pts: { x: number; y: number }[] = [];
    let ema = NaN;
    runs[recipe] = runTraining({
      config: configs[i], recipe, seed: o.seed, outDir: join(o.out, recipe),
      onStep: (r) => {
        ema = Number.isNaN(ema) ? r.loss : 0.9 * ema + 0.1 * r.loss;
        pts.push({ x: r.step, y: ema });
        if (r.step % Math.max(1, Math.floor(configs[i].train.steps / 10)) === 0) {
          printJson({ type: "progress", recipe, step: r.step, loss: r.loss, tokensPerSec: Math.round(r.tokensPerSec) });
        }
      },
    });
    train[recipe] = pts;
  });
  const fp8 = runs.fp8.valLoss;
  const bf16 = runs.bf16.valLoss;
  const relDiff = Math.abs(fp8 - bf16) / bf16;
  const svg = lineChartSvg(
    `${o.config}: fp8 vs bf16 (final val ${fp8.toFixed(4)} vs ${bf16.toFixed(4)}, rel. diff ${(relDiff * 100).toFixed(3)}%)`,
    "step",
    "loss (nats/token)",
    [
      { name: "bf16 train (EMA)", color: "#1f77b4", points: train.bf16.slice(10) },
      { name: "fp8 train (EMA)", color: "#d62728", points: train.fp8.slice(10) },
      { name: "bf16 val", color: "#1f77b4", dashed: true, points: runs.bf16.curve.map((p) => ({ x: p.step, y: p.valLoss })) },
      { name: "fp8 val", color: "#d62728", dashed: true, points: runs.fp8.curve.map((p) => ({ x: p.step, y: p.valLoss })) },
    ],
  );
  writeFileSync(join(o.out, "parity.svg"), svg);
  const result = {
    config: o.config, seed: o.seed, steps: configs[0].train.steps,
    fp8, bf16, relDiff, threshold: Number(o.threshold), pass: relDiff < Number(o.threshold),
    fp8TrainLoss: runs.fp8.loss, bf16TrainLoss: runs.bf16.loss,
    entropyRate: runs.fp8.entropyRate, unigramEntropy: runs.fp8.unigramEntropy,
    curves: { fp8: runs.fp8.curve, bf16: runs.bf16.curve },
    svg: join(o.out, "parity.svg"),
  };
  writeFileSync(join(o.out, "parity.json"), `${JSON.stringify(result, null, 2)}\n`);
  printJson(result);
} catch (err) {
  fail(err);
}
