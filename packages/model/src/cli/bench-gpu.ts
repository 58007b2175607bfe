// npm run bench:gpu -w @octet/model -- [--config gpu-small] [--recipes bf16,fp8] [--warmup 2] [--steps 5]
// One GPU's training step per recipe on the CUDA backend (issue 14's table): step ms (median after warm-up),
// tokens/s, model TFLOP/s (size.ts's modelFlopsPerStep: 6 · active parameters · tokens + causal attention, the
// definition behind the PyTorch figures of the GPU machine's README), peak device memory against the estimate,
// host synchronizations per step, and each recipe's speed against bf16 measured in the same run. A JSON line per
// recipe, then the table. Without a usable GPU it exits non-zero, naming why.

import { Command } from "commander";
import { CudaBackend, cudaBackendUnavailable } from "../backend/cuda.js";
import type { RecipeName } from "../config.js";
import { modelFlopsPerStep, trainingMemoryEstimate } from "../size.js";
import { Trainer } from "../trainer.js";
import { checkedConfig, fail, parseIntOption, parseRecipe, printJson, resolveConfig } from "./common.js";

const program = new Command()
  .name("octet-bench-gpu")
  .option("--config <name|file.json>", "preset name or JSON config file", "gpu-small")
  .option("--recipes <list>", "comma-separated recipes; bf16 first is the baseline of the ratios", "bf16,fp8")
  .option("--warmup <n>", "steps not timed", parseIntOption("--warmup"), 2)
  .option("--steps <n>", "timed steps per recipe (the median counts)", parseIntOption("--steps"), 5)
  .option("--seed <s>", "seed", parseIntOption("--seed"), 1)
  .parse();

const o = program.opts<{ config: string; recipes: string; warmup: number; steps: number; seed: number }>();
try {
  const recipes = o.recipes.split(",").map((r) => parseRecipe(r.trim()));
  if (o.steps < 1) throw new RangeError("--steps must be at least 1");
  const why = cudaBackendUnavailable();
  if (why) throw new Error(`bench:gpu needs a GPU: ${why}`);
  const rows: { recipe: RecipeName; ms: number; tokensPerSec: number; tflops: number; peakGiB: number; estimateGiB: number; syncs: number }[] = [];
  for (const recipe of recipes) {
    const config = checkedConfig(resolveConfig(o.config), recipe);
    const be = new CudaBackend({ attention: recipe === "fp32" ? "fp32" : "bf16" });
    const t = new Trainer({ config, recipe, seed: o.seed, backend: be });
    for (let i = 0; i < o.warmup; i++) t.trainStep();
    const syncs0 = be.hostSyncCount;
    const ms: number[] = [];
    for (let i = 0; i < o.steps; i++) ms.push(t.trainStep().ms);
    const median = [...ms].sort((a, b) => a - b)[ms.length >> 1];
    const tokens = config.train.batchSize * config.model.seqLen;
    const row = {
      recipe, ms: median, tokensPerSec: tokens / (median / 1000), tflops: modelFlopsPerStep(config) / (median / 1000) / 1e12,
      peakGiB: be.memoryStats().peakBytes / 2 ** 30, estimateGiB: trainingMemoryEstimate(config, recipe).bytes / 2 ** 30,
      syncs: (be.hostSyncCount - syncs0) / o.steps,
    };
    rows.push(row);
    printJson({ type: "bench-gpu", config: config.name, codePath: "CudaBackend", ...row, stepsMs: ms });
  }
  const base = rows.find((r) => r.recipe === "bf16") ?? rows[0];
  console.log(`\n${o.config} on ${rows.length ? "CUDA (CudaBackend)" : "-"}, ${o.steps} timed steps after ${o.warmup}`);
  console.log("recipe       step ms   tokens/s  model TFLOP/s  peak GiB  estimate GiB  syncs/step  speed vs " + base.recipe);
  for (const r of rows) {
    console.log(`${r.recipe.padEnd(11)} ${r.ms.toFixed(1).padStart(8)} ${r.tokensPerSec.toFixed(0).padStart(10)} ${r.tflops.toFixed(1).padStart(14)} ${r.peakGiB.toFixed(2).padStart(9)} ${r.estimateGiB.toFixed(2).padStart(13)} ${r.syncs.toFixed(2).padStart(11)} ${(base.ms / r.ms).toFixed(3).padStart(10)}×`);
  }
} catch (err) {
  fail(err);
}
