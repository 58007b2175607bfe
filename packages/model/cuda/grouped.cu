// The MoE experts' GEMMs with device offsets (design, ABI and arithmetic: grouped.h).
// Also builds as C++ under @octet/numerics' CPU emulation (-DOCTET_EMU -I packages/numerics/cuda/emu/shim), so the
// harness (test/grouped_test.cu) runs without a GPU.
#include "grouped.h"

#include "../../numerics/cuda/common.cuh"  // the quantizer's scale and cast arithmetic, bit for bit

#include <cstdint>

namespace {

using octet_cuda::decode_fp8;
using octet_cuda::encode1;
using octet_cuda::fp8_max;
using octet_cuda::scale_from_amax;

constexpr int kTile = 64;    // outputs per block side
constexpr int kChunk = 16;   // k (or token) steps staged per round
constexpr int kThreads = 256;
constexpr int kQuantRun = 128;  // tokens per FP8 tile of a transposed operand
constexpr int kQuantCols = 256; // columns per fake-quant block (one per thread)

__host__ __device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// The tile-slot-th tile of `tileRows` rows over the experts' row ranges, in expert order: its expert, first row and
// the expert's end. Offsets are clamped into [0, M_total] and flattened to non-decreasing first. False when there
// are fewer tiles than tile_slot + 1. One thread walks the experts (E ≤ 1024).
__device__ bool find_tile(const int32_t* offsets, int64_t E, int64_t M_total, int64_t slot, int tileRows, int* expert,
                          int64_t* m0, int64_t* m_end) {
  int64_t lo = imin(imax(offsets[0], 0), M_total);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t end = imax(lo, imin(imax(offsets[e + 1], 0), M_total));
    const int64_t tiles = (end - lo + tileRows - 1) / tileRows;
    if (slot < tiles) {
      *expert = (int)e;
      *m0 = lo + slot * tileRows;
      *m_end = end;
      return true;
    }
    slot -= tiles;
    lo = end;
  }
  return false;
}

// acc[i][j] += Σ_kk As[kk][ty + 16i] · Bs[kk][tx + 16j] over the staged chunk, kk ascending, one fmaf each.
__device__ __forceinline__ void accumulate_chunk(const float (&As)[kChunk][kTile + 1], const float (&Bs)[kChunk][kTile + 1],
                                                 int steps, int tx, int ty, float (&acc)[4][4]) {
  for (int kk = 0; kk < steps; ++kk) {
    float a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

template <int kTransB>
__global__ void __launch_bounds__(kThreads) grouped_rows_kernel(const float* __restrict__ A, const float* __restrict__ B,
                                                               float* __restrict__ C, const int32_t* __restrict__ offsets,
                                                               int64_t E, int64_t M_total, int64_t N, int64_t K) {
  __shared__ float As[kChunk][kTile + 1];
  __shared__ float Bs[kChunk][kTile + 1];
  __shared__ int64_t sh[3];
  const int tid = threadIdx.x;
  if (tid == 0) {
    int e = 0;
    int64_t m0 = 0, m_end = 0;
    const bool ok = find_tile(offsets, E, M_total, blockIdx.x, kTile, &e, &m0, &m_end);
    sh[0] = ok ? e : -1;
    sh[1] = m0;
    sh[2] = m_end;
  }
  __syncthreads();
  if (sh[0] < 0) return;  // a slot past the last tile (the grid is sized for the worst case)
  const int64_t e = sh[0], m0 = sh[1], m_end = sh[2];
  const int64_t n0 = (int64_t)blockIdx.y * kTile;
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
    // A tile: 64 rows x 16 k; B tile: 64 n x 16 k (both staged k-major).
    for (int i = tid; i < kTile * kChunk; i += kThreads) {
      const int r = i / kChunk, kk = i % kChunk;
      const int64_t row = m0 + r, k = k0 + kk;
      As[kk][r] = row < m_end && k < K ? A[row * K + k] : 0.0f;
    }
    for (int i = tid; i < kTile * kChunk; i += kThreads) {
      int nn, kk;
      if (kTransB) {
        nn = i / kChunk;
        kk = i % kChunk;
      } else {
        kk = i / kTile;
        nn = i % kTile;
      }
      const int64_t n = n0 + nn, k = k0 + kk;
      float v = 0.0f;
      if (n < N && k < K) v = kTransB ? B[(e * N + n) * K + k] : B[(e * K + k) * N + n];
      Bs[kk][nn] = v;
    }
    __syncthreads();
    accumulate_chunk(As, Bs, (int)imin(kChunk, K - k0), tx, ty, acc);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = m0 + ty + 16 * i;
    if (row >= m_end) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx + 16 * j;
      if (n < N) C[row * N + n] = acc[i][j];
    }
  }
}

__global__ void __launch_bounds__(kThreads) grouped_wgrad_kernel(const float* __restrict__ A, const float* __restrict__ B,
                                                                float* __restrict__ C, const int32_t* __restrict__ offsets,
                                                                int64_t E, int64_t M_total, int64_t N1, int64_t N2,
                                                                int32_t accumulate) {
  __shared__ float As[kChunk][kTile + 1];
  __shared__ float Bs[kChunk][kTile + 1];
  __shared__ int64_t sh[2];
  const int tid = threadIdx.x;
  const int64_t e = blockIdx.z;
  if (tid == 0) {
    // The expert's rows, with the offsets clamped and flattened as find_tile does.
    int64_t lo = imin(imax(offsets[0], 0), M_total);
    for (int64_t i = 0; i < e; ++i) lo = imax(lo, imin(imax(offsets[i + 1], 0), M_total));
    sh[0] = lo;
    sh[1] = imax(lo, imin(imax(offsets[e + 1], 0), M_total));
  }
  __syncthreads();
  const int64_t r_begin = sh[0], r_end = sh[1];
  const int64_t i0 = (int64_t)blockIdx.y * kTile, j0 = (int64_t)blockIdx.x * kTile;
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int64_t r0 = r_begin; r0 < r_end; r0 += kChunk) {
    for (int t = tid; t < kTile * kChunk; t += kThreads) {
      const int kk = t / kTile, c = t % kTile;
      const int64_t r = r0 + kk;
      As[kk][c] = r < r_end && i0 + c < N1 ? A[r * N1 + i0 + c] : 0.0f;
      Bs[kk][c] = r < r_end && j0 + c < N2 ? B[r * N2 + j0 + c] : 0.0f;
    }
    __syncthreads();
    accumulate_chunk(As, Bs, (int)imin(kChunk, r_end - r0), tx, ty, acc);
    __syncthreads();
  }
  float* Ce = C + e * N1 * N2;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = i0 + ty + 16 * i;
    if (row >= N1) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t col = j0 + tx + 16 * j;
      if (col >= N2) continue;
      float* p = Ce + row * N2 + col;
      *p = accumulate ? __fadd_rn(*p, acc[i][j]) : acc[i][j];
    }
  }
}

template <int FMT>
__global__ void __launch_bounds__(kQuantCols) fake_quant_token_tiles_kernel(const float* __restrict__ x, float* __restrict__ out,
                                                                          const int32_t* __restrict__ offsets, int64_t E,
                                                                          int64_t M_total, int64_t F, int32_t pow2) {
  __shared__ int64_t sh[3];
  const int tid = threadIdx.x;
  if (tid == 0) {
    int e = 0;
    int64_t r0 = 0, end = 0;
    const bool ok = find_tile(offsets, E, M_total, blockIdx.x, kQuantRun, &e, &r0, &end);
    sh[0] = ok ? e : -1;
    sh[1] = r0;
    sh[2] = imin(end, r0 + kQuantRun);
  }
  __syncthreads();
  if (sh[0] < 0) return;
  const int64_t r0 = sh[1], r1 = sh[2];
  const int64_t f = (int64_t)blockIdx.y * kQuantCols + tid;
  if (f >= F) return;
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; ++r) amax = fmaxf(amax, fabsf(x[r * F + f]));
  const float scale = scale_from_amax(amax, fp8_max(FMT), pow2 != 0);
  const float inv = __frcp_rn(scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t code = encode1<FMT>(x[r * F + f], inv);
    out[r * F + f] = __fmul_rn(decode_fp8(code, FMT), scale);
  }
}

bool bad_experts(int64_t E) { return E < 1 || E > 1024; }

}  // namespace

extern "C" cudaError_t octet_grouped_gemm_rows(const float* A, const float* B, float* C, const int32_t* offsets, int64_t E,
                                               int64_t M_total, int64_t N, int64_t K, int32_t transB, cudaStream_t stream) {
  if (bad_experts(E) || M_total < 0 || N < 1 || K < 1 || (transB != 0 && transB != 1)) return cudaErrorInvalidValue;
  if (M_total == 0) return cudaSuccess;
  if (!A || !B || !C || !offsets) return cudaErrorInvalidValue;
  const int64_t slots = (M_total + kTile - 1) / kTile + E;  // each expert adds at most one partial tile
  const int64_t nTiles = (N + kTile - 1) / kTile;
  if (slots > 0x7fffffff || nTiles > 65535) return cudaErrorInvalidValue;
  const dim3 grid((unsigned)slots, (unsigned)nTiles);
  auto kernel = transB ? grouped_rows_kernel<1> : grouped_rows_kernel<0>;
  OCTET_LAUNCH(kernel, grid, kThreads, 0, stream)(A, B, C, offsets, E, M_total, N, K);
  return cudaGetLastError();
}

extern "C" cudaError_t octet_grouped_gemm_wgrad(const float* A, const float* B, float* C, const int32_t* offsets, int64_t E,
                                                int64_t M_total, int64_t N1, int64_t N2, int32_t accumulate,
                                                cudaStream_t stream) {
  if (bad_experts(E) || M_total < 0 || N1 < 1 || N2 < 1 || (accumulate != 0 && accumulate != 1)) return cudaErrorInvalidValue;
  if (!C || !offsets || (M_total > 0 && (!A || !B))) return cudaErrorInvalidValue;
  const int64_t t1 = (N1 + kTile - 1) / kTile, t2 = (N2 + kTile - 1) / kTile;
  if (t1 > 65535 || t2 > 0x7fffffff) return cudaErrorInvalidValue;
  // Every expert's block writes its C_e (zeros for an expert without rows, unless accumulating).
  auto kernel = grouped_wgrad_kernel;
  OCTET_LAUNCH(kernel, dim3((unsigned)t2, (unsigned)t1, (unsigned)E), kThreads, 0, stream)(A, B, C, offsets, E, M_total, N1, N2, accumulate);
  return cudaGetLastError();
}

extern "C" cudaError_t octet_grouped_fake_quant_token_tiles(const float* x, float* out, const int32_t* offsets, int64_t E,
                                                            int64_t M_total, int64_t F, int32_t fmt, int32_t pow2,
                                                            cudaStream_t stream) {
  if (bad_experts(E) || M_total < 0 || F < 1 || (fmt != 0 && fmt != 1) || (pow2 != 0 && pow2 != 1)) return cudaErrorInvalidValue;
  if (M_total == 0) return cudaSuccess;
  if (!x || !out || !offsets) return cudaErrorInvalidValue;
  const int64_t slots = (M_total + kQuantRun - 1) / kQuantRun + E;
  const int64_t colBlocks = (F + kQuantCols - 1) / kQuantCols;
  if (slots > 0x7fffffff || colBlocks > 65535) return cudaErrorInvalidValue;
  const dim3 grid((unsigned)slots, (unsigned)colBlocks);
  auto kernel = fmt == 0 ? fake_quant_token_tiles_kernel<0> : fake_quant_token_tiles_kernel<1>;
  OCTET_LAUNCH(kernel, grid, kQuantCols, 0, stream)(x, out, offsets, E, M_total, F, pow2);
  return cudaGetLastError();
}
