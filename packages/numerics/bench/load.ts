// npm run bench:load -- --only numerics [--duration 60 --clients 64]   (from the repository root)
// Load test of octet-numerics' NumericsService (issue 17): 64 clients on loopback for 60 s against the bin,
// quantize and dequantize requests (unary and streamed) mixed with oversized and malformed ones. The service keeps
// no state, so the replay is of its answers: every accepted request is regenerated from its seed afterwards and
// run, one after another, through this package's own quantize/dequantize; each answer the service gave must equal
// the replay's bit for bit. Results: bench/LOAD.md.

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeBf16, dequantize, encodeBf16, gridShape, quantize, type Fp8Format, type ScaleKind } from "@octet/numerics";
import { octet, services } from "@octet/proto";
import {
  AUTH_TOKEN, Rng, bidiCall, bytesOf, closeClients, connectClients, garbageMessage, rawUnaryCall, runLoadTest, unaryCall, type RequestKind,
} from "../../proto/bench/load-harness.js";

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
type Client = services.numerics.v1.NumericsServiceClient;
const SERVICE = "/octet.numerics.v1.NumericsService/";
const DEADLINE_MS = 30_000;
const STREAM_CHUNK = 1 << 20;

/** Everything a request is made of, drawn from one seed, so that the replay can make it again. */
interface Job {
  kind: "quantize" | "dequantize";
  rows: number;
  cols: number;
  block: [number, number];
  format: Fp8Format;
  scale: ScaleKind;
  bf16: boolean;
}

const SHAPES: [number, number][] = [[128, 512], [256, 256], [64, 1024], [200, 300]];
const BLOCKS: [number, number][] = [[1, 128], [128, 1], [128, 128]];
const FORMAT_CODE: Record<Fp8Format, number> = { e4m3: 1, e5m2: 2 };
const SCALE_CODE: Record<ScaleKind, number> = { fp32: 1, pow2: 2 };


/** A request of a kind: "quantize" (float32 or bf16 input), "quantize-f32" (float32 input), "dequantize", "stream"
 *  (a large float32 quantize). */
type Variant = "quantize" | "quantize-f32" | "dequantize" | "stream";

/** Distinct requests per variant. The clients draw from these pools, so that building requests costs this process
 *  little beside the service (two cores may be all there is); each answer is still checked. */
const POOL: Record<Variant, number> = { quantize: 48, "quantize-f32": 16, dequantize: 48, stream: 6 };

function jobOf(variant: Variant, seed: number): Job {
  const rng = new Rng(seed);
  const [rows, cols] = variant === "stream" ? [1024, 1536] : rng.pick(SHAPES);
  const block = rng.pick(BLOCKS);
  const format = rng.pick(["e4m3", "e5m2"] as const);
  const scale = rng.pick(["fp32", "pow2"] as const);
  return { kind: variant === "dequantize" ? "dequantize" : "quantize", rows, cols, block, format, scale, bf16: variant === "quantize" && rng.next() < 0.3 };
}

interface Payload {
  values: Float32Array;
  input: Uint8Array;
  codes: Uint8Array;
  scales: Float32Array;
}

const payloads = new Map<string, { job: Job; payload: Payload }>();

/** A request from the pool of its variant: its job and payload (built once). */
function request(variant: Variant, rng: Rng): { seed: number; job: Job; payload: Payload } {
  const seed = 1 + rng.int(POOL[variant]);
  const key = `${variant}:${seed}`;
  let hit = payloads.get(key);
  if (!hit) {
    const job = jobOf(variant, seed);
    hit = { job, payload: payloadOf(seed, job) };
    payloads.set(key, hit);
  }
  return { seed, ...hit };
}

/** The request's payload: float32 (or bf16) values for quantize; FP8 codes and float32 scales for dequantize. */
function payloadOf(seed: number, job: Job): Payload {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const n = job.rows * job.cols;
  const values = rng.floats(n, 4);
  if (job.bf16) {
    const bits = encodeBf16(values);
    return { values: new Float32Array(0), input: bytesOf(bits), codes: new Uint8Array(0), scales: new Float32Array(0) };
  }
  if (job.kind === "quantize") return { values, input: bytesOf(values), codes: new Uint8Array(0), scales: new Float32Array(0) };
  // Codes from a quantization of the values, so that they are the codes a client would hold (no NaN codes).
  const q = quantize(values, [job.rows, job.cols], { block: job.block, format: job.format, scale: job.scale });
  return { values, input: new Uint8Array(0), codes: q.data, scales: q.scales };
}

function header(job: Job): octet.numerics.v1.IQuantizeHeader {
  return { shape: [job.rows, job.cols], block: job.block, format: FORMAT_CODE[job.format], scale: SCALE_CODE[job.scale], dtype: job.bf16 ? 2 : 1 };
}

function quantizedHeader(job: Job): octet.numerics.v1.IQuantizedHeader {
  return { shape: [job.rows, job.cols], block: job.block, format: FORMAT_CODE[job.format], scaleGrid: gridShape([job.rows, job.cols], job.block) };
}

const sha = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

/** Expected answer of a job, computed in this process: the digest of the codes and scales, or of the values. */
function replayDigest(seed: number, job: Job): string {
  const p = payloadOf(seed, job);
  if (job.kind === "quantize") {
    const values = job.bf16 ? decodeBf16(new Uint16Array(p.input.buffer, p.input.byteOffset, p.input.byteLength / 2)) : p.values;
    const q = quantize(values, [job.rows, job.cols], { block: job.block, format: job.format, scale: job.scale });
    return sha(q.data, bytesOf(q.scales));
  }
  const x = dequantize({ data: p.codes, scales: p.scales, shape: [job.rows, job.cols], block: job.block, format: job.format });
  return sha(bytesOf(x));
}

interface Answered {
  variant: Variant;
  seed: number;
  digest: string;
}

interface Ctx {
  clients: Client[];
  anonymous: Client[];
  answered: Answered[];
}

function slicesOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < bytes.byteLength; o += size) out.push(bytes.subarray(o, Math.min(o + size, bytes.byteLength)));
  return out;
}

const kinds: RequestKind<Ctx>[] = [
  {
    name: "quantize",
    class: "valid",
    weight: 40,
    expect: ["OK"],
    what: `Quantize of a float32 or bf16 tensor (${SHAPES.map((s) => s.join("×")).join(", ")}) in 1×128, 128×1 or 128×128 blocks, E4M3 or E5M2, fp32 or power-of-two scales`,
    async send(ctx, client, rng) {
      const { seed, job, payload } = request("quantize", rng);
      const reply = await unaryCall<octet.numerics.v1.QuantizeResponse>((o, cb) => ctx.clients[client].quantize({ header: header(job), data: payload.input }, o, cb), DEADLINE_MS);
      ctx.answered.push({ variant: "quantize", seed, digest: sha(reply.data, reply.scales) });
    },
  },
  {
    name: "dequantize",
    class: "valid",
    weight: 25,
    expect: ["OK"],
    what: "Dequantize of the codes and scales of such a tensor",
    async send(ctx, client, rng) {
      const { seed, job, payload } = request("dequantize", rng);
      const reply = await unaryCall<octet.numerics.v1.DequantizeResponse>(
        (o, cb) => ctx.clients[client].dequantize({ header: quantizedHeader(job), data: payload.codes, scales: bytesOf(payload.scales) }, o, cb),
        DEADLINE_MS,
      );
      ctx.answered.push({ variant: "dequantize", seed, digest: sha(reply.data) });
    },
  },
  {
    name: "quantize-stream",
    class: "valid",
    weight: 4,
    expect: ["OK"],
    what: "QuantizeStream of a 1024×1536 float32 tensor (6 MiB, above the message limit) in 1 MiB chunks",
    async send(ctx, client, rng) {
      const { seed, job, payload } = request("stream", rng);
      const messages: octet.numerics.v1.IQuantizeChunk[] = slicesOf(payload.input, STREAM_CHUNK).map((data, i) => (i === 0 ? { header: header(job), data } : { data }));
      const replies = await bidiCall<octet.numerics.v1.IQuantizeChunk, octet.numerics.v1.QuantizedChunk>((o) => ctx.clients[client].quantizeStream(o), messages, DEADLINE_MS);
      const data = Buffer.concat(replies.map((r) => r.data));
      const scales = Buffer.concat(replies.map((r) => r.scales));
      ctx.answered.push({ variant: "stream", seed, digest: sha(data, scales) });
    },
  },
  {
    name: "malformed",
    class: "malformed",
    weight: 10,
    expect: ["INVALID_ARGUMENT"],
    what: "Quantize or Dequantize with a payload one element short, a zero block, an unknown format, a NaN input, a three-dimensional shape, or scales of the wrong length",
    async send(ctx, client, rng) {
      const { job, payload: p } = request("quantize-f32", rng);
      const c = ctx.clients[client];
      const withNaN = Float32Array.from(p.values);
      withNaN[rng.int(withNaN.length)] = Number.NaN;
      const variants: (() => Promise<unknown>)[] = [
        () => unaryCall((o, cb) => c.quantize({ header: header(job), data: p.input.subarray(4) }, o, cb), DEADLINE_MS),
        () => unaryCall((o, cb) => c.quantize({ header: { ...header(job), block: [0, 128] }, data: p.input }, o, cb), DEADLINE_MS),
        () => unaryCall((o, cb) => c.quantize({ header: { ...header(job), format: 7 as octet.numerics.v1.Fp8Format }, data: p.input }, o, cb), DEADLINE_MS),
        () => unaryCall((o, cb) => c.quantize({ header: header(job), data: bytesOf(withNaN) }, o, cb), DEADLINE_MS),
        () => unaryCall((o, cb) => c.quantize({ header: { ...header(job), shape: [2, job.rows / 2, job.cols] }, data: p.input }, o, cb), DEADLINE_MS),
        () => unaryCall((o, cb) => c.dequantize({ header: quantizedHeader(job), data: new Uint8Array(job.rows * job.cols), scales: new Uint8Array(12) }, o, cb), DEADLINE_MS),
      ];
      await rng.pick(variants)();
    },
  },
  {
    name: "garbage",
    class: "malformed",
    weight: 3,
    expect: ["INTERNAL", "INVALID_ARGUMENT"],
    what: "bytes that are not a protobuf message, as Quantize (grpc-js answers INTERNAL: it cannot decode the request)",
    async send(ctx, client, rng) {
      await rawUnaryCall(ctx.clients[client], `${SERVICE}Quantize`, garbageMessage(rng), DEADLINE_MS);
    },
  },
  {
    name: "oversized-message",
    class: "oversized",
    weight: 3,
    expect: ["RESOURCE_EXHAUSTED"],
    what: "Quantize of a 1024×1536 float32 tensor in one message (6 MiB, above the 4 MiB message limit)",
    async send(ctx, client) {
      const job: Job = { kind: "quantize", rows: 1024, cols: 1536, block: [1, 128], format: "e4m3", scale: "fp32", bf16: false };
      await unaryCall((o, cb) => ctx.clients[client].quantize({ header: header(job), data: new Uint8Array(1024 * 1536 * 4) }, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "oversized-shape",
    class: "oversized",
    weight: 3,
    expect: ["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"],
    what: "Quantize or Dequantize whose header announces 65536 × 65536 elements (above the 2^28-element limit) with a few bytes of payload",
    async send(ctx, client, rng) {
      const c = ctx.clients[client];
      if (rng.next() < 0.5) {
        await unaryCall((o, cb) => c.quantize({ header: { shape: [65536, 65536], block: [1, 128] }, data: new Uint8Array(64) }, o, cb), DEADLINE_MS);
      } else {
        await unaryCall((o, cb) => c.dequantize({ header: { shape: [65536, 65536], block: [128, 128] }, data: new Uint8Array(64), scales: new Uint8Array(16) }, o, cb), DEADLINE_MS);
      }
    },
  },
  {
    name: "stream-cut-short",
    class: "malformed",
    weight: 3,
    expect: ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"],
    what: "QuantizeStream whose header announces 16384 × 16384 float32 elements (1 GiB, within the element limit) and then ends after 1 MiB",
    async send(ctx, client) {
      const messages: octet.numerics.v1.IQuantizeChunk[] = [{ header: { shape: [16384, 16384], block: [1, 128] }, data: new Uint8Array(STREAM_CHUNK) }];
      await bidiCall<octet.numerics.v1.IQuantizeChunk, octet.numerics.v1.QuantizedChunk>((o) => ctx.clients[client].quantizeStream(o), messages, DEADLINE_MS);
    },
  },
];

if (AUTH_TOKEN) {
  kinds.push({
    name: "without-token",
    class: "valid",
    weight: 3,
    expect: ["OK"],
    what: "a valid Quantize without the bearer token: numerics changes no state, so it needs none",
    async send(ctx, client, rng) {
      const { seed, job, payload } = request("quantize", rng);
      const reply = await unaryCall<octet.numerics.v1.QuantizeResponse>((o, cb) => ctx.anonymous[client].quantize({ header: header(job), data: payload.input }, o, cb), DEADLINE_MS);
      ctx.answered.push({ variant: "quantize", seed, digest: sha(reply.data, reply.scales) });
    },
  });
}

await runLoadTest<Ctx>({
  title: "octet-numerics (NumericsService)",
  packageDir: PACKAGE_DIR,
  serviceName: "octet.numerics.v1.NumericsService",
  kinds,
  notes: [
    "The service keeps no state: what must hold is that every answer is the one the library gives, whatever ran beside it.",
    `The clients draw their requests from pools (${Object.entries(POOL).map(([v, n]) => `${n} ${v}`).join(", ")}; so that building them costs this process little) and`,
    "remember each accepted one by its seed and the SHA-256 of the answer. Afterwards the replay makes every distinct request",
    "again from its seed and runs it, one after another, through @octet/numerics' quantize / dequantize in this process; every",
    "answer the service gave must have the replay's digest.",
  ],
  async setup(address, clients) {
    const ctx: Ctx = {
      ...(await connectClients<Client>(services.numerics.v1.NumericsServiceClient, address, clients)),
      answered: [],
    };
    return ctx;
  },
  async verify(ctx) {
    const problems: string[] = [];
    const started = performance.now();
    // The replay: every distinct request, one after another, through the library; then every answer against it.
    const expected = new Map<string, string>();
    for (const a of ctx.answered) {
      const key = `${a.variant}:${a.seed}`;
      if (!expected.has(key)) expected.set(key, replayDigest(a.seed, jobOf(a.variant, a.seed)));
    }
    let wrong = 0;
    for (const a of ctx.answered) {
      if (expected.get(`${a.variant}:${a.seed}`) === a.digest) continue;
      const job = jobOf(a.variant, a.seed);
      if (wrong++ < 20) problems.push(`${a.variant} seed ${a.seed} (${job.rows}×${job.cols}, block ${job.block.join("×")}, ${job.format}, ${job.scale}${job.bf16 ? ", bf16" : ""}): the service's answer differs from the replay`);
    }
    if (wrong > 20) problems.push(`… ${wrong - 20} more wrong answers`);
    const count = (v: Variant) => ctx.answered.filter((a) => a.variant === v).length;
    return {
      compared: [
        `${ctx.answered.length} accepted answers (${count("quantize")} quantize, ${count("dequantize")} dequantize, ${count("stream")} streamed) of ${expected.size} distinct requests, against a sequential replay through the library (${((performance.now() - started) / 1000).toFixed(1)} s)`,
        "per answer: SHA-256 of the FP8 codes and float32 scales (quantize) or of the float32 values (dequantize)",
      ],
      problems,
    };
  },
  close(ctx) {
    closeClients(ctx);
  },
});
