// @octet/model — a DeepSeek-V3-style MoE transformer with explicit forward/backward, the FP8 recipe,
// AdamW, and kernels behind a backend interface (CPU now).

export type {
  Backend,
  TensorHandle,
  HostArray,
  AttentionShape,
  AdamWHyper,
  QuantizedTensor,
  RouteOptions,
  Routing,
  GroupedGemms,
  GemmState,
} from "./backend/backend.js";
export { CpuBackend, type KernelTimes } from "./backend/cpu.js";
export {
  type Config,
  type ModelConfig,
  type TrainConfig,
  type DataConfig,
  type DataConfigInput,
  type RecipeName,
  RECIPE_NAMES,
  FP8_BLOCK,
  TEXT_VOCAB_SIZE,
  PRESETS,
  configSchema,
  dataSchema,
  validateConfig,
  presetConfig,
  mtpLambdaSchedule,
  MTP_LAMBDA_SWITCH_FRACTION,
} from "./config.js";
export { Rng, type RngState } from "./rng.js";
export { ParameterStore, type Parameter, type Init } from "./params.js";
export { makePrecision, type Precision, type LinearGemms } from "./precision.js";
export { Linear, type LinearState } from "./layers/linear.js";
export { RMSNorm } from "./layers/rmsnorm.js";
export { SwiGLU, RoutedExperts, ExpertLinears } from "./layers/ffn.js";
export { MultiHeadAttention, MultiHeadLatentAttention, type AttentionLayer } from "./layers/attention.js";
export { MoE } from "./layers/moe.js";
export { Transformer, Block, type ForwardResult } from "./model.js";
export { AdamW, clipGradNorm, learningRate } from "./optim.js";
export { Trainer, type StepReport, type TrainerOptions, type TrainerParameter } from "./trainer.js";
export { trainLoop, type TrainLoopOptions, type TrainLoopResult, type Evaluation } from "./loop.js";
export { runTraining, backendFor, type Device, type RunOptions, type RunSummary } from "./run.js";
export { checkFitsDevice, modelFlopsPerStep, parameterCount, trainingMemoryEstimate, type MemoryEstimate, type ParameterCount } from "./size.js";
export { encodeSafetensors, decodeSafetensors, saveState, loadState, stateTensor, MODEL_DTYPES, type NamedTensor, type TrainingState, type TensorDtype } from "./state.js";
// The data module: loadDataset (a config's data), the synthetic corpus, text and llm.c shard loaders, BatchLoader.
export {
  type Dataset,
  loadDataset,
  syntheticDataset,
  syntheticCorpus,
  type SyntheticCorpus,
  type SyntheticCorpusOptions,
  loadTextFile,
  splitTrainVal,
  encodeBytes,
  decodeBytes,
  loadLlmcShard,
  parseLlmcShard,
  encodeLlmcShard,
  writeLlmcShard,
  loadLlmcDataset,
  LLMC_MAGIC,
  LLMC_VERSION,
  LLMC_HEADER_BYTES,
  type TokenDataset,
  type SplitOptions,
  type LlmcDatasetOptions,
  BatchLoader,
  evalBatches,
  evalWindowCount,
  type Batch,
  type BatchLoaderOptions,
  type BatchLoaderPosition,
  type EvalBatchOptions,
} from "./data/index.js";
export { measureAcceptance, speculativeModels, type AcceptanceMeasurement } from "./speculative.js";
export { loadWeights, modelConfigOfState, WEIGHTS_KIND } from "./weights.js";
