// train --init-from: a fresh run whose weights (parameters and router biases) come from a file. The model config is
// the file's; the run's train and data settings are the --config's. The weights go into a step-0 state under --out
// (fresh AdamW moments, data at its start), from which runTraining resumes exactly as from any state.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Config, type RecipeName, validateConfig } from "../config.js";
import { type Dataset, loadDataset } from "../data/index.js";
import { loadState, saveState } from "../state.js";
import { Trainer } from "../trainer.js";
import { loadWeights, modelConfigOfState } from "../weights.js";

export async function prepareInitFrom(o: { from: string; config: Config; recipe: RecipeName; seed: number; outDir: string }): Promise<{ config: Config; data: Dataset }> {
  const statePath = join(o.outDir, "state.safetensors");
  if (existsSync(statePath)) throw new RangeError(`--init-from starts a new run, but ${statePath} exists (continue it with --resume alone, or choose another --out)`);
  const weights = loadState(o.from);
  const config = validateConfig({ ...o.config, model: modelConfigOfState(weights, o.from) }, o.recipe);
  const data = await loadDataset(config.data, config.model.vocabSize);
  const trainer = new Trainer({ config, recipe: o.recipe, seed: o.seed, data });
  loadWeights(trainer.model, weights, o.from);
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(join(o.outDir, "metrics.jsonl"), "");
  saveState(statePath, trainer.exportState());
  return { config, data };
}
