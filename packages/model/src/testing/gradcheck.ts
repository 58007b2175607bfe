// Finite-difference gradient checks for the tests. The kernels compute in float32, so the check uses a
// projection L = Σ r ⊙ y with fixed random r, accumulated in float64, central differences with step h, and
// compares whole gradient tensors by relative Frobenius error (default tolerance 1e-2), which float32
// round-off (~1e-7 relative) divided by 2h stays far below.

import { HostTensor, type TensorHandle } from "@octet/numerics";
import { Rng } from "../rng.js";

/** An F32 host tensor over `data` (no copy: perturbing data perturbs the tensor). */
export function tensor(data: Float32Array, shape: readonly number[]): HostTensor {
  return new HostTensor("F32", shape, data);
}

/** The F32 array behind a CPU tensor (the live values, not a copy). */
export function host(t: TensorHandle): Float32Array {
  const h = HostTensor.of(t);
  if (h.dtype !== "F32") throw new TypeError(`expected an F32 tensor, got ${h.dtype}`);
  return h.data as Float32Array;
}

export function randn(n: number, rng: Rng, std = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.nextNormal32() * std;
  return x;
}

export function project(y: Float32Array, r: Float32Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * r[i];
  return s;
}

/** Numerical ∂L/∂x for every element of x (or the first `limit` indices drawn by stride). */
export function numericalGrad(loss: () => number, x: Float32Array, h = 1e-2, limit = Infinity): { idx: number[]; grad: number[] } {
  const idx: number[] = [];
  const stride = Math.max(1, Math.floor(x.length / Math.min(limit, x.length)));
  for (let i = 0; i < x.length && idx.length < limit; i += stride) idx.push(i);
  const grad: number[] = [];
  for (const i of idx) {
    const old = x[i];
    x[i] = old + h;
    const lp = loss();
    x[i] = old - h;
    const lm = loss();
    x[i] = old;
    grad.push((lp - lm) / (2 * h));
  }
  return { idx, grad };
}

/** Relative Frobenius error between the analytic gradient (at idx) and the numerical one. */
export function relError(analytic: ArrayLike<number>, num: { idx: number[]; grad: number[] }): number {
  let diff = 0;
  let norm = 0;
  num.idx.forEach((i, k) => {
    diff += (analytic[i] - num.grad[k]) ** 2;
    norm += num.grad[k] ** 2;
  });
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-8);
}

export { Rng };
