// cuBLASLt paths of the CUDA addon: block-scaled FP8 GEMM (1x128 activation scales, 128x128 weight scales; cuBLAS
// 12.9+ on Hopper) and BF16 GEMM. Built only where cuBLAS is installed (the GPU machine); cublaslt_stub.cu stands in
// elsewhere so the rest of the addon compiles and CI needs only the CUDA runtime.
//
// cuBLASLt is column-major. Our D [M,N] = A [M,K] · B [N,K]ᵀ (row-major) is its Dᵀ [N,M] = B · Aᵀ: cuBLASLt's "A" is
// our B (K×N column-major, ld K, transposed: the "TN" layout FP8 requires), its "B" is our A (K×M, ld K), and D is
// N×M with ld N. Scale layouts (cuBLAS docs "scaling factors layouts", as torch._scaled_mm passes them):
//   our B, 128x128 blocks (CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F): [ceil(N/128)][round_up(K/128, 4)], K blocks
//     contiguous — our row-major sb, padded when K/128 is not a multiple of 4;
//   our A, 1x128 tiles (CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F): [K/128][M], M contiguous — the transpose of our sa.
// Plans (descriptors, layouts, the heuristic's first algorithm, as PyTorch takes it) are cached per shape.
// The FP32 GEMM (kind 2) is the fp32 recipe's reference: CUBLAS_COMPUTE_32F with FP32 operands, never
// CUBLAS_COMPUTE_32F_FAST_TF32 — cuBLASLt uses TF32 tensor cores only when that compute type is asked for.
#include <cublasLt.h>

#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include "kernels.h"

namespace octet_cuda {
namespace lt {
namespace {

constexpr size_t WORKSPACE_BYTES = 32u << 20;

std::string status_text(cublasStatus_t s) {
  return std::string(cublasLtGetStatusName(s)) + " (" + cublasLtGetStatusString(s) + ")";
}

#define LT_CHECK(call)                                                                       \
  do {                                                                                       \
    const cublasStatus_t st_ = (call);                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(#call) + " failed: " + status_text(st_)); \
  } while (0)

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

using Key = std::tuple<int, int, int, int, int64_t, int64_t, int64_t>;  // kind, fmt_a, fmt_b, out, M, N, K

struct State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;
};

State& st() {
  static State s;
  return s;
}

void ensure() {
  State& s = st();
  if (!s.handle) LT_CHECK(cublasLtCreate(&s.handle));
  if (!s.workspace) {
    const cudaError_t e = cudaMalloc(&s.workspace, WORKSPACE_BYTES);
    if (e != cudaSuccess) {
      s.workspace = nullptr;
      throw std::runtime_error(std::string("cudaMalloc(cuBLASLt workspace, 32 MiB) failed: ") + cudaGetErrorString(e));
    }
  }
}

cudaDataType_t fp8_type(int fmt) { return fmt == 0 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2; }
cudaDataType_t out_type(int out) { return out == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F; }
const char* out_name(int out) { return out == DT_BF16 ? "bf16" : "fp32"; }

template <class T>
void set_attr(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& v, const char* name) {
  const cublasStatus_t s = cublasLtMatmulDescSetAttribute(desc, attr, &v, sizeof(v));
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cublasLtMatmulDescSetAttribute(") + name + ") failed: " + status_text(s));
}

void destroy(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.d) cublasLtMatrixLayoutDestroy(p.d);
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  p = Plan{};
}

// kind 0: block-scaled FP8, kind 1: bf16, kind 2: fp32 (true FP32, no TF32). For kind 0 the scale pointers are set before the heuristic runs.
Plan& plan(int kind, int fmt_a, int fmt_b, int out, int64_t M, int64_t N, int64_t K, const void* lt_a_scale,
           const void* lt_b_scale) {
  State& s = st();
  const Key key{kind, fmt_a, fmt_b, out, M, N, K};
  auto it = s.plans.find(key);
  if (it != s.plans.end()) return it->second;
  Plan p;
  try {
    LT_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const int32_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, transa, "TRANSA");
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, transb, "TRANSB");
    const cudaDataType_t plain = kind == 2 ? CUDA_R_32F : CUDA_R_16BF;
    const cudaDataType_t ta = kind == 0 ? fp8_type(fmt_b) : plain;  // cuBLASLt's A is our B
    const cudaDataType_t tb = kind == 0 ? fp8_type(fmt_a) : plain;
    if (kind == 0) {
      const int32_t amode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, bmode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, amode, "A_SCALE_MODE = BLK128x128_32F");
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, bmode, "B_SCALE_MODE = VEC128_32F");
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, lt_a_scale, "A_SCALE_POINTER");
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, lt_b_scale, "B_SCALE_POINTER");
      const int8_t fast_accum = 0;
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, fast_accum, "FAST_ACCUM");
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.a, ta, (uint64_t)K, (uint64_t)N, K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.b, tb, (uint64_t)K, (uint64_t)M, K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.d, out_type(out), (uint64_t)N, (uint64_t)M, N));
    cublasLtMatmulPreference_t pref = nullptr;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = WORKSPACE_BYTES;
    cublasStatus_t ps = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulHeuristicResult_t results[8] = {};
    int returned = 0;
    cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
    if (ps == CUBLAS_STATUS_SUCCESS) hs = cublasLtMatmulAlgoGetHeuristic(s.handle, p.desc, p.a, p.b, p.d, p.d, pref, 8, results, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    if (ps != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES) failed: " + status_text(ps));
    const std::string what = std::string(kind == 0 ? "block-scaled FP8 GEMM (A " : kind == 1 ? "BF16 GEMM (" : "FP32 GEMM (") +
                             (kind == 0 ? (fmt_a == 0 ? "e4m3, B " : "e5m2, B ") : "") +
                             (kind == 0 ? (fmt_b == 0 ? "e4m3, " : "e5m2, ") : "") + "out " + out_name(out) +
                             ", M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + ")";
    if (hs != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasLtMatmulAlgoGetHeuristic for the " + what + " failed: " + status_text(hs));
    int pick = -1;
    for (int i = 0; i < returned; i++) {
      if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= WORKSPACE_BYTES) { pick = i; break; }
    }
    if (pick < 0) throw std::runtime_error("cublasLtMatmulAlgoGetHeuristic found no algorithm for the " + what + " (" + std::to_string(returned) + " candidates)");
    p.algo = results[pick].algo;
  } catch (...) {
    destroy(p);
    throw;
  }
  return s.plans.emplace(key, p).first->second;
}

std::string run(int kind, const void* a, int fmt_a, const float* sa, const void* b, int fmt_b, const float* sb, void* d,
                int out, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  try {
    ensure();
    Plan& p = plan(kind, fmt_a, fmt_b, out, M, N, K, sb, sa);
    if (kind == 0) {
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(sb), "A_SCALE_POINTER");
      set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(sa), "B_SCALE_POINTER");
    }
    const float alpha = 1.0f, beta = 0.0f;
    LT_CHECK(cublasLtMatmul(st().handle, p.desc, &alpha, b, p.a, a, p.b, &beta, d, p.d, d, p.d, &p.algo,
                            st().workspace, WORKSPACE_BYTES, stream));
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return std::string("cublasLtMatmul launch: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return "";
  } catch (const std::exception& ex) {
    return ex.what();
  }
}

}  // namespace

bool built() { return true; }

std::string version() {
  const size_t v = cublasLtGetVersion();
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

std::string gemm_fp8_blockscaled(const void* a, int fmt_a, const float* a_scales_vec128, const void* b, int fmt_b,
                                 const float* b_scales_blk, void* d, int out_dtype, int64_t M, int64_t N, int64_t K,
                                 cudaStream_t stream) {
  return run(0, a, fmt_a, a_scales_vec128, b, fmt_b, b_scales_blk, d, out_dtype, M, N, K, stream);
}

std::string gemm_bf16(const void* a, const void* b, void* d, int out_dtype, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  return run(1, a, 0, nullptr, b, 0, nullptr, d, out_dtype, M, N, K, stream);
}

std::string gemm_f32(const float* a, const float* b, float* d, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  return run(2, a, 0, nullptr, b, 0, nullptr, d, DT_F32, M, N, K, stream);
}

void release() {
  State& s = st();
  for (auto& kv : s.plans) destroy(kv.second);
  s.plans.clear();
  if (s.workspace) cudaFree(s.workspace);
  s.workspace = nullptr;
  if (s.handle) cublasLtDestroy(s.handle);
  s.handle = nullptr;
}

}  // namespace lt
}  // namespace octet_cuda
