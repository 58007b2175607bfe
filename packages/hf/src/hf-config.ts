// config.json of a Hugging Face DeepSeek-V3 directory ↔ Octet's model config.
//
// Export writes every field DeepseekV3Config reads plus the ones DeepSeek's released config.json carries
// (scoring_func, topk_method, num_nextn_predict_layers, …). Import reads them back and refuses, each by name:
// a field it does not know, a value that changes the function in a way Octet cannot compute (YaRN or other RoPE
// scaling, softmax scoring, GQA, attention biases, another activation, tied embeddings, …). Nothing is silently
// changed; the fields that do not touch the function (token ids, cache flags, training-only aux-loss settings)
// are accepted and listed as ignored.

import { type ModelConfig, modelSchema } from "@octet/model/config";

export type HfDtype = "bf16" | "fp32" | "fp8";

/** Octet's settings that have no DeepseekV3Config field, kept under this key of config.json. */
export const OCTET_KEY = "octet";

/** Defaults for what an HF config does not say (Octet's training-only settings). */
export const IMPORT_DEFAULTS = {
  /** DeepSeek-V3's bias update speed γ (§2.1.2: 0.001 for most of training). */
  biasUpdateSpeed: 0.001,
  recompute: { rmsnorm: true, mlaUp: true },
} as const;

export function hfConfig(cfg: ModelConfig, opts: { dtype: HfDtype; ropeInterleave: boolean }): Record<string, unknown> {
  if (cfg.attention.kind !== "mla") throw new RangeError(`model.attention.kind: "${cfg.attention.kind}" cannot be written as DeepseekV3ForCausalLM`);
  const a = cfg.attention;
  const m = cfg.moe;
  const c: Record<string, unknown> = {
    architectures: ["DeepseekV3ForCausalLM"],
    model_type: "deepseek_v3",
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.dModel,
    intermediate_size: cfg.ffnHidden,
    moe_intermediate_size: m.expertHidden,
    num_hidden_layers: cfg.nLayers,
    first_k_dense_replace: cfg.nDenseLayers,
    num_attention_heads: cfg.nHeads,
    num_key_value_heads: cfg.nHeads,
    n_routed_experts: m.nRoutedExperts,
    n_shared_experts: m.nSharedExperts,
    num_experts_per_tok: m.topK,
    n_group: m.nGroup,
    topk_group: m.topkGroup,
    norm_topk_prob: m.normTopkProb,
    routed_scaling_factor: m.routedScalingFactor,
    scoring_func: "sigmoid",
    topk_method: "noaux_tc",
    moe_layer_freq: 1,
    q_lora_rank: a.qLoraRank > 0 ? a.qLoraRank : null,
    kv_lora_rank: a.kvLoraRank,
    qk_nope_head_dim: a.qkNopeHeadDim,
    qk_rope_head_dim: a.qkRopeHeadDim,
    v_head_dim: a.vHeadDim,
    hidden_act: "silu",
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: null,
    rope_interleave: opts.ropeInterleave,
    max_position_embeddings: cfg.seqLen,
    initializer_range: cfg.initStd,
    attention_bias: false,
    attention_dropout: 0,
    num_nextn_predict_layers: cfg.mtp.depth,
    tie_word_embeddings: false,
    use_cache: true,
    dtype: opts.dtype === "fp32" ? "float32" : "bfloat16",
    [OCTET_KEY]: { biasUpdateSpeed: m.biasUpdateSpeed, recompute: cfg.recompute },
  };
  if (opts.dtype === "fp8") {
    c.quantization_config = { quant_method: "fp8", fmt: "e4m3", activation_scheme: "dynamic", weight_block_size: [128, 128] };
  }
  return c;
}

export interface ParsedHfConfig {
  model: ModelConfig;
  ropeInterleave: boolean;
  /** Block-FP8 weights (quantization_config present). */
  fp8: boolean;
  /** Fields read and deliberately not used (they do not change the function), by name. */
  ignored: string[];
}

/** Fields that do not change the function the weights compute; accepted and reported. */
const IGNORED = new Set([
  "transformers_version", "_name_or_path", "torch_dtype", "dtype", "use_cache", "pad_token_id", "bos_token_id",
  "eos_token_id", "pretraining_tp", "auto_map", "aux_loss_alpha", "seq_aux", "ep_size", "output_router_logits",
  "router_aux_loss_coef", "return_dict", "output_hidden_states", "output_attentions", "chunk_size_feed_forward",
  "is_encoder_decoder", "id2label", "label2id", "tokenizer_class", "problem_type", "initializer_range",
  "max_position_embeddings", "num_nextn_predict_layers", "architectures", "model_type", OCTET_KEY,
  "quantization_config", "rope_interleave", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings",
  "attention_dropout", "mlp_layer_types", "layer_types", "head_dim", "qk_head_dim",
]);

/** The fields import reads into the model (every one must be present and valid). */
const REQUIRED = [
  "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers", "first_k_dense_replace",
  "num_attention_heads", "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "n_group", "topk_group",
  "norm_topk_prob", "routed_scaling_factor", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
  "v_head_dim", "rms_norm_eps",
] as const;

/** Fields that must hold exactly Octet's value when present (what transformers assumes when absent). */
const FIXED: Record<string, unknown> = {
  hidden_act: "silu",
  scoring_func: "sigmoid",
  topk_method: "noaux_tc",
  attention_bias: false,
  moe_layer_freq: 1,
};

function isPosInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x > 0;
}

/**
 * Octet's model config from config.json; every problem is a RangeError/TypeError naming the field.
 * `seqLen` (the training window) defaults to max_position_embeddings.
 */
export function parseHfConfig(raw: unknown, opts: { seqLen?: number } = {}): ParsedHfConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new TypeError("config.json: not a JSON object");
  const c = raw as Record<string, unknown>;
  const known = new Set<string>([...IGNORED, ...REQUIRED, ...Object.keys(FIXED), "num_key_value_heads"]);
  const unknown = Object.keys(c).filter((k) => !known.has(k));
  if (unknown.length) throw new RangeError(`config.json: unknown fields ${unknown.map((k) => JSON.stringify(k)).join(", ")}; refused rather than guessed at`);
  if (c.model_type !== "deepseek_v3") throw new RangeError(`config.json: model_type ${JSON.stringify(c.model_type)}; only "deepseek_v3" is read`);
  if (c.architectures !== undefined) {
    const arch = c.architectures;
    if (!Array.isArray(arch) || arch.length !== 1 || arch[0] !== "DeepseekV3ForCausalLM") {
      throw new RangeError(`config.json: architectures ${JSON.stringify(arch)}; only ["DeepseekV3ForCausalLM"] is read`);
    }
  }
  for (const k of REQUIRED) if (!(k in c)) throw new RangeError(`config.json: ${k} is missing`);
  for (const [k, v] of Object.entries(FIXED)) {
    if (k in c && c[k] !== v) throw new RangeError(`config.json: ${k} ${JSON.stringify(c[k])}; Octet computes only ${JSON.stringify(v)}`);
  }
  const int = (k: string, allowZero = false): number => {
    const v = c[k];
    if (!(isPosInt(v) || (allowZero && v === 0))) throw new RangeError(`config.json: ${k} ${JSON.stringify(v)} is not a ${allowZero ? "non-negative" : "positive"} integer`);
    return v as number;
  };
  const heads = int("num_attention_heads");
  if (c.num_key_value_heads !== undefined && c.num_key_value_heads !== heads) {
    throw new RangeError(`config.json: num_key_value_heads ${JSON.stringify(c.num_key_value_heads)} differs from num_attention_heads ${heads}; MLA has one key/value per head`);
  }
  if (c.tie_word_embeddings === true) throw new RangeError("config.json: tie_word_embeddings true; Octet's output head is its own tensor (export ties nothing)");
  if (c.attention_dropout !== undefined && c.attention_dropout !== 0 && c.attention_dropout !== 0.0) {
    throw new RangeError(`config.json: attention_dropout ${JSON.stringify(c.attention_dropout)}; Octet has no attention dropout`);
  }
  // RoPE: plain RoPE only (no YaRN or other scaling: it changes frequencies and the softmax scale).
  let theta: unknown = c.rope_theta;
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    const t = (c.rope_scaling as Record<string, unknown>).rope_type ?? (c.rope_scaling as Record<string, unknown>).type;
    if (t !== "default") throw new RangeError(`config.json: rope_scaling ${JSON.stringify(c.rope_scaling)}; Octet has plain RoPE only (no YaRN or other scaling, which also changes the softmax scale)`);
  }
  if (c.rope_parameters !== undefined && c.rope_parameters !== null) {
    const rp = c.rope_parameters as Record<string, unknown>;
    if (typeof rp !== "object" || Array.isArray(rp)) throw new TypeError("config.json: rope_parameters is not an object");
    const extra = Object.keys(rp).filter((k) => k !== "rope_type" && k !== "rope_theta");
    if ((rp.rope_type ?? "default") !== "default" || extra.length) {
      throw new RangeError(`config.json: rope_parameters ${JSON.stringify(rp)}; Octet has plain RoPE only (rope_type "default", rope_theta)`);
    }
    if (rp.rope_theta !== undefined) {
      if (theta !== undefined && theta !== rp.rope_theta) throw new RangeError(`config.json: rope_theta ${JSON.stringify(theta)} and rope_parameters.rope_theta ${JSON.stringify(rp.rope_theta)} differ`);
      theta = rp.rope_theta;
    }
  }
  if (theta === undefined) theta = 10000; // DeepseekV3Config's default
  if (typeof theta !== "number" || !(theta > 0)) throw new RangeError(`config.json: rope_theta ${JSON.stringify(theta)} is not a positive number`);
  const interleave = c.rope_interleave ?? true; // DeepseekV3Config's default
  if (typeof interleave !== "boolean") throw new TypeError(`config.json: rope_interleave ${JSON.stringify(interleave)} is not a boolean`);
  const qLora = c.q_lora_rank === null ? 0 : int("q_lora_rank");
  const depth = c.num_nextn_predict_layers === undefined ? 0 : (int("num_nextn_predict_layers", true));
  const maxPos = c.max_position_embeddings === undefined ? undefined : int("max_position_embeddings");
  const seqLen = opts.seqLen ?? maxPos;
  if (seqLen === undefined) throw new RangeError("config.json: max_position_embeddings is missing; give the training window (seqLen) explicitly");
  const eps = c.rms_norm_eps;
  if (typeof eps !== "number" || !(eps > 0)) throw new RangeError(`config.json: rms_norm_eps ${JSON.stringify(eps)} is not a positive number`);
  const rsf = c.routed_scaling_factor;
  if (typeof rsf !== "number" || !(rsf > 0)) throw new RangeError(`config.json: routed_scaling_factor ${JSON.stringify(rsf)} is not a positive number`);
  if (typeof c.norm_topk_prob !== "boolean") throw new TypeError(`config.json: norm_topk_prob ${JSON.stringify(c.norm_topk_prob)} is not a boolean`);
  const octet = (c[OCTET_KEY] ?? {}) as { biasUpdateSpeed?: number; recompute?: { rmsnorm: boolean; mlaUp: boolean } };
  const initStd = typeof c.initializer_range === "number" && c.initializer_range > 0 ? c.initializer_range : 0.02;
  const model = {
    vocabSize: int("vocab_size"),
    seqLen,
    dModel: int("hidden_size"),
    nLayers: int("num_hidden_layers"),
    nDenseLayers: int("first_k_dense_replace", true),
    nHeads: heads,
    attention: { kind: "mla", qLoraRank: qLora, kvLoraRank: int("kv_lora_rank"), qkNopeHeadDim: int("qk_nope_head_dim"), qkRopeHeadDim: int("qk_rope_head_dim"), vHeadDim: int("v_head_dim") },
    ffnHidden: int("intermediate_size"),
    moe: {
      nRoutedExperts: int("n_routed_experts"),
      nSharedExperts: int("n_shared_experts"),
      expertHidden: int("moe_intermediate_size"),
      topK: int("num_experts_per_tok"),
      nGroup: int("n_group"),
      topkGroup: int("topk_group"),
      routedScalingFactor: rsf,
      normTopkProb: c.norm_topk_prob,
      biasUpdateSpeed: octet.biasUpdateSpeed ?? IMPORT_DEFAULTS.biasUpdateSpeed,
    },
    normEps: eps,
    ropeTheta: theta,
    initStd,
    recompute: octet.recompute ?? { ...IMPORT_DEFAULTS.recompute },
    mtp: { depth },
  };
  const parsed = modelSchema.safeParse(model);
  if (!parsed.success) {
    throw new RangeError(`config.json: not an Octet model: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const m = parsed.data;
  if (m.attention.kind === "mla") {
    // Derived fields transformers keeps: the rotary dimension and the whole query/key head.
    const derived: [string, number][] = [["head_dim", m.attention.qkRopeHeadDim], ["qk_head_dim", m.attention.qkNopeHeadDim + m.attention.qkRopeHeadDim]];
    for (const [k, v] of derived) if (c[k] !== undefined && c[k] !== v) throw new RangeError(`config.json: ${k} ${JSON.stringify(c[k])}; DeepSeek-V3 derives ${v} from the head dimensions`);
  }
  // Per-layer kinds, where a config lists them, must be the ones the other fields imply.
  const kinds: [string, (i: number) => string][] = [["mlp_layer_types", (i) => (i < m.nDenseLayers ? "dense" : "sparse")], ["layer_types", () => "full_attention"]];
  for (const [k, want] of kinds) {
    const v = c[k];
    if (v === undefined || v === null) continue;
    const expected = Array.from({ length: m.nLayers }, (_, i) => want(i));
    if (!Array.isArray(v) || v.length !== expected.length || v.some((x, i) => x !== expected[i])) {
      throw new RangeError(`config.json: ${k} ${JSON.stringify(v)}; Octet's layers are ${JSON.stringify(expected)}`);
    }
  }
  if (m.nDenseLayers > m.nLayers) throw new RangeError(`config.json: first_k_dense_replace ${m.nDenseLayers} exceeds num_hidden_layers ${m.nLayers}`);
  if (m.moe.nRoutedExperts % m.moe.nGroup !== 0) throw new RangeError(`config.json: n_routed_experts ${m.moe.nRoutedExperts} is not divisible by n_group ${m.moe.nGroup}`);
  if (m.moe.topkGroup > m.moe.nGroup) throw new RangeError(`config.json: topk_group ${m.moe.topkGroup} exceeds n_group ${m.moe.nGroup}`);
  if (m.attention.kind === "mla" && m.attention.qkRopeHeadDim % 2 !== 0) throw new RangeError(`config.json: qk_rope_head_dim ${m.attention.qkRopeHeadDim} is odd (RoPE rotates pairs)`);
  let quant = false;
  if (c.quantization_config !== undefined && c.quantization_config !== null) {
    const q = c.quantization_config as Record<string, unknown>;
    const bs = q.weight_block_size;
    if (q.quant_method !== "fp8" || (q.fmt !== undefined && q.fmt !== "e4m3") || !Array.isArray(bs) || bs.length !== 2 || !bs.every(isPosInt)) {
      throw new RangeError(`config.json: quantization_config ${JSON.stringify(q)}; only block FP8 (quant_method "fp8", fmt "e4m3", weight_block_size [r, c]) is read`);
    }
    quant = true;
  }
  const ignored = Object.keys(c).filter((k) => IGNORED.has(k) && ![
    "architectures", "model_type", "rope_interleave", "rope_theta", "rope_scaling", "rope_parameters", "quantization_config",
    "max_position_embeddings", "num_nextn_predict_layers", "initializer_range", "tie_word_embeddings", "attention_dropout", OCTET_KEY,
    "mlp_layer_types", "layer_types", "head_dim", "qk_head_dim",
  ].includes(k));
  return { model: m, ropeInterleave: interleave, fp8: quant, ignored };
}
