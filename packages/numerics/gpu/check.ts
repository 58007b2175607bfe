// Checks every CUDA kernel of @octet/numerics against the CPU specification on fresh random inputs (the seed is
// printed; OCTET_CHECK_SEED=<n> repeats a run; OCTET_CHECK_QUICK=1 leaves out the large shapes):
//   - the hardware FP8 cast path against PyTorch's algorithm on all 2^32 float32 bit patterns;
//   - quantization (1x128, 128x128, any block, both layouts in one read; fp32 and bf16 input; e4m3 and e5m2; fp32 and
//     pow2 scales; edge shapes; NaN/inf inputs) bit for bit against quantizeReference, outputs poisoned first;
//   - dequantization bit for bit against dequantize;
//   - the block-scaled GEMMs (sm90 kernel, cuBLASLt), grouped GEMM, BF16 GEMM within 2e-3 (bf16 output) and 1e-5 (fp32
//     output) relative Frobenius error of the float64 product of the dequantized inputs (sampled rows for large
//     shapes), outputs poisoned with NaN and every element checked written; refusals of unsupported shapes.
// Usage: node check.mjs [--json out.json]. Exit code 0: all passed; 1: a check failed; 3: no usable GPU.
import {
  DeviceQuantized,
  DeviceTensor,
  captureGraph,
  copyDevice,
  castSelfTestDevice,
  countNaNDevice,
  cudaStatus,
  dequantizeDevice,
  emptyDevice,
  fillRandomDevice,
  gemmChoices,
  groupedScaledMatmulDevice,
  matmulBf16Device,
  quantizeBothDevice,
  quantizeDevice,
  scaledMatmulDevice,
  setKernelKnob,
  stackExpertsDevice,
  toDevice,
} from "../src/cuda.js";
import { type Fp8Format, encodeBf16 } from "../src/formats.js";
import { type Quantized, dequantize, quantizeReference } from "../src/quantize.js";
import {
  ErrorMeter, FMAX, adversarialInput, argValue, bf16ToFloat32, elapsed, gaussianRows, mulberry32, referenceRow, referenceRowF32,
  sampleRows, stamp, timeLeft, toBf16, transpose, writeJson,
} from "./common.js";

const seed = process.env.OCTET_CHECK_SEED ? Number(process.env.OCTET_CHECK_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const rand = mulberry32(seed);
const quick = process.env.OCTET_CHECK_QUICK === "1";
const jsonPath = argValue("--json");

type Status = "pass" | "fail" | "error" | "refused" | "skip";
interface Result {
  name: string;
  status: Status;
  detail: string;
  seconds: number;
  metrics?: Record<string, number | string>;
}
const results: Result[] = [];

class CheckFailure extends Error {
  constructor(message: string, readonly metrics?: Record<string, number | string>) {
    super(message);
  }
}
function expect(cond: boolean, message: string, metrics?: Record<string, number | string>): asserts cond {
  if (!cond) throw new CheckFailure(message, metrics);
}

class Refused extends Error {}

function record(name: string, fn: () => string | { detail: string; metrics?: Record<string, number | string>; status?: Status }): void {
  const t0 = Date.now();
  let r: Result;
  try {
    const out = fn();
    const o = typeof out === "string" ? { detail: out } : out;
    r = { name, status: o.status ?? "pass", detail: o.detail, seconds: 0, metrics: o.metrics };
  } catch (err) {
    const msg = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
    r = { name, status: err instanceof CheckFailure ? "fail" : err instanceof Refused ? "refused" : "error", detail: msg, seconds: 0,
      metrics: err instanceof CheckFailure ? err.metrics : undefined };
  }
  r.seconds = (Date.now() - t0) / 1000;
  results.push(r);
  const tag = { pass: "PASS   ", fail: "FAIL   ", error: "ERROR  ", refused: "REFUSED", skip: "SKIP   " }[r.status];
  console.log(`${tag} ${name} — ${r.detail} [${r.seconds.toFixed(1)}s, at ${elapsed()}]`);
}

// ---- comparisons -------------------------------------------------------------------------------------------------------------

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** First difference between two quantizations, or null. */
function diffQuantized(got: Quantized, want: Quantized, input: Float32Array | null): string | null {
  if (got.data.length !== want.data.length) return `data has ${got.data.length} codes, want ${want.data.length}`;
  if (got.scales.length !== want.scales.length) return `scales has ${got.scales.length} entries, want ${want.scales.length}`;
  const gs = u32(got.scales), ws = u32(want.scales);
  for (let i = 0; i < ws.length; i++) {
    if (gs[i] !== ws[i]) return `scale ${i}: device ${got.scales[i]} (0x${gs[i].toString(16)}), spec ${want.scales[i]} (0x${ws[i].toString(16)})`;
  }
  const cols = want.shape[1];
  let mismatches = 0, first = -1;
  for (let i = 0; i < want.data.length; i++) {
    if (got.data[i] !== want.data[i]) {
      if (first < 0) first = i;
      mismatches++;
    }
  }
  if (mismatches === 0) return null;
  const r = Math.floor(first / cols), c = first % cols;
  return `${mismatches} codes differ; first at (${r}, ${c}): device 0x${got.data[first].toString(16)}, spec 0x${want.data[first].toString(16)}${input ? ` (x = ${input[first]})` : ""}`;
}

/** The [128,1] quantization (CPU layout) from the [1,128] quantization of xᵀ. */
function untranspose(t: Quantized, rows: number, cols: number): Quantized {
  const rb = Math.ceil(rows / 128);
  const data = new Uint8Array(rows * cols), scales = new Float32Array(rb * cols);
  for (let c = 0; c < cols; c++) {
    for (let r = 0; r < rows; r++) data[r * cols + c] = t.data[c * rows + r];
    for (let b = 0; b < rb; b++) scales[b * cols + c] = t.scales[c * rb + b];
  }
  return { data, scales, shape: [rows, cols], block: [128, 1], format: t.format };
}

// ---- quantization --------------------------------------------------------------------------------------------------------------

const BLOCKS: [number, number][] = [[1, 128], [128, 128], [128, 1], [32, 64]];

function checkQuantizeShape(rows: number, cols: number, format: Fp8Format): void {
  const x32 = adversarialInput(rand, rows, cols, FMAX[format]);
  const bf = toBf16(x32);
  // float32 values beyond bf16's range (3e38) round to ±inf in bf16: keep the bf16 input finite (±max instead)
  for (let i = 0; i < bf.bits.length; i++) {
    if ((bf.bits[i] & 0x7f80) === 0x7f80) {
      bf.bits[i] = (bf.bits[i] & 0x8000) | 0x7f7f;
      bf.values[i] = bf16ToFloat32(new Uint16Array([bf.bits[i]]))[0];
    }
  }
  for (const inDtype of ["fp32", "bf16"] as const) {
    const values = inDtype === "fp32" ? x32 : bf.values;
    const dev = inDtype === "fp32" ? toDevice(x32, [rows, cols]) : toDevice(bf.bits, [rows, cols]);
    const xT = transpose(values, rows, cols);
    for (const scale of ["fp32", "pow2"] as const) {
      record(`quantize [${rows}x${cols}] ${inDtype}→${format} ${scale} scales`, () => {
        let codes = 0;
        for (const block of BLOCKS) {
          const want = quantizeReference(values, [rows, cols], { block, format, scale });
          const q = quantizeDevice(dev, { block, format, scale, poison: true });
          const got = q.toHost();
          q.free();
          const d = diffQuantized(got, want, values);
          expect(d === null, `block [${block}]: ${d}`);
          codes += want.data.length;
        }
        // the 128x128 kernel's other variant, then both layouts from one read with each variant of that kernel
        setKernelKnob("blocks_variant", 1);
        const q1 = quantizeDevice(dev, { block: [128, 128], format, scale, poison: true });
        setKernelKnob("blocks_variant", 2);
        const d1 = diffQuantized(q1.toHost(), quantizeReference(values, [rows, cols], { block: [128, 128], format, scale }), values);
        q1.free();
        expect(d1 === null, `block [128,128] (variant 1): ${d1}`);
        const wantRow = quantizeReference(values, [rows, cols], { block: [1, 128], format, scale });
        const wantT = quantizeReference(xT, [cols, rows], { block: [1, 128], format, scale });
        const wantCol = quantizeReference(values, [rows, cols], { block: [128, 1], format, scale });
        for (const variant of [3, 2, 1]) {
          setKernelKnob("both_variant", variant);
          const both = quantizeBothDevice(dev, { format, scale, poison: true });
          const row = both.rowwise.toHost(), tr = both.transposed.toHost();
          both.rowwise.free();
          both.transposed.free();
          let d = diffQuantized(row, wantRow, values);
          expect(d === null, `both (variant ${variant}), rowwise: ${d}`);
          d = diffQuantized(tr, wantT, xT);
          expect(d === null, `both (variant ${variant}), transposed (1x128 tiles of xᵀ): ${d}`);
          d = diffQuantized(untranspose(tr, rows, cols), wantCol, values);
          expect(d === null, `both (variant ${variant}), transposed back vs [128,1] tiles: ${d}`);
        }
        setKernelKnob("both_variant", 3);
        return `bit-exact: blocks ${BLOCKS.map((b) => b.join("x")).join(", ")} (128x128 both variants) and both layouts (all variants) (${codes + 4 * rows * cols} codes)`;
      });
    }
    dev.free();
  }
}

function checkNonFinite(rows: number, cols: number, format: Fp8Format): void {
  record(`quantize non-finite inputs [${rows}x${cols}] ${format}`, () => {
    const x = adversarialInput(rand, rows, cols, FMAX[format]);
    const u = u32(x);
    const specials = [0x7fc00000, 0xffc00000, 0x7f800000, 0xff800000, 0x7f800001];
    const positions: number[] = [];
    for (let k = 0; k < 12; k++) {
      const i = Math.floor(rand() * x.length);
      u[i] = specials[k % specials.length];
      positions.push(i);
    }
    const first = Math.min(...positions);
    const dev = toDevice(x, [rows, cols]);
    const parts: string[] = [];
    for (const block of BLOCKS) {
      // "throw": the same RangeError as the CPU path, naming the first non-finite element
      let cpuMessage = "";
      try {
        quantizeReference(x, [rows, cols], { block, format });
      } catch (err) {
        cpuMessage = (err as Error).message;
      }
      let threw: unknown = null;
      try {
        quantizeDevice(dev, { block, format });
      } catch (err) {
        threw = err;
      }
      expect(threw instanceof RangeError, `block [${block}]: expected a RangeError for non-finite input, got ${threw}`);
      expect((threw as Error).message.replace(/^quantizeDevice:/, "quantize:") === cpuMessage, `block [${block}]: message "${(threw as Error).message}" vs CPU "${cpuMessage}"`);
      // "report": codes equal the specification's non-finite codes, and the report matches
      const want = quantizeReference(x, [rows, cols], { block, format, nonFinite: "report" });
      const q = quantizeDevice(dev, { block, format, nonFinite: "report", poison: true });
      const got = q.toHost();
      q.free();
      const d = diffQuantized(got, want, x);
      expect(d === null, `block [${block}] report: ${d}`);
      expect(JSON.stringify(got.nonFinite) === JSON.stringify(want.nonFinite), `block [${block}] report ${JSON.stringify(got.nonFinite)} vs spec ${JSON.stringify(want.nonFinite)}`);
      parts.push(block.join("x"));
    }
    const both = quantizeBothDevice(dev, { format, nonFinite: "report", poison: true });
    const row = both.rowwise.toHost(), tr = both.transposed.toHost();
    let d = diffQuantized(row, quantizeReference(x, [rows, cols], { block: [1, 128], format, nonFinite: "report" }), x);
    expect(d === null, `both rowwise report: ${d}`);
    d = diffQuantized(tr, quantizeReference(transpose(x, rows, cols), [cols, rows], { block: [1, 128], format, nonFinite: "report" }), null);
    expect(d === null, `both transposed report: ${d}`);
    expect(row.nonFinite?.first[0] === Math.floor(first / cols) && row.nonFinite?.first[1] === first % cols, `both: report ${JSON.stringify(row.nonFinite)}`);
    dev.free();
    return `RangeError naming (row ${Math.floor(first / cols)}, column ${first % cols}) as on the CPU; report mode bit-exact (${parts.join(", ")}, both)`;
  });
}

function checkDequantize(): void {
  record("dequantize fp32 and bf16 output", () => {
    const rows = 200, cols = 300;
    let n = 0;
    for (const format of ["e4m3", "e5m2"] as const) {
      const x = adversarialInput(rand, rows, cols, FMAX[format]);
      for (const block of [[1, 128], [128, 128], [128, 1]] as [number, number][]) {
        const q = quantizeDevice(x, [rows, cols], { block, format });
        const want = dequantize(q.toHost());
        const got = dequantizeDevice(q).toHost() as Float32Array;
        const gb = u32(got), wb = u32(want);
        for (let i = 0; i < want.length; i++) {
          const same = gb[i] === wb[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i]));
          expect(same, `${format} [${block}] fp32: element ${i}: device ${got[i]}, spec ${want[i]}`);
        }
        const gotBf = dequantizeDevice(q, { out: "bf16" }).toHost() as Uint16Array;
        const wantBf = encodeBf16(want);
        for (let i = 0; i < wantBf.length; i++) expect(gotBf[i] === wantBf[i], `${format} [${block}] bf16: element ${i}: 0x${gotBf[i].toString(16)} vs 0x${wantBf[i].toString(16)}`);
        n += want.length;
        q.free();
      }
    }
    return `bit-exact against dequantize / encodeBf16(dequantize) (${n} elements × 2)`;
  });
}

/** The bench's shape (8192x7168 bf16), device-generated, checked on sampled 128-row blocks. */
function checkLargeQuantize(): void {
  const rows = 8192, cols = 7168;
  record(`quantize [${rows}x${cols}] bf16 (the benchmark shape), sampled row blocks`, () => {
    const x = emptyDevice([rows, cols], "bf16");
    fillRandomDevice(x, (seed ^ 0x51ed) >>> 0, "logUniform", 3);
    const blocks = sampleRows(rand, rows / 128, 3);
    const parts: string[] = [];
    for (const format of ["e4m3", "e5m2"] as const) {
      for (const scale of ["fp32", "pow2"] as const) {
        const qr = quantizeDevice(x, { block: [1, 128], format, scale, poison: true });
        const qb = quantizeDevice(x, { block: [128, 128], format, scale, poison: true });
        const both = quantizeBothDevice(x, { format, scale, poison: true });
        for (const b of blocks) {
          const r0 = b * 128;
          const xs = bf16ToFloat32(x.toHost(r0 * cols, 128 * cols) as Uint16Array);
          const sliceQ = (q: DeviceQuantized, gridCols: number, scaleRows: number): Quantized => ({
            data: q.data.toHost(r0 * cols, 128 * cols) as Uint8Array,
            scales: q.scales.toHost(b * scaleRows * gridCols, scaleRows * gridCols) as Float32Array,
            shape: [128, cols], block: q.block, format,
          });
          let d = diffQuantized(sliceQ(qr, cols / 128, 128), quantizeReference(xs, [128, cols], { block: [1, 128], format, scale }), xs);
          expect(d === null, `${format} ${scale} 1x128 rows ${r0}..: ${d}`);
          d = diffQuantized(sliceQ(qb, cols / 128, 1), quantizeReference(xs, [128, cols], { block: [128, 128], format, scale }), xs);
          expect(d === null, `${format} ${scale} 128x128 rows ${r0}..: ${d}`);
          d = diffQuantized(sliceQ(both.rowwise, cols / 128, 128), quantizeReference(xs, [128, cols], { block: [1, 128], format, scale }), xs);
          expect(d === null, `${format} ${scale} both/rowwise rows ${r0}..: ${d}`);
          // transposed: rows r0..r0+127 of x are one 1x128 tile in each row of xᵀ
          const tdata = new Uint8Array(cols * 128), tscales = new Float32Array(cols);
          const allT = both.transposed.data;
          for (let c = 0; c < cols; c++) tdata.set(allT.toHost(c * rows + r0, 128) as Uint8Array, c * 128);
          const ts = both.transposed.scales.toHost() as Float32Array;
          for (let c = 0; c < cols; c++) tscales[c] = ts[c * (rows / 128) + b];
          const xsT = transpose(xs, 128, cols);
          d = diffQuantized({ data: tdata, scales: tscales, shape: [cols, 128], block: [1, 128], format }, quantizeReference(xsT, [cols, 128], { block: [1, 128], format, scale }), xsT);
          expect(d === null, `${format} ${scale} both/transposed rows ${r0}..: ${d}`);
        }
        qr.free();
        qb.free();
        both.rowwise.free();
        both.transposed.free();
        parts.push(`${format}/${scale}`);
      }
    }
    x.free();
    return `bit-exact on row blocks ${blocks.join(", ")} for ${parts.join(", ")} (1x128, 128x128, both)`;
  });
}

// ---- GEMMs ------------------------------------------------------------------------------------------------------------------------

const TOL = { bf16: 2e-3, fp32: 1e-5 } as const;

interface Operands {
  a: DeviceQuantized;
  b: DeviceQuantized;
  ha: Quantized;
  hb: Quantized;
  rows: number[];
  ref: Float64Array[];
}

function makeOperands(M: number, N: number, K: number, sampled: number): Operands {
  let a: DeviceQuantized, b: DeviceQuantized;
  if (M * K <= 1 << 22 && N * K <= 1 << 24) {
    a = quantizeDevice(gaussianRows(rand, M, K, 1, 2), [M, K], { block: [1, 128] });
    b = quantizeDevice(gaussianRows(rand, N, K, 0.02, 1), [N, K], { block: [128, 128] });
  } else {
    const xa = emptyDevice([M, K], "bf16"), xb = emptyDevice([N, K], "bf16");
    fillRandomDevice(xa, (rand() * 2 ** 32) >>> 0, "normal", 1);
    fillRandomDevice(xb, (rand() * 2 ** 32) >>> 0, "normal", 0.02);
    a = quantizeDevice(xa, { block: [1, 128] });
    b = quantizeDevice(xb, { block: [128, 128] });
    xa.free();
    xb.free();
  }
  const ha = a.toHost(), hb = b.toHost();
  const rows = sampleRows(rand, M, sampled);
  const ref = rows.map((m) => referenceRow(ha, m, hb.data, hb.scales, N, K, hb.format));
  return { a, b, ha, hb, rows, ref };
}

function compareRows(d: DeviceTensor, rows: number[], ref: Float64Array[], N: number): ErrorMeter {
  const meter = new ErrorMeter();
  rows.forEach((m, j) => {
    const raw = d.toHost(m * N, N);
    const got = d.dtype === "bf16" ? bf16ToFloat32(raw as Uint16Array) : (raw as Float32Array);
    for (let n = 0; n < N; n++) meter.add(got[n], ref[j][n]);
  });
  return meter;
}

/** Why an implementation cannot run at all here (not built, no device), or null. */
function unavailable(impl: string): string | null {
  const st = cudaStatus();
  if (impl.includes("sm90")) return st.sm90.available ? null : `sm90 GEMM unavailable: ${st.sm90.reason}`;
  return st.cublasLt.available ? null : `cuBLASLt unavailable: ${st.cublasLt.reason}`;
}

function checkGemm(M: number, N: number, K: number, sampled: number): void {
  let ops: Operands;
  try {
    ops = makeOperands(M, N, K, sampled);
  } catch (err) {
    record(`GEMM ${M}x${N}x${K} operands`, () => { throw err; });
    return;
  }
  const rowsNote = ops.rows.length === M ? "all rows" : `${ops.rows.length} sampled rows`;
  // Both implementations first, then the records: each names the other's error on the same operands (FP8 tensor
  // cores keep ~14 bits within a 128-element block, so the fp32-output error of both is set by the hardware).
  type Outcome = { refused?: string; error?: unknown; nan?: number; meter?: ErrorMeter };
  const outcome: Record<string, Outcome> = {};
  for (const impl of ["sm90", "cublaslt"] as const) {
    for (const out of ["bf16", "fp32"] as const) {
      if (unavailable(impl)) continue;
      const d = emptyDevice([M, N], out, { fill: "nan" });
      try {
        scaledMatmulDevice(ops.a, ops.b, { out, impl, into: d });
        outcome[`${impl}/${out}`] = { nan: countNaNDevice(d), meter: compareRows(d, ops.rows, ops.ref, N) };
      } catch (err) {
        outcome[`${impl}/${out}`] = err instanceof RangeError ? { refused: err.message } : { error: err };
      } finally {
        d.free();
      }
    }
  }
  for (const impl of ["sm90", "cublaslt"] as const) {
    for (const out of ["bf16", "fp32"] as const) {
      record(`GEMM ${impl} ${M}x${N}x${K} → ${out}`, () => {
        const why = unavailable(impl);
        if (why) return { status: "skip", detail: why };
        const o = outcome[`${impl}/${out}`];
        if (o.refused) throw new Refused(o.refused);
        if (o.error) throw o.error;
        const other = outcome[`${impl === "sm90" ? "cublaslt" : "sm90"}/${out}`]?.meter;
        const otherNote = other ? `; ${impl === "sm90" ? "cuBLASLt" : "sm90"} on the same operands: ${other.frobenius.toExponential(2)}` : "";
        const meter = o.meter!;
        const e = meter.frobenius;
        const metrics = { frobenius: e, maxRelative: meter.maxRel, tolerance: TOL[out], ...(other ? { otherFrobenius: other.frobenius } : {}) };
        expect(o.nan === 0, `${o.nan} of ${M * N} outputs left NaN (unwritten or NaN results)`, metrics);
        expect(e <= TOL[out], `relative Frobenius error ${e.toExponential(2)} > ${TOL[out]} (${rowsNote}; max elementwise ${meter.maxRel.toExponential(2)}${otherNote})`, metrics);
        return { detail: `rel. Frobenius ${e.toExponential(2)} ≤ ${TOL[out]} (${rowsNote}${otherNote}), all ${M * N} outputs written`, metrics };
      });
    }
  }
  ops.a.free();
  ops.b.free();
}

function checkGrouped(E: number, sizes: number[], N: number, K: number, perExpert: number): void {
  const offsets = [0];
  for (const s of sizes) offsets.push(offsets[offsets.length - 1] + s);
  const M = offsets[E];
  const name = `grouped GEMM E=${E} M=${M} (${sizes.join(",").slice(0, 40)}${sizes.join(",").length > 40 ? "…" : ""}) N=${N} K=${K}`;
  let a: DeviceQuantized, experts: ReturnType<typeof stackExpertsDevice>;
  const perW: DeviceQuantized[] = [];
  try {
    const xa = emptyDevice([Math.max(M, 1), K], "bf16");
    fillRandomDevice(xa, (rand() * 2 ** 32) >>> 0, "normal", 1);
    a = quantizeDevice(xa, { block: [1, 128] });
    xa.free();
    for (let e = 0; e < E; e++) {
      const w = emptyDevice([N, K], "bf16");
      fillRandomDevice(w, (rand() * 2 ** 32) >>> 0, "normal", 0.02);
      perW.push(quantizeDevice(w, { block: [128, 128] }));
      w.free();
    }
    experts = stackExpertsDevice(perW);
    for (const w of perW) w.free();
  } catch (err) {
    record(`${name}: operands`, () => { throw err; });
    return;
  }
  const ha = a.toHost();
  const hb = experts.toHost();
  const rows: number[] = [], ref: Float64Array[] = [];
  for (let e = 0; e < E; e++) {
    const m = sizes[e];
    const picks = sampleRows(rand, m, Math.min(m, perExpert));
    for (const p of picks) {
      rows.push(offsets[e] + p);
      ref.push(referenceRow(ha, offsets[e] + p, hb[e].data, hb[e].scales, N, K, hb[e].format));
    }
  }
  for (const impl of ["sm90", "loop-sm90", "loop-cublaslt"] as const) {
    for (const out of ["bf16", "fp32"] as const) {
      record(`${name} ${impl} → ${out}`, () => {
        const why = unavailable(impl);
        if (why) return { status: "skip", detail: why };
        const d = emptyDevice([Math.max(M, 1), N], out, { fill: "nan" });
        try {
          groupedScaledMatmulDevice(a, experts, offsets, { out, impl, into: M > 0 ? d : undefined });
        } catch (err) {
          d.free();
          if (err instanceof RangeError) throw new Refused(err.message);
          throw err;
        }
        const nan = countNaNDevice(d);
        const meter = compareRows(d, rows, ref, N);
        d.free();
        const e = meter.frobenius;
        expect(nan === 0, `${nan} outputs left NaN`, { frobenius: e });
        expect(e <= TOL[out], `relative Frobenius error ${e.toExponential(2)} > ${TOL[out]} (max elementwise ${meter.maxRel.toExponential(2)})`, { frobenius: e, maxRelative: meter.maxRel });
        return { detail: `rel. Frobenius ${e.toExponential(2)} ≤ ${TOL[out]} (${rows.length} rows across experts), all outputs written`, metrics: { frobenius: e, maxRelative: meter.maxRel } };
      });
    }
  }
  a.free();
  experts.free();
}

function checkBf16Gemm(M: number, N: number, K: number, sampled: number): void {
  const xa = toBf16(gaussianRows(rand, M, K, 1, 1)), xb = toBf16(gaussianRows(rand, N, K, 0.05, 1));
  const a = toDevice(xa.bits, [M, K]), b = toDevice(xb.bits, [N, K]);
  const rows = sampleRows(rand, M, sampled);
  const ref = rows.map((m) => referenceRowF32(xa.values, m, xb.values, N, K));
  for (const out of ["bf16", "fp32"] as const) {
    record(`BF16 GEMM (cuBLASLt) ${M}x${N}x${K} → ${out}`, () => {
      const why = unavailable("cublaslt");
      if (why) return { status: "skip", detail: why };
      const d = emptyDevice([M, N], out, { fill: "nan" });
      try {
        matmulBf16Device(a, b, { out, into: d });
      } catch (err) {
        d.free();
        if (err instanceof RangeError) throw new Refused(err.message);
        throw err;
      }
      const nan = countNaNDevice(d);
      const meter = compareRows(d, rows, ref, N);
      d.free();
      const e = meter.frobenius;
      expect(nan === 0, `${nan} outputs left NaN`, { frobenius: e });
      expect(e <= TOL[out], `relative Frobenius error ${e.toExponential(2)} > ${TOL[out]}`, { frobenius: e });
      return { detail: `rel. Frobenius ${e.toExponential(2)} ≤ ${TOL[out]} (${rows.length === M ? "all rows" : `${rows.length} sampled rows`}), all outputs written`, metrics: { frobenius: e } };
    });
  }
  a.free();
  b.free();
}

function checkRefusals(): void {
  record("refusal: K not a multiple of 128", () => {
    const a = quantizeDevice(gaussianRows(rand, 64, 200), [64, 200], { block: [1, 128] });
    const b = quantizeDevice(gaussianRows(rand, 256, 200), [256, 200], { block: [128, 128] });
    try {
      scaledMatmulDevice(a, b);
      throw new CheckFailure("K=200 was accepted");
    } catch (err) {
      expect(err instanceof RangeError && /multiple of 128/.test((err as Error).message), `unexpected error: ${err}`);
      return `RangeError: ${(err as Error).message}`;
    } finally {
      a.free();
      b.free();
    }
  });
  record("refusal: operands in the wrong block layout", () => {
    const a = quantizeDevice(gaussianRows(rand, 64, 256), [64, 256], { block: [128, 128] });
    const b = quantizeDevice(gaussianRows(rand, 256, 256), [256, 256], { block: [128, 128] });
    try {
      scaledMatmulDevice(a, b);
      throw new CheckFailure("accepted a 128x128-block activation");
    } catch (err) {
      expect(err instanceof RangeError && /\[1, 128\] tiles/.test((err as Error).message), `unexpected error: ${err}`);
      return `RangeError: ${(err as Error).message}`;
    } finally {
      a.free();
      b.free();
    }
  });
}

function checkGraphReplay(): void {
  record("graph capture: quantize + GEMM replayed equals the direct run", () => {
    const M = 256, N = 512, K = 1024;
    const x = toDevice(toBf16(gaussianRows(rand, M, K)).bits, [M, K]);
    const b = quantizeDevice(gaussianRows(rand, N, K, 0.02), [N, K], { block: [128, 128] });
    const parts: string[] = [];
    for (const impl of ["sm90", "cublaslt"] as const) {
      if (!cudaStatus()[impl === "sm90" ? "sm90" : "cublasLt"].available) continue;
      const direct = scaledMatmulDevice(quantizeDevice(x, { block: [1, 128] }), b, { impl }).toHost() as Uint16Array;
      const d = emptyDevice([M, N], "bf16", { fill: "nan" });
      const a = quantizeDevice(x, { block: [1, 128], nonFinite: "unchecked" });
      // Runs once before capture so that plans, workspaces and cuBLASLt's scale layouts exist; then the captured
      // graph re-quantizes into a (no allocation) and multiplies into d.
      scaledMatmulDevice(a, b, { impl, into: d });
      const graph = captureGraph(() => {
        quantizeDevice(x, { block: [1, 128], nonFinite: "unchecked", into: a });
        scaledMatmulDevice(a, b, { impl, into: d });
      });
      copyDevice(d, emptyDevice([M, N], "bf16", { fill: "nan" }));
      graph.launch(3);
      const replay = d.toHost() as Uint16Array;
      for (let i = 0; i < direct.length; i++) expect(replay[i] === direct[i], `${impl}: element ${i} differs after replay (${replay[i].toString(16)} vs ${direct[i].toString(16)})`);
      parts.push(impl);
      d.free();
      a.free();
    }
    x.free();
    b.free();
    if (parts.length === 0) throw new Refused("no GEMM implementation available");
    return `bit-identical outputs (${parts.join(", ")})`;
  });
}

// ---- main ------------------------------------------------------------------------------------------------------------------------------

function main(): number {
  const st = cudaStatus();
  console.log(`octet numerics CUDA check — ${stamp()} UTC, seed ${seed} (OCTET_CHECK_SEED=${seed} repeats this run)${quick ? ", quick" : ""}`);
  console.log(`node ${process.version}; addon ${st.addonPath}`);
  if (!st.available) {
    console.log(`NO GPU: the CUDA backend is unavailable here: ${st.reason}`);
    writeJson(jsonPath, { available: false, reason: st.reason, seed, date: new Date().toISOString() });
    return 3;
  }
  console.log(`device ${st.device} (sm_${st.computeCapability?.replace(".", "")}, ${st.multiprocessors} SMs, ${((st.memoryBytes ?? 0) / 2 ** 30).toFixed(0)} GiB); sm90 GEMM: ${st.sm90.available ? "yes" : `no (${st.sm90.reason})`}; cuBLASLt: ${st.cublasLt.available ? st.cublasLt.version : `no (${st.cublasLt.reason})`}`);

  record("GEMM implementations built and usable (sm90 kernel, cuBLASLt)", () => {
    const problems = [unavailable("sm90"), unavailable("cublaslt")].filter((x) => x !== null);
    expect(problems.length === 0, problems.join("; "));
    return `sm90 GEMM and cuBLASLt ${st.cublasLt.version}`;
  });
  if (process.env.OCTET_CHECK_SKIP_SELFTEST === "1") record("FP8 cast self-test", () => ({ status: "skip", detail: "OCTET_CHECK_SKIP_SELFTEST=1" }));
  else record("FP8 cast: hardware path vs PyTorch's algorithm on all 2^32 float32 patterns", () => {
    const r = castSelfTestDevice();
    expect(r.e4m3.mismatches === 0 && r.e5m2.mismatches === 0,
      `e4m3: ${r.e4m3.mismatches} mismatches (first 0x${r.e4m3.first.toString(16)}), e5m2: ${r.e5m2.mismatches} (first 0x${r.e5m2.first.toString(16)})`);
    return "e4m3 and e5m2: 0 mismatches";
  });

  const shapes: [number, number][] = quick ? [[1, 1], [130, 300], [129, 136], [256, 1024]] : [[1, 1], [3, 300], [130, 300], [129, 136], [256, 1024], [257, 7168], [600, 1000]];
  for (const [r, c] of shapes) for (const format of ["e4m3", "e5m2"] as const) checkQuantizeShape(r, c, format);
  checkNonFinite(130, 300, "e4m3");
  checkNonFinite(256, 256, "e5m2");
  checkDequantize();
  if (!quick) checkLargeQuantize();

  const gemms: [number, number, number, number][] = [
    [1, 2048, 256, 1], [100, 300, 384, 100], [129, 257, 256, 129], [256, 512, 1024, 256], [64, 2112, 7168, 16],
    ...(quick ? [] : [[4096, 2112, 7168, 8], [128, 7168, 16384, 6], [4096, 24576, 1536, 4], [4096, 7168, 2048, 6]] as [number, number, number, number][]),
  ];
  const maxMnk = Number(process.env.OCTET_CHECK_MAX_MNK ?? Infinity);  // the CPU emulation's smoke test keeps GEMMs small
  for (const [M, N, K, s] of gemms) {
    if (M * N * K > maxMnk) continue;
    if (timeLeft() < 60_000) {
      record(`GEMM ${M}x${N}x${K}`, () => ({ status: "skip", detail: "left out: the run's deadline is near" }));
      continue;
    }
    checkGemm(M, N, K, s);
  }
  checkGrouped(4, [0, 100, 128, 37], 256, 512, 1000);
  if (!quick) {
    const sizes8 = Array.from({ length: 8 }, () => 16 * Math.floor(rand() * 32));
    checkGrouped(8, sizes8, 4096, 7168, 2);
    const sizes32 = Array.from({ length: 32 }, () => (rand() < 0.15 ? 0 : 8 * Math.floor(rand() * 38)));
    checkGrouped(32, sizes32, 512, 1024, 2);
  }
  checkBf16Gemm(100, 264, 512, 100);
  checkBf16Gemm(64, 300, 256, 64);
  if (!quick) checkBf16Gemm(256, 4096, 7168, 6);
  checkRefusals();
  checkGraphReplay();
  const [am, an, ak] = quick ? [256, 512, 1024] : [4096, 2112, 7168];
  record(`auto chooser: scaledMatmulDevice impl auto on ${am}x${an}x${ak}`, () => {
    const ops = makeOperands(am, an, ak, 2);
    const d = scaledMatmulDevice(ops.a, ops.b, { impl: "auto" });
    const meter = compareRows(d, ops.rows, ops.ref, an);
    d.free();
    ops.a.free();
    ops.b.free();
    expect(meter.frobenius <= TOL.bf16, `auto result off: ${meter.frobenius}`);
    const c = gemmChoices()[`${am}x${an}x${ak} e4m3·e4m3→bf16`];
    return `picked ${c?.impl} (${c?.reason}; ms ${JSON.stringify(c?.ms)})`;
  });

  const count = (s: Status) => results.filter((r) => r.status === s).length;
  console.log(`\nSUMMARY: ${count("pass")} passed, ${count("fail")} failed, ${count("error")} errors, ${count("refused")} refused (unsupported shape, clear error), ${count("skip")} skipped — seed ${seed}`);
  for (const r of results.filter((x) => x.status === "fail" || x.status === "error")) console.log(`  ${r.status.toUpperCase()}: ${r.name}: ${r.detail}`);
  writeJson(jsonPath, { available: true, seed, date: new Date().toISOString(), device: st.device, status: st, results, gemmChoices: gemmChoices() });
  return count("fail") + count("error") > 0 ? 1 : 0;
}

process.exitCode = main();
