// Weights alone, from a state file into a model: what `train --init-from` and the logits CLI load. A file is an
// Octet training state ("octet.model/v1": parameters, moments, scalers, …; only the weights are taken) or a
// weights-only file ("octet.weights/v1", as @octet/hf's octet-import writes): every parameter "param/<name>" (F32)
// and every MoE layer's auxiliary-loss-free bias "router/<i>/bias". The optimizer, step and data position stay
// fresh. Every mismatch is a RangeError naming the tensor.

import { AuxFreeBalancer } from "@octet/router";
import { type ModelConfig, modelSchema } from "./config.js";
import type { Transformer } from "./model.js";
import type { TrainingState } from "./state.js";

export const WEIGHTS_KIND = "octet.weights/v1";

/** The model config a state was made for: a training state's config.model, or a weights file's model. */
export function modelConfigOfState(state: TrainingState, where = "state"): ModelConfig {
  const meta = state.meta;
  let raw: unknown;
  if (meta.kind === "octet.model/v1") raw = (meta.config as { model?: unknown } | undefined)?.model;
  else if (meta.kind === WEIGHTS_KIND) raw = meta.model;
  else throw new RangeError(`${where}: not an Octet state or weights file (metadata kind ${JSON.stringify(meta.kind)})`);
  const parsed = modelSchema.safeParse(raw);
  if (!parsed.success) throw new RangeError(`${where}: invalid model config: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

/** Copies the state's parameters and router biases into `model` (balancer steps start at 0). */
export function loadWeights(model: Transformer, state: TrainingState, where = "state"): void {
  const get = (name: string, shape: readonly number[]) => {
    const t = state.tensors.get(name);
    if (!t) throw new RangeError(`${where}: tensor ${JSON.stringify(name)} is missing`);
    if (t.dtype !== "F32") throw new RangeError(`${where}: tensor ${JSON.stringify(name)} is ${t.dtype}, not F32`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new RangeError(`${where}: tensor ${JSON.stringify(name)} is [${t.shape.join(", ")}], the model has [${shape.join(", ")}]`);
    }
    return t.data as Float32Array;
  };
  const expected = new Set<string>();
  for (const p of model.store.all()) {
    expected.add(`param/${p.name}`);
    model.be.copyFromHost(p.value, get(`param/${p.name}`, p.shape));
  }
  model.moeLayers().forEach((moe, i) => {
    const bias = get(`router/${i}/bias`, [moe.bias.shape[0]]);
    moe.balancer = AuxFreeBalancer.fromState({ experts: bias.length, step: 0, gamma: moe.balancer.gamma, bias: Array.from(bias) });
  });
  const extra = [...state.tensors.keys()].filter((n) => n.startsWith("param/") && !expected.has(n));
  if (extra.length) throw new RangeError(`${where}: tensor ${JSON.stringify(extra[0])} is not a parameter of this model${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ""}`);
}
