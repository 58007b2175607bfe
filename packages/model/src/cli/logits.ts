// npm run logits -w @octet/model -- --state <state.safetensors> --tokens <file.json | JSON> [--out <file.json>] [--recipe fp32]
// The main model's logits for token sequences, on the CPU backend: the weights of a training state or of an
// octet-import file, the model config from the file. Tokens: a JSON array of equally long arrays of token ids.
// Output: {"shape": [B, T, V], "logits": [...]} (row-major float32 values) to --out, else to stdout.
// The default recipe fp32 computes the function of the FP32 weights (what other tools load); a training recipe
// (bf16, fp8) runs its own GEMMs instead.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Command } from "commander";
import { CpuBackend } from "../backend/cpu.js";
import { Transformer } from "../model.js";
import { loadState } from "../state.js";
import { loadWeights, modelConfigOfState } from "../weights.js";
import { fail, parseRecipe } from "./common.js";

/** Token sequences from JSON: equally long, non-empty arrays of integers in [0, vocab). */
export function parseTokens(json: unknown, vocab: number): { tokens: Int32Array; batch: number; seqLen: number } {
  if (!Array.isArray(json) || json.length === 0 || !json.every((s) => Array.isArray(s))) throw new TypeError("--tokens: expected a JSON array of token arrays");
  const seqLen = (json[0] as unknown[]).length;
  if (seqLen === 0) throw new RangeError("--tokens: empty sequence");
  const tokens = new Int32Array(json.length * seqLen);
  json.forEach((s: unknown[], b) => {
    if (s.length !== seqLen) throw new RangeError(`--tokens: sequence ${b} has ${s.length} tokens, sequence 0 has ${seqLen}`);
    s.forEach((t, i) => {
      if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= vocab) throw new RangeError(`--tokens: sequence ${b}, position ${i}: ${JSON.stringify(t)} is not a token id in [0, ${vocab})`);
      tokens[b * seqLen + i] = t as number;
    });
  });
  return { tokens, batch: json.length, seqLen };
}

const program = new Command()
  .name("octet-logits")
  .requiredOption("--state <file>", "a training state or an octet-import weights file")
  .requiredOption("--tokens <file.json|json>", "token sequences: [[id, …], …], equally long")
  .option("--out <file.json>", "where {shape, logits} goes (default stdout)")
  .option("--recipe <recipe>", "fp32 | bf16 | fp8 | fp8-delayed", "fp32")
  .parse();

const o = program.opts<{ state: string; tokens: string; out?: string; recipe: string }>();
try {
  const recipe = parseRecipe(o.recipe);
  const state = loadState(o.state);
  const cfg = modelConfigOfState(state, o.state);
  const raw = o.tokens.trimStart().startsWith("[") ? o.tokens : readFileSync(o.tokens, "utf8");
  const { tokens, batch, seqLen } = parseTokens(JSON.parse(raw), cfg.vocabSize);
  const model = new Transformer(cfg, recipe, new CpuBackend(), 0);
  loadWeights(model, state, o.state);
  const logits = model.be.toHost(model.predict(tokens, seqLen).logits) as Float32Array;
  const text = `${JSON.stringify({ shape: [batch, seqLen, cfg.vocabSize], logits: Array.from(logits) })}\n`;
  if (o.out) {
    if (existsSync(o.out) && !o.out.endsWith(".json")) throw new RangeError(`--out ${o.out}: exists and is not a .json file`);
    writeFileSync(o.out, text);
  } else {
    process.stdout.write(text);
  }
} catch (err) {
  fail(err);
}
