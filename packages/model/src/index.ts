// @octet/model — a DeepSeek-V3-style MoE transformer with explicit forward/backward, the FP8 recipe,
// AdamW, and kernels behind a backend interface (CPU now).

export type { Backend, AttentionShape, AdamWHyper, Moment } from "./backend/backend.js";
export { CpuBackend, type KernelTimes } from "./backend/cpu.js";
export {
  type Config,
  type ModelConfig,
  type TrainConfig,
  type DataConfig,
  type RecipeName,
  RECIPE_NAMES,
  FP8_BLOCK,
  PRESETS,
  configSchema,
  validateConfig,
  presetConfig,
} from "./config.js";
export { Rng } from "./rng.js";
export { ParameterStore, type Parameter, type Init } from "./params.js";
export { makePrecision, type Precision, type LinearGemms } from "./precision.js";
export { Linear } from "./layers/linear.js";
export { RMSNorm } from "./layers/rmsnorm.js";
export { SwiGLU } from "./layers/ffn.js";
export { MultiHeadAttention, MultiHeadLatentAttention, type AttentionLayer } from "./layers/attention.js";
export { MoE } from "./layers/moe.js";
export { Transformer } from "./model.js";
