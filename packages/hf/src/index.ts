// @octet/hf — Octet checkpoints to and from the Hugging Face DeepSeek-V3 format (DeepseekV3ForCausalLM):
// exportToHf (octet-export) and importFromHf (octet-import), streamed tensor by tensor.

export { exportToHf, type ExportOptions, type ExportResult, FP8_BLOCK, INDEX_FILE } from "./export.js";
export { importFromHf, type ImportOptions, type ImportResult } from "./import.js";
export { hfConfig, parseHfConfig, type HfDtype, type ParsedHfConfig, OCTET_KEY, IMPORT_DEFAULTS } from "./hf-config.js";
export { tensorPlan, checkExportable, permuteRows, type PlanEntry, type RowOrder } from "./names.js";
export { openOctetSource, modelOfMeta, type OctetSource, WEIGHTS_KIND, STATE_META_KEY, CHECKPOINT_META_KEY } from "./source.js";
