// Block-scaled FP8 GEMM for Hopper (sm_90a): C = A · Bᵀ with DeepSeek-V3's fine-grained scales and FP32
// promotion of the tensor cores' partial sums every 128 elements of K (the specification is
// packages/numerics/src/gemm.ts, scaledMatmulReference with accumulation "promoted").
//
// The kernels (gemm_sm90_kernel.cuh, launched by gemm_sm90.cu with the plans of gemm_sm90_plan.h) are
// warp-specialized: one TMA producer warp feeds a multi-stage shared-memory ring guarded by mbarriers; one or two
// consumer warpgroups run WGMMA m64nNk32 e4m3·e4m3 → f32 per 128-wide K block and fold each block's partial sums
// into FP32 registers scaled by sa[row] · sb[n/128]. The grid is persistent over the SMs. Only the CUDA runtime is
// needed at link time (the tensor-map encoder is taken from the driver through cudaGetDriverEntryPointByVersion).
#pragma once

#include <stddef.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

// Error codes returned by the functions below (0 = success); octet_gemm_sm90_error(code) names them.
enum {
  OCTET_GEMM_OK = 0,
  OCTET_GEMM_ERR_K_NOT_MULTIPLE_OF_128 = 1,   // K <= 0 or K % 128 != 0
  OCTET_GEMM_ERR_BAD_SHAPE = 2,               // M, N < 1 (dense), E < 1, or a size that overflows
  OCTET_GEMM_ERR_NULL_POINTER = 3,            // a required pointer is null
  OCTET_GEMM_ERR_MISALIGNED = 4,              // A, B not 16-byte aligned; sa, sb not 4-byte; D not element-aligned
  OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL = 5,     // workspace_bytes below what the _workspace function returned
  OCTET_GEMM_ERR_BAD_DTYPE = 6,               // out_dtype not 0 (fp32) or 1 (bf16)
  OCTET_GEMM_ERR_BAD_OFFSETS = 7,             // offsets_host null, offsets[0] != 0, or decreasing
  OCTET_GEMM_ERR_NO_TENSOR_MAP_ENCODER = 8,   // cuTensorMapEncodeTiled not found in the driver
  OCTET_GEMM_ERR_TENSOR_MAP = 9,              // cuTensorMapEncodeTiled rejected a descriptor
  OCTET_GEMM_ERR_CUDA = 10,                   // a CUDA runtime call or the launch failed (cudaGetLastError has it)
  OCTET_GEMM_ERR_UNSUPPORTED_DEVICE = 11,     // the current device is not compute capability 9.0 (Hopper)
};

// all pointers are device pointers unless named _host; returns 0 or an error code.
// A: e4m3 [M,K] row-major; sa: fp32 [M, K/128] row-major (1x128 tiles); B: e4m3 [N,K] row-major;
// sb: fp32 [ceil(N/128), K/128] row-major (128x128 blocks); D: [M,N] row-major, out_dtype 0 = fp32, 1 = bf16.
// K must be a multiple of 128; M, N >= 1 arbitrary (edge tiles handled). Promotion to FP32 every 128 of K.
size_t octet_fp8_gemm_sm90_workspace(int M, int N, int K);
int octet_fp8_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype, int M,
                        int N, int K, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Grouped (MoE): A [M_total,K] rows grouped by expert, offsets_host int[E+1] (offsets_host[E] = M_total);
// sa [M_total, K/128]; B [E,N,K]; sb [E, ceil(N/128), K/128]; D [M_total,N]. One launch for all experts
// (up to 256 experts per launch; more are split into launches of 256). Experts with no rows are skipped.
size_t octet_fp8_grouped_gemm_sm90_workspace(int E, int M_total, int N, int K);
int octet_fp8_grouped_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype,
                                const int* offsets_host, int E, int N, int K, void* workspace, size_t workspace_bytes,
                                cudaStream_t stream);

// The same with the offsets on the DEVICE (int[E+1], e.g. the router's expert offsets), so that nothing waits
// for the host between routing and the expert GEMMs (and a step can be captured as a CUDA graph). M_total: the rows
// of A and D (fixed: tokens x topK). E <= 256. Each CTA reads the offsets at start; offsets outside [0, M_total] are
// clamped and decreasing ones flattened, so bad offsets give wrong rows, never an access outside A or D. Rows of D
// in no expert's range are not written. The tile shape is planned for rows spread evenly over the experts.
int octet_fp8_grouped_gemm_sm90_device_offsets(const void* A, const float* sa, const void* B, const float* sb, void* D,
                                               int out_dtype, const int* offsets, int E, int M_total, int N, int K,
                                               cudaStream_t stream);

const char* octet_gemm_sm90_error(int code);

#ifdef __cplusplus
}
#endif
