// This instruction set's Kernels table (compiled once per ISA, like quantize.cc and gemm.cc).
#include "kernels.h"

namespace octet {
namespace OCTET_ISA {

extern const Kernels kernels = {
    &quantize, &quantize_tiled_both, &encode_fp8_array, &decode_fp8_array, &encode_bf16_array,
    &scaled_matmul, &matmul_f32, &matmul_bf16, kDescription,
};

}  // namespace OCTET_ISA
}  // namespace octet
