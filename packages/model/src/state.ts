// Training state as named tensors (parameters, AdamW moments, router biases, scaler histories, RNG) plus a
// small JSON metadata record (step, data position, balancer steps, …), written as one safetensors file —
// the format @octet/checkpointer shards and @octet/ema-keeper holds, readable by Hugging Face tools.
// The bytes are @octet/numerics' safetensors codec's; this file only fixes the model's conventions: tensors in
// name order, the metadata as JSON under __metadata__.octet, and the four dtypes model state uses.

import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { type DType, type Tensor, type TypedTensor, bytesOf, deserialize, serialize, typedArrayOf } from "@octet/numerics";

/** The dtypes of model state: parameters and moments (F32, or BF16 bit patterns), counters and RNG words. */
export const MODEL_DTYPES = ["F32", "BF16", "U32", "I32"] as const satisfies readonly DType[];
export type TensorDtype = (typeof MODEL_DTYPES)[number];

/** A state tensor: the typed array of its dtype (Float32Array, Uint16Array for BF16, Uint32Array, Int32Array). */
export type NamedTensor = TypedTensor<TensorDtype>;

export interface TrainingState {
  tensors: Map<string, NamedTensor>;
  /** JSON-serializable metadata. */
  meta: Record<string, unknown>;
}

/** The __metadata__ key holding the JSON of TrainingState.meta. */
const META_KEY = "octet";

function isModelDtype(dtype: DType): dtype is TensorDtype {
  return (MODEL_DTYPES as readonly DType[]).includes(dtype);
}

/**
 * A state tensor from its dtype name and element bytes (checked: one of the model's dtypes). A view of `bytes`
 * where alignment allows, unless `copy`; else an aligned copy.
 */
export function stateTensor(name: string, dtype: string, shape: readonly number[], bytes: Uint8Array, opts: { copy?: boolean } = {}): NamedTensor {
  if (!isModelDtype(dtype as DType)) {
    throw new RangeError(`tensor ${JSON.stringify(name)}: dtype ${dtype} is not a model state dtype (${MODEL_DTYPES.join(", ")})`);
  }
  const d = dtype as TensorDtype;
  return { dtype: d, shape: [...shape], data: typedArrayOf(d, bytes, opts) };
}

/** Serialize to safetensors bytes (tensors in name order, metadata under __metadata__.octet). */
export function encodeSafetensors(state: TrainingState): Buffer {
  const names = [...state.tensors.keys()].sort();
  const tensors: Tensor[] = names.map((name) => {
    const t = state.tensors.get(name)!;
    return { name, dtype: t.dtype, shape: t.shape, data: bytesOf(t.data) };
  });
  return serialize(tensors, { [META_KEY]: JSON.stringify(state.meta) });
}

/** The state in safetensors bytes; each tensor gets its own aligned copy of its data (none is a view of `buf`). */
export function decodeSafetensors(buf: Uint8Array): TrainingState {
  const file = deserialize(buf);
  const tensors = new Map<string, NamedTensor>();
  for (const t of file.tensors) tensors.set(t.name, stateTensor(t.name, t.dtype, t.shape, t.data, { copy: true }));
  const meta = JSON.parse(file.metadata?.[META_KEY] ?? "{}") as Record<string, unknown>;
  return { tensors, meta };
}

/** Atomic write (temporary file, then rename). */
export function saveState(path: string, state: TrainingState): void {
  writeFileSync(`${path}.tmp`, encodeSafetensors(state));
  renameSync(`${path}.tmp`, path);
}

export function loadState(path: string): TrainingState {
  return decodeSafetensors(readFileSync(path));
}
