// Conversions between the library's types and octet.ema.v1 messages.
import { octet } from "@octet/proto";
import type { DecayPolicy } from "./decay.js";
import type { NormalizedRunSpec } from "./keeper.js";
import type { ParamDType, RunSpec, RunStatus } from "./types.js";

const DType = octet.common.v1.DType;
const NonFinite = octet.ema.v1.NonFinitePolicy;

export function dtypeFromProto(d: number | null | undefined, what: string): ParamDType | undefined {
  if (d === undefined || d === null || d === DType.DTYPE_UNSPECIFIED) return undefined;
  if (d === DType.DTYPE_F32) return "F32";
  if (d === DType.DTYPE_BF16) return "BF16";
  throw new RangeError(`${what}: dtype ${DType[d] ?? d} is not supported (DTYPE_F32 or DTYPE_BF16)`);
}

export function dtypeToProto(d: ParamDType): number {
  return d === "F32" ? DType.DTYPE_F32 : DType.DTYPE_BF16;
}

interface ProtoDecay {
  fixed?: { decay?: number | null } | null;
  warmup?: { decay?: number | null; a?: number | null; b?: number | null } | null;
  power?: { decay?: number | null; gamma?: number | null; power?: number | null; minDecay?: number | null } | null;
}

const opt = (x: number | null | undefined) => (x === null ? undefined : x);

export function decayFromProto(p: ProtoDecay | null | undefined): DecayPolicy {
  if (!p) throw new RangeError("spec.decay is required (fixed, warmup or power)");
  if (p.fixed) return { kind: "fixed", decay: p.fixed.decay ?? 0 };
  if (p.warmup) return { kind: "warmup", decay: p.warmup.decay ?? 0, a: opt(p.warmup.a), b: opt(p.warmup.b) };
  if (p.power) {
    return { kind: "power", decay: p.power.decay ?? 0, gamma: opt(p.power.gamma), power: opt(p.power.power), minDecay: opt(p.power.minDecay) };
  }
  throw new RangeError("spec.decay must set one of fixed, warmup, power");
}

export function decayToProto(d: DecayPolicy): ProtoDecay {
  switch (d.kind) {
    case "fixed":
      return { fixed: { decay: d.decay } };
    case "warmup":
      return { warmup: { decay: d.decay, a: d.a, b: d.b } };
    case "power":
      return { power: { decay: d.decay, gamma: d.gamma, power: d.power, minDecay: d.minDecay } };
  }
}

export interface ProtoRunSpec {
  run?: string | null;
  tensors?: { name?: string | null; shape?: number[] | null; dtype?: number | null }[] | null;
  decay?: ProtoDecay | null;
  updateInterval?: number | null;
  nonFinite?: number | null;
}

export function runSpecFromProto(p: ProtoRunSpec | null | undefined): RunSpec {
  if (!p) throw new RangeError("spec is required");
  const nf = p.nonFinite ?? 0;
  if (nf !== NonFinite.NON_FINITE_POLICY_UNSPECIFIED && nf !== NonFinite.NON_FINITE_POLICY_REJECT && nf !== NonFinite.NON_FINITE_POLICY_ALLOW) {
    throw new RangeError(`spec.non_finite ${nf} is not a NonFinitePolicy`);
  }
  return {
    run: p.run ?? "",
    tensors: (p.tensors ?? []).map((t, i) => ({
      name: t.name ?? "",
      shape: (t.shape ?? []).map(Number),
      dtype: dtypeFromProto(t.dtype, `tensors[${i}]`) ?? "F32",
    })),
    decay: decayFromProto(p.decay),
    updateInterval: p.updateInterval ? p.updateInterval : 1,
    nonFinite: nf === NonFinite.NON_FINITE_POLICY_ALLOW ? "allow" : "reject",
  };
}

export function runSpecToProto(s: NormalizedRunSpec | RunSpec): ProtoRunSpec {
  return {
    run: s.run,
    tensors: s.tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: dtypeToProto(t.dtype ?? "F32") })),
    decay: decayToProto(s.decay),
    updateInterval: s.updateInterval ?? 1,
    nonFinite: (s.nonFinite ?? "reject") === "allow" ? NonFinite.NON_FINITE_POLICY_ALLOW : NonFinite.NON_FINITE_POLICY_REJECT,
  };
}

export function statusToProto(s: RunStatus) {
  return { ...s };
}

export function statusFromProto(p: Record<string, unknown>): RunStatus {
  const n = (k: string) => Number(p[k] ?? 0);
  return {
    run: String(p.run ?? ""),
    appliedStep: n("appliedStep"),
    updatesApplied: n("updatesApplied"),
    pendingSteps: n("pendingSteps"),
    queuedSteps: n("queuedSteps"),
    supersededSteps: n("supersededSteps"),
    duplicatePushes: n("duplicatePushes"),
    stalePushes: n("stalePushes"),
    rejectedPushes: n("rejectedPushes"),
    emaBytes: n("emaBytes"),
    tensors: n("tensors"),
  };
}
