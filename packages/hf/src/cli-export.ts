#!/usr/bin/env node
// octet-export --from <state.safetensors | dir | checkpointer run/step dir> --to <dir> [--dtype bf16|fp32|fp8]
//              [--rope-interleave true|false] [--force] [--max-shard-bytes N]
// Writes a directory DeepseekV3ForCausalLM.from_pretrained loads; prints one JSON summary line.

import { Command, InvalidArgumentError } from "commander";
import { exportToHf } from "./export.js";

function bool(v: string): boolean {
  if (v === "true") return true;
  if (v === "false") return false;
  throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(v)}`);
}

function posInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

const program = new Command()
  .name("octet-export")
  .description("an Octet checkpoint → a Hugging Face DeepSeek-V3 directory (config.json, safetensors shards, index)")
  .requiredOption("--from <path>", "state.safetensors, a directory holding one, or a checkpointer run (<data-dir>/runs/<run>) or step directory")
  .requiredOption("--to <dir>", "the output directory (built under a temporary name, renamed when complete)")
  .option("--dtype <dtype>", "bf16 | fp32 | fp8 (E4M3 weights, 128x128 block scales)", "bf16")
  .option("--rope-interleave <bool>", "rope rows of q_b_proj / kv_a_proj_with_mqa in DeepSeek's interleaved order", bool, true)
  .option("--force", "replace an existing output directory", false)
  .option("--max-shard-bytes <n>", "largest shard (whole tensors)", posInt)
  .parse();

const o = program.opts<{ from: string; to: string; dtype: string; ropeInterleave: boolean; force: boolean; maxShardBytes?: number }>();
try {
  if (!["bf16", "fp32", "fp8"].includes(o.dtype)) throw new RangeError(`--dtype ${JSON.stringify(o.dtype)}: expected bf16, fp32 or fp8`);
  const r = await exportToHf({ from: o.from, to: o.to, dtype: o.dtype as "bf16", ropeInterleave: o.ropeInterleave, force: o.force, maxShardBytes: o.maxShardBytes });
  process.stdout.write(`${JSON.stringify({ to: r.to, files: r.files.length, tensors: r.tensors, totalBytes: r.totalBytes, dtype: o.dtype, ropeInterleave: o.ropeInterleave })}\n`);
} catch (err) {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
