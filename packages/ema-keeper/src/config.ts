// Keeper limits from OCTET_EMA_* environment variables and CLI flags (flags win).
import { z } from "zod";
import type { EmaKeeperOptions } from "./keeper.js";

export interface KeeperConfig {
  keeper: EmaKeeperOptions;
  chunkBytes?: number;
}

const intString = (min: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a non-negative integer")
    .transform(Number)
    .refine((n) => Number.isSafeInteger(n) && n >= min, `must be an integer >= ${min}`);

const FIELDS = {
  maxEmaBytes: { env: "MAX_EMA_BYTES", flag: "--max-ema-bytes", schema: intString(1) },
  maxQueuedSteps: { env: "MAX_QUEUED_STEPS", flag: "--max-queued-steps", schema: intString(1) },
  maxPendingSteps: { env: "MAX_PENDING_STEPS", flag: "--max-pending-steps", schema: intString(1) },
  maxTensorsPerRun: { env: "MAX_TENSORS_PER_RUN", flag: "--max-tensors-per-run", schema: intString(1) },
  maxTensorElements: { env: "MAX_TENSOR_ELEMENTS", flag: "--max-tensor-elements", schema: intString(1) },
  sliceElements: { env: "SLICE_ELEMENTS", flag: "--slice-elements", schema: intString(1024) },
  chunkBytes: { env: "CHUNK_BYTES", flag: "--chunk-bytes", schema: intString(4) },
} as const;

/**
 * Reads OCTET_EMA_MAX_EMA_BYTES, _MAX_QUEUED_STEPS, _MAX_PENDING_STEPS, _MAX_TENSORS_PER_RUN,
 * _MAX_TENSOR_ELEMENTS, _SLICE_ELEMENTS, _CHUNK_BYTES; `flags` (parsed values keyed by field name) override.
 * Throws RangeError naming the variable or flag for a bad value.
 */
export function keeperOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, flags: Partial<Record<keyof typeof FIELDS, string>> = {}): KeeperConfig {
  const keeper: EmaKeeperOptions = {};
  let chunkBytes: number | undefined;
  for (const [key, f] of Object.entries(FIELDS) as [keyof typeof FIELDS, (typeof FIELDS)[keyof typeof FIELDS]][]) {
    const fromFlag = flags[key];
    const raw = fromFlag ?? env[`OCTET_EMA_${f.env}`];
    if (raw === undefined || raw === "") continue;
    const parsed = f.schema.safeParse(raw);
    if (!parsed.success) throw new RangeError(`${fromFlag !== undefined ? f.flag : `OCTET_EMA_${f.env}`} ${parsed.error.issues[0].message}, got "${raw}"`);
    if (key === "chunkBytes") chunkBytes = parsed.data;
    else keeper[key] = parsed.data;
  }
  return { keeper, chunkBytes };
}
