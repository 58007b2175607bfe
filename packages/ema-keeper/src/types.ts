import type { DecayPolicy } from "./decay.js";

/** Element type of pushed parameters. The EMA itself is always float32. */
export type ParamDType = "F32" | "BF16";

export function dtypeBytes(dtype: ParamDType): number {
  return dtype === "F32" ? 4 : 2;
}

export interface TensorSpec {
  name: string;
  /** Dimensions, row-major; [] is a scalar. */
  shape: number[];
  /** dtype of the pushed parameters (default F32). */
  dtype?: ParamDType;
}

export interface RunSpec {
  run: string;
  tensors: TensorSpec[];
  decay: DecayPolicy;
  /** Pushes are accepted at steps that are multiples of this (default 1). */
  updateInterval?: number;
  /** "reject" (default): a push containing NaN or ±Infinity is refused; "allow": applied as is. */
  nonFinite?: "reject" | "allow";
}

/** Parameters of one tensor in a push: Float32Array for F32 tensors, Uint16Array of bf16 bit patterns for BF16. */
export type ParamArray = Float32Array | Uint16Array;

export interface ExportedTensor {
  dtype: "F32";
  shape: number[];
  /** Little-endian float32, row-major; byteLength = 4 · numel(shape). */
  data: Uint8Array;
}

export interface EmaStateMetadata {
  format: "octet.ema.v1";
  run: string;
  /** The step of the last applied update (every tensor is at this step). */
  step: number;
  /** Number of updates applied since the EMA was initialized (coalesced pushes are not counted). */
  updates: number;
  decay: DecayPolicy;
  updateInterval: number;
  nonFinite: "reject" | "allow";
  /** The run's tensor list with the dtype its parameters are pushed in. */
  tensors: { name: string; shape: number[]; dtype: ParamDType }[];
}

/** What exportState() returns and importState() takes: named fp32 tensors plus metadata. */
export interface EmaState {
  metadata: EmaStateMetadata;
  tensors: Map<string, ExportedTensor>;
}

export interface RunStatus {
  run: string;
  /** Step of the last applied update, −1 before the first. */
  appliedStep: number;
  updatesApplied: number;
  /** Incomplete steps waiting for more tensors. */
  pendingSteps: number;
  /** Complete steps waiting for the applier. */
  queuedSteps: number;
  /** Incomplete steps discarded because a later step completed first. */
  supersededSteps: number;
  /** Pushes for a step already complete, accepted as no-ops. */
  duplicatePushes: number;
  /** Pushes refused as stale (older than a complete step). */
  stalePushes: number;
  /** Pushes refused for bad input. */
  rejectedPushes: number;
  emaBytes: number;
  tensors: number;
}
