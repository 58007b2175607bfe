// @octet/numerics — FP8 and BF16 formats, fine-grained quantization, block-scaled FP8 GEMM, scaling recipes.
//
// The root is the CPU library only: the gRPC server is @octet/numerics/service and the CUDA backend
// @octet/numerics/cuda, so that importing the library (as the model's training thread does) loads neither
// @grpc/grpc-js nor the CUDA addon's code.

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

export { type TensorHandle, type TensorDevice, HostTensor } from "./tensor.js";

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
  SafetensorsFileReader,
  SafetensorsFileWriter,
} from "./safetensors.js";

export { type AccumulationStudyRow, runAccumulationStudy } from "./study.js";
