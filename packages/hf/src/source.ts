// An Octet checkpoint opened for reading tensor by tensor: a state file (state.safetensors of the model's CLI or
// an import's output), a directory holding one, or a checkpointer run (its latest valid step) or step directory
// (verified through @octet/checkpointer's store, which streams tensors without holding whole shards).

import { existsSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CheckpointStore, LocalStorage, MANIFEST_OBJECT } from "@octet/checkpointer";
import { type ModelConfig, modelSchema } from "@octet/model/config";
import { type DType, SafetensorsFileReader, typedArrayOf } from "@octet/numerics";

/** The __metadata__ key of a model state file (packages/model/src/state.ts). */
export const STATE_META_KEY = "octet";
/** The checkpoint metadata key of the model state (apps/trainer/src/state.ts). */
export const CHECKPOINT_META_KEY = "octet.model";
/** The kind of a weights-only state file written by import (the model's full states are "octet.model/v1"). */
export const WEIGHTS_KIND = "octet.weights/v1";

export interface OctetSource {
  /** What was opened, for messages. */
  readonly description: string;
  readonly model: ModelConfig;
  /** dtype and shape of a tensor, undefined when absent. */
  spec(name: string): { dtype: DType; shape: number[] } | undefined;
  /** An F32 tensor's values (a RangeError naming it when absent or not F32). */
  readF32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/** The model config of a state's metadata: a full state's config.model, or a weights file's model. */
export function modelOfMeta(meta: Record<string, unknown>, where: string): ModelConfig {
  const raw = meta.kind === WEIGHTS_KIND ? meta.model : (meta.config as { model?: unknown } | undefined)?.model;
  if (meta.kind !== WEIGHTS_KIND && meta.kind !== "octet.model/v1") throw new RangeError(`${where}: not an Octet model state (metadata kind ${JSON.stringify(meta.kind)})`);
  const parsed = modelSchema.safeParse(raw);
  if (!parsed.success) throw new RangeError(`${where}: its model config is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

function parseMeta(json: string | undefined, where: string): Record<string, unknown> {
  if (json === undefined) throw new RangeError(`${where}: no Octet metadata (not an Octet state or checkpoint)`);
  try {
    return JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new RangeError(`${where}: its Octet metadata is not JSON (${(e as Error).message})`);
  }
}

function f32Of(name: string, dtype: DType, bytes: Uint8Array, where: string): Float32Array {
  if (dtype !== "F32") throw new RangeError(`tensor ${JSON.stringify(name)} in ${where} is ${dtype}, not F32`);
  return typedArrayOf("F32", bytes, { copy: true });
}

async function openStateFile(path: string): Promise<OctetSource> {
  const r = await SafetensorsFileReader.open(path);
  try {
    const meta = parseMeta(r.header.metadata?.[STATE_META_KEY], path);
    const model = modelOfMeta(meta, path);
    return {
      description: path,
      model,
      spec: (name) => {
        const e = r.entry(name);
        return e && { dtype: e.dtype, shape: e.shape };
      },
      readF32: async (name) => {
        const t = await r.read(name);
        return f32Of(name, t.dtype, t.data, path);
      },
      close: () => r.close(),
    };
  } catch (e) {
    await r.close();
    throw e;
  }
}

/** LocalStorage that never cleans up: reading a checkpoint for export writes nothing under its root. */
class ReadOnlyLocalStorage extends LocalStorage {
  override async init(): Promise<{ removedStaging: string[] }> {
    return { removedStaging: [] };
  }
}

async function openCheckpoint(root: string, run: string, step: number | null): Promise<OctetSource> {
  const store = await CheckpointStore.open({ storage: new ReadOnlyLocalStorage(root), checkFreeSpace: false });
  const reader = step === null ? (await store.openLatestValid(run)).reader : await store.open(run, step);
  try {
    const where = `checkpoint ${run} step ${reader.info.step}`;
    const model = modelOfMeta(parseMeta(reader.manifest.metadata[CHECKPOINT_META_KEY], where), where);
    const byName = new Map(reader.tensors.map((t) => [t.name, t]));
    return {
      description: where,
      model,
      spec: (name) => {
        const t = byName.get(name);
        return t && { dtype: t.dtype, shape: t.shape };
      },
      readF32: async (name) => {
        const t = byName.get(name);
        if (!t) throw new RangeError(`tensor ${JSON.stringify(name)} is not in ${where}`);
        const out = new Uint8Array(t.bytes);
        let off = 0;
        for await (const chunk of reader.readTensor(t)) {
          out.set(chunk, off);
          off += chunk.length;
        }
        return f32Of(name, t.dtype, out, where);
      },
      close: async () => {
        await reader.close();
        await store.close();
      },
    };
  } catch (e) {
    await reader.close();
    await store.close();
    throw e;
  }
}

/**
 * Opens `from`: a state file; a directory with state.safetensors; a checkpointer step directory
 * (<root>/runs/<run>/step-<n>, with manifest.json) or run directory (<root>/runs/<run>: its latest valid step).
 */
export async function openOctetSource(from: string): Promise<OctetSource> {
  const path = resolve(from);
  if (!existsSync(path)) throw new RangeError(`--from ${from}: no such file or directory`);
  if (statSync(path).isFile()) return openStateFile(path);
  if (existsSync(join(path, "state.safetensors"))) return openStateFile(join(path, "state.safetensors"));
  const stepMatch = /^step-(\d{12,16})$/.exec(basename(path));
  if (stepMatch && existsSync(join(path, MANIFEST_OBJECT))) {
    const runDir = dirname(path);
    return openCheckpoint(dirname(dirname(runDir)), basename(runDir), Number(stepMatch[1]));
  }
  if (basename(dirname(path)) === "runs") return openCheckpoint(dirname(dirname(path)), basename(path), null);
  throw new RangeError(`--from ${from}: neither a state file, a directory with state.safetensors, nor a checkpointer run (<data-dir>/runs/<run>) or step directory (…/step-<n>)`);
}
