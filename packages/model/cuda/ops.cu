// The model's elementwise and reduction ops (see ops.h for the ABI and each op's arithmetic).
//
// Shared layout rules, so that results never depend on alignment or on the device:
// - Elements are handled in groups of 4 consecutive floats. A group is one float4 load when the row (or flat
//   buffer) is 16-byte aligned and the group is whole, else 4 guarded scalar loads; the arithmetic and the
//   thread that owns the group are the same either way.
// - Reductions assign groups to threads and threads to a reduction tree from the sizes only (never from the SM
//   count), and reduce with xor-butterfly warp shuffles then a fixed pass over the warps.
// - float64 steps that repeat the JS CPU backend use _rn intrinsics, which nvcc never contracts into FMAs
//   (an FMA appears only where the CPU's product is exact in float64, so that both round the same once).
#include "ops.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

namespace {

constexpr int kBlock = 256;
constexpr unsigned kFullMask = 0xffffffffu;

// ---- small helpers ----------------------------------------------------------------------------------------------

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
bool aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over `work` items with kBlock threads (a grid-stride loop makes any count correct).
unsigned gridFor(int64_t work) {
  const int64_t b = ceilDiv(work, kBlock);
  return (unsigned)(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

__device__ __forceinline__ double dmul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double dadd(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double dsub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double ddiv(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float f32(double a) { return __double2float_rn(a); }

// The 4-float group at p, of which `avail` (1..4) exist; absent ones read as 0.
__device__ __forceinline__ void load4(const float* p, int64_t avail, bool vec, float (&v)[4]) {
  if (vec && avail >= 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = k < avail ? p[k] : 0.0f;
  }
}

__device__ __forceinline__ void store4(float* p, int64_t avail, bool vec, const float (&v)[4]) {
  if (vec && avail >= 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) if (k < avail) p[k] = v[k];
  }
}

__device__ __forceinline__ void load4u16(const uint16_t* p, int64_t avail, bool vec, uint32_t (&v)[4]) {
  if (vec && avail >= 4) {
    const uint2 t = *reinterpret_cast<const uint2*>(p);
    v[0] = t.x & 0xffffu; v[1] = t.x >> 16; v[2] = t.y & 0xffffu; v[3] = t.y >> 16;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = k < avail ? p[k] : 0u;
  }
}

__device__ __forceinline__ void store4u16(uint16_t* p, int64_t avail, bool vec, const uint32_t (&v)[4]) {
  if (vec && avail >= 4) {
    *reinterpret_cast<uint2*>(p) = make_uint2(v[0] | (v[1] << 16), v[2] | (v[3] << 16));
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) if (k < avail) p[k] = (uint16_t)v[k];
  }
}

__device__ __forceinline__ double warpSum(double v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v += __shfl_xor_sync(kFullMask, v, m);  // commutative pairs: all lanes agree
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024), the same bits in every thread. sh: 32 doubles.
__device__ double blockSum(double v, double* sh) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int nw = blockDim.x >> 5;
  v = warpSum(v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0;
  v = warpSum(v);
  __syncthreads();  // sh may be reused right after
  return v;
}

// ---- flat elementwise ops ---------------------------------------------------------------------------------------

// Runs op(i, avail, vec) on every 4-group of [0, n).
template <class Op>
__global__ void __launch_bounds__(kBlock) flatKernel(Op op, int64_t n, bool vec) {
  const int64_t groups = (n + 3) >> 2;
  for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = g << 2;
    op(i, n - i < 4 ? n - i : 4, vec);
  }
}

template <class Op>
cudaError_t launchFlat(const Op& op, int64_t n, bool vec, cudaStream_t stream) {
  flatKernel<Op><<<gridFor((n + 3) >> 2), kBlock, 0, stream>>>(op, n, vec);
  return cudaGetLastError();
}

struct AddOp {
  float* y;
  const float* x;
  __device__ void operator()(int64_t i, int64_t avail, bool vec) const {
    float a[4], b[4];
    load4(y + i, avail, vec, a);
    load4(x + i, avail, vec, b);
#pragma unroll
    for (int k = 0; k < 4; ++k) a[k] = __fadd_rn(a[k], b[k]);
    store4(y + i, avail, vec, a);
  }
};

// SwiGLU in float64 with the CPU's operation order (FP32 would lose ~1e-5 relative in dGate where
// 1 + g·(1 − sig) cancels, near g ≈ −1.28); exp is CUDA's float64 exp, within an ulp of V8's Math.exp.
struct SwigluForwardOp {
  const float* gate;
  const float* up;
  float* h;
  __device__ void operator()(int64_t i, int64_t avail, bool vec) const {
    float g[4], u[4], o[4];
    load4(gate + i, avail, vec, g);
    load4(up + i, avail, vec, u);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const double gg = g[k];
      o[k] = f32(dmul(ddiv(gg, dadd(1.0, exp(-gg))), (double)u[k]));  // (g / (1 + e^-g)) · up
    }
    store4(h + i, avail, vec, o);
  }
};

struct SwigluBackwardOp {
  const float* dh;
  const float* gate;
  const float* up;
  float* dGate;
  float* dUp;
  __device__ void operator()(int64_t i, int64_t avail, bool vec) const {
    float d[4], g[4], u[4], dg[4], du[4];
    load4(dh + i, avail, vec, d);
    load4(gate + i, avail, vec, g);
    load4(up + i, avail, vec, u);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const double gg = g[k], dd = d[k];
      const double sig = ddiv(1.0, dadd(1.0, exp(-gg)));
      const double silu = dmul(gg, sig);
      du[k] = f32(dmul(dd, silu));
      // ((dh · up) · sig) · (1 + g·(1 − sig)), left to right as the CPU
      const double tail = dadd(1.0, dmul(gg, dsub(1.0, sig)));
      dg[k] = f32(dmul(dmul(dmul(dd, (double)u[k]), sig), tail));
    }
    store4(dGate + i, avail, vec, dg);
    store4(dUp + i, avail, vec, du);
  }
};

struct ToBf16Op {
  const float* x;
  uint16_t* y;
  bool vecOut;
  __device__ void operator()(int64_t i, int64_t avail, bool vec) const {
    float a[4];
    uint32_t o[4];
    load4(x + i, avail, vec, a);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t b = __float_as_uint(a[k]);
      o[k] = (b & 0x7fffffffu) > 0x7f800000u ? 0xffffu : ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu;
    }
    store4u16(y + i, avail, vec && vecOut, o);
  }
};

struct FromBf16Op {
  const uint16_t* x;
  float* y;
  bool vecOut;
  __device__ void operator()(int64_t i, int64_t avail, bool vec) const {
    uint32_t a[4];
    float o[4];
    load4u16(x + i, avail, vec, a);
#pragma unroll
    for (int k = 0; k < 4; ++k) o[k] = __uint_as_float(a[k] << 16);
    store4(y + i, avail, vec && vecOut, o);
  }
};

// x = f32(x · a) in float64; with aDev, a = *aDev and nothing is written when it is 1.
__global__ void __launch_bounds__(kBlock) scaleKernel(float* x, int64_t n, double a, const double* aDev, bool vec) {
  if (aDev != nullptr) {
    a = *aDev;
    if (a == 1.0) return;
  }
  const int64_t groups = (n + 3) >> 2;
  for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = g << 2;
    const int64_t avail = n - i < 4 ? n - i : 4;
    float v[4];
    load4(x + i, avail, vec, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = f32(dmul((double)v[k], a));
    store4(x + i, avail, vec, v);
  }
}

// ---- row ops: one warp per row ----------------------------------------------------------------------------------

constexpr int kWarpsPerBlock = kBlock / 32;

// out[row] = src[index[row]], zero for an index outside [0, srcRows).
__global__ void __launch_bounds__(kBlock) gatherRowsKernel(const float* __restrict__ src, const int32_t* __restrict__ index,
                                                           float* __restrict__ out, int64_t outRows, int64_t cols,
                                                           int64_t srcRows, bool vec) {
  const int64_t row = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= outRows) return;
  const int lane = threadIdx.x & 31;
  const int64_t s = index[row];
  const bool valid = s >= 0 && s < srcRows;
  const float* in = src + (valid ? s : 0) * cols;
  float* o = out + row * cols;
#pragma unroll 4
  for (int64_t c = (int64_t)lane * 4; c < cols; c += 128) {
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (valid) load4(in + c, avail, vec, v);
    store4(o + c, avail, vec, v);
  }
}

// g[outIndex[r] or r] = f32(Σ a·b), float64 (each product exact, so the FMA rounds as the CPU's add).
__global__ void __launch_bounds__(kBlock) rowDotKernel(const float* __restrict__ a, const float* __restrict__ b,
                                                       float* __restrict__ g, const int32_t* __restrict__ outIndex,
                                                       int64_t rows, int64_t cols, bool vec) {
  const int64_t row = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const float* ar = a + row * cols;
  const float* br = b + row * cols;
  double acc = 0.0;
#pragma unroll 4
  for (int64_t c = (int64_t)lane * 4; c < cols; c += 128) {
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    float x[4], y[4];
    load4(ar + c, avail, vec, x);
    load4(br + c, avail, vec, y);
#pragma unroll
    for (int k = 0; k < 4; ++k) acc = __fma_rn((double)x[k], (double)y[k], acc);
  }
  acc = warpSum(acc);
  if (lane == 0) {
    const int64_t dst = outIndex != nullptr ? (int64_t)outIndex[row] : row;
    if (dst >= 0) g[dst] = f32(acc);
  }
}

__global__ void __launch_bounds__(kBlock) scaleRowsKernel(float* __restrict__ x, const float* __restrict__ w,
                                                          int64_t rows, int64_t cols, bool vec) {
  const int64_t row = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const float s = w[row];
  float* xr = x + row * cols;
#pragma unroll 4
  for (int64_t c = (int64_t)lane * 4; c < cols; c += 128) {
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    float v[4];
    load4(xr + c, avail, vec, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = __fmul_rn(v[k], s);
    store4(xr + c, avail, vec, v);
  }
}

// One warp per token: sort the token's rows ascending (the CPU's scatter order), then add them in that order.
template <bool kScaled>
__global__ void __launch_bounds__(kBlock) unpermuteKernel(const float* __restrict__ x, const int32_t* __restrict__ rowsOfToken,
                                                          const float* __restrict__ scale, float* __restrict__ out,
                                                          int64_t tokens, int topK, int64_t cols, int64_t xRows, bool vec) {
  __shared__ int64_t sortedRow[kWarpsPerBlock][OCTET_UNPERMUTE_MAX_TOPK];
  __shared__ float sortedScale[kWarpsPerBlock][OCTET_UNPERMUTE_MAX_TOPK];
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t t = (int64_t)blockIdx.x * kWarpsPerBlock + warp;
  if (t >= tokens) return;  // whole warps leave together; no block-wide barrier below

  // Rows outside [0, xRows) (dropped: −1) become INT64_MAX and sort last, past the valid count.
  int64_t r = INT64_MAX;
  if (lane < topK) {
    const int64_t v = rowsOfToken[t * topK + lane];
    if (v >= 0 && v < xRows) r = v;
  }
  int rank = 0;
  for (int j = 0; j < topK; ++j) {
    const int64_t rj = __shfl_sync(kFullMask, r, j);
    rank += (rj < r) || (rj == r && j < lane);
  }
  const unsigned validMask = __ballot_sync(kFullMask, lane < topK && r != INT64_MAX);
  const int nValid = __popc(validMask);
  if (lane < topK && r != INT64_MAX) {
    sortedRow[warp][rank] = r;
    sortedScale[warp][rank] = kScaled ? scale[r] : 1.0f;
  }
  __syncwarp();

  float* o = out + t * cols;
  for (int64_t c = (int64_t)lane * 4; c < cols; c += 128) {
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    float acc[4];
    load4(o + c, avail, vec, acc);
    int p = 0;
    // Four rows' loads in flight at a time; the adds stay in ascending row order.
    for (; p + 4 <= nValid; p += 4) {
      float v[4][4];
#pragma unroll
      for (int q = 0; q < 4; ++q) load4(x + sortedRow[warp][p + q] * cols + c, avail, vec, v[q]);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const double s = (double)sortedScale[warp][p + q];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          acc[k] = kScaled ? f32(__fma_rn(s, (double)v[q][k], (double)acc[k])) : __fadd_rn(acc[k], v[q][k]);
        }
      }
    }
    for (; p < nValid; ++p) {
      float v[4];
      load4(x + sortedRow[warp][p] * cols + c, avail, vec, v);
      const double s = (double)sortedScale[warp][p];
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[k] = kScaled ? f32(__fma_rn(s, (double)v[k], (double)acc[k])) : __fadd_rn(acc[k], v[k]);
    }
    store4(o + c, avail, vec, acc);
  }
}

// ---- embedding backward: stable radix sort of positions by id, then ordered per-id sums --------------------------

constexpr int kSortThreads = 256;  // = number of 8-bit digits: thread d owns digit d in the scatter's prefix step
constexpr int kSortItems = 2;  // small tiles: at 16384 tokens, 32 blocks per pass rather than 8
constexpr int kSortTile = kSortThreads * kSortItems;
constexpr int kSortWarps = kSortThreads / 32;

__device__ __forceinline__ int32_t sortKey(const int32_t* keys, int64_t idx, bool mapIds, int64_t vocab) {
  const int32_t k = keys[idx];
  // Out-of-range ids become `vocab`, a key past every real id; their rows are never added.
  return (mapIds && (k < 0 || (int64_t)k >= vocab)) ? (int32_t)vocab : k;
}

// hist[d · numTiles + tile] = count of digit d in the tile (digit-major, so one exclusive scan gives every
// (digit, tile) its output start in stable order).
__global__ void __launch_bounds__(kSortThreads) radixHistKernel(const int32_t* __restrict__ keys, bool mapIds, int64_t vocab,
                                                                int n, int shift, int numTiles, int* __restrict__ hist) {
  __shared__ int count[256];
  count[threadIdx.x] = 0;
  __syncthreads();
  const int tileStart = blockIdx.x * kSortTile;
  for (int r = 0; r < kSortItems; ++r) {
    const int idx = tileStart + r * kSortThreads + threadIdx.x;
    if (idx < n) atomicAdd(&count[(sortKey(keys, idx, mapIds, vocab) >> shift) & 255], 1);  // integer: order-free
  }
  __syncthreads();
  hist[threadIdx.x * numTiles + blockIdx.x] = count[threadIdx.x];
}

// In-place exclusive scan of data [m] by one block of 1024 threads (each thread a contiguous run).
__global__ void __launch_bounds__(1024) exclusiveScanKernel(int* data, int m) {
  __shared__ int sh[1024];
  const int per = (m + 1023) / 1024;
  const int begin = min(m, (int)threadIdx.x * per);
  const int end = min(m, begin + per);
  int sum = 0;
  for (int i = begin; i < end; ++i) sum += data[i];
  sh[threadIdx.x] = sum;
  __syncthreads();
  for (int off = 1; off < 1024; off <<= 1) {
    const int v = threadIdx.x >= (unsigned)off ? sh[threadIdx.x - off] : 0;
    __syncthreads();
    sh[threadIdx.x] += v;
    __syncthreads();
  }
  int run = sh[threadIdx.x] - sum;
  for (int i = begin; i < end; ++i) {
    const int v = data[i];
    data[i] = run;
    run += v;
  }
}

// Stable scatter of one tile by digit: elements are ranked in position order (round, then warp, then lane).
__global__ void __launch_bounds__(kSortThreads) radixScatterKernel(const int32_t* __restrict__ keysIn, const int32_t* __restrict__ valsIn,
                                                                   bool mapIds, int64_t vocab, int32_t* __restrict__ keysOut,
                                                                   int32_t* __restrict__ valsOut, int n, int shift, int numTiles,
                                                                   const int* __restrict__ start) {
  __shared__ int running[256];
  __shared__ int warpCount[kSortWarps][256];
  __shared__ int warpBase[kSortWarps][256];
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  running[tid] = start[tid * numTiles + blockIdx.x];
#pragma unroll
  for (int w = 0; w < kSortWarps; ++w) warpCount[w][tid] = 0;
  __syncthreads();
  const int tileStart = blockIdx.x * kSortTile;
  for (int r = 0; r < kSortItems; ++r) {
    const int idx = tileStart + r * kSortThreads + tid;
    const bool valid = idx < n;
    const int32_t key = valid ? sortKey(keysIn, idx, mapIds, vocab) : 0;
    const int32_t val = valid ? (valsIn != nullptr ? valsIn[idx] : idx) : 0;
    const int digit = valid ? (key >> shift) & 255 : 256;  // 256: no element
    const unsigned peers = __match_any_sync(kFullMask, digit);
    const int rankInWarp = __popc(peers & ((1u << lane) - 1u));
    if (valid && rankInWarp == 0) warpCount[warp][digit] = __popc(peers);
    __syncthreads();
    int run = running[tid];  // thread tid = digit tid: warps' bases in warp order
#pragma unroll
    for (int w = 0; w < kSortWarps; ++w) {
      const int c = warpCount[w][tid];
      warpBase[w][tid] = run;
      run += c;
      warpCount[w][tid] = 0;
    }
    running[tid] = run;
    __syncthreads();
    if (valid) {
      const int dst = warpBase[warp][digit] + rankInWarp;
      keysOut[dst] = key;
      valsOut[dst] = val;
    }
  }
}

constexpr int kEmbThreads = 64;   // columns of a block: 64 threads × 4
constexpr int kEmbBatch = 16;     // rows loaded ahead of the ordered adds (a hot id's run is a latency chain)

// Block (i, slice): when sorted position i starts an id's run, adds that id's rows (ascending position) onto
// dTable's row, in FP32, one row after the other — CpuBackend.embeddingBackward's order.
__global__ void __launch_bounds__(kEmbThreads) embeddingAccumulateKernel(const float* __restrict__ dOut,
                                                                         const int32_t* __restrict__ sortedKey,
                                                                         const int32_t* __restrict__ sortedPos,
                                                                         float* __restrict__ dTable, int n, int64_t cols,
                                                                         int64_t vocab, bool vec) {
  const int i = blockIdx.x;
  const int32_t key = sortedKey[i];
  if ((int64_t)key >= vocab) return;
  if (i > 0 && sortedKey[i - 1] == key) return;
  const int64_t c = ((int64_t)blockIdx.y * kEmbThreads + threadIdx.x) * 4;
  if (c >= cols) return;
  const int64_t avail = cols - c < 4 ? cols - c : 4;
  float* dst = dTable + (int64_t)key * cols + c;
  float acc[4];
  load4(dst, avail, vec, acc);
  for (int j = i;; j += kEmbBatch) {
    float v[kEmbBatch][4];
    bool has[kEmbBatch];
#pragma unroll
    for (int b = 0; b < kEmbBatch; ++b) {
      has[b] = j + b < n && sortedKey[j + b] == key;  // a prefix of the batch (sorted keys)
      if (has[b]) load4(dOut + (int64_t)sortedPos[j + b] * cols + c, avail, vec, v[b]);
    }
#pragma unroll
    for (int b = 0; b < kEmbBatch; ++b) {
      if (has[b]) {
#pragma unroll
        for (int k = 0; k < 4; ++k) acc[k] = __fadd_rn(acc[k], v[b][k]);
      }
    }
    if (!has[kEmbBatch - 1]) break;
  }
  store4(dst, avail, vec, acc);
}

struct EmbeddingWorkspace {
  int numTiles;
  int passes;
  size_t keysA, valsA, keysB, valsB, hist, total;  // byte offsets
};

size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

bool embeddingWorkspace(int64_t n, int64_t vocab, EmbeddingWorkspace* w) {
  if (n < 0 || n >= ((int64_t)1 << 31) || vocab < 1 || vocab >= ((int64_t)1 << 31) - 1) return false;
  w->numTiles = (int)ceilDiv(n, kSortTile);
  int bits = 0;
  while (bits < 31 && ((int64_t)1 << bits) <= vocab) ++bits;  // keys 0 .. vocab (vocab: invalid ids)
  w->passes = (bits + 7) / 8;
  const size_t arr = align256((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
  w->keysA = 0;
  w->valsA = arr;
  w->keysB = 2 * arr;
  w->valsB = 3 * arr;
  w->hist = 4 * arr;
  w->total = w->hist + align256((size_t)256 * (w->numTiles > 0 ? w->numTiles : 1) * sizeof(int));
  return true;
}

// ---- RMSNorm ----------------------------------------------------------------------------------------------------

// Threads of a block that owns whole rows: one per 4-group up to 256, at least a warp.
int rowThreads(int64_t cols) {
  const int64_t groups = (cols + 3) >> 2;
  if (groups >= kBlock) return kBlock;
  return (int)(((groups + 31) >> 5) << 5);
}

__global__ void __launch_bounds__(kBlock) rmsnormForwardKernel(const float* __restrict__ x, const float* __restrict__ w,
                                                               float* __restrict__ y, float* __restrict__ rstd,
                                                               int64_t cols, double eps, bool vec) {
  __shared__ double sh[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;
  double ss = 0.0;
  for (int64_t c = (int64_t)threadIdx.x * 4; c < cols; c += (int64_t)blockDim.x * 4) {
    float v[4];
    load4(xr + c, cols - c < 4 ? cols - c : 4, vec, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) ss = __fma_rn((double)v[k], (double)v[k], ss);  // x² exact: rounds as ss + x·x
  }
  ss = blockSum(ss, sh);
  const double s = ddiv(1.0, __dsqrt_rn(dadd(ddiv(ss, (double)cols), eps)));
  if (threadIdx.x == 0) rstd[row] = f32(s);
  for (int64_t c = (int64_t)threadIdx.x * 4; c < cols; c += (int64_t)blockDim.x * 4) {
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    float v[4], wv[4], o[4];
    load4(xr + c, avail, vec, v);
    load4(w + c, avail, vec, wv);
#pragma unroll
    for (int k = 0; k < 4; ++k) o[k] = f32(dmul(dmul((double)v[k], s), (double)wv[k]));
    store4(yr + c, avail, vec, o);
  }
}

constexpr int kNormMaxItems = 8;  // 4-groups per thread: cols ≤ 256 · 8 · 4 = 8192

int64_t normRowsPerBlock(int64_t rows) {
  const int64_t r = ceilDiv(rows, 1024);
  return r < 8 ? 8 : r;
}

// Rows [blockIdx.x · rowsPerBlock, +rowsPerBlock): dx per row, and the block's Σ (dy·x)·s per column into
// partial[blockIdx.x, :] (float64). Thread t owns 4-groups t, t + T, … (ITEMS of them) in every row.
template <int ITEMS>
__global__ void __launch_bounds__(kBlock) rmsnormBackwardKernel(const float* __restrict__ dy, const float* __restrict__ x,
                                                                const float* __restrict__ w, const float* __restrict__ rstd,
                                                                float* __restrict__ dx, double* __restrict__ partial,
                                                                int64_t rows, int64_t cols, int64_t rowsPerBlock, bool vec) {
  __shared__ double sh[32];
  const int T = blockDim.x;
  float wv[ITEMS][4];
  double dw[ITEMS][4];
#pragma unroll
  for (int it = 0; it < ITEMS; ++it) {
    const int64_t c = ((int64_t)it * T + threadIdx.x) * 4;
    const int64_t avail = cols - c < 4 ? cols - c : 4;
    if (avail > 0) load4(w + c, avail, vec, wv[it]);
    else wv[it][0] = wv[it][1] = wv[it][2] = wv[it][3] = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) dw[it][k] = 0.0;
  }
  const int64_t r0 = (int64_t)blockIdx.x * rowsPerBlock;
  const int64_t r1 = r0 + rowsPerBlock < rows ? r0 + rowsPerBlock : rows;
  for (int64_t r = r0; r < r1; ++r) {
    const double s = (double)rstd[r];
    const float* dyr = dy + r * cols;
    const float* xr = x + r * cols;
    // Pass 1: dot = Σ (dy·w)·x over the row. Pass 2 reloads the row (from L1/L2: the DRAM traffic is one read)
    // rather than holding it in registers, which keeps the occupancy up.
    double dot = 0.0;
#pragma unroll
    for (int it = 0; it < ITEMS; ++it) {
      const int64_t c = ((int64_t)it * T + threadIdx.x) * 4;
      const int64_t avail = cols - c < 4 ? cols - c : 4;
      if (avail <= 0) continue;
      float dyv[4], xv[4];
      load4(dyr + c, avail, vec, dyv);
      load4(xr + c, avail, vec, xv);
#pragma unroll
      for (int k = 0; k < 4; ++k) dot = dadd(dot, dmul(dmul((double)dyv[k], (double)wv[it][k]), (double)xv[k]));
    }
    dot = blockSum(dot, sh);
    const double kk = ddiv(dmul(dmul(dmul(s, s), s), dot), (double)cols);
#pragma unroll
    for (int it = 0; it < ITEMS; ++it) {
      const int64_t c = ((int64_t)it * T + threadIdx.x) * 4;
      const int64_t avail = cols - c < 4 ? cols - c : 4;
      if (avail <= 0) continue;
      float dyv[4], xv[4], o[4];
      load4(dyr + c, avail, vec, dyv);
      load4(xr + c, avail, vec, xv);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const double d = dyv[k], xx = xv[k];
        o[k] = f32(dsub(dmul(dmul(s, d), (double)wv[it][k]), dmul(xx, kk)));  // (s·dy)·w − x·k
        dw[it][k] = dadd(dw[it][k], dmul(dmul(d, xx), s));                   // (dy·x)·s
      }
      store4(dx + r * cols + c, avail, vec, o);
    }
  }
#pragma unroll
  for (int it = 0; it < ITEMS; ++it) {
    const int64_t c = ((int64_t)it * T + threadIdx.x) * 4;
#pragma unroll
    for (int k = 0; k < 4; ++k) if (c + k < cols) partial[(int64_t)blockIdx.x * cols + c + k] = dw[it][k];
  }
}

// dWeight[c] = f32(dWeight[c] + Σ_b partial[b, c]): 8 row-strided lanes per column, then lane 0 adds the 8 in order.
__global__ void __launch_bounds__(256) rmsnormWeightReduceKernel(const double* __restrict__ partial, float* __restrict__ dWeight,
                                                                 int64_t numBlocks, int64_t cols) {
  __shared__ double sh[8][32];
  const int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
  double sum = 0.0;
  if (c < cols) {
    for (int64_t b = threadIdx.y; b < numBlocks; b += 8) sum = dadd(sum, partial[b * cols + c]);
  }
  sh[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double total = sh[0][threadIdx.x];
#pragma unroll
    for (int j = 1; j < 8; ++j) total = dadd(total, sh[j][threadIdx.x]);
    dWeight[c] = f32(dadd((double)dWeight[c], total));
  }
}

// ---- RoPE -------------------------------------------------------------------------------------------------------

constexpr int kRopeMaxHalf = 1024;  // dim ≤ 2048

// Thread per (token, i < half): the CPU's table entry for (p, i), then every head's pair (i, i + half).
__global__ void __launch_bounds__(kBlock) ropeKernel(float* __restrict__ x, int64_t tokens, int64_t seqLen, int64_t heads,
                                                     int64_t stride, int64_t offset, int half, int dim, double theta,
                                                     bool inverse) {
  __shared__ double pw[kRopeMaxHalf];  // theta^(2i/dim) for i < half, shared by the block's tokens
  for (int i = threadIdx.x; i < half; i += blockDim.x) pw[i] = pow(theta, ddiv((double)(2 * i), (double)dim));
  __syncthreads();
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= tokens * half) return;
  const int64_t t = idx / half;
  const int i = (int)(idx - t * half);
  const double angle = ddiv((double)(t % seqLen), pw[i]);
  double sn, cs;
  sincos(angle, &sn, &cs);
  const double c = (double)f32(cs);  // the CPU's Float32Array table
  const double s = inverse ? -(double)f32(sn) : (double)f32(sn);
  float* base = x + t * heads * stride + offset + i;
#pragma unroll 4
  for (int64_t h = 0; h < heads; ++h) {
    float* p = base + h * stride;
    const double a = p[0];
    const double b = p[half];
    p[0] = f32(dsub(dmul(a, c), dmul(b, s)));
    p[half] = f32(dadd(dmul(b, c), dmul(a, s)));
  }
}

// ---- AdamW ------------------------------------------------------------------------------------------------------

constexpr int kAdamRounds = 8;
constexpr int64_t kAdamChunk = (int64_t)kBlock * 4 * kAdamRounds;  // contiguous elements per block

__device__ __forceinline__ uint32_t adamBf16Bits(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;  // the CPU's rounding (no NaN special case), wrapping as in JS
}

// Block b updates [b · kAdamChunk, +kAdamChunk) in kAdamRounds rounds of 4-groups; each thread walks the
// segment list forward from the block's first segment (found once by binary search).
template <bool kBf16>
__global__ void __launch_bounds__(kBlock) adamwKernel(float* __restrict__ param, const float* __restrict__ grad,
                                                      void* __restrict__ mPtr, void* __restrict__ vPtr, int64_t n,
                                                      const OctetAdamWSegment* __restrict__ segs, int64_t numSegs,
                                                      const OctetAdamWHyper* __restrict__ hyper,
                                                      const int32_t* __restrict__ skip, bool vec) {
  if (skip != nullptr && *skip != 0) return;
  __shared__ int64_t firstSeg;
  const int64_t chunkStart = (int64_t)blockIdx.x * kAdamChunk;
  if (threadIdx.x == 0) {
    int64_t lo = 0, hi = numSegs;  // first segment whose end > chunkStart (ends ascend)
    while (lo < hi) {
      const int64_t mid = (lo + hi) >> 1;
      if (segs[mid].offset + segs[mid].size <= chunkStart) lo = mid + 1;
      else hi = mid;
    }
    firstSeg = lo;
  }
  __syncthreads();
  const double lr = hyper->lr, beta1 = hyper->beta1, beta2 = hyper->beta2, eps = hyper->eps;
  const double c1 = hyper->biasCorrection1, c2 = hyper->biasCorrection2;
  const double oneMinusBeta1 = dsub(1.0, beta1);
  const double oneMinusBeta2 = dsub(1.0, beta2);
  const double decayOn = dsub(1.0, dmul(lr, hyper->weightDecay));
  const double decayOff = dsub(1.0, dmul(lr, 0.0));

  int64_t cur = firstSeg;
  int64_t segStart = INT64_MAX, segEnd = INT64_MAX;
  int segDecay = 0;
  if (cur < numSegs) {
    segStart = segs[cur].offset;
    segEnd = segStart + segs[cur].size;
    segDecay = segs[cur].decay;
  }
  for (int round = 0; round < kAdamRounds; ++round) {
    const int64_t i = chunkStart + ((int64_t)round * kBlock + threadIdx.x) * 4;
    if (i >= n) break;
    const int64_t avail = n - i < 4 ? n - i : 4;
    int kind[4];  // 0: in no segment, 1: no decay, 2: decay
    bool any = false;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      kind[k] = 0;
      if (k < avail) {
        const int64_t e = i + k;
        while (e >= segEnd) {
          ++cur;
          if (cur < numSegs) {
            segStart = segs[cur].offset;
            segEnd = segStart + segs[cur].size;
            segDecay = segs[cur].decay;
          } else {
            segStart = segEnd = INT64_MAX;
          }
        }
        if (e >= segStart) kind[k] = segDecay ? 2 : 1;
        any |= kind[k] != 0;
      }
    }
    if (!any) continue;
    float p[4], g[4];
    load4(param + i, avail, vec, p);
    load4(grad + i, avail, vec, g);
    float m32[4], v32[4];
    uint32_t m16[4], v16[4];
    if (kBf16) {
      load4u16(static_cast<const uint16_t*>(mPtr) + i, avail, vec, m16);
      load4u16(static_cast<const uint16_t*>(vPtr) + i, avail, vec, v16);
    } else {
      load4(static_cast<const float*>(mPtr) + i, avail, vec, m32);
      load4(static_cast<const float*>(vPtr) + i, avail, vec, v32);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (kind[k] == 0) continue;
      const double gd = g[k];
      const double mOld = kBf16 ? (double)__uint_as_float(m16[k] << 16) : (double)m32[k];
      const double vOld = kBf16 ? (double)__uint_as_float(v16[k] << 16) : (double)v32[k];
      double mi = dadd(dmul(beta1, mOld), dmul(oneMinusBeta1, gd));
      double vi = dadd(dmul(beta2, vOld), dmul(dmul(oneMinusBeta2, gd), gd));
      if (kBf16) {
        m16[k] = adamBf16Bits(f32(mi));
        v16[k] = adamBf16Bits(f32(vi));
        mi = (double)__uint_as_float(m16[k] << 16);
        vi = (double)__uint_as_float(v16[k] << 16);
      } else {
        m32[k] = f32(mi);  // stored rounded; the update below uses the float64 value, as the CPU
        v32[k] = f32(vi);
      }
      const double decay = kind[k] == 2 ? decayOn : decayOff;
      const double step = ddiv(dmul(lr, ddiv(mi, c1)), dadd(__dsqrt_rn(ddiv(vi, c2)), eps));
      p[k] = f32(dsub(dmul((double)p[k], decay), step));
    }
    if (vec && avail == 4) {  // whole group: one store per array (untouched elements keep their bits)
      store4(param + i, 4, true, p);
      if (kBf16) {
        store4u16(static_cast<uint16_t*>(mPtr) + i, 4, true, m16);
        store4u16(static_cast<uint16_t*>(vPtr) + i, 4, true, v16);
      } else {
        store4(static_cast<float*>(mPtr) + i, 4, true, m32);
        store4(static_cast<float*>(vPtr) + i, 4, true, v32);
      }
    } else {
      for (int k = 0; k < avail; ++k) {
        if (kind[k] == 0) continue;
        param[i + k] = p[k];
        if (kBf16) {
          static_cast<uint16_t*>(mPtr)[i + k] = (uint16_t)m16[k];
          static_cast<uint16_t*>(vPtr)[i + k] = (uint16_t)v16[k];
        } else {
          static_cast<float*>(mPtr)[i + k] = m32[k];
          static_cast<float*>(vPtr)[i + k] = v32[k];
        }
      }
    }
  }
}

// ---- sum of squares, clipping, bias update ----------------------------------------------------------------------

constexpr int kSumSqMaxBlocks = 1024;

int sumSquaresBlocks(int64_t n) {
  const int64_t b = ceilDiv(n, 16384);  // a function of n only: the partials' grouping is fixed by the size
  return (int)(b < 1 ? 1 : (b > kSumSqMaxBlocks ? kSumSqMaxBlocks : b));
}

__global__ void __launch_bounds__(kBlock) sumSquaresPartialKernel(const float* __restrict__ x, int64_t n,
                                                                  double* __restrict__ partial, bool vec) {
  __shared__ double sh[32];
  const int64_t groups = (n + 3) >> 2;
  double acc = 0.0;
  for (int64_t g = (int64_t)blockIdx.x * kBlock + threadIdx.x; g < groups; g += (int64_t)gridDim.x * kBlock) {
    const int64_t i = g << 2;
    float v[4];
    load4(x + i, n - i < 4 ? n - i : 4, vec, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) acc = __fma_rn((double)v[k], (double)v[k], acc);
  }
  acc = blockSum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kBlock) sumPartialsKernel(const double* __restrict__ partial, int count,
                                                            double* __restrict__ out) {
  __shared__ double sh[32];
  double acc = 0.0;
  for (int j = threadIdx.x; j < count; j += kBlock) acc = dadd(acc, partial[j]);
  acc = blockSum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void zeroDoubleKernel(double* out) { *out = 0.0; }

__global__ void clipCoefficientKernel(const double* __restrict__ sumSquares, double maxNorm, double* __restrict__ normOut,
                                      double* __restrict__ scaleOut, int32_t* __restrict__ nonFinite) {
  const double ss = *sumSquares;
  const double norm = __dsqrt_rn(ss);
  // optim.ts: if (maxNorm > 0 && norm > maxNorm) s = maxNorm / (norm + 1e-6)
  const double s = (maxNorm > 0.0 && norm > maxNorm) ? ddiv(maxNorm, dadd(norm, 1e-6)) : 1.0;
  if (normOut != nullptr) *normOut = norm;
  *scaleOut = s;
  if (nonFinite != nullptr) *nonFinite = isfinite(ss) ? 0 : 1;
}

__global__ void __launch_bounds__(1024) biasUpdateKernel(float* __restrict__ bias, const int32_t* __restrict__ loads,
                                                         int64_t experts, const double* __restrict__ gammaPtr) {
  __shared__ long long sh[32];
  long long sum = 0;
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) sum += loads[e];
  // Integer sum: exact in any order.
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) sum += __shfl_xor_sync(kFullMask, sum, m);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = sum;
  __syncthreads();
  long long total = 0;
  for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += sh[w];
  const double mean = ddiv((double)total, (double)experts);
  const double gamma = *gammaPtr;
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) {
    const double d = dsub(mean, (double)loads[e]);
    const double sign = d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : d);  // Math.sign
    bias[e] = f32(dadd((double)bias[e], dmul(gamma, sign)));
  }
}

}  // namespace

// ==== C ABI ======================================================================================================

extern "C" {

cudaError_t octet_embedding_forward(const float* table, const int32_t* ids, float* out, int64_t n, int64_t cols,
                                    int64_t vocab, cudaStream_t stream) {
  if (n < 0 || cols < 1 || vocab < 1) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!table || !ids || !out) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(table) && aligned16(out);
  gatherRowsKernel<<<(unsigned)ceilDiv(n, kWarpsPerBlock), kBlock, 0, stream>>>(table, ids, out, n, cols, vocab, vec);
  return cudaGetLastError();
}

size_t octet_embedding_backward_workspace_bytes(int64_t n, int64_t vocab) {
  EmbeddingWorkspace w;
  return embeddingWorkspace(n, vocab, &w) ? w.total : 0;
}

cudaError_t octet_embedding_backward(const float* dOut, const int32_t* ids, float* dTable, int64_t n, int64_t cols,
                                     int64_t vocab, void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  EmbeddingWorkspace w;
  if (cols < 1 || !embeddingWorkspace(n, vocab, &w)) return cudaErrorInvalidValue;
  if (ceilDiv(cols, (int64_t)kEmbThreads * 4) > 65535) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!dOut || !ids || !dTable || !workspace || workspaceBytes < w.total) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  int32_t* keys[2] = {reinterpret_cast<int32_t*>(ws + w.keysA), reinterpret_cast<int32_t*>(ws + w.keysB)};
  int32_t* vals[2] = {reinterpret_cast<int32_t*>(ws + w.valsA), reinterpret_cast<int32_t*>(ws + w.valsB)};
  int* hist = reinterpret_cast<int*>(ws + w.hist);
  const int nn = (int)n;
  const int histLen = 256 * w.numTiles;
  for (int pass = 0; pass < w.passes; ++pass) {
    const bool first = pass == 0;
    const int32_t* kin = first ? ids : keys[(pass - 1) & 1];
    const int32_t* vin = first ? nullptr : vals[(pass - 1) & 1];
    radixHistKernel<<<w.numTiles, kSortThreads, 0, stream>>>(kin, first, vocab, nn, 8 * pass, w.numTiles, hist);
    exclusiveScanKernel<<<1, 1024, 0, stream>>>(hist, histLen);
    radixScatterKernel<<<w.numTiles, kSortThreads, 0, stream>>>(kin, vin, first, vocab, keys[pass & 1], vals[pass & 1], nn,
                                                                 8 * pass, w.numTiles, hist);
  }
  const int last = (w.passes - 1) & 1;
  const bool vec = cols % 4 == 0 && aligned16(dOut) && aligned16(dTable);
  const dim3 grid((unsigned)n, (unsigned)ceilDiv(cols, (int64_t)kEmbThreads * 4));
  embeddingAccumulateKernel<<<grid, kEmbThreads, 0, stream>>>(dOut, keys[last], vals[last], dTable, nn, cols, vocab, vec);
  return cudaGetLastError();
}

cudaError_t octet_rmsnorm_forward(const float* x, const float* weight, float* y, float* rstd, int64_t rows,
                                  int64_t cols, double eps, cudaStream_t stream) {
  if (rows < 0 || rows >= ((int64_t)1 << 31) || cols < 1 || cols > ((int64_t)1 << 30)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!x || !weight || !y || !rstd) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(x) && aligned16(weight) && aligned16(y);
  rmsnormForwardKernel<<<(unsigned)rows, rowThreads(cols), 0, stream>>>(x, weight, y, rstd, cols, eps, vec);
  return cudaGetLastError();
}

size_t octet_rmsnorm_backward_workspace_bytes(int64_t rows, int64_t cols) {
  if (rows < 0 || rows >= ((int64_t)1 << 31) || cols < 1 || cols > (int64_t)kBlock * kNormMaxItems * 4) return 0;
  const int64_t blocks = rows > 0 ? ceilDiv(rows, normRowsPerBlock(rows)) : 1;
  return (size_t)blocks * (size_t)cols * sizeof(double);
}

cudaError_t octet_rmsnorm_backward(const float* dy, const float* x, const float* weight, const float* rstd, float* dx,
                                   float* dWeight, int64_t rows, int64_t cols, void* workspace, size_t workspaceBytes,
                                   cudaStream_t stream) {
  const size_t need = octet_rmsnorm_backward_workspace_bytes(rows, cols);
  if (need == 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!dy || !x || !weight || !rstd || !dx || !dWeight || !workspace || workspaceBytes < need) return cudaErrorInvalidValue;
  const int64_t rowsPerBlock = normRowsPerBlock(rows);
  const int64_t blocks = ceilDiv(rows, rowsPerBlock);
  const int threads = rowThreads(cols);
  const int64_t items = ceilDiv(ceilDiv(cols, 4), threads);
  const bool vec = cols % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(weight) && aligned16(dx);
  double* partial = static_cast<double*>(workspace);
#define OCTET_NORM_BWD(I) \
  rmsnormBackwardKernel<I><<<(unsigned)blocks, threads, 0, stream>>>(dy, x, weight, rstd, dx, partial, rows, cols, rowsPerBlock, vec)
  if (items <= 1) OCTET_NORM_BWD(1);
  else if (items <= 2) OCTET_NORM_BWD(2);
  else if (items <= 4) OCTET_NORM_BWD(4);
  else OCTET_NORM_BWD(8);
#undef OCTET_NORM_BWD
  rmsnormWeightReduceKernel<<<(unsigned)ceilDiv(cols, 32), dim3(32, 8), 0, stream>>>(partial, dWeight, blocks, cols);
  return cudaGetLastError();
}

cudaError_t octet_rope(float* x, int64_t tokens, int64_t seqLen, int64_t heads, int64_t stride, int64_t offset,
                       int64_t dim, double theta, int inverse, cudaStream_t stream) {
  if (tokens < 0 || seqLen < 1 || heads < 1 || dim < 2 || dim > 2 * kRopeMaxHalf || dim % 2 != 0 || offset < 0 ||
      offset + dim > stride || !(theta > 0.0) || !isfinite(theta))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if (!x) return cudaErrorInvalidValue;
  const int half = (int)(dim / 2);
  const int64_t work = tokens * half;
  if (ceilDiv(work, kBlock) >= ((int64_t)1 << 31)) return cudaErrorInvalidValue;
  ropeKernel<<<(unsigned)ceilDiv(work, kBlock), kBlock, 0, stream>>>(x, tokens, seqLen, heads, stride,
                                                                                       offset, half, (int)dim, theta,
                                                                                       inverse != 0);
  return cudaGetLastError();
}

cudaError_t octet_swiglu_forward(const float* gate, const float* up, float* h, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!gate || !up || !h) return cudaErrorInvalidValue;
  return launchFlat(SwigluForwardOp{gate, up, h}, n, aligned16(gate) && aligned16(up) && aligned16(h), stream);
}

cudaError_t octet_swiglu_backward(const float* dh, const float* gate, const float* up, float* dGate, float* dUp,
                                  int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!dh || !gate || !up || !dGate || !dUp) return cudaErrorInvalidValue;
  const bool vec = aligned16(dh) && aligned16(gate) && aligned16(up) && aligned16(dGate) && aligned16(dUp);
  return launchFlat(SwigluBackwardOp{dh, gate, up, dGate, dUp}, n, vec, stream);
}

cudaError_t octet_permute_rows(const float* x, const int32_t* index, float* out, int64_t outRows, int64_t cols,
                               int64_t inRows, cudaStream_t stream) {
  if (outRows < 0 || cols < 1 || inRows < 0) return cudaErrorInvalidValue;
  if (outRows == 0) return cudaSuccess;
  if (!index || !out || (inRows > 0 && !x)) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(x) && aligned16(out);
  gatherRowsKernel<<<(unsigned)ceilDiv(outRows, kWarpsPerBlock), kBlock, 0, stream>>>(x, index, out, outRows, cols, inRows, vec);
  return cudaGetLastError();
}

cudaError_t octet_unpermute_add(const float* x, const int32_t* rowsOfToken, const float* scale, float* out,
                                int64_t tokens, int64_t topK, int64_t cols, int64_t xRows, cudaStream_t stream) {
  if (tokens < 0 || topK < 1 || topK > OCTET_UNPERMUTE_MAX_TOPK || cols < 1 || xRows < 0) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if (!rowsOfToken || !out || (xRows > 0 && !x)) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(x) && aligned16(out);
  const unsigned grid = (unsigned)ceilDiv(tokens, kWarpsPerBlock);
  if (scale != nullptr)
    unpermuteKernel<true><<<grid, kBlock, 0, stream>>>(x, rowsOfToken, scale, out, tokens, (int)topK, cols, xRows, vec);
  else
    unpermuteKernel<false><<<grid, kBlock, 0, stream>>>(x, rowsOfToken, nullptr, out, tokens, (int)topK, cols, xRows, vec);
  return cudaGetLastError();
}

cudaError_t octet_row_dot(const float* a, const float* b, float* g, const int32_t* outIndex, int64_t rows,
                          int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 1) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!a || !b || !g) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(a) && aligned16(b);
  rowDotKernel<<<(unsigned)ceilDiv(rows, kWarpsPerBlock), kBlock, 0, stream>>>(a, b, g, outIndex, rows, cols, vec);
  return cudaGetLastError();
}

cudaError_t octet_scale_rows(float* x, const float* w, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 1) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!x || !w) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && aligned16(x);
  scaleRowsKernel<<<(unsigned)ceilDiv(rows, kWarpsPerBlock), kBlock, 0, stream>>>(x, w, rows, cols, vec);
  return cudaGetLastError();
}

static cudaError_t adamwLaunch(bool bf16, float* param, const float* grad, void* m, void* v, int64_t n,
                               const OctetAdamWSegment* segments, int64_t numSegments, const OctetAdamWHyper* hyper,
                               const int32_t* skip, cudaStream_t stream) {
  if (n < 0 || numSegments < 0) return cudaErrorInvalidValue;
  if (n == 0 || numSegments == 0) return cudaSuccess;
  if (!param || !grad || !m || !v || !segments || !hyper) return cudaErrorInvalidValue;
  const int64_t blocks = ceilDiv(n, kAdamChunk);
  if (blocks >= ((int64_t)1 << 31)) return cudaErrorInvalidValue;
  const bool vec = aligned16(param) && aligned16(grad) && (bf16 ? aligned8(m) && aligned8(v) : aligned16(m) && aligned16(v));
  if (bf16)
    adamwKernel<true><<<(unsigned)blocks, kBlock, 0, stream>>>(param, grad, m, v, n, segments, numSegments, hyper, skip, vec);
  else
    adamwKernel<false><<<(unsigned)blocks, kBlock, 0, stream>>>(param, grad, m, v, n, segments, numSegments, hyper, skip, vec);
  return cudaGetLastError();
}

cudaError_t octet_adamw_update_f32(float* param, const float* grad, float* m, float* v, int64_t n,
                                   const OctetAdamWSegment* segments, int64_t numSegments,
                                   const OctetAdamWHyper* hyper, const int32_t* skip, cudaStream_t stream) {
  return adamwLaunch(false, param, grad, m, v, n, segments, numSegments, hyper, skip, stream);
}

cudaError_t octet_adamw_update_bf16(float* param, const float* grad, uint16_t* m, uint16_t* v, int64_t n,
                                    const OctetAdamWSegment* segments, int64_t numSegments,
                                    const OctetAdamWHyper* hyper, const int32_t* skip, cudaStream_t stream) {
  return adamwLaunch(true, param, grad, m, v, n, segments, numSegments, hyper, skip, stream);
}

size_t octet_sum_squares_workspace_bytes(int64_t n) {
  if (n < 0) return 0;
  return (size_t)sumSquaresBlocks(n) * sizeof(double);
}

cudaError_t octet_sum_squares(const float* x, int64_t n, double* out, void* workspace, size_t workspaceBytes,
                              cudaStream_t stream) {
  if (n < 0 || !out) return cudaErrorInvalidValue;
  if (n == 0) {
    zeroDoubleKernel<<<1, 1, 0, stream>>>(out);
    return cudaGetLastError();
  }
  const int blocks = sumSquaresBlocks(n);
  if (!x || !workspace || workspaceBytes < (size_t)blocks * sizeof(double)) return cudaErrorInvalidValue;
  double* partial = static_cast<double*>(workspace);
  sumSquaresPartialKernel<<<blocks, kBlock, 0, stream>>>(x, n, partial, aligned16(x));
  sumPartialsKernel<<<1, kBlock, 0, stream>>>(partial, blocks, out);
  return cudaGetLastError();
}

cudaError_t octet_clip_coefficient(const double* sumSquares, double maxNorm, double* norm, double* scale,
                                   int32_t* nonFinite, cudaStream_t stream) {
  if (!sumSquares || !scale || maxNorm != maxNorm) return cudaErrorInvalidValue;
  clipCoefficientKernel<<<1, 1, 0, stream>>>(sumSquares, maxNorm, norm, scale, nonFinite);
  return cudaGetLastError();
}

cudaError_t octet_scale(float* x, int64_t n, double a, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!x) return cudaErrorInvalidValue;
  scaleKernel<<<gridFor((n + 3) >> 2), kBlock, 0, stream>>>(x, n, a, nullptr, aligned16(x));
  return cudaGetLastError();
}

cudaError_t octet_scale_device(float* x, int64_t n, const double* a, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!x || !a) return cudaErrorInvalidValue;
  scaleKernel<<<gridFor((n + 3) >> 2), kBlock, 0, stream>>>(x, n, 0.0, a, aligned16(x));
  return cudaGetLastError();
}

cudaError_t octet_add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!y || !x) return cudaErrorInvalidValue;
  return launchFlat(AddOp{y, x}, n, aligned16(y) && aligned16(x), stream);
}

cudaError_t octet_f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!x || !y) return cudaErrorInvalidValue;
  return launchFlat(ToBf16Op{x, y, aligned8(y)}, n, aligned16(x), stream);
}

cudaError_t octet_bf16_to_f32(const uint16_t* x, float* y, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!x || !y) return cudaErrorInvalidValue;
  return launchFlat(FromBf16Op{x, y, aligned16(y)}, n, aligned8(x), stream);
}

cudaError_t octet_aux_free_bias_update(float* bias, const int32_t* loads, int64_t experts, const double* gamma,
                                       cudaStream_t stream) {
  if (experts < 1 || experts > ((int64_t)1 << 20)) return cudaErrorInvalidValue;
  if (!bias || !loads || !gamma) return cudaErrorInvalidValue;
  biasUpdateKernel<<<1, 1024, 0, stream>>>(bias, loads, experts, gamma);
  return cudaGetLastError();
}

}  // extern "C"
