// routeTokens against Hugging Face transformers' own DeepseekV3TopkRouter (golden/routing.bin.gz,
// written by golden/generate.py with the transformers version named in the file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { routeTokens } from "./route.js";

interface GoldenCase {
  name: string;
  experts: number;
  nGroup: number;
  topkGroup: number;
  topK: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
  tokens: number;
  arrays: Record<string, { offset: number; bytes: number }>;
}

const raw = gunzipSync(readFileSync(fileURLToPath(new URL("../golden/routing.bin.gz", import.meta.url))));
const headerLength = raw.readUInt32LE(0);
const header = JSON.parse(raw.subarray(4, 4 + headerLength).toString("utf8")) as { transformers: string; torch: string; cases: GoldenCase[] };
const arrayOf = (c: GoldenCase, name: string) => {
  const a = c.arrays[name];
  return new Uint8Array(raw.subarray(4 + headerLength + a.offset, 4 + headerLength + a.offset + a.bytes)).buffer;
};

for (const c of header.cases) {
  test(`${c.name}: the same experts as transformers ${header.transformers} for all ${c.tokens} tokens; weights within 2 ulp`, () => {
    const logits = new Float32Array(arrayOf(c, "logits"));
    const bias = new Float32Array(arrayOf(c, "bias"));
    const hfIndices = new Int32Array(arrayOf(c, "indices"));
    const hfWeights = new Float32Array(arrayOf(c, "weights"));
    const ours = routeTokens(logits, { ...c, bias });
    for (let t = 0; t < c.tokens; t++) {
      // HF returns topk(sorted=False): compare per token as sets, each weight following its expert.
      const hf = new Map<number, number>();
      for (let k = 0; k < c.topK; k++) hf.set(hfIndices[t * c.topK + k], hfWeights[t * c.topK + k]);
      for (let k = 0; k < c.topK; k++) {
        const expert = ours.indices[t * c.topK + k];
        const want = hf.get(expert);
        if (want === undefined) assert.fail(`token ${t}: we picked expert ${expert}, HF picked ${[...hf.keys()]}`);
        const got = ours.weights[t * c.topK + k];
        // torch's vectorized float32 sigmoid is not correctly rounded; ours is (nearly always).
        assert.ok(Math.abs(got - want) <= 2.5e-7 * Math.max(1, Math.abs(want)), `token ${t}, expert ${expert}: weight ${got} vs HF ${want}`);
      }
    }
  });
}
