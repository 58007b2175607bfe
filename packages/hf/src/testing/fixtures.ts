// Test fixtures: a small trained Octet state (micro preset: MLA, dense + MoE layers, MTP depth 1, router biases
// moved off zero) and helpers that read and rewrite Hugging Face directories.

import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Config, Trainer, type TrainingState, presetConfig, saveState } from "@octet/model";
import { type Tensor, deserialize, serialize } from "@octet/numerics";

export function microConfig(edit?: (c: Config) => void): Config {
  const c = presetConfig("micro");
  c.train.batchSize = 2;
  edit?.(c);
  return c;
}

/** A micro model after `steps` fp32 training steps (router biases nonzero once steps ≥ 1). */
export function trainedState(steps = 2, edit?: (c: Config) => void): TrainingState {
  const t = new Trainer({ config: microConfig(edit), recipe: "fp32", seed: 7 });
  for (let i = 0; i < steps; i++) t.trainStep();
  return t.exportState();
}

export function writeState(path: string, state: TrainingState): string {
  saveState(path, state);
  return path;
}

/** Every tensor of an HF directory by name (whole files read: tests only). */
export function readHfDir(dir: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".safetensors"))) {
    for (const t of deserialize(readFileSync(join(dir, f))).tensors) out.set(t.name, { ...t, data: Uint8Array.from(t.data) });
  }
  return out;
}

/** Rewrites the shard holding `name` (or every shard) through `edit`, keeping the index consistent. */
export function rewriteShards(dir: string, edit: (tensors: Tensor[], file: string) => Tensor[]): void {
  const indexPath = join(dir, "model.safetensors.index.json");
  const index = existsSync(indexPath) ? JSON.parse(readFileSync(indexPath, "utf8")) : null;
  const map: Record<string, string> = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort()) {
    const file = deserialize(readFileSync(join(dir, f)));
    const tensors = edit(file.tensors.map((t) => ({ ...t, data: Uint8Array.from(t.data) })), f);
    writeFileSync(join(dir, f), serialize(tensors, file.metadata));
    for (const t of tensors) map[t.name] = f;
  }
  if (index) writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: map }));
}

export function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const p = join(dir, "config.json");
  const c = JSON.parse(readFileSync(p, "utf8"));
  edit(c);
  writeFileSync(p, JSON.stringify(c));
}
