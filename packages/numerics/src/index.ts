// @octet/numerics — FP8 and BF16 formats, fine-grained quantization, block-scaled FP8 GEMM, scaling recipes.

export {
  type Fp8Format,
  type Fp8FormatInfo,
  type EncodeFp8Options,
  FP8_FORMATS,
  FP8_DECODE_TABLES,
  fp8Info,
  encodeFp8,
  decodeFp8,
  encodeBf16,
  decodeBf16,
  roundToBf16InPlace,
} from "./formats.js";

export {
  type Quantized,
  type QuantizeOptions,
  type NonFiniteReport,
  type ScaleKind,
  type Block,
  type Shape2,
  AMAX_FLOOR,
  quantizeReference,
  dequantize,
  gridShape,
  scaleFromAmax,
  ceilToPow2,
} from "./quantize.js";

export {
  type Accumulation,
  type ScaledMatmulOptions,
  scaledMatmulReference,
  matmulFloat64,
  frobeniusRelativeError,
  maxRelativeError,
} from "./gemm.js";

export { type BackendInfo, type QuantizedBoth, quantize, quantizeBoth, scaledMatmul, matmulF32, matmulBf16, numericsBackend } from "./backend.js";

export {
  type ScalingRecipe,
  type ScalingRecipeInput,
  type OperandScaling,
  type Granularity,
  type DelayedScalingConfig,
  RECIPES,
  validateRecipe,
  blockFor,
  quantizeCurrent,
  DelayedScaler,
} from "./recipes.js";

export {
  type DType,
  type DTypeArrays,
  type DTypeInfo,
  type TypedArrayFor,
  type TypedArrayConstructorOf,
  type TensorSpec,
  type Tensor,
  type TypedTensor,
  DTYPE_INFO,
  DTYPES,
  DTYPE_SIZES,
  isDType,
  checkDType,
  dtypeSize,
  numElements,
  tensorByteLength,
  bytesOf,
  typedArrayOf,
} from "./safetensors-dtypes.js";

export {
  type TensorEntry,
  type SafetensorsHeader,
  MAX_HEADER_BYTES,
  METADATA_KEY,
  encodeHeader,
  parseHeader,
  parseHeaderJson,
  readHeaderLength,
  readHeaderFromFile,
  serialize,
  deserialize,
} from "./safetensors.js";

export { type AccumulationStudyRow, runAccumulationStudy } from "./study.js";

export { numericsHandlers, startNumericsServer, type NumericsServiceOptions } from "./service/server.js";

export {
  type DeviceDtype,
  type CudaStatus,
  type DeviceQuantizeOptions,
  type DeviceQuantizedBoth,
  type DeviceMatmulOptions,
  type GroupedMatmulOptions,
  type GemmImpl,
  type GroupedImpl,
  type GemmOut,
  cudaStatus,
  cudaAddonPath,
  DeviceTensor,
  DeviceQuantized,
  DeviceExperts,
  CudaGraph,
  toDevice,
  emptyDevice,
  toDeviceQuantized,
  quantizeDevice,
  quantizeBothDevice,
  dequantizeDevice,
  scaledMatmulDevice,
  stackExpertsDevice,
  groupedScaledMatmulDevice,
  matmulBf16Device,
  gemmChoices,
  captureGraph,
  timeDevice,
  synchronizeDevice,
  fillRandomDevice,
  countNaNDevice,
  copyDevice,
  convertDevice,
  castSelfTestDevice,
} from "./cuda.js";
