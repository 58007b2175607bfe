#!/usr/bin/env node
// octet-import --from <hf dir> --to <state.safetensors> [--force] [--seq-len N] [--mtp-depth D]
// Writes the Octet weights file `npm run train -w @octet/model -- --init-from <file>` starts from.

import { Command, InvalidArgumentError } from "commander";
import { importFromHf } from "./import.js";

function nonNegInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

const program = new Command()
  .name("octet-import")
  .description("a Hugging Face DeepSeek-V3 directory (BF16, FP32 or block FP8; experts per tensor or packed) → an Octet weights file")
  .requiredOption("--from <dir>", "the Hugging Face model directory (config.json, model.safetensors or shards + index)")
  .requiredOption("--to <file>", "the Octet weights file to write (.safetensors)")
  .option("--force", "replace an existing output file", false)
  .option("--seq-len <n>", "the training window (model.seqLen); default max_position_embeddings", nonNegInt)
  .option("--mtp-depth <d>", "import only the first d MTP modules (0 for a checkpoint saved without them)", nonNegInt)
  .parse();

const o = program.opts<{ from: string; to: string; force: boolean; seqLen?: number; mtpDepth?: number }>();
try {
  const r = await importFromHf({ from: o.from, to: o.to, force: o.force, seqLen: o.seqLen, mtpDepth: o.mtpDepth });
  process.stdout.write(`${JSON.stringify({ to: r.to, tensors: r.tensors, experts: r.experts, ropeInterleave: r.config.ropeInterleave, fp8: r.config.fp8, mtpDepth: r.config.model.mtp.depth, ignoredFields: r.config.ignored })}\n`);
} catch (err) {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
