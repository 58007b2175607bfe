// Public surface of the data module of @octet/model.
export { type Dataset, loadDataset, syntheticDataset } from "./dataset.js";
export { syntheticCorpus, type SyntheticCorpus, type SyntheticCorpusOptions } from "./synthetic.js";
export {
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
} from "./files.js";
export {
  BatchLoader,
  evalBatches,
  evalWindowCount,
  type Batch,
  type BatchLoaderOptions,
  type BatchLoaderPosition,
  type EvalBatchOptions,
} from "./batches.js";
