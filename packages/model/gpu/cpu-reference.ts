// The CPU side of the GPU machine's `long` phase (check.ts), computed here where the CPU backend has its native
// kernels: tiny trained its 300 steps per recipe, the loss of every step and the final validation loss, written
// to <repo>/.carry/gpu-model/cpu-reference.json (carried to the GPU machine beside check.mjs).
//   node --import tsx packages/model/gpu/cpu-reference.ts [fp32 bf16 fp8]
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig, type RecipeName } from "../src/config.js";
import { Trainer } from "../src/trainer.js";

const recipes = (process.argv.slice(2).length ? process.argv.slice(2) : ["fp32", "bf16", "fp8"]) as RecipeName[];
const out: Record<string, { losses: number[]; valLoss: number; seconds: number }> = {};
for (const recipe of recipes) {
  const t0 = performance.now();
  const t = new Trainer({ config: presetConfig("tiny"), recipe, seed: 1 });
  const losses: number[] = [];
  while (t.step < t.config.train.steps) losses.push(t.trainStep().loss);
  out[recipe] = { losses, valLoss: t.evaluate(), seconds: (performance.now() - t0) / 1000 };
  process.stderr.write(`${recipe}: ${losses.length} steps, final ${losses.at(-1)}, val ${out[recipe].valLoss}, ${out[recipe].seconds.toFixed(0)} s\n`);
}
const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", ".carry", "gpu-model");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "cpu-reference.json"), JSON.stringify(out));
