// Training state as named tensors (parameters, AdamW moments, router biases, scaler histories, RNG) plus a
// small JSON metadata record (step, data position, balancer steps, …), written as one safetensors file —
// the format @octet/checkpointer shards and @octet/ema-keeper holds, readable by Hugging Face tools.

import { readFileSync, writeFileSync, renameSync } from "node:fs";

export type TensorDtype = "F32" | "BF16" | "U32" | "I32";

export interface NamedTensor {
  dtype: TensorDtype;
  shape: number[];
  data: Float32Array | Uint16Array | Uint32Array | Int32Array;
}

export interface TrainingState {
  tensors: Map<string, NamedTensor>;
  /** JSON-serializable metadata. */
  meta: Record<string, unknown>;
}

const BYTES: Record<TensorDtype, number> = { F32: 4, BF16: 2, U32: 4, I32: 4 };

/** Serialize to safetensors bytes (tensors in name order, metadata under __metadata__.octet). */
export function encodeSafetensors(state: TrainingState): Buffer {
  const names = [...state.tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { octet: JSON.stringify(state.meta) } };
  let offset = 0;
  for (const name of names) {
    const t = state.tensors.get(name)!;
    const bytes = t.data.length * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " "; // align the data to 8 bytes
  const headerBytes = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const t = state.tensors.get(name)!;
    const src = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    src.copy(out, pos);
    pos += src.length;
  }
  return out;
}

export function decodeSafetensors(buf: Buffer): TrainingState {
  const n = Number(buf.readBigUInt64LE(0));
  type Entry = { dtype: TensorDtype; shape: number[]; data_offsets: [number, number] };
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  const base = 8 + n;
  const tensors = new Map<string, NamedTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const h = entry as Entry;
    const bytes = buf.subarray(base + h.data_offsets[0], base + h.data_offsets[1]);
    const copy = new Uint8Array(bytes).buffer; // aligned copy
    const data = h.dtype === "F32" ? new Float32Array(copy) : h.dtype === "BF16" ? new Uint16Array(copy) : h.dtype === "U32" ? new Uint32Array(copy) : new Int32Array(copy);
    tensors.set(name, { dtype: h.dtype, shape: h.shape, data });
  }
  const meta = JSON.parse((header.__metadata__ as { octet?: string } | undefined)?.octet ?? "{}") as Record<string, unknown>;
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
