// The MoE experts' GEMMs with the expert offsets on the DEVICE: C ABI of grouped.cu.
//
// The router's dispatch plan lays the routed rows out contiguously by expert; expert e owns rows
// [offsets[e], offsets[e+1]) of the grouped activations. These kernels read `offsets` (int32 [E + 1], device) inside
// the kernels, so nothing waits for the host between routing and the expert GEMMs, and a step can be captured as
// a CUDA graph. Each block finds its expert from the offsets; offsets outside [0, M_total] are clamped and
// decreasing ones flattened, so bad offsets give wrong rows, never an access outside the buffers. Rows of C in no
// expert's range are not written (the router's offsets cover every row: offsets[0] = 0, offsets[E] = M_total).
//
// Arithmetic: FP32 operands, FP32 accumulation with fmaf over k in ascending order, one thread per output: the
// same bits on every run and device (no atomics, no split of K). The recipes reach these kernels with operands
// already in their format: BF16-rounded values (bf16 recipe: products of two BF16 values are exact in FP32) or
// FP8 codes times their scales (fp8 recipes: octet_grouped_fake_quant_* below), so each GEMM is the recipe's
// within the accumulation model of @octet/numerics (the order of the FP32 sums differs).
//
// Conventions as ops.h: device pointers, row-major, only enqueues work on `stream`; nonsense sizes or a NULL
// pointer give cudaErrorInvalidValue and launch nothing; a zero-sized problem launches nothing.
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Forward and input gradient, rows grouped by expert:
//   transB = 1 (Fprop):  C [M_total, N] rows of e = A_e [n_e, K] · B_eᵀ, B [E·N, K] (expert e's [N, K] stacked)
//   transB = 0 (Dgrad):  C [M_total, N] rows of e = A_e [n_e, K] · B_e,  B [E·K, N] (expert e's [K, N] stacked)
// Sizes: 1 ≤ E ≤ 1024, M_total ≥ 0, N ≥ 1, K ≥ 1.
cudaError_t octet_grouped_gemm_rows(const float* A, const float* B, float* C, const int32_t* offsets, int64_t E,
                                    int64_t M_total, int64_t N, int64_t K, int32_t transB, cudaStream_t stream);

// Weight gradient, the tokens contracted: C_e [N1, N2] (+)= A_eᵀ · B_e over expert e's rows, A [M_total, N1],
// B [M_total, N2], C [E·N1, N2]. accumulate = 1: C_e = f32(C_e + f32(sum)) (the CPU's addInPlace of the expert's
// Wgrad into its gradient); 0: C_e = f32(sum). An expert with no rows gets a zero sum. Sizes: 1 ≤ E ≤ 1024,
// M_total ≥ 0, N1, N2 ≥ 1.
cudaError_t octet_grouped_gemm_wgrad(const float* A, const float* B, float* C, const int32_t* offsets, int64_t E,
                                     int64_t M_total, int64_t N1, int64_t N2, int32_t accumulate, cudaStream_t stream);

// FP8 as the fp8 recipes' expert Wgrad sees its operands: x [M_total, F] quantized in 1x128 tiles of its
// TRANSPOSE per expert (for each column f, the expert's rows in runs of 128 from offsets[e]; the last run of an
// expert may be shorter), DeepGEMM's online max-abs scale (@octet/numerics' quantizer: scale = f32(max(amax,
// 1e-4) / fmax), pow2 rounds it up to a power of two; codes as PyTorch's cast of x · f32(1/scale)), written
// dequantized: out = f32(decode(code) · scale) [M_total, F]. The codes and scales are @octet/numerics' for
// quantizeTiles(x_e) of each expert's rows, bit for bit. fmt: 0 = E4M3, 1 = E5M2. Sizes: 1 ≤ E ≤ 1024, F ≥ 1.
cudaError_t octet_grouped_fake_quant_token_tiles(const float* x, float* out, const int32_t* offsets, int64_t E,
                                                 int64_t M_total, int64_t F, int32_t fmt, int32_t pow2,
                                                 cudaStream_t stream);

#ifdef __cplusplus
}
#endif
