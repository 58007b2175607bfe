// Assignment of a model's tensors to several keepers (for a model whose EMA outgrows one machine's memory).
// A pure function: the trainer-side ShardedEmaClient and anyone inspecting the keepers compute it from the
// same tensor list and get the same answer, whatever order the list is given in.

import type { TensorSpec } from "./types.js";

export type AssignStrategy = "greedy" | "hash";

export interface Assignment {
  /** keeper index → the tensors it owns, in name order. */
  readonly byKeeper: TensorSpec[][];
  /** tensor name → keeper index. */
  readonly owner: Map<string, number>;
  /** keeper index → fp32 EMA bytes it holds. */
  readonly emaBytes: number[];
}

/** 32-bit FNV-1a over the UTF-16 code units of s. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Assigns tensors to `keepers` keepers.
 * - "greedy" (default): size-balanced. Tensors sorted by element count descending (ties by name, ascending),
 *   each given to the keeper with the fewest EMA bytes so far (ties: lowest index). The classic LPT rule: the
 *   largest keeper holds at most 4/3 of the optimum. Adding a tensor may move others.
 * - "hash": keeper = fnv1a(name) mod keepers. Stable under adding and removing tensors, not balanced.
 */
export function assignTensors(
  tensors: readonly TensorSpec[],
  keepers: number,
  strategy: AssignStrategy = "greedy",
): Assignment {
  if (!Number.isSafeInteger(keepers) || keepers < 1) throw new RangeError(`keepers must be an integer >= 1, got ${keepers}`);
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new RangeError(`duplicate tensor name ${JSON.stringify(t.name)}`);
    seen.add(t.name);
  }
  const byKeeper: TensorSpec[][] = Array.from({ length: keepers }, () => []);
  const emaBytes = new Array<number>(keepers).fill(0);
  const owner = new Map<string, number>();
  const byName = (a: TensorSpec, b: TensorSpec) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  if (strategy === "hash") {
    for (const t of tensors) {
      const k = fnv1a(t.name) % keepers;
      owner.set(t.name, k);
      byKeeper[k].push(t);
      emaBytes[k] += numel(t.shape) * 4;
    }
  } else if (strategy === "greedy") {
    const sorted = [...tensors].sort((a, b) => numel(b.shape) - numel(a.shape) || byName(a, b));
    for (const t of sorted) {
      let best = 0;
      for (let k = 1; k < keepers; k++) if (emaBytes[k] < emaBytes[best]) best = k;
      owner.set(t.name, best);
      byKeeper[best].push(t);
      emaBytes[best] += numel(t.shape) * 4;
    }
  } else {
    throw new RangeError(`unknown assignment strategy ${JSON.stringify(strategy)} (greedy, hash)`);
  }
  for (const list of byKeeper) list.sort(byName);
  return { byKeeper, owner, emaBytes };
}
