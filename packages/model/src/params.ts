// The one place where parameters live: named FP32 tensors (the master weights) with their FP32 gradients, both
// the backend's tensors. The names are the ones state export uses ("layers.1.attn.wq", …), so a checkpoint is
// readable by name.

import type { Backend, TensorHandle } from "./backend/backend.js";
import type { Rng } from "./rng.js";

export interface Parameter {
  readonly name: string;
  readonly shape: readonly number[];
  /** The weights, F32 (a view of a larger tensor for stacked parameters such as a MoE layer's experts). */
  readonly value: TensorHandle;
  /** The gradient accumulator, F32, the same shape. */
  readonly grad: TensorHandle;
  /** Whether AdamW's weight decay applies (matrices yes; norms, biases no). */
  readonly decay: boolean;
}

export type Init = { kind: "normal"; std: number } | { kind: "ones" } | { kind: "zeros" };

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export class ParameterStore {
  private readonly byName = new Map<string, Parameter>();

  constructor(
    private readonly rng: Rng,
    readonly be: Backend,
  ) {}

  /**
   * Create a parameter, drawing its initial values from the store's RNG in creation order. `storage` places it
   * in tensors allocated already (views of one stacked tensor); by default the backend allocates them.
   */
  create(name: string, shape: readonly number[], init: Init, decay = shape.length > 1, storage?: { value: TensorHandle; grad: TensorHandle }): Parameter {
    if (this.byName.has(name)) throw new Error(`parameter ${name} already exists`);
    const size = sizeOf(shape);
    const data = new Float32Array(size);
    if (init.kind === "normal") for (let i = 0; i < size; i++) data[i] = this.rng.nextNormal32() * init.std;
    else if (init.kind === "ones") data.fill(1);
    let value: TensorHandle;
    let grad: TensorHandle;
    if (storage) {
      for (const [what, t] of [["value", storage.value], ["grad", storage.grad]] as const) {
        if (t.dtype !== "F32" || !sameShape(t.shape, shape)) throw new RangeError(`parameter ${name}: its ${what} is ${t.dtype} [${t.shape.join(", ")}], not F32 [${shape.join(", ")}]`);
      }
      ({ value, grad } = storage);
      this.be.copyFromHost(value, data);
      this.be.zero(grad);
    } else {
      value = this.be.fromHost(data, shape);
      grad = this.be.zeros(shape);
    }
    const p: Parameter = { name, shape: [...shape], value, grad, decay };
    this.byName.set(name, p);
    return p;
  }

  /**
   * Register a tensor that another package allocated (the MTP modules of @octet/mtp own theirs, made with the
   * backend's kernels): the store, the optimizer and state export then see it like any other parameter, by name.
   */
  adopt(name: string, value: TensorHandle, grad: TensorHandle, decay = value.shape.length > 1): Parameter {
    if (this.byName.has(name)) throw new Error(`parameter ${name} already exists`);
    if (value.dtype !== "F32" || grad.dtype !== "F32" || !sameShape(value.shape, grad.shape)) {
      throw new RangeError(`parameter ${name}: value ${value.dtype} [${value.shape.join(", ")}] and grad ${grad.dtype} [${grad.shape.join(", ")}] must be F32 tensors of one shape`);
    }
    const p: Parameter = { name, shape: [...value.shape], value, grad, decay };
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
    for (const p of this.byName.values()) n += sizeOf(p.shape);
    return n;
  }

  zeroGrads(): void {
    for (const p of this.byName.values()) this.be.zero(p.grad);
  }
}
