// The kernels of one instruction set, in namespace octet::OCTET_ISA. binding.gyp compiles quantize.cc,
// gemm.cc and kernels.cc once per instruction set (one static library each), defining OCTET_ISA (avx512,
// avx2 or scalar) and OCTET_ISA_LEVEL (see @octet/native-common's octet/native/isa.h); kernels.cc puts them
// in that copy's Kernels table (common.h).
#pragma once
#define OCTET_NUMERICS_KERNELS_H
#include "common.h"

#if !defined(OCTET_ISA) || !defined(OCTET_ISA_LEVEL)
#error "kernels.h is for the per-ISA kernel sources: binding.gyp defines OCTET_ISA and OCTET_ISA_LEVEL"
#endif

namespace octet {
namespace OCTET_ISA {

int64_t quantize(const float* x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int fmt, bool pow2,
                 uint8_t* data, float* scales);
int64_t quantize_tiled_both(const float* x, int64_t rows, int64_t cols, int fmt, bool pow2, uint8_t* row_data,
                            float* row_scales, uint8_t* col_data, float* col_scales);
void encode_fp8_array(const float* x, int64_t n, int fmt, bool saturate, uint8_t* out);
void decode_fp8_array(const uint8_t* x, int64_t n, int fmt, float* out);
void encode_bf16_array(const float* x, int64_t n, uint16_t* out);
void scaled_matmul(const uint8_t* a, const float* a_scales, int64_t M, int64_t K, int64_t abr, int64_t abc, int afmt,
                   const uint8_t* b, const float* b_scales, int64_t N, int64_t bbr, int64_t bbc, int bfmt,
                   int64_t promote_every, float* c);
void matmul_f32(const float* a, const float* b, int64_t M, int64_t N, int64_t K, float* c);
void matmul_bf16(const uint16_t* a, const uint16_t* b, int64_t M, int64_t N, int64_t K, float* c);
// What this copy's vector code is (info()).
extern const char* const kDescription;

}  // namespace OCTET_ISA
}  // namespace octet
