// Public surface of @octet/mtp.
export type { MtpBlock, MtpKernels, NamedParam, SeqShape, SharedEmbedding, SharedHead } from "./interfaces.js";
export { cpuMtpKernels } from "./kernels.js";
export {
  MtpModule,
  MultiTokenPrediction,
  normalStream,
  type MtpModuleOptions,
  type MultiTokenPredictionOptions,
  type MtpBatch,
  type MtpForward,
  type MtpCache,
} from "./mtp.js";
export {
  RMS_NORM_EPS,
  rmsNormForward,
  rmsNormBackward,
  linearForward,
  linearBackward,
  softmaxCrossEntropy,
  transpose,
  type RmsNormCache,
} from "./ops.js";
export { TableEmbedding, LinearHead } from "./reference.js";
export { lambdaAt, parseLambdaSchedule, deepseekV3LambdaSchedule, lambdaScheduleSchema, type LambdaSchedule } from "./schedule.js";
export {
  acceptanceRate,
  speculativeDecode,
  type SpeculativeModels,
  type AcceptanceOptions,
  type AcceptanceReport,
  type SpeculativeDecodeOptions,
  type SpeculativeDecodeReport,
  type TokenSeq,
} from "./speculative.js";
