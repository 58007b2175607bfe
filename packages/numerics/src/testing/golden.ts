// Reader for the golden vectors in packages/numerics/golden (written by golden/generate.py with PyTorch).
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

export interface GoldenArray { name: string; dtype: string; shape: number[]; offset: number; bytes: number }

export function readGolden(file: "casts" | "quantize"): { torch: string; get(name: string): Uint8Array; info(name: string): GoldenArray } {
  const path = fileURLToPath(new URL(`../../golden/${file}.bin.gz`, import.meta.url));
  const raw = gunzipSync(readFileSync(path));
  const headerLength = raw.readUInt32LE(0);
  const header = JSON.parse(raw.subarray(4, 4 + headerLength).toString("utf8")) as { torch: string; arrays: GoldenArray[] };
  const base = 4 + headerLength;
  const byName = new Map(header.arrays.map((a) => [a.name, a]));
  const info = (name: string) => {
    const a = byName.get(name);
    if (!a) throw new Error(`golden ${file}: no array ${name}`);
    return a;
  };
  return {
    torch: header.torch,
    info,
    get(name) {
      const a = info(name);
      // Copy so typed views over the result are aligned.
      return new Uint8Array(raw.subarray(base + a.offset, base + a.offset + a.bytes));
    },
  };
}

export const asF32 = (u: Uint8Array) => new Float32Array(u.buffer, u.byteOffset, u.byteLength / 4);
export const asU16 = (u: Uint8Array) => new Uint16Array(u.buffer, u.byteOffset, u.byteLength / 2);
export const asU32 = (u: Uint8Array) => new Uint32Array(u.buffer, u.byteOffset, u.byteLength / 4);

/** A seeded PRNG (mulberry32) for test inputs; tests print the seed so a failure can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomNormal(random: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}
