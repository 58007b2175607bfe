// The MTP modules' kernels on the CPU: MtpKernels over @octet/numerics' HostTensors, each the plain function of
// ops.ts (or a row copy) on the tensors' arrays. This is the default for MultiTokenPrediction and the arithmetic
// every other implementation (a model's backend) must reproduce.

import { HostTensor, type TensorHandle } from "@octet/numerics";
import type { MtpKernels } from "./interfaces.js";
import { linearBackward, linearForward, rmsNormBackward, rmsNormForward, softmaxCrossEntropy } from "./ops.js";

type Rows = Float32Array | Int32Array;

function f32(t: TensorHandle, what: string): Float32Array {
  const h = HostTensor.of(t, what);
  if (h.dtype !== "F32") throw new TypeError(`${what}: expected an F32 tensor, got ${h.dtype} [${h.shape.join(", ")}]`);
  return h.data as Float32Array;
}

function i32(t: TensorHandle, what: string): Int32Array {
  const h = HostTensor.of(t, what);
  if (h.dtype !== "I32") throw new TypeError(`${what}: expected an I32 tensor, got ${h.dtype} [${h.shape.join(", ")}]`);
  return h.data as Int32Array;
}

/** [rows, cols] of a 2-D tensor, or a RangeError naming `what`. */
function matrix(t: TensorHandle, what: string): [number, number] {
  if (t.shape.length !== 2) throw new RangeError(`${what}: expected a 2-D tensor, got [${t.shape.join(", ")}]`);
  return [t.shape[0], t.shape[1]];
}

/** The F32 or I32 array of x and its row width (elements per row along the first dimension). */
function rowsOf(x: TensorHandle, what: string): { data: Rows; width: number; rows: number } {
  const h = HostTensor.of(x, what);
  if (h.dtype !== "F32" && h.dtype !== "I32") throw new TypeError(`${what}: expected an F32 or I32 tensor, got ${h.dtype}`);
  if (h.shape.length < 1) throw new RangeError(`${what}: a scalar has no rows`);
  const rows = h.shape[0];
  return { data: h.data as Rows, width: rows === 0 ? 0 : h.size / rows, rows };
}

function checkWindow(what: string, rows: number, batch: number, seqLen: number, start: number, len: number): void {
  for (const [name, v] of [["batch", batch], ["seqLen", seqLen], ["start", start], ["len", len]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${what}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (start + len > seqLen) throw new RangeError(`${what}: rows ${start} .. ${start + len} exceed a sequence of ${seqLen}`);
  if (rows !== batch * seqLen) throw new RangeError(`${what}: ${rows} rows are not ${batch} sequences of ${seqLen}`);
}

export const cpuMtpKernels: MtpKernels = {
  fromHost(data, shape) {
    if (data instanceof Float32Array) return new HostTensor("F32", shape, Float32Array.from(data));
    if (data instanceof Int32Array) return new HostTensor("I32", shape, Int32Array.from(data));
    throw new TypeError("fromHost: data must be a Float32Array or an Int32Array");
  },

  zeros(shape) {
    return new HostTensor("F32", shape);
  },

  zero(x) {
    HostTensor.of(x, "zero").data.fill(0 as never);
  },

  scale(x, a) {
    const d = f32(x, "scale");
    for (let i = 0; i < d.length; i++) d[i] *= a;
  },

  read(xs) {
    return xs.map((x, i) => Array.from(HostTensor.of(x, `read: tensor ${i}`).data as ArrayLike<number>));
  },

  rmsnormForward(x, gain, eps) {
    const [rows, dim] = matrix(x, "rmsnormForward: x");
    if (gain.shape.length !== 1 || gain.shape[0] !== dim) throw new RangeError(`rmsnormForward: gain [${gain.shape.join(", ")}] does not match x's ${dim} columns`);
    const { y, cache } = rmsNormForward(f32(x, "rmsnormForward: x"), f32(gain, "rmsnormForward: gain"), rows, eps);
    return { y: new HostTensor("F32", [rows, dim], y), rstd: new HostTensor("F32", [rows], cache.inv) };
  },

  rmsnormBackward(dy, x, gain, rstd, gainGrad) {
    const [rows, dim] = matrix(x, "rmsnormBackward: x");
    const cache = { x: f32(x, "rmsnormBackward: x"), inv: f32(rstd, "rmsnormBackward: rstd"), rows, dim };
    const dx = rmsNormBackward(f32(dy, "rmsnormBackward: dy"), f32(gain, "rmsnormBackward: gain"), f32(gainGrad, "rmsnormBackward: gainGrad"), cache);
    return new HostTensor("F32", [rows, dim], dx);
  },

  concatColumns(a, b) {
    const [rows, da] = matrix(a, "concatColumns: a");
    const [rowsB, db] = matrix(b, "concatColumns: b");
    if (rows !== rowsB) throw new RangeError(`concatColumns: ${rows} rows and ${rowsB} rows`);
    const x = f32(a, "concatColumns: a");
    const y = f32(b, "concatColumns: b");
    const w = da + db;
    const out = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) {
      out.set(x.subarray(r * da, r * da + da), r * w);
      out.set(y.subarray(r * db, r * db + db), r * w + da);
    }
    return new HostTensor("F32", [rows, w], out);
  },

  splitColumns(x, left) {
    const [rows, w] = matrix(x, "splitColumns: x");
    if (!Number.isInteger(left) || left < 0 || left > w) throw new RangeError(`splitColumns: left ${left} is outside 0..${w}`);
    const right = w - left;
    const d = f32(x, "splitColumns: x");
    const a = new Float32Array(rows * left);
    const b = new Float32Array(rows * right);
    for (let r = 0; r < rows; r++) {
      a.set(d.subarray(r * w, r * w + left), r * left);
      b.set(d.subarray(r * w + left, (r + 1) * w), r * right);
    }
    return [new HostTensor("F32", [rows, left], a), new HostTensor("F32", [rows, right], b)];
  },

  linearForward(x, w) {
    const [rows, inDim] = matrix(x, "linearForward: x");
    const [out, wIn] = matrix(w, "linearForward: w");
    if (wIn !== inDim) throw new RangeError(`linearForward: x [${rows}, ${inDim}] and W [${out}, ${wIn}]`);
    return new HostTensor("F32", [rows, out], linearForward(f32(x, "linearForward: x"), f32(w, "linearForward: w"), rows, out, inDim));
  },

  linearBackward(dy, x, w, wGrad) {
    const [rows, inDim] = matrix(x, "linearBackward: x");
    const [out, wIn] = matrix(w, "linearBackward: w");
    if (wIn !== inDim || dy.shape[0] !== rows || dy.shape[1] !== out) {
      throw new RangeError(`linearBackward: dy [${dy.shape.join(", ")}], x [${rows}, ${inDim}] and W [${out}, ${wIn}] do not match`);
    }
    const dx = linearBackward(f32(dy, "linearBackward: dy"), f32(x, "linearBackward: x"), f32(w, "linearBackward: w"), f32(wGrad, "linearBackward: wGrad"), rows, out, inDim);
    return new HostTensor("F32", [rows, inDim], dx);
  },

  crossEntropy(logits, targets, gradScale) {
    const [rows, vocab] = matrix(logits, "crossEntropy: logits");
    const { loss, dLogits } = softmaxCrossEntropy(f32(logits, "crossEntropy: logits"), i32(targets, "crossEntropy: targets"), rows, vocab, gradScale);
    return { loss: new HostTensor("F64", [1], Float64Array.of(loss)), dLogits: new HostTensor("F32", [rows, vocab], dLogits) };
  },

  mean(xs) {
    if (xs.length === 0) throw new RangeError("mean: no tensors");
    let sum = 0;
    for (const [i, x] of xs.entries()) sum += (HostTensor.of(x, `mean: tensor ${i}`).data as ArrayLike<number>)[0];
    return new HostTensor("F64", [1], Float64Array.of(sum / xs.length));
  },

  sequenceRows(x, batch, seqLen, start, len) {
    const { data, width, rows } = rowsOf(x, "sequenceRows: x");
    checkWindow("sequenceRows", rows, batch, seqLen, start, len);
    const out = new (data.constructor as new (n: number) => Rows)(batch * len * width);
    for (let b = 0; b < batch; b++) out.set(data.subarray((b * seqLen + start) * width, (b * seqLen + start + len) * width), b * len * width);
    return new HostTensor(x.dtype as "F32", [batch * len, ...x.shape.slice(1)], out as Float32Array);
  },

  addSequenceRows(dst, src, batch, seqLen, start) {
    const d = f32(dst, "addSequenceRows: dst");
    const s = f32(src, "addSequenceRows: src");
    const width = dst.shape[0] === 0 ? 0 : d.length / dst.shape[0];
    const len = batch === 0 ? 0 : src.shape[0] / batch;
    checkWindow("addSequenceRows", dst.shape[0], batch, seqLen, start, len);
    for (let b = 0; b < batch; b++) {
      const to = (b * seqLen + start) * width;
      const from = b * len * width;
      for (let j = 0; j < len * width; j++) d[to + j] += s[from + j];
    }
  },

  padSequenceRows(src, batch, seqLen, start) {
    const s = f32(src, "padSequenceRows: src");
    const width = src.shape[0] === 0 ? 0 : s.length / src.shape[0];
    const len = batch === 0 ? 0 : src.shape[0] / batch;
    checkWindow("padSequenceRows", batch * seqLen, batch, seqLen, start, len);
    const out = new Float32Array(batch * seqLen * width);
    for (let b = 0; b < batch; b++) out.set(s.subarray(b * len * width, (b + 1) * len * width), (b * seqLen + start) * width);
    return new HostTensor("F32", [batch * seqLen, ...src.shape.slice(1)], out);
  },
};
