// The MoE gate (DeepSeek-V3 sigmoid router), its backward, and the dispatch plan, on the device.
// Semantics: gate.h; specification: packages/router/src/route.ts and dispatch.ts.
//
// Design:
// - route: one warp per token. Lane l holds experts l, l+32, … (coalesced row loads), at most 8 per lane (E ≤
//   256). Groups are scored from a per-warp shared-memory copy of the choices (lane g scans group g), kept by
//   rank; the top-K are K rounds of a warp arg-max over 64-bit keys (order-preserving bits of the choice, then
//   the complemented index, so one unsigned max implements "larger choice, then lower index" — route.ts's tie
//   rule — with no separate tie test).
// - backward: one warp per token; float64 sums in k order via shuffles (every lane sums the same values in the
//   same order), explicit _rn intrinsics so that nvcc cannot contract them into FMAs: bit for bit route.ts.
// - plan: a two-level counting sort. Kernel 1 counts each chunk of assignments per expert (shared-memory
//   integer atomics: a count does not depend on their order). Kernel 2: every block redundantly scans the small
//   [chunks, E] count table (cheaper than a third launch), then places its chunk's assignments tile by tile in
//   order: a lane's rank among equal experts is popc(match_any & lanes below), plus the same expert's counts in
//   lower warps of the tile, plus the running per-expert base of earlier tiles. Stable by construction.
#include "gate.h"

#include <cmath>
#include <cstdint>

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kBlock = kWarpsPerBlock * 32;
constexpr unsigned kFull = 0xffffffffu;

// ---------------------------------------------------------------------------------------------------------------
// route forward

// FP32 sigmoid. z ≥ 0: 1/(1+e^-z); z < 0: e^z/(1+e^z), which keeps route.ts's subnormal tail for z < -87 (where
// e^-z overflows). NaN → NaN, ±inf → 1 / 0. expf is CUDA's full-precision one (no fast-math).
__device__ __forceinline__ float sigmoid_f32(float z) {
  if (z >= 0.f) return __fdiv_rn(1.f, __fadd_rn(1.f, expf(-z)));
  const float e = expf(z);
  return __fdiv_rn(e, __fadd_rn(1.f, e));
}

// Order-preserving 32-bit key of a float: a > b ⇔ key(a) > key(b) for non-NaN (−0 taken as +0); NaN → 0, below
// −inf (whose key is 0x007fffff).
__device__ __forceinline__ uint32_t order_key(float v) {
  if (v != v) return 0u;
  uint32_t b = __float_as_uint(v);
  if (b == 0x80000000u) b = 0u;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Key of candidate `index` with value v: the larger key is the better candidate, and equal values fall to the
// lower index (route.ts: ties lowest index first). 0 = no candidate (below every real key: ~index > 0).
__device__ __forceinline__ uint64_t candidate_key(float v, uint32_t index) {
  return ((uint64_t)order_key(v) << 32) | (uint64_t)(~index);
}

__device__ __forceinline__ uint64_t shfl_u64(uint64_t v, int src) {
  const uint32_t lo = __shfl_sync(kFull, (uint32_t)v, src);
  const uint32_t hi = __shfl_sync(kFull, (uint32_t)(v >> 32), src);
  return ((uint64_t)hi << 32) | lo;
}

// Max of a 64-bit key over the warp with two single-instruction u32 reductions (sm_80+): the largest high word,
// then the largest low word among the lanes that hold it.
__device__ __forceinline__ uint64_t warp_max_u64(uint64_t v) {
  const uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v;
  const uint32_t maxHi = __reduce_max_sync(kFull, hi);
  const uint32_t maxLo = __reduce_max_sync(kFull, hi == maxHi ? lo : 0u);
  return ((uint64_t)maxHi << 32) | maxLo;
}

struct RouteParams {
  const float* logits;
  const float* bias;
  int64_t tokens;
  int experts, topK, nGroup, topkGroup, groupSize;
  bool limitsGroups, normTopkProb;
  float scaling;
  int32_t* indices;
  float* weights;
  float* scores;
  OctetRouteStatus* status;
};

// EPL: experts per lane, ⌈E/32⌉ rounded up to 1, 2, 4 or 8, so the per-lane arrays stay in registers.
template <int EPL>
__global__ void __launch_bounds__(kBlock) route_sigmoid_kernel(const RouteParams p) {
  // Per warp: the choices (NaN → −inf, as route.ts's top-2 never takes a NaN) for the group scan.
  __shared__ float groupChoice[kWarpsPerBlock][OCTET_GATE_MAX_EXPERTS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = (int64_t)blockIdx.x * kWarpsPerBlock + warp;
  if (t >= p.tokens) return;  // whole warps only: no block-wide barrier below
  const int E = p.experts;
  const float* zrow = p.logits + t * E;

  float s[EPL];
  uint64_t key[EPL];  // candidate keys; 0 once taken or when not eligible
  float* choiceRow = groupChoice[warp];
  bool sawNaN = false;
  unsigned long long myFirstNaN = ~0ull, myNaNs = 0;
#pragma unroll
  for (int j = 0; j < EPL; j++) {
    const int e = j * 32 + lane;
    s[j] = 0.f;
    key[j] = 0;
    if (e < E) {
      const float z = __ldg(zrow + e);
      s[j] = sigmoid_f32(z);
      if (p.scores) p.scores[t * E + e] = s[j];
      const float c = __fadd_rn(s[j], __ldg(p.bias + e));
      key[j] = candidate_key(c, (uint32_t)e);
      choiceRow[e] = (c != c) ? -INFINITY : c;
      if (z != z) {
        sawNaN = true;
        myNaNs++;
        const unsigned long long flat = (unsigned long long)(t * E + e);
        if (flat < myFirstNaN) myFirstNaN = flat;
      }
    }
  }
  // NaN bookkeeping: rare, so a warp-uniform branch keeps it off the common path.
  if (__any_sync(kFull, sawNaN) && p.status) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      myNaNs += __shfl_xor_sync(kFull, myNaNs, off);
      const unsigned long long o = __shfl_xor_sync(kFull, myFirstNaN, off);
      myFirstNaN = o < myFirstNaN ? o : myFirstNaN;
    }
    if (lane == 0) {
      atomicAdd(&p.status->nanCount, myNaNs);
      atomicMin(&p.status->firstNaN, myFirstNaN);
    }
  }

  // Kept groups.
  uint32_t keptGroups = kFull;
  if (p.limitsGroups) {
    __syncwarp();
    uint64_t groupKey = 0;
    if (lane < p.nGroup) {
      // route.ts's top-2: strict ">" from −inf, so `second` equals `first` when the best value appears twice.
      float first = -INFINITY, second = -INFINITY;
      const float* g = choiceRow + lane * p.groupSize;
      for (int i = 0; i < p.groupSize; i++) {
        const float c = g[i];
        if (c > first) {
          second = first;
          first = c;
        } else if (c > second) {
          second = c;
        }
      }
      groupKey = candidate_key(__fadd_rn(first, second), (uint32_t)lane);
    }
    // Rank of each group among all (larger score first, lower group first on ties); keep the topkGroup best —
    // the same set as route.ts's topkGroup rounds of "best remaining".
    int rank = 0;
    for (int h = 0; h < p.nGroup; h++) rank += shfl_u64(groupKey, h) > groupKey ? 1 : 0;
    keptGroups = __ballot_sync(kFull, lane < p.nGroup && rank < p.topkGroup);
#pragma unroll
    for (int j = 0; j < EPL; j++) {
      const int e = j * 32 + lane;
      if (e < E && !((keptGroups >> (e / p.groupSize)) & 1u)) key[j] = 0;
    }
  }

  // Top-K: K rounds of a warp arg-max. Every lane ends each round with the same winner, so every lane can
  // accumulate the same f32 sum in route.ts's order (best first, left to right).
  uint64_t localBest = 0;
#pragma unroll
  for (int j = 0; j < EPL; j++) localBest = key[j] > localBest ? key[j] : localBest;
  float sum = 0.f, myScore = 0.f;
  int32_t myIndex = 0;
  for (int k = 0; k < p.topK; k++) {
    const uint64_t best = warp_max_u64(localBest);
    const int e = (int)(~(uint32_t)best);  // validation guarantees ≥ K eligible experts, so best ≠ 0
    const int owner = e & 31, slot = e >> 5;
    float mine = 0.f;
#pragma unroll
    for (int j = 0; j < EPL; j++) mine = (j == slot) ? s[j] : mine;
    const float w = __shfl_sync(kFull, mine, owner);
    if (lane == owner) {
      localBest = 0;
#pragma unroll
      for (int j = 0; j < EPL; j++) {
        if (j == slot) key[j] = 0;
        localBest = key[j] > localBest ? key[j] : localBest;
      }
    }
    sum = __fadd_rn(sum, w);
    if (lane == k) {
      myIndex = e;
      myScore = w;
    }
  }
  if (lane < p.topK) {
    float w = myScore;
    if (p.normTopkProb) {
      // Math.fround(sum + 1e-20): the sum in float64, rounded once (1e-20 is not a float32).
      const float denominator = __double2float_rn(__dadd_rn((double)sum, 1e-20));
      w = __fdiv_rn(w, denominator);
    }
    w = __fmul_rn(w, p.scaling);
    p.indices[t * p.topK + lane] = myIndex;
    p.weights[t * p.topK + lane] = w;
  }
}

__global__ void route_status_reset_kernel(OctetRouteStatus* status) {
  status->nanCount = 0;
  status->firstNaN = ~0ull;
}

// ---------------------------------------------------------------------------------------------------------------
// route backward

// VEC: 4 when the row can be written as float4 (E % 4 == 0, 16-byte aligned output), else 1.
template <int VEC>
__global__ void __launch_bounds__(kBlock)
    route_backward_kernel(const int32_t* __restrict__ indices, const float* __restrict__ scores,
                          const float* __restrict__ gradWeights, int64_t tokens, int E, int K, bool normTopkProb,
                          double scaling, float* __restrict__ dLogits) {
  __shared__ int32_t pickIndex[kWarpsPerBlock][OCTET_GATE_MAX_TOPK];
  __shared__ float pickGrad[kWarpsPerBlock][OCTET_GATE_MAX_TOPK];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = (int64_t)blockIdx.x * kWarpsPerBlock + warp;
  if (t >= tokens) return;

  int e = -1;
  float s = 0.f, g = 0.f;
  if (lane < K) {
    e = __ldg(indices + t * K + lane);
    if (e < 0 || e >= E) e = -1;
    g = __ldg(gradWeights + t * K + lane);
    if (e >= 0) s = __ldg(scores + t * E + e);
  }
  // S = Σ s_k and G = Σ g_k·s_k in float64, k in order (a float·float product is exact in float64).
  double sumPicked = 0.0, weightedGrad = 0.0;
  for (int k = 0; k < K; k++) {
    const int ek = __shfl_sync(kFull, e, k);
    const float sk = __shfl_sync(kFull, s, k);
    const float gk = __shfl_sync(kFull, g, k);
    if (ek >= 0) {
      sumPicked = __dadd_rn(sumPicked, (double)sk);
      weightedGrad = __dadd_rn(weightedGrad, __dmul_rn((double)gk, (double)sk));
    }
  }
  if (lane < K) {
    const double denominator = __dadd_rn(sumPicked, 1e-20);
    const double gradScore =
        normTopkProb ? __dmul_rn(__ddiv_rn(scaling, denominator), __dsub_rn((double)g, __ddiv_rn(weightedGrad, denominator)))
                     : __dmul_rn(scaling, (double)g);
    const double sd = (double)s;
    pickIndex[warp][lane] = e;
    pickGrad[warp][lane] = __double2float_rn(__dmul_rn(__dmul_rn(gradScore, sd), __dsub_rn(1.0, sd)));
  }
  __syncwarp();
  // Whole row: zeros except the picks; a repeated index takes its last pick, as route.ts's overwrite does.
  float* row = dLogits + t * E;
  if constexpr (VEC == 4) {
    for (int q = lane; q < E / 4; q += 32) {
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int k = 0; k < K; k++) {
        const int d = pickIndex[warp][k] - 4 * q;
        const float gk = pickGrad[warp][k];
        v.x = d == 0 ? gk : v.x;
        v.y = d == 1 ? gk : v.y;
        v.z = d == 2 ? gk : v.z;
        v.w = d == 3 ? gk : v.w;
      }
      reinterpret_cast<float4*>(row)[q] = v;
    }
  } else {
    for (int i = lane; i < E; i += 32) {
      float v = 0.f;
      for (int k = 0; k < K; k++) v = pickIndex[warp][k] == i ? pickGrad[warp][k] : v;
      row[i] = v;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// dispatch plan

constexpr int kPlanTile = kBlock;  // assignments per tile (one per thread)
constexpr int64_t kPlanMaxChunks = 128;

struct PlanGeometry {
  int64_t assignments, chunk, chunks;
};

// Chunks of whole tiles, at most ~128 of them: enough blocks to spread the placement, few enough that every
// block can re-scan the [chunks, E] count table cheaply.
PlanGeometry plan_geometry(int64_t tokens, int topK) {
  PlanGeometry g;
  g.assignments = tokens * topK;
  const int64_t tiles = (g.assignments + kPlanTile - 1) / kPlanTile;
  const int64_t tilesPerChunk = (tiles + kPlanMaxChunks - 1) / kPlanMaxChunks;
  g.chunk = tilesPerChunk * kPlanTile;
  g.chunks = (g.assignments + g.chunk - 1) / g.chunk;
  return g;
}

bool plan_sizes_valid(int64_t tokens, int experts, int topK) {
  return tokens >= 1 && experts >= 1 && experts <= OCTET_GATE_MAX_EXPERTS && topK >= 1 &&
         tokens <= (int64_t)INT32_MAX / topK && tokens * topK < (int64_t)INT32_MAX;
}

__global__ void __launch_bounds__(kBlock)
    plan_count_kernel(const int32_t* __restrict__ indices, int64_t assignments, int64_t chunk, int E,
                      int32_t* __restrict__ chunkCounts) {
  __shared__ int32_t histogram[OCTET_GATE_MAX_EXPERTS];
  for (int e = threadIdx.x; e < E; e += blockDim.x) histogram[e] = 0;
  __syncthreads();
  const int64_t begin = (int64_t)blockIdx.x * chunk;
  const int64_t end = begin + chunk < assignments ? begin + chunk : assignments;
  for (int64_t a = begin + threadIdx.x; a < end; a += blockDim.x) {
    const int e = __ldg(indices + a);
    if (e >= 0 && e < E) atomicAdd(&histogram[e], 1);  // integer count: order-independent
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) chunkCounts[blockIdx.x * (int64_t)E + e] = histogram[e];
}

// Exclusive scan over the block's 256 threads; returns this thread's prefix, *total the sum.
__device__ int block_exclusive_scan(int v, int* total) {
  __shared__ int warpSums[kWarpsPerBlock];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int inclusive = v;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const int o = __shfl_up_sync(kFull, inclusive, off);
    if (lane >= off) inclusive += o;
  }
  if (lane == 31) warpSums[warp] = inclusive;
  __syncthreads();
  int before = 0, all = 0;
#pragma unroll
  for (int w = 0; w < kWarpsPerBlock; w++) {
    const int ws = warpSums[w];
    before += w < warp ? ws : 0;
    all += ws;
  }
  __syncthreads();  // warpSums may be reused by the caller's next scan
  *total = all;
  return before + inclusive - v;
}

__device__ int block_max(int v) {
  __shared__ int warpMax[kWarpsPerBlock];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(kFull, v, off));
  if (lane == 0) warpMax[warp] = v;
  __syncthreads();
  int m = warpMax[0];
#pragma unroll
  for (int w = 1; w < kWarpsPerBlock; w++) m = max(m, warpMax[w]);
  __syncthreads();
  return m;
}

struct PlanParams {
  const int32_t* indices;
  const float* weights;
  int64_t assignments, chunk, chunks;
  int E, K;
  const int32_t* chunkCounts;
  int32_t *expertCounts, *expertOffsets, *tokenOfRow, *assignmentOfRow, *rowOfAssignment;
  float* combineWeights;
  float* loadStats;
};

__global__ void __launch_bounds__(kBlock) plan_place_kernel(const PlanParams p) {
  __shared__ int32_t rowBase[OCTET_GATE_MAX_EXPERTS];                       // next row of each expert
  __shared__ int32_t warpExpertCount[kWarpsPerBlock][OCTET_GATE_MAX_EXPERTS];  // this tile's, per warp
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int E = p.E;
  const int64_t chunkIndex = blockIdx.x;

  // 1. Each expert's total over all chunks, and over the chunks before this one. parts = ⌊256/E⌋ threads share an
  //    expert (strided over the chunks) so that the table is read with all threads; integer sums, any order.
  {
    const int parts = kBlock / E;
    const int e = tid % E, part = tid / E;
    int partTotal = 0, partBefore = 0;
    if (part < parts) {
#pragma unroll 4
      for (int64_t c = part; c < p.chunks; c += parts) {
        const int v = __ldg(p.chunkCounts + c * E + e);
        partTotal += v;
        partBefore += c < chunkIndex ? v : 0;
      }
    }
    // rowBase and warpExpertCount[0] hold the partial sums until step 2 needs them.
    int* partialTotal = &warpExpertCount[0][0];
    int* partialBefore = rowBase;
    if (part < parts) {
      partialTotal[tid] = partTotal;
      partialBefore[tid] = partBefore;
    }
  }
  __syncthreads();
  int total = 0, before = 0;
  if (tid < E) {
    for (int part = 0; part < kBlock / E; part++) {
      total += warpExpertCount[0][part * E + tid];
      before += rowBase[part * E + tid];
    }
  }
  __syncthreads();
  int rows = 0;
  const int offset = block_exclusive_scan(total, &rows);  // threads ≥ E hold 0 and do not change the scan
  if (tid < E) rowBase[tid] = offset + before;
  for (int w = 0; w < kWarpsPerBlock; w++)
    if (tid < E) warpExpertCount[w][tid] = 0;

  if (chunkIndex == 0) {
    if (tid < E) {
      p.expertCounts[tid] = total;
      p.expertOffsets[tid] = offset;
    }
    if (tid == 0) p.expertOffsets[E] = rows;
    const int maxLoad = block_max(tid < E ? total : 0);
    if (p.loadStats && tid == 0) {
      const double mean = (double)rows / E;
      p.loadStats[0] = (float)maxLoad;
      p.loadStats[1] = (float)mean;
      p.loadStats[2] = mean > 0 ? (float)((double)maxLoad / mean) : 1.f;
    }
    // Rows left by dropped (out-of-range) assignments: marked, so no stale row survives from an earlier step.
    for (int64_t r = rows + tid; r < p.assignments; r += blockDim.x) {
      p.tokenOfRow[r] = -1;
      p.assignmentOfRow[r] = -1;
      if (p.combineWeights) p.combineWeights[r] = 0.f;
    }
  }
  __syncthreads();

  // 2. Stable placement, tile by tile in assignment order.
  const unsigned lanesBelow = (1u << lane) - 1u;
  const int64_t begin = chunkIndex * p.chunk;
  const int64_t end = begin + p.chunk < p.assignments ? begin + p.chunk : p.assignments;
  for (int64_t tileStart = begin; tileStart < end; tileStart += kPlanTile) {
    const int64_t a = tileStart + tid;
    int e = -1;
    if (a < end) {
      e = __ldg(p.indices + a);
      if (e < 0 || e >= E) {
        e = -1;
        p.rowOfAssignment[a] = -1;  // dropped
      }
    }
    const unsigned same = __match_any_sync(kFull, e);
    const int rankInWarp = __popc(same & lanesBelow);
    if (e >= 0 && rankInWarp == 0) warpExpertCount[warp][e] = __popc(same);
    __syncthreads();
    if (e >= 0) {
      int row = rowBase[e] + rankInWarp;
      for (int w = 0; w < warp; w++) row += warpExpertCount[w][e];
      p.tokenOfRow[row] = (int32_t)(a / p.K);
      p.assignmentOfRow[row] = (int32_t)a;
      if (p.combineWeights) p.combineWeights[row] = __ldg(p.weights + a);
      p.rowOfAssignment[a] = row;
    }
    __syncthreads();
    if (tid < E) {
      int tileCount = 0;
#pragma unroll
      for (int w = 0; w < kWarpsPerBlock; w++) {
        tileCount += warpExpertCount[w][tid];
        warpExpertCount[w][tid] = 0;
      }
      rowBase[tid] += tileCount;
    }
    __syncthreads();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// C ABI

extern "C" cudaError_t octet_route_status_reset(OctetRouteStatus* status, cudaStream_t stream) {
  if (!status) return cudaErrorInvalidValue;
  route_status_reset_kernel<<<1, 1, 0, stream>>>(status);
  return cudaGetLastError();
}

extern "C" cudaError_t octet_route_sigmoid(const float* logits, const float* bias, int64_t tokens, int experts,
                                           int topK, int nGroup, int topkGroup, int normTopkProb,
                                           float routedScalingFactor, int32_t* indices, float* weights,
                                           float* scores, OctetRouteStatus* status, cudaStream_t stream) {
  if (!logits || !bias || !indices || !weights) return cudaErrorInvalidValue;
  if (tokens < 1 || tokens > INT64_MAX / OCTET_GATE_MAX_EXPERTS) return cudaErrorInvalidValue;
  if (experts < 1 || experts > OCTET_GATE_MAX_EXPERTS) return cudaErrorInvalidValue;
  if (nGroup < 1 || nGroup > OCTET_GATE_MAX_GROUPS || experts % nGroup != 0) return cudaErrorInvalidValue;
  if (topkGroup < 1 || topkGroup > nGroup) return cudaErrorInvalidValue;
  const int groupSize = experts / nGroup;
  if (topK < 1 || topK > OCTET_GATE_MAX_TOPK || topK > topkGroup * groupSize) return cudaErrorInvalidValue;
  const bool limitsGroups = nGroup > 1 && topkGroup < nGroup;
  if (limitsGroups && groupSize < 2) return cudaErrorInvalidValue;
  if (!std::isfinite(routedScalingFactor)) return cudaErrorInvalidValue;

  RouteParams p;
  p.logits = logits;
  p.bias = bias;
  p.tokens = tokens;
  p.experts = experts;
  p.topK = topK;
  p.nGroup = nGroup;
  p.topkGroup = topkGroup;
  p.groupSize = groupSize;
  p.limitsGroups = limitsGroups;
  p.normTopkProb = normTopkProb != 0;
  p.scaling = routedScalingFactor;
  p.indices = indices;
  p.weights = weights;
  p.scores = scores;
  p.status = status;
  const int64_t blocks = (tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const int perLane = (experts + 31) / 32;
  if (perLane <= 1) route_sigmoid_kernel<1><<<(unsigned)blocks, kBlock, 0, stream>>>(p);
  else if (perLane <= 2) route_sigmoid_kernel<2><<<(unsigned)blocks, kBlock, 0, stream>>>(p);
  else if (perLane <= 4) route_sigmoid_kernel<4><<<(unsigned)blocks, kBlock, 0, stream>>>(p);
  else route_sigmoid_kernel<8><<<(unsigned)blocks, kBlock, 0, stream>>>(p);
  return cudaGetLastError();
}

extern "C" cudaError_t octet_route_backward(const int32_t* indices, const float* scores, const float* gradWeights,
                                            int64_t tokens, int experts, int topK, int normTopkProb,
                                            double routedScalingFactor, float* dLogits, cudaStream_t stream) {
  if (!indices || !scores || !gradWeights || !dLogits) return cudaErrorInvalidValue;
  if (experts < 1 || experts > (1 << 20)) return cudaErrorInvalidValue;
  if (topK < 1 || topK > OCTET_GATE_MAX_TOPK || topK > experts) return cudaErrorInvalidValue;
  if (tokens < 1 || tokens > INT64_MAX / experts) return cudaErrorInvalidValue;
  if (!std::isfinite(routedScalingFactor)) return cudaErrorInvalidValue;
  const int64_t blocks = (tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const bool vec4 = experts % 4 == 0 && (reinterpret_cast<uintptr_t>(dLogits) & 15u) == 0;
  if (vec4)
    route_backward_kernel<4><<<(unsigned)blocks, kBlock, 0, stream>>>(indices, scores, gradWeights, tokens, experts,
                                                                       topK, normTopkProb != 0,
                                                                       routedScalingFactor, dLogits);
  else
    route_backward_kernel<1><<<(unsigned)blocks, kBlock, 0, stream>>>(indices, scores, gradWeights, tokens, experts,
                                                                       topK, normTopkProb != 0,
                                                                       routedScalingFactor, dLogits);
  return cudaGetLastError();
}

extern "C" size_t octet_plan_dispatch_workspace_bytes(int64_t tokens, int experts, int topK) {
  if (!plan_sizes_valid(tokens, experts, topK)) return 0;
  const PlanGeometry g = plan_geometry(tokens, topK);
  return (size_t)g.chunks * (size_t)experts * sizeof(int32_t);
}

extern "C" cudaError_t octet_plan_dispatch(const int32_t* indices, const float* weights, int64_t tokens,
                                           int experts, int topK, int32_t* expertCounts, int32_t* expertOffsets,
                                           int32_t* tokenOfRow, int32_t* assignmentOfRow, float* combineWeights,
                                           int32_t* rowOfAssignment, float* loadStats, void* workspace,
                                           size_t workspaceBytes, cudaStream_t stream) {
  if (!plan_sizes_valid(tokens, experts, topK)) return cudaErrorInvalidValue;
  if (!indices || !expertCounts || !expertOffsets || !tokenOfRow || !assignmentOfRow || !rowOfAssignment ||
      !workspace)
    return cudaErrorInvalidValue;
  if (combineWeights && !weights) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return cudaErrorInvalidValue;
  if (workspaceBytes < octet_plan_dispatch_workspace_bytes(tokens, experts, topK)) return cudaErrorInvalidValue;
  const PlanGeometry g = plan_geometry(tokens, topK);
  int32_t* chunkCounts = static_cast<int32_t*>(workspace);
  plan_count_kernel<<<(unsigned)g.chunks, kBlock, 0, stream>>>(indices, g.assignments, g.chunk, experts,
                                                               chunkCounts);
  PlanParams p;
  p.indices = indices;
  p.weights = weights;
  p.assignments = g.assignments;
  p.chunk = g.chunk;
  p.chunks = g.chunks;
  p.E = experts;
  p.K = topK;
  p.chunkCounts = chunkCounts;
  p.expertCounts = expertCounts;
  p.expertOffsets = expertOffsets;
  p.tokenOfRow = tokenOfRow;
  p.assignmentOfRow = assignmentOfRow;
  p.rowOfAssignment = rowOfAssignment;
  p.combineWeights = combineWeights;
  p.loadStats = loadStats;
  plan_place_kernel<<<(unsigned)g.chunks, kBlock, 0, stream>>>(p);
  return cudaGetLastError();
}
