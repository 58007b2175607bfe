// exportToHf: an Octet checkpoint → a directory DeepseekV3ForCausalLM.from_pretrained loads (config.json,
// model-XXXXX-of-YYYYY.safetensors shards, model.safetensors.index.json), streamed one tensor at a time.
//
// Every source tensor is checked (present, F32, the shape the config implies) before anything is written; the
// directory is built under a temporary name and renamed into place when complete.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TensorSpec, SafetensorsFileWriter, bytesOf, encodeBf16, quantize, tensorByteLength } from "@octet/numerics";
import { atomicDirectory, checkOutput } from "./fsutil.js";
import { type HfDtype, hfConfig } from "./hf-config.js";
import { type PlanEntry, permuteRows, tensorPlan } from "./names.js";
import { openOctetSource } from "./source.js";

/** DeepSeek-V3's FP8 weight blocks. */
export const FP8_BLOCK: [number, number] = [128, 128];
export const INDEX_FILE = "model.safetensors.index.json";

export interface ExportOptions {
  /** A state file, a directory with state.safetensors, or a checkpointer run or step directory. */
  from: string;
  /** The output directory (must not exist unless `force`). */
  to: string;
  /** bf16 (default), fp32, or fp8 (E4M3 weights with 128×128 block scales). */
  dtype?: HfDtype;
  /** Write the rope rows of q_b_proj and kv_a_proj_with_mqa interleaved (default true, DeepSeek's layout). */
  ropeInterleave?: boolean;
  force?: boolean;
  /** Shards are filled with whole tensors up to this many bytes (default 4 GiB). */
  maxShardBytes?: number;
}

export interface ExportResult {
  to: string;
  files: string[];
  tensors: number;
  totalBytes: number;
}

interface OutTensor extends TensorSpec {
  entry: PlanEntry;
  /** The weight's codes (F8_E4M3), its block scales, or the whole tensor. */
  part: "codes" | "scales" | "whole";
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** What the export writes for one plan entry (two tensors for an FP8 weight). */
function outputsOf(entry: PlanEntry, dtype: HfDtype): OutTensor[] {
  if (dtype === "fp8" && entry.fp8) {
    const [r, c] = entry.shape;
    return [
      { name: entry.hf, dtype: "F8_E4M3", shape: entry.shape, entry, part: "codes" },
      { name: entry.hf.replace(/\.weight$/, ".weight_scale_inv"), dtype: "F32", shape: [Math.ceil(r / FP8_BLOCK[0]), Math.ceil(c / FP8_BLOCK[1])], entry, part: "scales" },
    ];
  }
  // The gate's correction bias stays F32 (transformers keeps it in float32; it decides the routing).
  const keep32 = dtype === "fp32" || entry.octet.startsWith("router/");
  return [{ name: entry.hf, dtype: keep32 ? "F32" : "BF16", shape: entry.shape, entry, part: "whole" }];
}

export async function exportToHf(opts: ExportOptions): Promise<ExportResult> {
  const dtype = opts.dtype ?? "bf16";
  if (dtype !== "bf16" && dtype !== "fp32" && dtype !== "fp8") throw new RangeError(`dtype ${JSON.stringify(dtype)}: expected bf16, fp32 or fp8`);
  const ropeInterleave = opts.ropeInterleave ?? true;
  const maxShardBytes = opts.maxShardBytes ?? 4 * 1024 ** 3;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) throw new RangeError(`maxShardBytes ${maxShardBytes} is not a positive integer`);
  const src = await openOctetSource(opts.from);
  try {
    const to = checkOutput(opts.to, { force: opts.force ?? false, kind: "dir", source: opts.from, flag: "--to" });
    const plan = tensorPlan(src.model, { ropeInterleave });
    for (const e of plan) {
      const s = src.spec(e.octet);
      if (!s) throw new RangeError(`tensor ${JSON.stringify(e.octet)} (for ${e.hf}) is missing from ${src.description}`);
      if (s.dtype !== "F32") throw new RangeError(`tensor ${JSON.stringify(e.octet)} in ${src.description} is ${s.dtype}, not F32`);
      if (!sameShape(s.shape, e.shape)) {
        throw new RangeError(`tensor ${JSON.stringify(e.octet)} in ${src.description} is [${s.shape.join(", ")}], the config implies [${e.shape.join(", ")}]`);
      }
    }
    // Shards: whole plan entries (an FP8 weight with its scales) in plan order, up to maxShardBytes each.
    const shards: OutTensor[][] = [];
    let bytes = 0;
    for (const e of plan) {
      const outs = outputsOf(e, dtype);
      const size = outs.reduce((n, t) => n + tensorByteLength(t.dtype, t.shape), 0);
      if (shards.length === 0 || (bytes + size > maxShardBytes && bytes > 0)) {
        shards.push([]);
        bytes = 0;
      }
      shards[shards.length - 1].push(...outs);
      bytes += size;
    }
    const width = 5;
    const fileName = (i: number) => `model-${String(i + 1).padStart(width, "0")}-of-${String(shards.length).padStart(width, "0")}.safetensors`;
    const weightMap: Record<string, string> = {};
    let totalBytes = 0;
    let tensors = 0;
    await atomicDirectory(to, async (tmp) => {
      for (let i = 0; i < shards.length; i++) {
        const file = fileName(i);
        const w = await SafetensorsFileWriter.create(join(tmp, file), shards[i], { format: "pt" });
        try {
          let pending: { entry: PlanEntry; scales: Float32Array } | null = null;
          for (const t of shards[i]) {
            let data: Uint8Array;
            if (t.part === "scales") {
              if (!pending || pending.entry !== t.entry) throw new Error(`internal: scales of ${t.entry.hf} before its codes`);
              data = bytesOf(pending.scales);
              pending = null;
            } else {
              const x = permuteRows(await src.readF32(t.entry.octet), t.entry.shape[1] ?? 1, t.entry.rope);
              if (t.part === "codes") {
                const q = quantize(x, [t.entry.shape[0], t.entry.shape[1]], { block: FP8_BLOCK, format: "e4m3" });
                pending = { entry: t.entry, scales: q.scales };
                data = q.data;
              } else {
                data = t.dtype === "F32" ? bytesOf(x) : bytesOf(encodeBf16(x));
              }
            }
            await w.write(t.name, data);
            weightMap[t.name] = file;
            totalBytes += data.byteLength;
            tensors++;
          }
          await w.close();
        } catch (e) {
          await w.abort();
          throw e;
        }
      }
      const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
      await writeFile(join(tmp, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: sortedMap }, null, 2)}\n`);
      await writeFile(join(tmp, "config.json"), `${JSON.stringify(hfConfig(src.model, { dtype, ropeInterleave }), null, 2)}\n`);
    });
    return { to, files: [...shards.keys()].map(fileName), tensors, totalBytes };
  } finally {
    await src.close();
  }
}
