// Stand-in for cublaslt.cu where cuBLAS is not installed (the CI machine has nvcc and the CUDA runtime only): the
// addon builds, loads and runs its own kernels, and every cuBLASLt call says why it is unavailable.
#include "kernels.h"

namespace octet_cuda {
namespace lt {
namespace {
const char* const kWhy = "cuBLASLt is not built into this addon (cublasLt.h was not found when build.sh ran)";
}
bool built() { return false; }
std::string version() { return kWhy; }
std::string gemm_fp8_blockscaled(const void*, int, const float*, const void*, int, const float*, void*, int, int64_t, int64_t,
                                 int64_t, cudaStream_t) {
  return kWhy;
}
std::string gemm_bf16(const void*, const void*, void*, int, int64_t, int64_t, int64_t, cudaStream_t) { return kWhy; }
std::string gemm_f32(const float*, const float*, float*, int64_t, int64_t, int64_t, cudaStream_t) { return kWhy; }
void release() {}
}  // namespace lt
}  // namespace octet_cuda
