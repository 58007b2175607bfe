// importFromHf: a Hugging Face DeepSeek-V3 directory (config.json + model.safetensors or shards with
// model.safetensors.index.json; BF16, F16, FP32 or block FP8; experts one tensor each or packed as transformers 5.x
// holds them) → an Octet weights file (F32 "param/…" and "router/<i>/bias" tensors, the model config in its
// metadata) that `train --init-from` starts from and the model's logits CLI reads.
//
// Everything is checked before the output is written: config.json (unknown or unrepresentable fields refused by
// name), every shard's header (offsets, sizes, truncation), every tensor's presence, dtype and shape against the
// config, and that no tensor is left over. The output is written tensor by tensor to a temporary file and renamed.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { type DType, type TensorSpec, SafetensorsFileReader, SafetensorsFileWriter, bytesOf, decodeBf16, decodeFp8, typedArrayOf } from "@octet/numerics";
import { atomicFile, checkOutput, checkPlainFileName } from "./fsutil.js";
import { type ParsedHfConfig, parseHfConfig } from "./hf-config.js";
import { type PlanEntry, permuteRows, tensorPlan } from "./names.js";
import { STATE_META_KEY, WEIGHTS_KIND } from "./source.js";
import { INDEX_FILE } from "./export.js";

export interface ImportOptions {
  /** The Hugging Face model directory. */
  from: string;
  /** The Octet weights file to write. */
  to: string;
  force?: boolean;
  /** The training window (model.seqLen); default max_position_embeddings. */
  seqLen?: number;
  /** Import only the first d MTP modules (e.g. 0 for a model saved without its MTP layers); default all. */
  mtpDepth?: number;
}

export interface ImportResult {
  to: string;
  config: ParsedHfConfig;
  tensors: number;
  /** How the routed experts were stored: one tensor per expert, or packed per layer. */
  experts: "per-expert" | "packed" | "none";
}

/** Where one HF tensor is. */
interface Located {
  file: string;
  reader: SafetensorsFileReader;
  dtype: DType;
  shape: number[];
}

/** How an Octet tensor is read: a whole HF tensor, or one expert's rows of a packed one. */
type Source =
  | { kind: "whole"; hf: string; entry: PlanEntry }
  | { kind: "packed"; hf: string; entry: PlanEntry; expert: number; rowBegin: number; rows: number };

const FLOAT_DTYPES: readonly DType[] = ["F32", "BF16", "F16"];

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    out[i] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return out;
}

/** The values of a float tensor as F32 (exact: BF16 and F16 widen without rounding). */
function toF32(name: string, dtype: DType, data: Uint8Array): Float32Array {
  if (dtype === "F32") return typedArrayOf("F32", data, { copy: true });
  if (dtype === "BF16") return decodeBf16(typedArrayOf("BF16", data));
  if (dtype === "F16") return f16ToF32(typedArrayOf("F16", data));
  throw new RangeError(`tensor ${JSON.stringify(name)}: dtype ${dtype} is not a float type`);
}

/** Block-FP8 codes times their block's scale_inv, in float32 (DeepSeek's weight_dequant). */
function dequantBlocks(codes: Uint8Array, scales: Float32Array, shape: number[], block: [number, number]): Float32Array {
  const [rows, cols] = shape;
  const gridCols = Math.ceil(cols / block[1]);
  const table = decodeFp8(Uint8Array.from({ length: 256 }, (_, i) => i), "e4m3");
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / block[0]) * gridCols;
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.fround(table[codes[r * cols + c]] * scales[srow + Math.floor(c / block[1])]);
  }
  return out;
}

async function openShards(dir: string): Promise<{ where: Map<string, Located>; readers: SafetensorsFileReader[] }> {
  const readers: SafetensorsFileReader[] = [];
  const where = new Map<string, Located>();
  try {
    let files: string[];
    let weightMap: Record<string, string> | null = null;
    if (existsSync(join(dir, INDEX_FILE))) {
      let idx: { weight_map?: unknown };
      try {
        idx = JSON.parse(readFileSync(join(dir, INDEX_FILE), "utf8"));
      } catch (e) {
        throw new RangeError(`${INDEX_FILE}: not JSON (${(e as Error).message})`);
      }
      const wm = idx.weight_map;
      if (wm === null || typeof wm !== "object" || Array.isArray(wm)) throw new RangeError(`${INDEX_FILE}: weight_map is not an object`);
      weightMap = wm as Record<string, string>;
      for (const [t, f] of Object.entries(weightMap)) checkPlainFileName(f, `${INDEX_FILE}: weight_map[${JSON.stringify(t)}]`);
      files = [...new Set(Object.values(weightMap))].sort();
    } else if (existsSync(join(dir, "model.safetensors"))) {
      files = ["model.safetensors"];
    } else {
      throw new RangeError(`--from ${dir}: neither ${INDEX_FILE} nor model.safetensors`);
    }
    for (const f of files) {
      const path = join(dir, f);
      if (!existsSync(path)) throw new RangeError(`${f}: listed in ${INDEX_FILE} but missing`);
      let r: SafetensorsFileReader;
      try {
        r = await SafetensorsFileReader.open(path);
      } catch (e) {
        throw new RangeError(`${f}: ${(e as Error).message}`);
      }
      readers.push(r);
      for (const t of r.tensors) {
        if (where.has(t.name)) throw new RangeError(`tensor ${JSON.stringify(t.name)} is in both ${where.get(t.name)!.file} and ${f}`);
        if (weightMap && weightMap[t.name] !== f) {
          throw new RangeError(`tensor ${JSON.stringify(t.name)} is in ${f} but ${INDEX_FILE} ${weightMap[t.name] ? `puts it in ${weightMap[t.name]}` : "does not list it"}`);
        }
        where.set(t.name, { file: f, reader: r, dtype: t.dtype, shape: t.shape });
      }
    }
    if (weightMap) {
      for (const t of Object.keys(weightMap)) if (!where.has(t)) throw new RangeError(`tensor ${JSON.stringify(t)}: ${INDEX_FILE} puts it in ${weightMap[t]}, which does not hold it`);
    }
    return { where, readers };
  } catch (e) {
    await Promise.allSettled(readers.map((r) => r.close()));
    throw e;
  }
}

export async function importFromHf(opts: ImportOptions): Promise<ImportResult> {
  const dir = resolve(opts.from);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RangeError(`--from ${opts.from}: not a directory`);
  const to = checkOutput(opts.to, { force: opts.force ?? false, kind: "file", source: dir, flag: "--to" });
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  } catch (e) {
    throw new RangeError(`config.json: ${(e as Error).message}`);
  }
  const config = parseHfConfig(rawConfig, { seqLen: opts.seqLen });
  if (opts.mtpDepth !== undefined) {
    if (!Number.isInteger(opts.mtpDepth) || opts.mtpDepth < 0 || opts.mtpDepth > config.model.mtp.depth) {
      throw new RangeError(`mtpDepth ${opts.mtpDepth}: the checkpoint has ${config.model.mtp.depth} MTP modules (num_nextn_predict_layers)`);
    }
    config.model.mtp.depth = opts.mtpDepth;
  }
  const model = config.model;
  const plan = tensorPlan(model, { ropeInterleave: config.ropeInterleave });
  const block = config.fp8 ? ((rawConfig as { quantization_config: { weight_block_size: [number, number] } }).quantization_config.weight_block_size) : null;
  const { where, readers } = await openShards(dir);
  try {
    const used = new Set<string>();
    const need = (name: string, dtypes: readonly DType[], shape: number[]): Located => {
      const t = where.get(name);
      if (!t) throw new RangeError(`tensor ${JSON.stringify(name)} is missing (config.json implies it)`);
      if (!dtypes.includes(t.dtype)) throw new RangeError(`tensor ${JSON.stringify(name)} is ${t.dtype}; expected ${dtypes.join(" or ")}`);
      if (!sameShape(t.shape, shape)) throw new RangeError(`tensor ${JSON.stringify(name)} is [${t.shape.join(", ")}]; config.json implies [${shape.join(", ")}]`);
      used.add(name);
      return t;
    };
    /** The HF tensor (and, for FP8, its scales) of a plan entry; checks dtype and shape. */
    const checkWeight = (hf: string, shape: number[]) => {
      const t = where.get(hf);
      if (t?.dtype === "F8_E4M3") {
        if (!block) throw new RangeError(`tensor ${JSON.stringify(hf)} is F8_E4M3 but config.json has no quantization_config`);
        need(hf, ["F8_E4M3"], shape);
        const grid = shape.length === 2 ? [Math.ceil(shape[0] / block[0]), Math.ceil(shape[1] / block[1])] : [];
        need(hf.replace(/\.weight$/, ".weight_scale_inv"), ["F32", "BF16"], grid);
      } else {
        need(hf, FLOAT_DTYPES, shape);
      }
    };
    // Which Octet tensor comes from where; experts per tensor or packed (per MoE layer).
    const sources = new Map<string, Source>();
    let experts: ImportResult["experts"] = "none";
    const E = model.moe.nRoutedExperts;
    const I = model.moe.expertHidden;
    const C = model.dModel;
    for (const e of plan) {
      const m = /^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$/.exec(e.hf);
      if (m && !where.has(e.hf) && (where.has(`${m[1]}.gate_up_proj`) || where.has(`${m[1]}.down_proj`))) {
        const x = Number(m[2]);
        if (m[3] === "down_proj") {
          if (x === 0) need(`${m[1]}.down_proj`, FLOAT_DTYPES, [E, C, I]);
          sources.set(e.octet, { kind: "packed", hf: `${m[1]}.down_proj`, entry: e, expert: x, rowBegin: 0, rows: C });
        } else {
          if (x === 0 && m[3] === "gate_proj") need(`${m[1]}.gate_up_proj`, FLOAT_DTYPES, [E, 2 * I, C]);
          sources.set(e.octet, { kind: "packed", hf: `${m[1]}.gate_up_proj`, entry: e, expert: x, rowBegin: m[3] === "gate_proj" ? 0 : I, rows: I });
        }
        if (experts === "per-expert") throw new RangeError(`tensor ${JSON.stringify(`${m[1]}.gate_up_proj`)}: packed experts in a checkpoint whose other layers store one tensor per expert`);
        experts = "packed";
        continue;
      }
      if (m) {
        if (experts === "packed") throw new RangeError(`tensor ${JSON.stringify(e.hf)}: one tensor per expert in a checkpoint whose other layers store them packed`);
        experts = "per-expert";
      }
      if (e.octet.startsWith("router/")) need(e.hf, ["F32", "BF16"], e.shape);
      else checkWeight(e.hf, e.shape);
      if (e.copyOf) continue; // checked equal to the main tensor below, while writing
      sources.set(e.octet, { kind: "whole", hf: e.hf, entry: e });
    }
    const left = [...where.keys()].filter((n) => !used.has(n)).sort();
    if (left.length) {
      const mtp = left.filter((n) => Number(/^model\.layers\.(\d+)\./.exec(n)?.[1] ?? -1) >= model.nLayers);
      const hint = mtp.length === left.length ? " (MTP layers beyond num_nextn_predict_layers, or beyond mtpDepth)" : "";
      throw new RangeError(`tensor ${JSON.stringify(left[0])}${left.length > 1 ? ` and ${left.length - 1} more` : ""}: not part of the model config.json describes${hint}`);
    }

    // Reading, with a small cache for packed experts (one packed tensor serves every expert of its layer).
    const cache = new Map<string, Float32Array>();
    const readHf = async (hf: string): Promise<Float32Array> => {
      const hit = cache.get(hf);
      if (hit) return hit;
      const loc = where.get(hf)!;
      const t = await loc.reader.read(hf);
      let x: Float32Array;
      if (t.dtype === "F8_E4M3") {
        const s = await loc.reader.read(hf.replace(/\.weight$/, ".weight_scale_inv"));
        x = dequantBlocks(t.data, toF32(s.name, s.dtype, s.data), t.shape, block!);
      } else {
        x = toF32(hf, t.dtype, t.data);
      }
      if (/\.(gate_up_proj|down_proj)$/.test(hf) && hf.includes(".experts.")) {
        if (cache.size >= 2) cache.delete(cache.keys().next().value!);
        cache.set(hf, x);
      }
      return x;
    };
    const valueOf = async (s: Source): Promise<Float32Array> => {
      const cols = s.entry.shape[1] ?? 1;
      if (s.kind === "whole") return permuteRows(await readHf(s.hf), cols, s.entry.rope, true);
      const packed = await readHf(s.hf);
      const perExpert = (s.hf.endsWith("gate_up_proj") ? 2 * I : C) * cols;
      const begin = s.expert * perExpert + s.rowBegin * cols;
      return packed.slice(begin, begin + s.rows * cols);
    };
    const names = [...sources.keys()].sort();
    const specs: TensorSpec[] = names.map((n) => ({ name: n, dtype: "F32", shape: sources.get(n)!.entry.shape }));
    const meta = { kind: WEIGHTS_KIND, model, source: { format: "huggingface/deepseek_v3", ropeInterleave: config.ropeInterleave, fp8: config.fp8, experts, ignoredFields: config.ignored } };
    await atomicFile(to, async (tmp) => {
      const w = await SafetensorsFileWriter.create(tmp, specs, { [STATE_META_KEY]: JSON.stringify(meta) });
      try {
        for (const n of names) await w.write(n, bytesOf(await valueOf(sources.get(n)!)));
        // Octet's MTP modules share the main embedding, final norm and head: their HF copies must equal them.
        for (const e of plan) {
          if (!e.copyOf) continue;
          const [a, b] = [await readHf(e.hf), await readHf(e.copyOf)];
          if (a.length !== b.length || a.some((v, i) => !Object.is(v, b[i]))) {
            throw new RangeError(`tensor ${JSON.stringify(e.hf)} differs from ${e.copyOf}; Octet's MTP module shares that tensor with the main model`);
          }
        }
        await w.close();
      } catch (e) {
        await w.abort();
        throw e;
      }
    });
    return { to, config, tensors: names.length, experts };
  } finally {
    await Promise.allSettled(readers.map((r) => r.close()));
  }
}
