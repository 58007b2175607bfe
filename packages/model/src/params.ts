// The one place where parameters live: named FP32 tensors (the master weights) with their FP32 gradients.
// The names are the ones state export uses ("layers.1.attn.wq", …), so a checkpoint is readable by name.

import type { Rng } from "./rng.js";

export interface Parameter {
  readonly name: string;
  readonly shape: number[];
  readonly data: Float32Array;
  readonly grad: Float32Array;
  /** Whether AdamW's weight decay applies (matrices yes; norms, biases no). */
  readonly decay: boolean;
}

export type Init = { kind: "normal"; std: number } | { kind: "ones" } | { kind: "zeros" };

export class ParameterStore {
  private readonly byName = new Map<string, Parameter>();

  constructor(private readonly rng: Rng) {}

  /** Create a parameter, drawing its initial values from the store's RNG in creation order. */
  create(name: string, shape: number[], init: Init, decay = shape.length > 1): Parameter {
    if (this.byName.has(name)) throw new Error(`parameter ${name} already exists`);
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (init.kind === "normal") for (let i = 0; i < size; i++) data[i] = this.rng.nextNormal32() * init.std;
    else if (init.kind === "ones") data.fill(1);
    const p: Parameter = { name, shape, data, grad: new Float32Array(size), decay };
    this.byName.set(name, p);
    return p;
  }

  /**
   * Register a tensor that another package allocated (the MTP modules of @octet/mtp own their arrays):
   * the store, the optimizer and state export then see it like any other parameter, by name.
   */
  adopt(name: string, shape: number[], data: Float32Array, grad: Float32Array, decay = shape.length > 1): Parameter {
    if (this.byName.has(name)) throw new Error(`parameter ${name} already exists`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size || grad.length !== size) {
      throw new RangeError(`parameter ${name}: shape [${shape}] needs ${size} elements, data has ${data.length} and grad ${grad.length}`);
    }
    const p: Parameter = { name, shape, data, grad, decay };
    this.byName.set(name, p);
    return p;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): Parameter {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter ${name}`);
    return p;
  }

  all(): Parameter[] {
    return [...this.byName.values()];
  }

  count(): number {
    let n = 0;
    for (const p of this.byName.values()) n += p.data.length;
    return n;
  }

  zeroGrads(): void {
    for (const p of this.byName.values()) p.grad.fill(0);
  }
}
