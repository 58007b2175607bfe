// manifest.json: what a checkpoint holds. It carries its own SHA-256 (over the compact JSON of every other
// field), so a flipped byte in the manifest is detected like one in a shard.

import { createHash } from "node:crypto";
import { z } from "zod";
import { DTYPES, type DType } from "@octet/numerics";

export const MANIFEST_FORMAT = "octet.checkpoint/v1";
export const MANIFEST_OBJECT = "manifest.json";

const nonNegInt = z.number().int().nonnegative().refine(Number.isSafeInteger, "not a safe integer");

export const ManifestTensorSchema = z
  .object({
    name: z.string().min(1),
    dtype: z.enum(DTYPES as [DType, ...DType[]]),
    shape: z.array(nonNegInt),
    /** Absolute byte offset of the tensor's data within the shard file. */
    offset: nonNegInt,
    bytes: nonNegInt,
  })
  .strict();

export const ManifestShardSchema = z
  .object({
    file: z.string().regex(/^shard-\d{5}-of-\d{5}\.safetensors$/),
    bytes: nonNegInt,
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    tensors: z.array(ManifestTensorSchema),
  })
  .strict();

export const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    run: z.string(),
    step: nonNegInt,
    createdAt: z.string(),
    /** User metadata: model config, data position, RNG state, ... (strings; JSON inside if structured). */
    metadata: z.record(z.string()),
    totalBytes: nonNegInt,
    shards: z.array(ManifestShardSchema),
    checksum: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestShard = z.infer<typeof ManifestShardSchema>;
export type ManifestTensor = z.infer<typeof ManifestTensorSchema>;

function digest(body: object): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}

export function encodeManifest(body: Omit<Manifest, "checksum">): Buffer {
  const m: Manifest = { ...body, checksum: digest(body) };
  return Buffer.from(JSON.stringify(m, null, 2) + "\n", "utf8");
}

/** Parses and verifies a manifest; throws an Error whose message says what is wrong. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new Error(`not valid JSON (${(e as Error).message})`);
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`schema: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  // Hash the fields as stored (key order included), not zod's reconstruction of them.
  const { checksum, ...body } = raw as Record<string, unknown>;
  if (digest(body) !== checksum) throw new Error("manifest checksum mismatch");
  return r.data;
}
