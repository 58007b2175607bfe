// Host interface of the CUDA kernels (quantize.cu, util.cu) and the cuBLASLt wrappers (cublaslt.cu, or
// cublaslt_stub.cu where cuBLAS is not installed). Plain host C++: the addon includes it without device code.
#pragma once
#ifdef OCTET_EMU
#include "emu/emu.h"
#else
#include <cuda_runtime.h>
#endif
#include <cstddef>
#include <cstdint>
#include <string>

namespace octet_cuda {

// Element types of device buffers, as the addon numbers them.
enum Dtype : int { DT_F32 = 0, DT_BF16 = 1, DT_E4M3 = 2, DT_E5M2 = 3, DT_U8 = 4, DT_I32 = 5 };

// Non-finite inputs seen by a quantize launch: count, and the smallest flat index (row * cols + col) of one,
// ULLONG_MAX when none. The kernels update it with atomics when the pointer is not null.
struct QuantStatus {
  unsigned long long count;
  unsigned long long first;
};

// x: [rows, cols] row-major float32 or bfloat16 (in_dtype DT_F32 / DT_BF16); fmt 0 = e4m3, 1 = e5m2.
// [1,128] tiles: data [rows, cols], scales [rows, ceil(cols/128)].
cudaError_t quantize_rows(const void* x, int in_dtype, int64_t rows, int64_t cols, int fmt, bool pow2,
                          uint8_t* data, float* scales, QuantStatus* status, cudaStream_t stream);
// Both layouts from one read: [1,128] tiles of x (rdata [rows, cols], rscales [rows, ceil(cols/128)]) and
// [1,128] tiles of xᵀ (tdata [cols, rows], tscales [cols, ceil(rows/128)]).
cudaError_t quantize_both(const void* x, int in_dtype, int64_t rows, int64_t cols, int fmt, bool pow2,
                          uint8_t* rdata, float* rscales, uint8_t* tdata, float* tscales, QuantStatus* status,
                          cudaStream_t stream);
// [128,128] blocks: data [rows, cols], scales [ceil(rows/128), ceil(cols/128)].
cudaError_t quantize_blocks128(const void* x, int in_dtype, int64_t rows, int64_t cols, int fmt, bool pow2,
                               uint8_t* data, float* scales, QuantStatus* status, cudaStream_t stream);
// Any [br, bc] block (one thread block per scale; correct, not tuned): data [rows, cols], scales [⌈rows/br⌉, ⌈cols/bc⌉].
cudaError_t quantize_generic(const void* x, int in_dtype, int64_t rows, int64_t cols, int64_t br, int64_t bc,
                             int fmt, bool pow2, uint8_t* data, float* scales, QuantStatus* status,
                             cudaStream_t stream);
// out = f32(decode(code) · scale), as float32 (out_dtype DT_F32) or its bf16 rounding (DT_BF16).
cudaError_t dequantize(const uint8_t* data, const float* scales, int64_t rows, int64_t cols, int64_t br,
                       int64_t bc, int fmt, void* out, int out_dtype, cudaStream_t stream);
// Tuning knobs of the kernels (for benchmarks comparing variants in one run): "rows_unroll" (2 or 4 tiles in flight
// per half-warp in the 1x128 kernel), "rows_blocks_per_sm" (0 = occupancy limit). Returns "" or why not.
std::string set_knob(const std::string& name, int value);
// Exhaustive check of the hardware cast path against PyTorch's algorithm on all 2^32 float32 bit patterns.
// result (device, 4 words): [e4m3 mismatches, first e4m3 mismatch bits, e5m2 mismatches, first e5m2 bits]
// (first = 2^32 when none).
cudaError_t cast_selftest(unsigned long long* result, cudaStream_t stream);

// ---- util.cu ----------------------------------------------------------------------------------------------------
// Fill n elements with seeded pseudo-random values: dist 0 = uniform(-scale, scale), 1 = normal(0, scale)
// (sum of uniforms), 2 = log-uniform magnitude over 10^[-scale, scale] with random signs. dtype DT_F32/DT_BF16;
// DT_E4M3/DT_E5M2/DT_U8 get uniform random bytes that are finite codes.
cudaError_t fill_random(void* p, int dtype, int64_t n, uint64_t seed, int dist, float scale, cudaStream_t stream);
// Number of NaN elements (float32 or bf16), into *count (device).
cudaError_t count_nan(const void* p, int dtype, int64_t n, unsigned long long* count, cudaStream_t stream);
// out[c * rows + r] = in[r * cols + c]  (scales of 1x128 tiles → cuBLASLt's VEC128 layout, M contiguous).
cudaError_t transpose_f32(const float* in, int64_t rows, int64_t cols, float* out, cudaStream_t stream);
// Per expert e (rows offsets[e]..offsets[e+1]): the transpose of that slice, placed at out + offsets[e] * cols.
// offsets is a device array of E + 1 ints.
cudaError_t transpose_f32_grouped(const float* in, const int* offsets, int experts, int64_t cols, float* out,
                                  cudaStream_t stream);
// out[r * ld + c] = in[r * cols + c] for c < cols, 0 for cols <= c < ld (scales of 128x128 blocks → ld = ⌈cols/4⌉·4).
cudaError_t pad_rows_f32(const float* in, int64_t rows, int64_t cols, int64_t ld, float* out, cudaStream_t stream);
// bf16 ↔ f32 conversions on the device (f32 → bf16 rounds as encodeBf16 does).
cudaError_t convert(const void* in, int in_dtype, void* out, int out_dtype, int64_t n, cudaStream_t stream);

// ---- cuBLASLt (cublaslt.cu) -----------------------------------------------------------------------------------------
// Each returns "" on success or a message that names the failing call. Shapes are ours: D [M,N] = A [M,K] · B [N,K]ᵀ,
// all row-major; out_dtype DT_F32 or DT_BF16.
namespace lt {
bool built();                 // false in cublaslt_stub.cu
std::string version();        // "13.1.0" etc., or why it is not there
// Block-scaled FP8: a_scales_vec128 [K/128, M] (M contiguous, cuBLASLt's VEC128 layout for the activation);
// b_scales_blk [ceil(N/128), ld_b] with ld_b = round_up(K/128, 4) (its BLK128x128 layout for the weight).
std::string gemm_fp8_blockscaled(const void* a, int fmt_a, const float* a_scales_vec128, const void* b, int fmt_b,
                                 const float* b_scales_blk, void* d, int out_dtype, int64_t M, int64_t N, int64_t K,
                                 cudaStream_t stream);
std::string gemm_bf16(const void* a, const void* b, void* d, int out_dtype, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream);
// Workspace and heuristic results are cached per shape; this drops them (and frees the workspace).
void release();
}  // namespace lt

}  // namespace octet_cuda
