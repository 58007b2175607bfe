// Emulation builds only: reference stand-ins for the sm90 GEMM C API (gemm_sm90.h) and for the cuBLASLt wrappers
// (kernels.h, namespace lt), computing DeepSeek-V3's promoted product on the host. They read their operands in the
// layouts the real ones take (sm90: sa [M, K/128], sb [ceil(N/128), K/128]; cuBLASLt: VEC128 [K/128, M], BLK128x128
// [ceil(N/128), round_up(K/128, 4)]), so the addon's plumbing — scale relayouts, per-expert offsets, graph capture —
// and the check script run end to end without a GPU. Launched through the emulated runtime (captured into graphs).
#include <cuda_runtime.h>
#include "../common.cuh"
#include "../gemm_sm90.h"
#include "../kernels.h"

namespace {

using octet_cuda::decode_fp8;
using octet_cuda::encode_bf16;

// D[m, n] = Σ_kb f32(Σ_k a·b) · sa(m, kb) · sb(n/128, kb): FP32 partial sums per 128 of K, promoted with both scales.
void gemm_kernel(const uint8_t* a, int fa, const float* sa, int64_t sa_row, int64_t sa_col, const uint8_t* b, int fb,
                 const float* sb, int64_t sb_row, void* d, int out, int64_t M, int64_t N, int64_t K) {
  const int64_t kb = K / 128;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      float acc = 0;
      for (int64_t q = 0; q < kb; q++) {
        float partial = 0;
        for (int64_t k = q * 128; k < (q + 1) * 128; k++) partial += decode_fp8(a[m * K + k], fa) * decode_fp8(b[n * K + k], fb);
        const float scale = sa[m * sa_row + q * sa_col] * sb[(n / 128) * sb_row + q];
        acc += partial * scale;
      }
      if (out == 1) static_cast<uint16_t*>(d)[m * N + n] = encode_bf16(acc);
      else static_cast<float*>(d)[m * N + n] = acc;
    }
}

void bf16_kernel(const uint16_t* a, const uint16_t* b, void* d, int out, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      float acc = 0;
      for (int64_t k = 0; k < K; k++) acc += __uint_as_float((uint32_t)a[m * K + k] << 16) * __uint_as_float((uint32_t)b[n * K + k] << 16);
      if (out == 1) static_cast<uint16_t*>(d)[m * N + n] = encode_bf16(acc);
      else static_cast<float*>(d)[m * N + n] = acc;
    }
}

}  // namespace

extern "C" size_t octet_fp8_gemm_sm90_workspace(int, int, int) { return 256; }
extern "C" size_t octet_fp8_grouped_gemm_sm90_workspace(int, int, int, int) { return 0; }
extern "C" const char* octet_gemm_sm90_error(int code) { return code == 1 ? "K is not a multiple of 128 (emulated)" : "error (emulated)"; }

extern "C" int octet_fp8_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype, int M,
                                   int N, int K, void*, size_t, cudaStream_t) {
  if (K % 128) return 1;
  auto k = gemm_kernel;
  OCTET_LAUNCH(k, 1, 1, 0, nullptr)(static_cast<const uint8_t*>(A), 0, sa, (int64_t)K / 128, (int64_t)1, static_cast<const uint8_t*>(B), 0, sb,
                                   (int64_t)K / 128, D, out_dtype, (int64_t)M, (int64_t)N, (int64_t)K);
  return 0;
}

extern "C" int octet_fp8_grouped_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype,
                                           const int* offsets_host, int E, int N, int K, void*, size_t, cudaStream_t) {
  if (K % 128) return 1;
  const int64_t kb = K / 128, nb = (N + 127) / 128, elt = out_dtype == 1 ? 2 : 4;
  for (int e = 0; e < E; e++) {
    const int64_t m0 = offsets_host[e], m = offsets_host[e + 1] - m0;
    if (m <= 0) continue;
    auto k = gemm_kernel;
    OCTET_LAUNCH(k, 1, 1, 0, nullptr)(static_cast<const uint8_t*>(A) + m0 * K, 0, sa + m0 * kb, kb, (int64_t)1,
                                     static_cast<const uint8_t*>(B) + (int64_t)e * N * K, 0, sb + e * nb * kb, kb,
                                     static_cast<char*>(D) + m0 * N * elt, out_dtype, m, (int64_t)N, (int64_t)K);
  }
  return 0;
}

namespace octet_cuda {
namespace lt {
bool built() { return true; }
std::string version() { return "emulated (host reference)"; }
std::string gemm_fp8_blockscaled(const void* a, int fmt_a, const float* a_scales_vec128, const void* b, int fmt_b,
                                 const float* b_scales_blk, void* d, int out_dtype, int64_t M, int64_t N, int64_t K, cudaStream_t) {
  const int64_t kb = K / 128, kb4 = (kb + 3) / 4 * 4;
  auto k = gemm_kernel;
  // VEC128: element (m, q) at q * M + m; BLK128x128: (nb, q) at nb * kb4 + q.
  OCTET_LAUNCH(k, 1, 1, 0, nullptr)(static_cast<const uint8_t*>(a), fmt_a, a_scales_vec128, (int64_t)1, M, static_cast<const uint8_t*>(b), fmt_b,
                                   b_scales_blk, kb4, d, out_dtype == DT_BF16 ? 1 : 0, M, N, K);
  return "";
}
std::string gemm_bf16(const void* a, const void* b, void* d, int out_dtype, int64_t M, int64_t N, int64_t K, cudaStream_t) {
  auto k = bf16_kernel;
  OCTET_LAUNCH(k, 1, 1, 0, nullptr)(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), d, out_dtype == DT_BF16 ? 1 : 0, M, N, K);
  return "";
}
void release() {}
}  // namespace lt
}  // namespace octet_cuda
