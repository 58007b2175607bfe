// A checkpoint of a job: the model's whole exportState() (parameters, AdamW moments, router biases, scaler
// histories, the data RNG as tensors; step, data position, balancer steps … in the metadata), the EMA when
// available, and the trainer's own record — converted to and from @octet/checkpointer tensors.

import type { Tensor } from "@octet/checkpointer";
import type { EmaState, EmaStateMetadata } from "@octet/ema-keeper";
import { type NamedTensor, type TrainingState, stateTensor } from "@octet/model";
import { bytesOf, typedArrayOf } from "@octet/numerics";

/** Metadata keys of a trainer checkpoint (values are JSON strings). */
export const META_MODEL = "octet.model";
export const META_TRAINER = "octet.trainer";
export const META_EMA = "octet.ema";
/** Prefix of the EMA tensors ("ema/<parameter name>", float32). */
export const EMA_PREFIX = "ema/";
/** Prefix of the curve tensors (curve/step U32, curve/loss F64, curve/val_loss F64 with NaN for none, curve/tokens_per_sec F32). */
export const CURVE_PREFIX = "curve/";

/** What the trainer records beside the model state. */
export interface TrainerRecord {
  jobId: string;
  attempt: number;
  workerId: string;
  /** Training loss of the checkpoint's last step (null before any step). */
  loss: number | null;
  /** The latest validation loss at or before the step. */
  valLoss: number | null;
  /** Step of the EMA stored with this checkpoint (null: none). */
  emaStep: number | null;
}

/** A copy in its own ArrayBuffer (Buffer#slice would return a view, possibly of Node's shared pool). */
function copyBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

/**
 * The model state as checkpoint tensors. With `copy` (default) the bytes are copied, so training may go on
 * while the checkpoint streams out (exportState's tensors are views of the live parameters).
 */
export function stateToTensors(state: TrainingState, copy = true): Tensor[] {
  const out: Tensor[] = [];
  for (const [name, t] of state.tensors) {
    const b = bytesOf(t.data);
    out.push({ name, dtype: t.dtype, shape: [...t.shape], data: copy ? copyBytes(b) : b });
  }
  return out;
}

/** The model state back from checkpoint tensors (EMA tensors excluded) and its metadata. */
export function tensorsToState(tensors: readonly Tensor[], metadata: Record<string, string>): TrainingState {
  const raw = metadata[META_MODEL];
  if (raw === undefined) throw new RangeError(`checkpoint has no ${META_MODEL} metadata: not written by an Octet trainer`);
  const meta = JSON.parse(raw) as Record<string, unknown>;
  const map = new Map<string, NamedTensor>();
  for (const t of tensors) {
    if (t.name.startsWith(EMA_PREFIX) || t.name.startsWith(CURVE_PREFIX)) continue;
    map.set(t.name, stateTensor(t.name, t.dtype, t.shape, t.data, { copy: true }));
  }
  return { tensors: map, meta };
}

/** The EMA (every tensor at one step) as checkpoint tensors plus its metadata value. */
export function emaToTensors(ema: { metadata: EmaStateMetadata; tensors: Map<string, Float32Array> }): { tensors: Tensor[]; meta: string } {
  const tensors: Tensor[] = [];
  for (const spec of ema.metadata.tensors) {
    const data = ema.tensors.get(spec.name);
    if (!data) throw new RangeError(`EMA snapshot lacks tensor ${spec.name}`);
    tensors.push({ name: `${EMA_PREFIX}${spec.name}`, dtype: "F32", shape: [...spec.shape], data: copyBytes(bytesOf(data)) });
  }
  return { tensors, meta: JSON.stringify(ema.metadata) };
}

/** The EMA stored in a checkpoint, as the keeper's importState takes it; null when the checkpoint has none. */
export function emaFromTensors(tensors: readonly Tensor[], metadata: Record<string, string>): EmaState | null {
  const raw = metadata[META_EMA];
  if (raw === undefined) return null;
  const meta = JSON.parse(raw) as EmaStateMetadata;
  const byName = new Map(tensors.filter((t) => t.name.startsWith(EMA_PREFIX)).map((t) => [t.name.slice(EMA_PREFIX.length), t]));
  const out = new Map<string, { dtype: "F32"; shape: number[]; data: Uint8Array }>();
  for (const spec of meta.tensors) {
    const t = byName.get(spec.name);
    if (!t) throw new RangeError(`checkpoint's EMA lacks tensor ${spec.name}`);
    out.set(spec.name, { dtype: "F32", shape: [...t.shape], data: copyBytes(t.data) });
  }
  return { metadata: meta, tensors: out };
}

export function parseTrainerRecord(metadata: Record<string, string>): TrainerRecord | null {
  const raw = metadata[META_TRAINER];
  return raw === undefined ? null : (JSON.parse(raw) as TrainerRecord);
}

/** A run's curve up to a step: every training step's loss, the validation loss where evaluated. */
export interface CurveArrays {
  step: Uint32Array;
  loss: Float64Array;
  /** NaN where the step had no evaluation. */
  valLoss: Float64Array;
  tokensPerSec: Float32Array;
}

/** The curve as checkpoint tensors, so a resumed attempt rebuilds it exactly (whatever reached Redis or not). */
export function curveToTensors(c: CurveArrays): Tensor[] {
  const n = c.step.length;
  const t = (name: string, dtype: Tensor["dtype"], a: Uint32Array | Float64Array | Float32Array): Tensor => ({ name: `${CURVE_PREFIX}${name}`, dtype, shape: [n], data: copyBytes(bytesOf(a)) });
  return [t("step", "U32", c.step), t("loss", "F64", c.loss), t("val_loss", "F64", c.valLoss), t("tokens_per_sec", "F32", c.tokensPerSec)];
}

/** The curve stored in a checkpoint, or null when it has none. */
export function curveFromTensors(tensors: readonly Tensor[]): CurveArrays | null {
  const get = (name: string) => tensors.find((t) => t.name === `${CURVE_PREFIX}${name}`);
  const s = get("step");
  const l = get("loss");
  const v = get("val_loss");
  const p = get("tokens_per_sec");
  if (!s || !l || !v || !p) return null;
  const step = typedArrayOf("U32", s.data, { copy: true });
  const loss = typedArrayOf("F64", l.data, { copy: true });
  const valLoss = typedArrayOf("F64", v.data, { copy: true });
  const tokensPerSec = typedArrayOf("F32", p.data, { copy: true });
  if (loss.length !== step.length || valLoss.length !== step.length || tokensPerSec.length !== step.length) throw new RangeError("checkpoint curve tensors differ in length");
  return { step, loss, valLoss, tokensPerSec };
}
