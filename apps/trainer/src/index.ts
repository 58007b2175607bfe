// @octet/trainer — the BullMQ worker that runs Octet training jobs (also the library behind `octet-trainer`).

export { TrainerWorker, type TrainerWorkerOptions } from "./worker.js";
export { JobRun, type JobEnv, type JobOutcome, type StopReason, type CheckpointRef } from "./job.js";
export { SlotPool } from "./slots.js";
export { detectGpus, parseNvidiaSmi, decideOffer, NVIDIA_SMI_ARGS, type GpuInfo, type Offer } from "./gpus.js";
export { pingRedis, createRedis, redactUrl } from "./redis.js";
export {
  META_MODEL,
  META_TRAINER,
  META_EMA,
  EMA_PREFIX,
  CURVE_PREFIX,
  curveToTensors,
  curveFromTensors,
  type CurveArrays,
  stateToTensors,
  tensorsToState,
  emaToTensors,
  emaFromTensors,
  parseTrainerRecord,
  type TrainerRecord,
} from "./state.js";
export { createLogger, parseLogLevel, type Logger, type LogLevel } from "./log.js";
