// Fused cross-entropy over a chunk of head logits (design, ABI and arithmetic: loss.h).
// Also builds as C++ under @octet/numerics' CPU emulation (-DOCTET_EMU -I packages/numerics/cuda/emu/shim), which
// supplies <cuda_runtime.h>, OCTET_LAUNCH and OCTET_DYNAMIC_SMEM, so the harness can run without a GPU.
#include "loss.h"

#include <cmath>
#include <cstdint>

#ifndef OCTET_LAUNCH
#define OCTET_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
#define OCTET_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace {

constexpr int MAX_THREADS = 1024;
// Largest row staged in shared memory: sm_90's opt-in limit is 227 KiB per block; the kernel's static shared
// memory (the reduction's 256 bytes) must fit beside it.
constexpr int STAGE_MAX_BYTES = 224 * 1024;
// Vectors a thread aims to own: enough 16-byte loads in flight per thread without idling threads on small rows.
constexpr int VECS_PER_THREAD = 8;
constexpr int UNROLL = 4;  // loads issued before their values are consumed (memory-level parallelism)

// ---- element formats: 16 bytes (a uint4) hold N values --------------------------------------------------------
template <int DT>
struct Fmt;

template <>
struct Fmt<OCTET_CE_F32> {
  static constexpr int N = 4;
  __device__ static __forceinline__ void unpack(const uint4& v, float* x) {
    x[0] = __uint_as_float(v.x); x[1] = __uint_as_float(v.y); x[2] = __uint_as_float(v.z); x[3] = __uint_as_float(v.w);
  }
  __device__ static __forceinline__ uint4 pack(const float* y) {
    return make_uint4(__float_as_uint(y[0]), __float_as_uint(y[1]), __float_as_uint(y[2]), __float_as_uint(y[3]));
  }
  __device__ static __forceinline__ float element(const uint4* row, int j) { return reinterpret_cast<const float*>(row)[j]; }
};

// Two floats → two bf16 in one word (lo in the low half), round to nearest even: equal to CpuBackend.toBf16 for
// every non-NaN value (overflow → ±inf, subnormals kept). The GPU uses the hardware conversion (one instruction for
// two values), whose NaN is 0x7FFF where toBf16 writes 0xFFFF; the emulation uses toBf16's integer algorithm.
__device__ __forceinline__ uint32_t bf16x2_bits(float lo, float hi) {
#ifdef OCTET_EMU
  auto one = [](float f) {
    const uint32_t b = __float_as_uint(f);
    return (b & 0x7fffffffu) > 0x7f800000u ? 0xffffu : ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu;
  };
  return one(lo) | (one(hi) << 16);
#else
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));  // a → upper half, b → lower half
  return r;
#endif
}

template <>
struct Fmt<OCTET_CE_BF16> {
  static constexpr int N = 8;  // element 2k in the low half of word k (little endian)
  __device__ static __forceinline__ void unpack(const uint4& v, float* x) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
      x[2 * k] = __uint_as_float(w[k] << 16);
      x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
  }
  __device__ static __forceinline__ uint4 pack(const float* y) {
    return make_uint4(bf16x2_bits(y[0], y[1]), bf16x2_bits(y[2], y[3]), bf16x2_bits(y[4], y[5]), bf16x2_bits(y[6], y[7]));
  }
  __device__ static __forceinline__ float element(const uint4* row, int j) {
    return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[j]) << 16);
  }
};

// A load read exactly once (evict-first); the emulation has no cache hints.
__device__ __forceinline__ uint4 load_once(const uint4* p) {
#ifdef OCTET_EMU
  return *p;
#else
  return __ldcs(p);
#endif
}

// ---- the online log-sum-exp pair (m, s): s = Σ exp(x − m) over the elements seen, m their running max ---------
// ms: the max to subtract, 0 while nothing finite has been seen (so −inf elements add exp(−inf) = 0, not NaN).
__device__ __forceinline__ float shift_of(float m) { return m == -INFINITY ? 0.0f : m; }

template <int N>
__device__ __forceinline__ void lse_add(float& m, float& s, const float* x) {
  float vm = x[0];
#pragma unroll
  for (int k = 1; k < N; k++) vm = fmaxf(vm, x[k]);
  if (vm > m) {  // rescale the sum to the new max (exp(−inf) = 0 on the first finite vector)
    s = __fmul_rn(s, expf(m - vm));
    m = vm;
  }
  const float ms = shift_of(m);
#pragma unroll
  for (int k = 0; k < N; k++) s = __fadd_rn(s, expf(x[k] - ms));
}

// Symmetric in its two operands bit for bit (max and a sum of two products, no contraction), so both lanes of a
// butterfly hold the same pair.
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  const float ms = shift_of(mm);
  s = __fadd_rn(__fmul_rn(s, expf(m - ms)), __fmul_rn(s2, expf(m2 - ms)));
  m = mm;
}

// Merges every thread's pair in a fixed tree (warp butterfly, then warp 0 over the warps' pairs); all threads get
// the row's (M, S). Also a block barrier (the staged row is complete after it).
__device__ __forceinline__ void block_lse(float& m, float& s) {
  __shared__ float warp_m[32], warp_s[32];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __uint_as_float(__shfl_xor_sync(0xffffffffu, __float_as_uint(m), off));
    const float s2 = __uint_as_float(__shfl_xor_sync(0xffffffffu, __float_as_uint(s), off));
    lse_merge(m, s, m2, s2);
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? warp_m[lane] : -INFINITY;
    s = lane < warps ? warp_s[lane] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float m2 = __uint_as_float(__shfl_xor_sync(0xffffffffu, __float_as_uint(m), off));
      const float s2 = __uint_as_float(__shfl_xor_sync(0xffffffffu, __float_as_uint(s), off));
      lse_merge(m, s, m2, s2);
    }
    if (lane == 0) {
      warp_m[0] = m;
      warp_s[0] = s;
    }
  }
  __syncthreads();
  m = warp_m[0];
  s = warp_s[0];
}

// Pass 1, shared by both kernels so that they visit the same elements in the same order (identical bits): thread
// tid owns vectors tid, tid + bd, tid + 2·bd, …, loaded UNROLL at a time; stage (optional) keeps a copy.
template <int DT, bool ONCE>
__device__ __forceinline__ void row_lse(const uint4* g, uint4* stage, int nvec, float& m, float& s) {
  using F = Fmt<DT>;
  const int bd = blockDim.x;
  for (int base = threadIdx.x; base < nvec; base += UNROLL * bd) {
    uint4 r[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int i = base + u * bd;
      if (i < nvec) r[u] = ONCE ? load_once(g + i) : g[i];
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int i = base + u * bd;
      if (i < nvec) {
        if (stage) stage[i] = r[u];
        float x[F::N];
        F::unpack(r[u], x);
        lse_add<F::N>(m, s, x);
      }
    }
  }
}

// dLogits of vector i: expf(x − M)·(g/S); the target's element (in vector tVec, lane tLane) fmaf(expf(x_t − M), g/S, −g).
template <int DT>
__device__ __forceinline__ uint4 grad_vector(const uint4& v, int i, int tVec, int tLane, float M, float f, float g) {
  using F = Fmt<DT>;
  float x[F::N], e[F::N], y[F::N];
  F::unpack(v, x);
#pragma unroll
  for (int k = 0; k < F::N; k++) {
    e[k] = expf(x[k] - M);
    y[k] = __fmul_rn(e[k], f);
  }
  if (i == tVec) {
#pragma unroll
    for (int k = 0; k < F::N; k++)
      if (k == tLane) y[k] = fmaf(e[k], f, -g);
  }
  return F::pack(y);
}

struct RowArgs {
  const int32_t* targets;
  float* rowLoss;
  const int32_t* validRows;
  int vocab;
  int totalRows;
  float gradScale;
};

__device__ __forceinline__ float grad_unit(const RowArgs& a) {
  int divisor = a.totalRows;
  if (a.validRows) {
    divisor = *a.validRows;
    if (divisor < 1) divisor = 1;
  }
  return __fdiv_rn(a.gradScale, (float)divisor);
}

__device__ __forceinline__ void fill_row(uint4* g, int nvec, uint32_t word) {
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) g[i] = make_uint4(word, word, word, word);
}

// Rows that need no log-sum-exp (block-uniform, before any barrier): an ignored row (target −1) gets loss 0 and a
// zero gradient; an out-of-range target gets a NaN loss and a NaN gradient. Returns whether the row is done.
template <int DT>
__device__ __forceinline__ bool special_row(uint4* g, int nvec, int t, int vocab, float* loss, bool grad) {
  if (t >= 0 && t < vocab) return false;
  const bool ignored = t == -1;
  if (grad) fill_row(g, nvec, ignored ? 0u : DT == OCTET_CE_F32 ? 0x7fffffffu : 0xffffffffu);
  if (threadIdx.x == 0) *loss = ignored ? 0.0f : NAN;
  return true;
}

// Row staged in shared memory: one DRAM read, one DRAM write. One block per row.
template <int DT>
__global__ void __launch_bounds__(MAX_THREADS) ce_staged(uint4* logits, RowArgs a) {
  using F = Fmt<DT>;
  OCTET_DYNAMIC_SMEM(smem);
  uint4* stage = reinterpret_cast<uint4*>(smem);
  const int row = blockIdx.x, nvec = a.vocab / F::N;
  uint4* g = logits + (size_t)row * nvec;
  const int t = a.targets[row];
  if (special_row<DT>(g, nvec, t, a.vocab, a.rowLoss + row, true)) return;
  float m = -INFINITY, s = 0.0f;
  row_lse<DT, true>(g, stage, nvec, m, s);
  block_lse(m, s);
  if (threadIdx.x == 0) a.rowLoss[row] = logf(s) - (F::element(stage, t) - m);
  const float gu = grad_unit(a), f = __fdiv_rn(gu, s);
  const int tVec = t / F::N, tLane = t % F::N;
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) g[i] = grad_vector<DT>(stage[i], i, tVec, tLane, m, f, gu);
}

// Row read from global memory: once for loss-only calls (GRAD false), twice with the gradient (rows too large to
// stage). One block per row.
template <int DT, bool GRAD>
__global__ void __launch_bounds__(MAX_THREADS) ce_streamed(uint4* logits, RowArgs a) {
  using F = Fmt<DT>;
  const int row = blockIdx.x, nvec = a.vocab / F::N;
  uint4* g = logits + (size_t)row * nvec;
  const int t = a.targets[row];
  if (special_row<DT>(g, nvec, t, a.vocab, a.rowLoss + row, GRAD)) return;
  // The target's logit, read before any thread of the block overwrites the row (the writes follow block_lse's barrier).
  const float xt = threadIdx.x == 0 ? F::element(g, t) : 0.0f;
  float m = -INFINITY, s = 0.0f;
  row_lse<DT, !GRAD>(g, nullptr, nvec, m, s);
  block_lse(m, s);
  if (threadIdx.x == 0) a.rowLoss[row] = logf(s) - (xt - m);
  if (GRAD) {
    const float gu = grad_unit(a), f = __fdiv_rn(gu, s);
    const int tVec = t / F::N, tLane = t % F::N;
    for (int i = threadIdx.x; i < nvec; i += blockDim.x) g[i] = grad_vector<DT>(load_once(g + i), i, tVec, tLane, m, f, gu);
  }
}

// Threads per row: a power of two in [32, 1024], about VECS_PER_THREAD vectors each. A function of (vocab, dtype)
// only — the reduction order, hence the bits, must not depend on anything else.
int threads_for(int nvec) {
  int want = (nvec + VECS_PER_THREAD - 1) / VECS_PER_THREAD, t = 32;
  while (t < want && t < MAX_THREADS) t <<= 1;
  return t;
}

template <int DT>
cudaError_t launch_ce(void* logits, const RowArgs& a, int rows, bool grad, cudaStream_t stream) {
  const int nvec = a.vocab / Fmt<DT>::N, threads = threads_for(nvec);
  const size_t rowBytes = (size_t)a.vocab * (DT == OCTET_CE_F32 ? 4 : 2);
  uint4* p = static_cast<uint4*>(logits);
  if (!grad) {
    auto k = ce_streamed<DT, false>;
    OCTET_LAUNCH(k, rows, threads, 0, stream)(p, a);
  } else if (rowBytes <= (size_t)STAGE_MAX_BYTES) {
    auto k = ce_staged<DT>;
    if (rowBytes > 48 * 1024) {
      // Opt in once, to the largest staged row, so later calls (and graph captures) make no attribute call. (Once
      // per process: the attribute belongs to the device current at the first call — one GPU per training process.)
      static const cudaError_t optIn = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, STAGE_MAX_BYTES);
      if (optIn != cudaSuccess) return optIn;
    }
    OCTET_LAUNCH(k, rows, threads, rowBytes, stream)(p, a);
  } else {
    auto k = ce_streamed<DT, true>;
    OCTET_LAUNCH(k, rows, threads, 0, stream)(p, a);
  }
  return cudaGetLastError();
}

constexpr int REDUCE_THREADS = 1024;

// One block; thread i sums elements i, i + 1024, … in order, then a fixed shared-memory tree.
__global__ void __launch_bounds__(REDUCE_THREADS) count_valid_kernel(const int32_t* targets, int32_t* out, int rows) {
  __shared__ int32_t part[REDUCE_THREADS];
  int32_t c = 0;
  for (int i = threadIdx.x; i < rows; i += REDUCE_THREADS) c += targets[i] != -1 ? 1 : 0;
  part[threadIdx.x] = c;
  __syncthreads();
  for (int half = REDUCE_THREADS / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = part[0];
}

__global__ void __launch_bounds__(REDUCE_THREADS) mean_loss_kernel(const float* rowLoss, const int32_t* validRows, double* out, int rows) {
  __shared__ double part[REDUCE_THREADS];
  double acc = 0.0;
  for (int i = threadIdx.x; i < rows; i += REDUCE_THREADS) acc += (double)rowLoss[i];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int half = REDUCE_THREADS / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    int divisor = validRows ? *validRows : rows;
    if (divisor < 1) divisor = 1;
    out[0] = part[0] / (double)divisor;
  }
}

}  // namespace

extern "C" cudaError_t octet_cross_entropy(void* logits, const int32_t* targets, float* rowLoss, const int32_t* validRows,
                                           int rows, int vocab, int totalRows, int dtype, float gradScale, int flags,
                                           cudaStream_t stream) {
  if (rows < 0 || vocab < 8 || vocab > OCTET_CE_MAX_VOCAB || vocab % 8 != 0) return cudaErrorInvalidValue;
  if (totalRows < 1 || totalRows < rows) return cudaErrorInvalidValue;
  if (dtype != OCTET_CE_F32 && dtype != OCTET_CE_BF16) return cudaErrorInvalidValue;
  if ((flags & ~OCTET_CE_NO_GRAD) != 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!logits || !targets || !rowLoss || (reinterpret_cast<uintptr_t>(logits) & 15u) != 0) return cudaErrorInvalidValue;
  const RowArgs a{targets, rowLoss, validRows, vocab, totalRows, gradScale};
  const bool grad = (flags & OCTET_CE_NO_GRAD) == 0;
  return dtype == OCTET_CE_F32 ? launch_ce<OCTET_CE_F32>(logits, a, rows, grad, stream)
                               : launch_ce<OCTET_CE_BF16>(logits, a, rows, grad, stream);
}

extern "C" cudaError_t octet_count_valid_targets(const int32_t* targets, int32_t* validRows, int rows, cudaStream_t stream) {
  if (rows < 0 || !validRows || (rows > 0 && !targets)) return cudaErrorInvalidValue;
  auto k = count_valid_kernel;
  OCTET_LAUNCH(k, 1, REDUCE_THREADS, 0, stream)(targets, validRows, rows);
  return cudaGetLastError();
}

extern "C" cudaError_t octet_mean_loss(const float* rowLoss, const int32_t* validRows, double* meanLoss, int rows, cudaStream_t stream) {
  if (rows < 0 || !meanLoss || (rows > 0 && !rowLoss)) return cudaErrorInvalidValue;
  auto k = mean_loss_kernel;
  OCTET_LAUNCH(k, 1, REDUCE_THREADS, 0, stream)(rowLoss, validRows, meanLoss, rows);
  return cudaGetLastError();
}
