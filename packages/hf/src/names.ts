// Which Octet tensor is which Hugging Face DeepSeek-V3 tensor: one plan, the same for export and import.
//
// Octet names parameters "param/<name>" (packages/model: params.ts, model.ts, layers/*) and keeps each MoE
// layer's auxiliary-loss-free bias as "router/<i>/bias" (i over the MoE layers: the main blocks' in order, then
// the MTP blocks'). The Hugging Face names are transformers' DeepseekV3ForCausalLM's, with the MTP modules as
// DeepSeek publishes them: layer nLayers + k − 1 holds module k (enorm, hnorm, eh_proj, shared_head.norm,
// shared_head.head, embed_tokens, and that layer's own attention and MLP). Octet's MTP modules share the main
// model's embedding, final norm and head, so those three HF tensors are copies of the main ones.

import type { ModelConfig } from "@octet/model/config";

/** How an Octet tensor's rows are reordered on the way to HF (and back). */
export type RowOrder =
  | { kind: "none" }
  /** Per head of `stride` rows, the rope rows [offset, offset + dim) go from halves to interleaved order. */
  | { kind: "rope"; heads: number; stride: number; offset: number; dim: number };

export interface PlanEntry {
  /** The Hugging Face tensor name. */
  hf: string;
  /** The Octet state tensor it comes from ("param/…" or "router/<i>/bias"). */
  octet: string;
  shape: number[];
  /** Permuted under rope_interleave (q_b_proj / q_proj, kv_a_proj_with_mqa). */
  rope: RowOrder;
  /**
   * Stored in FP8 (E4M3, 128×128 blocks, weight_scale_inv) by an FP8 export, as DeepSeek-V3's released checkpoint
   * stores it: the Linear weights of attention, dense MLPs, shared and routed experts. Embeddings, norms, the gate
   * and its bias, lm_head and the MTP module's own enorm/hnorm/eh_proj/shared_head stay unquantized.
   */
  fp8: boolean;
  /** A copy of a tensor that appears earlier in the plan (the MTP module's shared embedding, norm and head). */
  copyOf?: string;
}

/** Why a model cannot be written as DeepseekV3ForCausalLM: a RangeError naming the config field. */
export function checkExportable(cfg: ModelConfig): void {
  const no = (field: string, why: string) => {
    throw new RangeError(`model.${field}: ${why}; DeepseekV3ForCausalLM cannot represent it, so it is not exported`);
  };
  if (cfg.attention.kind !== "mla") no("attention.kind", `"${cfg.attention.kind}" (DeepSeek-V3 uses multi-head latent attention, "mla")`);
  if (cfg.moe.nSharedExperts === 0) no("moe.nSharedExperts", "0 (transformers' DeepseekV3MoE always has shared experts)");
  if (cfg.mtp.depth > 0 && cfg.nDenseLayers >= cfg.nLayers) {
    no("mtp.depth", `${cfg.mtp.depth} with every block dense (Octet's MTP block is then dense; DeepSeek's MTP layer ${cfg.nLayers} ≥ first_k_dense_replace is MoE)`);
  }
}

/** Rope rows of a query projection [H·(dn+dr), in] and of kv_a_proj_with_mqa [kvr+dr, C]. */
function ropeOf(cfg: ModelConfig, which: "q" | "kv", interleave: boolean): RowOrder {
  if (!interleave || cfg.attention.kind !== "mla") return { kind: "none" };
  const a = cfg.attention;
  return which === "q"
    ? { kind: "rope", heads: cfg.nHeads, stride: a.qkNopeHeadDim + a.qkRopeHeadDim, offset: a.qkNopeHeadDim, dim: a.qkRopeHeadDim }
    : { kind: "rope", heads: 1, stride: a.kvLoraRank + a.qkRopeHeadDim, offset: a.kvLoraRank, dim: a.qkRopeHeadDim };
}

/** Every HF tensor of a model, in the order an export writes them, with its Octet source. */
export function tensorPlan(cfg: ModelConfig, opts: { ropeInterleave: boolean }): PlanEntry[] {
  checkExportable(cfg);
  if (cfg.attention.kind !== "mla") throw new Error("unreachable");
  const a = cfg.attention;
  const C = cfg.dModel;
  const H = cfg.nHeads;
  const m = cfg.moe;
  const out: PlanEntry[] = [];
  const add = (hf: string, octet: string, shape: number[], fp8: boolean, rope: RowOrder = { kind: "none" }) => out.push({ hf, octet: `param/${octet}`, shape, fp8, rope });
  let moeIndex = 0;
  const layer = (hfPrefix: string, octetPrefix: string, moe: boolean) => {
    const at = `${octetPrefix}.attn`;
    add(`${hfPrefix}.input_layernorm.weight`, `${octetPrefix}.attn_norm.weight`, [C], false);
    if (a.qLoraRank > 0) {
      add(`${hfPrefix}.self_attn.q_a_proj.weight`, `${at}.wq_a.weight`, [a.qLoraRank, C], true);
      add(`${hfPrefix}.self_attn.q_a_layernorm.weight`, `${at}.q_norm.weight`, [a.qLoraRank], false);
      add(`${hfPrefix}.self_attn.q_b_proj.weight`, `${at}.wq_b.weight`, [H * (a.qkNopeHeadDim + a.qkRopeHeadDim), a.qLoraRank], true, ropeOf(cfg, "q", opts.ropeInterleave));
    } else {
      add(`${hfPrefix}.self_attn.q_proj.weight`, `${at}.wq.weight`, [H * (a.qkNopeHeadDim + a.qkRopeHeadDim), C], true, ropeOf(cfg, "q", opts.ropeInterleave));
    }
    add(`${hfPrefix}.self_attn.kv_a_proj_with_mqa.weight`, `${at}.wkv_a.weight`, [a.kvLoraRank + a.qkRopeHeadDim, C], true, ropeOf(cfg, "kv", opts.ropeInterleave));
    add(`${hfPrefix}.self_attn.kv_a_layernorm.weight`, `${at}.kv_norm.weight`, [a.kvLoraRank], false);
    add(`${hfPrefix}.self_attn.kv_b_proj.weight`, `${at}.wkv_b.weight`, [H * (a.qkNopeHeadDim + a.vHeadDim), a.kvLoraRank], true);
    add(`${hfPrefix}.self_attn.o_proj.weight`, `${at}.wo.weight`, [C, H * a.vHeadDim], true);
    add(`${hfPrefix}.post_attention_layernorm.weight`, `${octetPrefix}.ffn_norm.weight`, [C], false);
    const mlp = `${hfPrefix}.mlp`;
    if (!moe) {
      const f = `${octetPrefix}.ffn`;
      add(`${mlp}.gate_proj.weight`, `${f}.w1.weight`, [cfg.ffnHidden, C], true);
      add(`${mlp}.up_proj.weight`, `${f}.w3.weight`, [cfg.ffnHidden, C], true);
      add(`${mlp}.down_proj.weight`, `${f}.w2.weight`, [C, cfg.ffnHidden], true);
      return;
    }
    const mo = `${octetPrefix}.moe`;
    const I = m.expertHidden;
    const S = m.nSharedExperts * I;
    add(`${mlp}.gate.weight`, `${mo}.gate.weight`, [m.nRoutedExperts, C], false);
    out.push({ hf: `${mlp}.gate.e_score_correction_bias`, octet: `router/${moeIndex++}/bias`, shape: [m.nRoutedExperts], fp8: false, rope: { kind: "none" } });
    add(`${mlp}.shared_experts.gate_proj.weight`, `${mo}.shared.w1.weight`, [S, C], true);
    add(`${mlp}.shared_experts.up_proj.weight`, `${mo}.shared.w3.weight`, [S, C], true);
    add(`${mlp}.shared_experts.down_proj.weight`, `${mo}.shared.w2.weight`, [C, S], true);
    for (let e = 0; e < m.nRoutedExperts; e++) {
      add(`${mlp}.experts.${e}.gate_proj.weight`, `${mo}.experts.${e}.w1.weight`, [I, C], true);
      add(`${mlp}.experts.${e}.up_proj.weight`, `${mo}.experts.${e}.w3.weight`, [I, C], true);
      add(`${mlp}.experts.${e}.down_proj.weight`, `${mo}.experts.${e}.w2.weight`, [C, I], true);
    }
  };
  add("model.embed_tokens.weight", "embed.weight", [cfg.vocabSize, C], false);
  for (let i = 0; i < cfg.nLayers; i++) layer(`model.layers.${i}`, `layers.${i}`, i >= cfg.nDenseLayers);
  add("model.norm.weight", "norm.weight", [C], false);
  add("lm_head.weight", "head.weight", [cfg.vocabSize, C], false);
  for (let k = 1; k <= cfg.mtp.depth; k++) {
    const p = `model.layers.${cfg.nLayers + k - 1}`;
    const copy = (hf: string, of: string, octet: string, shape: number[]) => out.push({ hf, octet: `param/${octet}`, shape, fp8: false, rope: { kind: "none" }, copyOf: of });
    copy(`${p}.embed_tokens.weight`, "model.embed_tokens.weight", "embed.weight", [cfg.vocabSize, C]);
    add(`${p}.enorm.weight`, `mtp.${k}.enorm.weight`, [C], false);
    add(`${p}.hnorm.weight`, `mtp.${k}.hnorm.weight`, [C], false);
    add(`${p}.eh_proj.weight`, `mtp.${k}.eh_proj.weight`, [C, 2 * C], false);
    layer(p, `mtp.${k}.block`, true);
    copy(`${p}.shared_head.norm.weight`, "model.norm.weight", "norm.weight", [C]);
    copy(`${p}.shared_head.head.weight`, "lm_head.weight", "head.weight", [cfg.vocabSize, C]);
  }
  return out;
}

/**
 * Rows of a [rows, cols] matrix reordered: rope rows of each head from Octet's halves order (x_0 … x_{d/2−1},
 * y_0 … y_{d/2−1}: Octet rotates (x_i, y_i)) to the interleaved order (x_0, y_0, x_1, y_1, …) that DeepSeek's
 * checkpoints and transformers' rope_interleave expect; `inverse` goes back. Other rows stay in place.
 */
export function permuteRows(data: Float32Array, cols: number, order: RowOrder, inverse = false): Float32Array {
  if (order.kind === "none") return data;
  const out = data.slice();
  const half = order.dim / 2;
  for (let h = 0; h < order.heads; h++) {
    const base = h * order.stride + order.offset;
    for (let i = 0; i < half; i++) {
      for (const [halves, interleaved] of [[i, 2 * i], [half + i, 2 * i + 1]]) {
        const [from, to] = inverse ? [base + interleaved, base + halves] : [base + halves, base + interleaved];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}
