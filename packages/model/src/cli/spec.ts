// npm run spec -w @octet/model -- --state <run dir | state.safetensors> [--tokens N]
// Speculative decoding with a trained state's MTP module 1: over held-out text (the validation split of
// the state's data), the main model's greedy next token, module 1's draft of the token after it, and the
// main model's verification; prints the acceptance rate of the drafted second token. Last line: one JSON
// object (acceptanceRate, drafted, accepted, …).

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { type Config, type RecipeName, RECIPE_NAMES, validateConfig } from "../config.js";
import { loadDataset } from "../data/index.js";
import { measureAcceptance } from "../speculative.js";
import { loadState } from "../state.js";
import { Trainer } from "../trainer.js";
import { fail, parseIntOption, printJson } from "./common.js";

const program = new Command()
  .name("octet-spec")
  .requiredOption("--state <path>", "a training run's directory (with state.safetensors) or the state file")
  .option("--tokens <n>", "drafts to measure (whole windows of seqLen − 1 prefixes)", parseIntOption("--tokens"), 2048)
  .parse();

const o = program.opts<{ state: string; tokens: number }>();
try {
  if (o.tokens < 1) throw new RangeError("--tokens must be at least 1");
  if (!existsSync(o.state)) throw new RangeError(`--state: ${o.state} does not exist`);
  const path = statSync(o.state).isDirectory() ? join(o.state, "state.safetensors") : o.state;
  if (!existsSync(path)) throw new RangeError(`--state: no state.safetensors in ${o.state}`);
  const state = loadState(path);
  const meta = state.meta as { kind?: string; config?: Config; recipe?: string; seed?: number; step?: number };
  if (meta.kind !== "octet.model/v1" || !meta.config || !meta.recipe) throw new RangeError(`--state: ${path} is not an octet.model/v1 training state`);
  if (!(RECIPE_NAMES as readonly string[]).includes(meta.recipe)) throw new RangeError(`--state: unknown recipe ${meta.recipe}`);
  const config = validateConfig(meta.config, meta.recipe as RecipeName);
  const data = await loadDataset(config.data, config.model.vocabSize);
  const trainer = new Trainer({ config, recipe: meta.recipe as RecipeName, seed: meta.seed ?? 1, data });
  if (!trainer.model.mtp) throw new RangeError(`--state: ${path} was trained without MTP (model.mtp.depth = 0); nothing drafts the token after next`);
  trainer.importState(state);
  const t0 = performance.now();
  const m = measureAcceptance(trainer.model, trainer.data.val, o.tokens);
  const seconds = (performance.now() - t0) / 1000;
  process.stderr.write(
    `${meta.config.name} (${meta.recipe}, step ${meta.step}): MTP-1 drafts of the second token accepted ${(m.acceptanceRate * 100).toFixed(1)}% ` +
      `(${m.accepted}/${m.drafted}; DeepSeek-V3 reports 85–90%) → ${m.tokensPerStep.toFixed(2)} tokens per verification pass; ` +
      `main next-token accuracy ${(m.mainAccuracy * 100).toFixed(1)}%, draft accuracy ${(m.draftAccuracy * 100).toFixed(1)}%\n`,
  );
  printJson({ ...m, state: path, config: meta.config.name, recipe: meta.recipe, step: meta.step, data: trainer.data.name, seconds: +seconds.toFixed(2) });
} catch (err) {
  fail(err);
}
