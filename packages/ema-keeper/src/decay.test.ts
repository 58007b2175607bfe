import { test } from "node:test";
import assert from "node:assert/strict";
import { decayAt, normalizeDecayPolicy } from "./decay.js";
import { emaUpdateBf16, emaUpdateF32, emaUpdateF32Plain, firstNonFinite, firstNonFiniteBf16 } from "./kernel.js";
import { encodeBf16 } from "@octet/numerics";

test("fixed decay is the same at every step", () => {
  const p = normalizeDecayPolicy({ kind: "fixed", decay: 0.999 });
  assert.equal(decayAt(p, 0), 0.999);
  assert.equal(decayAt(p, 123456), 0.999);
});

test("warm-up decay is min(decay, (1 + step) / (10 + step))", () => {
  const p = normalizeDecayPolicy({ kind: "warmup", decay: 0.999 });
  assert.deepEqual(p, { kind: "warmup", decay: 0.999, a: 1, b: 10 });
  assert.equal(decayAt(p, 0), 0.1);
  assert.equal(decayAt(p, 90), 91 / 100);
  assert.equal(decayAt(p, 1_000_000), 0.999);
});

test("power warm-up follows 1 - (1 + step/gamma)^-power, clamped", () => {
  const p = normalizeDecayPolicy({ kind: "power", decay: 0.9999, power: 0.75 });
  assert.equal(decayAt(p, 0), 0);
  assert.ok(Math.abs(decayAt(p, 15) - (1 - Math.pow(16, -0.75))) < 1e-15);
  assert.equal(decayAt(p, 1e12), 0.9999);
});

test("bad policies are RangeError / TypeError", () => {
  assert.throws(() => normalizeDecayPolicy({ kind: "fixed", decay: 1.5 }), RangeError);
  assert.throws(() => normalizeDecayPolicy({ kind: "fixed", decay: Number.NaN }), RangeError);
  assert.throws(() => normalizeDecayPolicy({ kind: "cosine", decay: 0.9 }), RangeError);
  assert.throws(() => normalizeDecayPolicy({ kind: "warmup", decay: 0.9, a: 10, b: 5 }), RangeError);
  assert.throws(() => normalizeDecayPolicy(null), TypeError);
  assert.throws(() => decayAt({ kind: "fixed", decay: 0.5 }, -1), RangeError);
  assert.throws(() => decayAt({ kind: "fixed", decay: 0.5 }, 1.5), RangeError);
});

test("unrolled, plain and bf16 kernels agree with a float64 reference rounded to float32", () => {
  const n = 1003; // not a multiple of 4
  const ema = new Float32Array(n);
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    ema[i] = Math.sin(i) * 3;
    p[i] = Math.cos(i * 0.7) * 2;
  }
  const d = 0.97;
  const want = new Float32Array(n);
  for (let i = 0; i < n; i++) want[i] = d * ema[i] + (1 - d) * p[i];
  const a = ema.slice();
  emaUpdateF32(a, p, d);
  const b = ema.slice();
  emaUpdateF32Plain(b, p, d);
  assert.deepEqual(a, want);
  assert.deepEqual(b, want);
  // bf16: the parameters rounded to bf16 first.
  const bits = encodeBf16(p);
  const pr = new Float32Array(n);
  for (let i = 0; i < n; i++) new Uint32Array(pr.buffer)[i] = bits[i] << 16;
  const wantB = new Float32Array(n);
  for (let i = 0; i < n; i++) wantB[i] = d * ema[i] + (1 - d) * pr[i];
  const c = ema.slice();
  emaUpdateBf16(c, bits, d);
  assert.deepEqual(c, wantB);
  // a sub-range leaves the rest untouched
  const e = ema.slice();
  emaUpdateF32(e, p, d, 10, 20);
  assert.equal(e[9], ema[9]);
  assert.equal(e[10], want[10]);
  assert.equal(e[20], ema[20]);
});

test("non-finite scans find NaN and infinities", () => {
  assert.equal(firstNonFinite(new Float32Array([1, 2, 3])), -1);
  assert.equal(firstNonFinite(new Float32Array([1, Number.NaN, 3])), 1);
  assert.equal(firstNonFinite(new Float32Array([1, 2, -Infinity])), 2);
  assert.equal(firstNonFiniteBf16(encodeBf16(new Float32Array([1, 2, Infinity]))), 2);
  assert.equal(firstNonFiniteBf16(encodeBf16(new Float32Array([1e38, -2]))), -1);
});
