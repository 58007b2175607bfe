// The CPU MtpKernels: the ops of ops.ts on HostTensors (same numbers), and the row and column moves the modules
// make with them instead of loops of their own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HostTensor } from "@octet/numerics";
import { cpuMtpKernels as k } from "./kernels.js";
import { linearForward, rmsNormForward, softmaxCrossEntropy } from "./ops.js";
import { host } from "./testing/blocks.js";

const f32 = (shape: number[], f: (i: number) => number) => new HostTensor("F32", shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)));

test("cpuMtpKernels compute what ops.ts computes, on tensors", () => {
  const x = f32([3, 4], (i) => Math.sin(i));
  const g = f32([4], (i) => 1 + i / 10);
  const { y, rstd } = k.rmsnormForward(x, g, 1e-6);
  const ref = rmsNormForward(host(x), host(g), 3, 1e-6);
  assert.deepEqual(host(y), ref.y);
  assert.deepEqual(host(rstd), ref.cache.inv);
  const w = f32([2, 4], (i) => Math.cos(i));
  assert.deepEqual(host(k.linearForward(x, w)), linearForward(host(x), host(w), 3, 2, 4));
  const targets = new HostTensor("I32", [3], Int32Array.from([0, 3, 1]));
  const { loss, dLogits } = k.crossEntropy(x, targets, 0.5);
  const refCe = softmaxCrossEntropy(host(x), Int32Array.from([0, 3, 1]), 3, 4, 0.5);
  assert.deepEqual(k.read([loss]), [[refCe.loss]]);
  assert.deepEqual(host(dLogits), refCe.dLogits);
  assert.deepEqual(k.read([k.mean([loss, k.fromHost(new Float32Array([1]), [1])])]), [[(refCe.loss + 1) / 2]]);
});

test("sequence rows: take a window of each sequence, add it back, pad it into zeros; columns split and join", () => {
  // 2 sequences of 4 rows, 2 columns: row r of sequence b holds [10b + r, −(10b + r)].
  const x = f32([8, 2], (i) => (i % 2 ? -1 : 1) * (10 * Math.floor(i / 8) + (Math.floor(i / 2) % 4)));
  const w = k.sequenceRows(x, 2, 4, 1, 2);
  assert.deepEqual(w.shape, [4, 2]);
  assert.deepEqual([...host(w)], [1, -1, 2, -2, 11, -11, 12, -12]);
  const tokens = new HostTensor("I32", [8], Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]));
  assert.deepEqual(k.read([k.sequenceRows(tokens, 2, 4, 2, 2)]), [[2, 3, 6, 7]]);
  const padded = k.padSequenceRows(w, 2, 4, 1);
  assert.deepEqual([...host(padded)], [0, 0, 1, -1, 2, -2, 0, 0, 0, 0, 11, -11, 12, -12, 0, 0]);
  k.addSequenceRows(padded, w, 2, 4, 1);
  assert.deepEqual([...host(padded)], [0, 0, 2, -2, 4, -4, 0, 0, 0, 0, 22, -22, 24, -24, 0, 0]);
  const [a, b] = k.splitColumns(x, 1);
  assert.deepEqual(host(k.concatColumns(a, b)), host(x));
  assert.throws(() => k.sequenceRows(x, 2, 4, 3, 2), /sequenceRows: rows 3 \.\. 5 exceed a sequence of 4/);
  assert.throws(() => k.sequenceRows(x, 3, 4, 0, 1), /sequenceRows: 8 rows are not 3 sequences of 4/);
  assert.throws(() => k.concatColumns(x, f32([3, 1], () => 0)), /concatColumns: 8 rows and 3 rows/);
  assert.throws(() => k.linearForward(new HostTensor("I32", [8, 2]), f32([1, 2], () => 0)), /linearForward: x: expected an F32 tensor, got I32/);
  assert.throws(() => k.zero({ shape: [2], dtype: "F32", device: "cuda" }), /zero: F32 \[2\] on cuda is not a host tensor/);
});
