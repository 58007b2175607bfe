// npm run bench -w @octet/model [-- --config tiny --steps 6 --warmup 2]
// Tokens/s of a training step (forward + backward + AdamW) per recipe, and where the step time goes:
// GEMMs (native FP32 / BF16 / FP8 scaled GEMMs, attention's included), FP8 quantization, the rest.
// PyTorch is not installable on this machine, so no PyTorch baseline is run here; the recipes are
// measured against each other in the same process.

import { Command } from "commander";
import { numericsBackend } from "@octet/numerics";
import { CpuBackend } from "../backend/cpu.js";
import { RECIPE_NAMES, type RecipeName } from "../config.js";
import { Trainer } from "../trainer.js";
import { checkedConfig, fail, parseIntOption, printJson, resolveConfig } from "./common.js";

const program = new Command()
  .name("octet-bench")
  .option("--config <name|file.json>", "preset name or JSON config file", "tiny")
  .option("--steps <n>", "timed steps per recipe", parseIntOption("--steps"), 6)
  .option("--warmup <n>", "untimed steps first", parseIntOption("--warmup"), 2)
  .option("--recipes <list>", "comma-separated recipes", RECIPE_NAMES.join(","))
  .parse();

const o = program.opts<{ config: string; steps: number; warmup: number; recipes: string }>();
try {
  const recipes = o.recipes.split(",") as RecipeName[];
  const base = resolveConfig(o.config);
  const rows = [];
  for (const recipe of recipes) {
    const config = checkedConfig(base, recipe);
    const be = new CpuBackend();
    const t = new Trainer({ config, recipe, seed: 1, backend: be });
    for (let i = 0; i < o.warmup; i++) t.trainStep();
    be.resetTimes();
    let ms = 0;
    let tokens = 0;
    for (let i = 0; i < o.steps; i++) {
      const r = t.trainStep();
      ms += r.ms;
      tokens += r.tokens;
    }
    const row = {
      recipe,
      tokensPerSec: Math.round((tokens / ms) * 1000),
      stepMs: +(ms / o.steps).toFixed(1),
      gemmFraction: +(be.times.gemmMs / ms).toFixed(3),
      quantizeFraction: +(be.times.quantizeMs / ms).toFixed(3),
      attentionFraction: +(be.times.attentionMs / ms).toFixed(3),
      gemmGflops: +(be.times.gemmFlops / (be.times.gemmMs * 1e6)).toFixed(1),
    };
    rows.push(row);
    process.stderr.write(`${recipe.padEnd(12)} ${String(row.tokensPerSec).padStart(6)} tok/s  step ${row.stepMs} ms  GEMM ${(row.gemmFraction * 100).toFixed(1)}%  quantize ${(row.quantizeFraction * 100).toFixed(1)}%  attention ${(row.attentionFraction * 100).toFixed(1)}% (its GEMMs counted in GEMM too)  GEMM ${row.gemmGflops} GFLOP/s\n`);
  }
  printJson({
    config: base,
    tokensPerStep: base.train.batchSize * base.model.seqLen,
    timedSteps: o.steps,
    warmupSteps: o.warmup,
    numerics: numericsBackend(),
    pytorch: "not run: PyTorch is not installable on this machine; recipes are compared with each other",
    results: rows,
  });
} catch (err) {
  fail(err);
}
