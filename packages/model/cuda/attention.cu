// Causal softmax attention, forward and backward, flash-style (FlashAttention-2's design): C ABI in attention.h,
// arithmetic of CpuBackend.attentionForward / attentionBackward (packages/model/src/backend/cpu.ts).
//
// Forward: a block owns a tile of queries of one (batch, head) and loops over the key tiles up to the diagonal,
// keeping the output rows and the running max / sum of the online softmax in registers (FP32); it writes O and the
// logsumexp of each row. Nothing of size T×T is ever stored.
// Backward, three launches with no atomics (deterministic by construction):
//   1. D_i = rowsum(dO_i ∘ O_i), one warp per row;
//   2. dK, dV: a block owns a key tile and loops over the query tiles from the diagonal down, recomputing
//      P = exp(scale·QKᵀ − lse) and dS = P ∘ (dO·Vᵀ − D) · scale tile by tile, accumulating dV += Pᵀ·dO and
//      dK += dSᵀ·Q in registers;
//   3. dQ: a block owns a query tile and loops over the key tiles (recomputing P and dS again), dQ += dS·K.
// Step 3 repeats the recomputation of step 2 (about 40% more FLOPs than FlashAttention-2's atomic dQ) so that every
// element of dQ is summed by one thread in a fixed order.
//
// Two implementations of each kernel:
//   * bf16: tensor cores through mma.sync.m16n8k16 (bf16 × bf16 → fp32), operands staged in shared memory by
//     cp.async (double-buffered) and read with ldmatrix; a warp owns 16 rows of the M side of every product.
//     Shared rows are padded by 16 bytes so that ldmatrix's eight 16-byte rows fall in distinct banks.
//     The FP32 intermediates P and dS enter the second products (P·V, Pᵀ·dO, dS·K, dSᵀ·Q) either rounded once to
//     bf16 (FlashAttention-2: OCTET_ATTN_BF16_FA2) or as a bf16 pair hi + lo multiplied twice (SPLIT:
//     OCTET_ATTN_BF16), which keeps every output within ~1e-5 of float64 instead of ~2e-3 (attention.h).
//   * fp32: plain FMA (no TF32) on 16×16 thread grids; shared rows padded to an odd number of floats so that
//     column walks are conflict-free.
// Exponentials are exp2 of log2-scaled scores (scale·log2 e folded into one multiplier); lse is stored in natural
// log units.
#include "attention.h"

#include <cmath>
#include <cstddef>
#include <cstdint>

#ifndef OCTET_EMU
#include <cuda_bf16.h>
#endif

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- device primitives ----------------------------------------------------------------------------------------
// Every PTX instruction the kernels use is behind one of these helpers, so that the kernels can also run on a CPU
// emulation: compiled as C++ with -DOCTET_EMU and a forced-include header that supplies these names on top of
// @octet/numerics' fiber emulator (packages/numerics/cuda/emu/emu.h: a block's threads as fibers, warps exchanging
// in lock step) — how the fragment layouts and tile indexing were checked without a GPU.
#ifndef OCTET_EMU
#define ATT_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
#define ATT_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8×8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives matrix i
// (lane l holds row l/4, elements 2(l%4), 2(l%4)+1 — or of the transpose with .trans).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
// d += a·b for a 16×16 (row) bf16 A, a 16×8 (col) bf16 B, FP32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 16 bytes global → shared, asynchronously; zero-filled when !valid (src must still be a mapped address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ float shfl_xor_f32(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }
// Two floats → bf16x2 (round to nearest even), lo in the low half (the lower column of an mma fragment).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
#endif

__device__ __forceinline__ float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

// Rows [row0, row0 + ROWS) of a head's [T, D] bf16 slice (row stride gstride elements) → shared [ROWS][LD], rows
// at or beyond rowEnd zero-filled. 16-byte cp.async chunks spread over NT threads.
template <int ROWS, int D, int LD, int NT>
__device__ __forceinline__ void load_tile_bf16(uint16_t* s, const uint16_t* g, int64_t gstride, int row0, int rowEnd,
                                               int tid) {
  constexpr int CPR = D / 8;
  constexpr int TOTAL = ROWS * CPR;
  // Not unrolled: unrolled, the compiler keeps every chunk's address live across the caller's loop (40 registers
  // at qkDim 192, where D/8 = 24 makes them costly to recompute) and the forward kernel spills.
#pragma unroll 1
  for (int i = 0; i < (TOTAL + NT - 1) / NT; i++) {
    const int c = tid + i * NT;
    if (TOTAL % NT == 0 || c < TOTAL) {
      const int r = c / CPR, cc = c % CPR;
      const int row = row0 + r;
      const bool valid = row < rowEnd;
      cp_async16(s + r * LD + cc * 8, g + (valid ? row : 0) * gstride + cc * 8, valid);
    }
  }
}

// The same for float32 into shared [ROWS][LD] with an odd LD (so 16-byte vectors are split into scalar stores).
template <int ROWS, int D, int LD, int NT>
__device__ __forceinline__ void load_tile_f32(float* s, const float* g, int64_t gstride, int row0, int rowEnd,
                                              int tid) {
  constexpr int CPR = D / 4;
  constexpr int TOTAL = ROWS * CPR;
#pragma unroll
  for (int i = 0; i < (TOTAL + NT - 1) / NT; i++) {
    const int c = tid + i * NT;
    if (TOTAL % NT == 0 || c < TOTAL) {
      const int r = c / CPR, cc = c % CPR;
      const int row = row0 + r;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (row < rowEnd) v = *reinterpret_cast<const uint4*>(g + row * gstride + cc * 4);
      float* d = s + r * LD + cc * 4;
      d[0] = __uint_as_float(v.x);
      d[1] = __uint_as_float(v.y);
      d[2] = __uint_as_float(v.z);
      d[3] = __uint_as_float(v.w);
    }
  }
}

// ---- bf16 tensor-core kernels -----------------------------------------------------------------------------------
// Fragment conventions (PTX ISA, mma.m16n8k16): g = lane/4, t = lane%4. A (16×16): a0 (row g, cols 2t..2t+1),
// a1 (row g+8, same cols), a2 (row g, cols 2t+8..), a3 (row g+8, cols 2t+8..). B (16×8): b0 (rows 2t..2t+1, col g),
// b1 (rows 2t+8.., col g). C (16×8): c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, same cols).
// Address helpers for ldmatrix.x4 (lane l → row/column of the 8×8 matrix it addresses):
//   A operand, row-major [m][k] in shared:            row (l & 15),                 col ((l >> 4) << 3)
//   B operand from [n][k] rows (non-transposed):      row (l & 7) + ((l >> 4) << 3), col (((l >> 3) & 1) << 3)
//       → r0, r1 = b0, b1 of n-tile n0; r2, r3 = b0, b1 of n-tile n0 + 8
//   B operand from [k][n] rows (.trans):              row (l & 7) + (((l >> 3) & 1) << 3), col ((l >> 4) << 3)
//       → r0, r1 = b0, b1 of n-tile n0; r2, r3 = b0, b1 of n-tile n0 + 8
__device__ __forceinline__ int a_row(int l) { return l & 15; }
__device__ __forceinline__ int a_col(int l) { return (l >> 4) << 3; }
__device__ __forceinline__ int bn_row(int l) { return (l & 7) + ((l >> 4) << 3); }
__device__ __forceinline__ int bn_col(int l) { return ((l >> 3) & 1) << 3; }
__device__ __forceinline__ int bt_row(int l) { return (l & 7) + (((l >> 3) & 1) << 3); }
__device__ __forceinline__ int bt_col(int l) { return (l >> 4) << 3; }

// acc[16 × 8·NTILES] += A[16 × K] · B, A rows at sA (row-major, stride lda, this warp's 16 rows), B given as
// [n][k] rows at sB (stride ldb): the "NT" product Q·Kᵀ.
template <int K, int NTILES>
__device__ __forceinline__ void warp_gemm_nt(float (&acc)[NTILES][4], const uint16_t* sA, int lda, const uint16_t* sB,
                                             int ldb, int lane) {
  static_assert(K % 16 == 0 && NTILES % 2 == 0, "k steps of 16, n tiles in pairs");
#pragma unroll 4
  for (int kk = 0; kk < K / 16; kk++) {
    uint32_t a[4];
    ldsm_x4(a, sA + a_row(lane) * lda + kk * 16 + a_col(lane));
#pragma unroll
    for (int np = 0; np < NTILES / 2; np++) {
      uint32_t b[4];
      ldsm_x4(b, sB + (np * 16 + bn_row(lane)) * ldb + kk * 16 + bn_col(lane));
      mma_bf16_16816(acc[2 * np], a, b[0], b[1]);
      mma_bf16_16816(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// acc[16 × 8·NTILES] += A · B for one k step of 16, A already in registers, B given as [k][n] rows at sB
// (stride ldb, starting at this k step's first row and the first column wanted). With SPLIT, A is the pair
// (a, alo) of a float32 operand x = a + alo (a = bf16(x), alo = bf16(x − a)) and both halves are multiplied, so the
// operand keeps ~16 significant bits instead of 8 (B, an input, is exact in bf16).
template <int NTILES, bool SPLIT = false>
__device__ __forceinline__ void warp_gemm_nn_step(float (&acc)[NTILES][4], const uint32_t (&a)[4], const uint32_t (&alo)[4],
                                                  const uint16_t* sB, int ldb, int lane) {
  static_assert(NTILES % 2 == 0, "n tiles in pairs");
#pragma unroll
  for (int np = 0; np < NTILES / 2; np++) {
    uint32_t b[4];
    ldsm_x4_trans(b, sB + bt_row(lane) * ldb + np * 16 + bt_col(lane));
    mma_bf16_16816(acc[2 * np], a, b[0], b[1]);
    mma_bf16_16816(acc[2 * np + 1], a, b[2], b[3]);
    if (SPLIT) {
      mma_bf16_16816(acc[2 * np], alo, b[0], b[1]);
      mma_bf16_16816(acc[2 * np + 1], alo, b[2], b[3]);
    }
  }
}

// bf16 pair (hi, lo) of two floats: hi = their bf16 rounding, lo = the bf16 rounding of the (exact) remainders.
__device__ __forceinline__ uint32_t pack_bf16x2_lo(float x0, float x1, uint32_t hi) {
  return pack_bf16x2(x0 - bf16_lo(hi), x1 - bf16_hi(hi));
}

// Accumulator tiles 2kk and 2kk+1 (16 × 16) as the A operand of the k step kk: a0 = tile 2kk (c0, c1),
// a1 = tile 2kk (c2, c3), a2 = tile 2kk+1 (c0, c1), a3 = tile 2kk+1 (c2, c3).
template <int NTILES>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[NTILES / 2][4], const float (&x)[NTILES][4]) {
#pragma unroll
  for (int nt = 0; nt < NTILES; nt++) {
    a[nt / 2][(nt & 1) * 2 + 0] = pack_bf16x2(x[nt][0], x[nt][1]);
    a[nt / 2][(nt & 1) * 2 + 1] = pack_bf16x2(x[nt][2], x[nt][3]);
  }
}
// The same, and the bf16 remainders x − hi into alo.
template <int NTILES>
__device__ __forceinline__ void acc_to_a_split(uint32_t (&a)[NTILES / 2][4], uint32_t (&alo)[NTILES / 2][4],
                                               const float (&x)[NTILES][4]) {
#pragma unroll
  for (int nt = 0; nt < NTILES; nt++) {
    const uint32_t h0 = pack_bf16x2(x[nt][0], x[nt][1]), h1 = pack_bf16x2(x[nt][2], x[nt][3]);
    a[nt / 2][(nt & 1) * 2 + 0] = h0;
    a[nt / 2][(nt & 1) * 2 + 1] = h1;
    alo[nt / 2][(nt & 1) * 2 + 0] = pack_bf16x2_lo(x[nt][0], x[nt][1], h0);
    alo[nt / 2][(nt & 1) * 2 + 1] = pack_bf16x2_lo(x[nt][2], x[nt][3], h1);
  }
}

template <int DQK, int DV>
struct FwdBf16 {
  static constexpr int WARPS = 4, NT = WARPS * 32;
  static constexpr int BM = 16 * WARPS;  // queries per block, 16 per warp
  static constexpr int BN = 64;          // keys per step
  static constexpr int LQ = DQK + 8, LV = DV + 8;
  // sQ [BM][LQ], sK [2][BN][LQ], sV [2][BN][LV]
  static constexpr size_t SMEM = (size_t)(BM * LQ + 2 * BN * LQ + 2 * BN * LV) * sizeof(uint16_t);
};

template <int DQK, int DV, bool OUT_BF16, bool SPLIT>
__global__ void __launch_bounds__(FwdBf16<DQK, DV>::NT)
    attn_fwd_bf16_kernel(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                         const uint16_t* __restrict__ v, void* __restrict__ out, float* __restrict__ lse, int T, int H,
                         float scale_log2) {
  using C = FwdBf16<DQK, DV>;
  constexpr int BM = C::BM, BN = C::BN, LQ = C::LQ, LV = C::LV, NT = C::NT;
  ATT_DYNAMIC_SMEM(smem);
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem);
  uint16_t* sK = sQ + BM * LQ;
  uint16_t* sV = sK + 2 * BN * LQ;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;  // longest rows first: they have the most key tiles
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;  // row index of (b, t = 0, h) in [B·T·H, D]
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const uint16_t* qh = q + head0 * DQK;
  const uint16_t* kh = k + head0 * DQK;
  const uint16_t* vh = v + head0 * DV;

  const int kEnd = min(m0 + BM, T);  // keys [0, kEnd) are visible to some row of the block
  const int nTiles = (kEnd + BN - 1) / BN;
  load_tile_bf16<BM, DQK, LQ, NT>(sQ, qh, sqk, m0, T, tid);
  load_tile_bf16<BN, DQK, LQ, NT>(sK, kh, sqk, 0, T, tid);
  load_tile_bf16<BN, DV, LV, NT>(sV, vh, sv, 0, T, tid);
  cp_async_commit();

  const int wrow = m0 + warp * 16;   // this warp's first query row
  const int r0 = wrow + g, r1 = r0 + 8;  // the two rows this thread's accumulators belong to
  uint32_t qf[DQK / 16][4];
  float o[DV / 8][4];
#pragma unroll
  for (int i = 0; i < DV / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mrow0 = -INFINITY, mrow1 = -INFINITY;  // running max of the log2-scaled scores
  float lrow0 = 0.f, lrow1 = 0.f;              // running sum (this thread's columns; reduced at the end)

  for (int j = 0; j < nTiles; j++) {
    const int st = j & 1;
    cp_async_wait<0>();
    __syncthreads();  // tile j visible to all; every warp is done with stage st^1 (tile j-1)
    if (j + 1 < nTiles) {
      load_tile_bf16<BN, DQK, LQ, NT>(sK + (st ^ 1) * BN * LQ, kh, sqk, (j + 1) * BN, T, tid);
      load_tile_bf16<BN, DV, LV, NT>(sV + (st ^ 1) * BN * LV, vh, sv, (j + 1) * BN, T, tid);
      cp_async_commit();
    }
    if (j == 0) {  // this warp's 16 query rows stay in registers as A fragments (saves a sixth of the ldmatrix traffic)
#pragma unroll
      for (int kk = 0; kk < DQK / 16; kk++) ldsm_x4(qf[kk], sQ + (warp * 16 + a_row(lane)) * LQ + kk * 16 + a_col(lane));
    }
    const int n0 = j * BN;
    if (n0 > wrow + 15) continue;  // every key of the tile is after every row of this warp (tile 0 never is)
    const uint16_t* sKs = sK + st * BN * LQ;
    const uint16_t* sVs = sV + st * BN * LV;

    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DQK / 16; kk++) {
#pragma unroll
      for (int np = 0; np < BN / 16; np++) {
        uint32_t bk[4];
        ldsm_x4(bk, sKs + (np * 16 + bn_row(lane)) * LQ + kk * 16 + bn_col(lane));
        mma_bf16_16816(s[2 * np], qf[kk], bk[0], bk[1]);
        mma_bf16_16816(s[2 * np + 1], qf[kk], bk[2], bk[3]);
      }
    }

    // Online softmax (log2 domain). Keys after the row are -inf; rows always see key 0 in tile 0, so the max is
    // finite from the first tile on (the guard only keeps exp2 away from -inf - -inf).
    const bool diag = n0 + BN - 1 > wrow;
    float mx0 = mrow0, mx1 = mrow1;
#pragma unroll
    for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int col = n0 + nt * 8 + 2 * t4 + e;
        float x0 = s[nt][e] * scale_log2, x1 = s[nt][2 + e] * scale_log2;
        if (diag && col > r0) x0 = -INFINITY;
        if (diag && col > r1) x1 = -INFINITY;
        s[nt][e] = x0;
        s[nt][2 + e] = x1;
        mx0 = fmaxf(mx0, x0);
        mx1 = fmaxf(mx1, x1);
      }
    }
    mx0 = fmaxf(mx0, shfl_xor_f32(mx0, 1));
    mx0 = fmaxf(mx0, shfl_xor_f32(mx0, 2));
    mx1 = fmaxf(mx1, shfl_xor_f32(mx1, 1));
    mx1 = fmaxf(mx1, shfl_xor_f32(mx1, 2));
    const float base0 = mx0 == -INFINITY ? 0.f : mx0, base1 = mx1 == -INFINITY ? 0.f : mx1;
    const float alpha0 = exp2f(mrow0 - base0), alpha1 = exp2f(mrow1 - base1);
    mrow0 = mx0;
    mrow1 = mx1;
    // The row sum adds the float32 P (so lse, which the backward recomputes P from, is the exact normalizer); the
    // P·V product takes P as bf16 (FlashAttention-2) or as the bf16 pair hi + lo (SPLIT).
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < BN / 8; nt++) {
      s[nt][0] = exp2f(s[nt][0] - base0);
      s[nt][1] = exp2f(s[nt][1] - base0);
      s[nt][2] = exp2f(s[nt][2] - base1);
      s[nt][3] = exp2f(s[nt][3] - base1);
      sum0 += s[nt][0] + s[nt][1];
      sum1 += s[nt][2] + s[nt][3];
    }
    lrow0 = lrow0 * alpha0 + sum0;
    lrow1 = lrow1 * alpha1 + sum1;
#pragma unroll
    for (int i = 0; i < DV / 8; i++) {
      o[i][0] *= alpha0;
      o[i][1] *= alpha0;
      o[i][2] *= alpha1;
      o[i][3] *= alpha1;
    }
    uint32_t pf[BN / 16][4], pl[BN / 16][4];
    if (SPLIT) acc_to_a_split<BN / 8>(pf, pl, s);
    else acc_to_a<BN / 8>(pf, s);
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) warp_gemm_nn_step<DV / 8, SPLIT>(o, pf[kk], pl[kk], sVs + kk * 16 * LV, LV, lane);
  }

  lrow0 += shfl_xor_f32(lrow0, 1);
  lrow0 += shfl_xor_f32(lrow0, 2);
  lrow1 += shfl_xor_f32(lrow1, 1);
  lrow1 += shfl_xor_f32(lrow1, 2);
  const float inv0 = 1.f / lrow0, inv1 = 1.f / lrow1;
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = half ? r1 : r0;
    if (r >= T) continue;
    const float inv = half ? inv1 : inv0;
    const int64_t rowOff = (head0 + (int64_t)r * H) * DV + 2 * t4;
#pragma unroll
    for (int nt = 0; nt < DV / 8; nt++) {
      const float x0 = o[nt][2 * half] * inv, x1 = o[nt][2 * half + 1] * inv;
      if (OUT_BF16) {
        *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(out) + rowOff + nt * 8) = pack_bf16x2(x0, x1);
      } else {
        float* p = static_cast<float*>(out) + rowOff + nt * 8;
        p[0] = x0;
        p[1] = x1;
      }
    }
    if (t4 == 0) lse[((int64_t)b * H + h) * T + r] = ((half ? mrow1 : mrow0) + log2f(half ? lrow1 : lrow0)) * kLn2;
  }
}

// D_i = Σ_d dO[i, d] · O[i, d] (FP32, each lane's four-element strips in order, then a fixed butterfly), one warp
// per row (b, t, h) of [B·T·H, DV]; written to delta [B, H, T].
template <bool DO_BF16, bool O_BF16>
__global__ void __launch_bounds__(256)
    attn_delta_kernel(const void* __restrict__ dout, const void* __restrict__ o, float* __restrict__ delta,
                      int64_t rows, int T, int H, int DV) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float acc = 0.f;
  for (int d = lane * 4; d < DV; d += 128) {
    const int64_t off = row * DV + d;
    float a[4], c[4];
    if (DO_BF16) {
      const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(dout) + off);
      a[0] = bf16_lo(u.x), a[1] = bf16_hi(u.x), a[2] = bf16_lo(u.y), a[3] = bf16_hi(u.y);
    } else {
      const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const float*>(dout) + off);
      a[0] = __uint_as_float(u.x), a[1] = __uint_as_float(u.y), a[2] = __uint_as_float(u.z), a[3] = __uint_as_float(u.w);
    }
    if (O_BF16) {
      const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(o) + off);
      c[0] = bf16_lo(u.x), c[1] = bf16_hi(u.x), c[2] = bf16_lo(u.y), c[3] = bf16_hi(u.y);
    } else {
      const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const float*>(o) + off);
      c[0] = __uint_as_float(u.x), c[1] = __uint_as_float(u.y), c[2] = __uint_as_float(u.z), c[3] = __uint_as_float(u.w);
    }
#pragma unroll
    for (int e = 0; e < 4; e++) acc = fmaf(a[e], c[e], acc);
  }
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) acc += shfl_xor_f32(acc, m);
  if (lane == 0) {
    const int64_t b = row / ((int64_t)T * H), rem = row % ((int64_t)T * H);
    const int64_t t = rem / H, h = rem % H;
    delta[(b * H + h) * T + t] = acc;
  }
}

template <int DQK, int DV, bool SPLIT>
struct BwdKVBf16 {
  static constexpr int CW = DQK >= 128 ? 2 : 1;  // warps splitting the columns (queries, then dV/dK dims)
  static constexpr int KW = 4;                   // warps over keys, 16 keys each
  static constexpr int WARPS = KW * CW, NT = WARPS * 32;
  static constexpr int BN = 16 * KW;  // keys per block
  static constexpr int BM = 64;       // queries per step
  static constexpr int NQ = BM / CW;  // queries of a warp in the Sᵀ / dPᵀ products
  static constexpr int LQ = DQK + 8, LV = DV + 8, LP = BM + 8;
  static_assert(NQ % 16 == 0 && (DQK / CW) % 16 == 0 && (DV / CW) % 16 == 0 && NT >= 2 * BM, "tiling");
  static constexpr int PARTS = SPLIT ? 2 : 1;  // Pᵀ and dSᵀ as bf16 (hi) or bf16 pairs (hi, lo)
  // bf16: sK [BN][LQ], sV [BN][LV], sQ [2][BM][LQ], sdO [2][BM][LV], sP [PARTS][BN][LP], sdS [PARTS][BN][LP];
  // f32: sL [2][BM] (lse·log2 e), sD [2][BM]
  static constexpr size_t SMEM =
      (size_t)(BN * LQ + BN * LV + 2 * BM * LQ + 2 * BM * LV + 2 * PARTS * BN * LP) * sizeof(uint16_t) +
      4 * BM * sizeof(float);
};

template <int DQK, int DV, bool SPLIT>
__global__ void __launch_bounds__(BwdKVBf16<DQK, DV, SPLIT>::NT, 1)
    attn_bwd_dkdv_bf16_kernel(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                              const uint16_t* __restrict__ v, const uint16_t* __restrict__ dout,
                              const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dk,
                              float* __restrict__ dv, int T, int H, float scale_log2, float scale) {
  using C = BwdKVBf16<DQK, DV, SPLIT>;
  constexpr int BM = C::BM, BN = C::BN, LQ = C::LQ, LV = C::LV, LP = C::LP, NT = C::NT, NQ = C::NQ, CW = C::CW;
  constexpr int PARTS = C::PARTS;
  constexpr int KW = C::KW;
  ATT_DYNAMIC_SMEM(smem);
  uint16_t* sK = reinterpret_cast<uint16_t*>(smem);
  uint16_t* sV = sK + BN * LQ;
  uint16_t* sQ = sV + BN * LV;
  uint16_t* sdO = sQ + 2 * BM * LQ;
  uint16_t* sP = sdO + 2 * BM * LV;    // [PARTS][BN][LP]: hi, then lo
  uint16_t* sdS = sP + PARTS * BN * LP;  // [PARTS][BN][LP]
  float* sL = reinterpret_cast<float*>(sdS + PARTS * BN * LP);
  float* sD = sL + 2 * BM;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int kw = warp % KW, cw = warp / KW;
  const int n0 = blockIdx.x * BN;  // the key tile; low tiles (the most queries) are scheduled first
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const uint16_t* qh = q + head0 * DQK;
  const uint16_t* kh = k + head0 * DQK;
  const uint16_t* vh = v + head0 * DV;
  const uint16_t* doh = dout + head0 * DV;
  const float* lseh = lse + ((int64_t)b * H + h) * T;
  const float* deltah = delta + ((int64_t)b * H + h) * T;

  const int mStart = (n0 / BM) * BM;  // first query tile with a query ≥ n0
  const int nIter = (T - mStart + BM - 1) / BM;
  load_tile_bf16<BN, DQK, LQ, NT>(sK, kh, sqk, n0, T, tid);
  load_tile_bf16<BN, DV, LV, NT>(sV, vh, sv, n0, T, tid);
  load_tile_bf16<BM, DQK, LQ, NT>(sQ, qh, sqk, mStart, T, tid);
  load_tile_bf16<BM, DV, LV, NT>(sdO, doh, sv, mStart, T, tid);
  cp_async_commit();
  if (tid < 2 * BM) {
    const int m = mStart + (tid % BM);
    if (tid < BM) sL[tid] = m < T ? lseh[m] * kLog2e : 0.f;
    else sD[tid - BM] = m < T ? deltah[m] : 0.f;
  }

  const int key0 = n0 + kw * 16;  // this warp's first key
  const int rk0 = key0 + g, rk1 = rk0 + 8;
  float dka[DQK / CW / 8][4], dva[DV / CW / 8][4];
#pragma unroll
  for (int i = 0; i < DQK / CW / 8; i++) dka[i][0] = dka[i][1] = dka[i][2] = dka[i][3] = 0.f;
#pragma unroll
  for (int i = 0; i < DV / CW / 8; i++) dva[i][0] = dva[i][1] = dva[i][2] = dva[i][3] = 0.f;

  for (int it = 0; it < nIter; it++) {
    const int st = it & 1;
    const int m0 = mStart + it * BM;
    cp_async_wait<0>();
    __syncthreads();  // tile `it` (and its lse, D) visible; every warp is done with stage st^1 and sP / sdS
    float nextLD = 0.f;
    if (it + 1 < nIter) {
      load_tile_bf16<BM, DQK, LQ, NT>(sQ + (st ^ 1) * BM * LQ, qh, sqk, m0 + BM, T, tid);
      load_tile_bf16<BM, DV, LV, NT>(sdO + (st ^ 1) * BM * LV, doh, sv, m0 + BM, T, tid);
      cp_async_commit();
      if (tid < 2 * BM) {
        const int m = m0 + BM + (tid % BM);
        if (m < T) nextLD = tid < BM ? lseh[m] * kLog2e : deltah[m];
      }
    }
    const uint16_t* sQs = sQ + st * BM * LQ;
    const uint16_t* sdOs = sdO + st * BM * LV;
    const float* sLs = sL + st * BM;
    const float* sDs = sD + st * BM;

    // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for this warp's 16 keys × NQ queries.
    float s[NQ / 8][4], dp[NQ / 8][4];
#pragma unroll
    for (int i = 0; i < NQ / 8; i++) {
      s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
      dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
    }
    warp_gemm_nt<DQK, NQ / 8>(s, sK + kw * 16 * LQ, LQ, sQs + cw * NQ * LQ, LQ, lane);
    warp_gemm_nt<DV, NQ / 8>(dp, sV + kw * 16 * LV, LV, sdOs + cw * NQ * LV, LV, lane);

    // Pᵀ = exp2(s·scale·log2 e − lse·log2 e) (0 where the query precedes the key or is past T),
    // dSᵀ = Pᵀ ∘ (dPᵀ − D) · scale; both to shared as bf16 [key][query].
#pragma unroll
    for (int nt = 0; nt < NQ / 8; nt++) {
      const int ql = cw * NQ + nt * 8 + 2 * t4;  // local query of e = 0
      float p[4], ds[4];
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int qg = m0 + ql + e;
        const float l2 = sLs[ql + e], dd = sDs[ql + e];
        const bool live = qg < T;
        p[e] = (live && qg >= rk0) ? exp2f(s[nt][e] * scale_log2 - l2) : 0.f;
        p[2 + e] = (live && qg >= rk1) ? exp2f(s[nt][2 + e] * scale_log2 - l2) : 0.f;
        ds[e] = p[e] * (dp[nt][e] - dd) * scale;
        ds[2 + e] = p[2 + e] * (dp[nt][2 + e] - dd) * scale;
      }
      const int kr = kw * 16 + g;
      const uint32_t p0 = pack_bf16x2(p[0], p[1]), p1 = pack_bf16x2(p[2], p[3]);
      const uint32_t s0 = pack_bf16x2(ds[0], ds[1]), s1 = pack_bf16x2(ds[2], ds[3]);
      *reinterpret_cast<uint32_t*>(sP + kr * LP + ql) = p0;
      *reinterpret_cast<uint32_t*>(sP + (kr + 8) * LP + ql) = p1;
      *reinterpret_cast<uint32_t*>(sdS + kr * LP + ql) = s0;
      *reinterpret_cast<uint32_t*>(sdS + (kr + 8) * LP + ql) = s1;
      if (SPLIT) {
        *reinterpret_cast<uint32_t*>(sP + BN * LP + kr * LP + ql) = pack_bf16x2_lo(p[0], p[1], p0);
        *reinterpret_cast<uint32_t*>(sP + BN * LP + (kr + 8) * LP + ql) = pack_bf16x2_lo(p[2], p[3], p1);
        *reinterpret_cast<uint32_t*>(sdS + BN * LP + kr * LP + ql) = pack_bf16x2_lo(ds[0], ds[1], s0);
        *reinterpret_cast<uint32_t*>(sdS + BN * LP + (kr + 8) * LP + ql) = pack_bf16x2_lo(ds[2], ds[3], s1);
      }
    }
    __syncthreads();  // all of Pᵀ, dSᵀ [BN][BM] written

    // dV += Pᵀ·dO and dK += dSᵀ·Q over the BM queries, for this warp's 16 keys and its share of the columns.
#pragma unroll
    for (int kk = 0; kk < BM / 16; kk++) {
      if (m0 + kk * 16 + 15 < key0) continue;  // these 16 queries all precede this warp's keys: P = dS = 0
      uint32_t ap[4], as[4], apl[4], asl[4];
      const int aoff = (kw * 16 + a_row(lane)) * LP + kk * 16 + a_col(lane);
      ldsm_x4(ap, sP + aoff);
      ldsm_x4(as, sdS + aoff);
      if (SPLIT) {
        ldsm_x4(apl, sP + BN * LP + aoff);
        ldsm_x4(asl, sdS + BN * LP + aoff);
      }
      warp_gemm_nn_step<DV / CW / 8, SPLIT>(dva, ap, apl, sdOs + kk * 16 * LV + cw * (DV / CW), LV, lane);
      warp_gemm_nn_step<DQK / CW / 8, SPLIT>(dka, as, asl, sQs + kk * 16 * LQ + cw * (DQK / CW), LQ, lane);
    }
    if (it + 1 < nIter && tid < 2 * BM) {  // stage st^1 of sL / sD was last read before this step's first barrier
      if (tid < BM) sL[(st ^ 1) * BM + tid] = nextLD;
      else sD[(st ^ 1) * BM + tid - BM] = nextLD;
    }
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = half ? rk1 : rk0;
    if (r >= T) continue;
    float* dkr = dk + (head0 + (int64_t)r * H) * DQK + cw * (DQK / CW) + 2 * t4;
    float* dvr = dv + (head0 + (int64_t)r * H) * DV + cw * (DV / CW) + 2 * t4;
#pragma unroll
    for (int nt = 0; nt < DQK / CW / 8; nt++) {
      dkr[nt * 8] = dka[nt][2 * half];
      dkr[nt * 8 + 1] = dka[nt][2 * half + 1];
    }
#pragma unroll
    for (int nt = 0; nt < DV / CW / 8; nt++) {
      dvr[nt * 8] = dva[nt][2 * half];
      dvr[nt * 8 + 1] = dva[nt][2 * half + 1];
    }
  }
}

template <int DQK, int DV>
struct BwdQBf16 {
  static constexpr int WARPS = 4, NT = WARPS * 32;
  static constexpr int BM = 16 * WARPS;          // queries per block
  static constexpr int BN = DQK >= 128 ? 32 : 64;  // keys per step (32 at wide heads: the dQ accumulators are large)
  static constexpr int LQ = DQK + 8, LV = DV + 8;
  // sQ [BM][LQ], sdO [BM][LV], sK [2][BN][LQ], sV [2][BN][LV]
  static constexpr size_t SMEM = (size_t)(BM * LQ + BM * LV + 2 * BN * LQ + 2 * BN * LV) * sizeof(uint16_t);
};

template <int DQK, int DV, bool SPLIT>
__global__ void __launch_bounds__(BwdQBf16<DQK, DV>::NT)
    attn_bwd_dq_bf16_kernel(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                            const uint16_t* __restrict__ v, const uint16_t* __restrict__ dout,
                            const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dq,
                            int T, int H, float scale_log2, float scale) {
  using C = BwdQBf16<DQK, DV>;
  constexpr int BM = C::BM, BN = C::BN, LQ = C::LQ, LV = C::LV, NT = C::NT;
  ATT_DYNAMIC_SMEM(smem);
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem);
  uint16_t* sdO = sQ + BM * LQ;
  uint16_t* sK = sdO + BM * LV;
  uint16_t* sV = sK + 2 * BN * LQ;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const uint16_t* qh = q + head0 * DQK;
  const uint16_t* kh = k + head0 * DQK;
  const uint16_t* vh = v + head0 * DV;
  const uint16_t* doh = dout + head0 * DV;

  const int kEnd = min(m0 + BM, T);
  const int nTiles = (kEnd + BN - 1) / BN;
  load_tile_bf16<BM, DQK, LQ, NT>(sQ, qh, sqk, m0, T, tid);
  load_tile_bf16<BM, DV, LV, NT>(sdO, doh, sv, m0, T, tid);
  load_tile_bf16<BN, DQK, LQ, NT>(sK, kh, sqk, 0, T, tid);
  load_tile_bf16<BN, DV, LV, NT>(sV, vh, sv, 0, T, tid);
  cp_async_commit();

  const int wrow = m0 + warp * 16;
  const int r0 = wrow + g, r1 = r0 + 8;
  const float* lseh = lse + ((int64_t)b * H + h) * T;
  const float* deltah = delta + ((int64_t)b * H + h) * T;
  const float l20 = r0 < T ? lseh[r0] * kLog2e : 0.f, l21 = r1 < T ? lseh[r1] * kLog2e : 0.f;
  const float d0 = r0 < T ? deltah[r0] : 0.f, d1 = r1 < T ? deltah[r1] : 0.f;

  float dqa[DQK / 8][4];
#pragma unroll
  for (int i = 0; i < DQK / 8; i++) dqa[i][0] = dqa[i][1] = dqa[i][2] = dqa[i][3] = 0.f;

  for (int j = 0; j < nTiles; j++) {
    const int st = j & 1;
    cp_async_wait<0>();
    __syncthreads();
    if (j + 1 < nTiles) {
      load_tile_bf16<BN, DQK, LQ, NT>(sK + (st ^ 1) * BN * LQ, kh, sqk, (j + 1) * BN, T, tid);
      load_tile_bf16<BN, DV, LV, NT>(sV + (st ^ 1) * BN * LV, vh, sv, (j + 1) * BN, T, tid);
      cp_async_commit();
    }
    const int n0 = j * BN;
    if (n0 > wrow + 15) continue;
    const uint16_t* sKs = sK + st * BN * LQ;
    const uint16_t* sVs = sV + st * BN * LV;

    float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) {
      s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
      dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
    }
    warp_gemm_nt<DQK, BN / 8>(s, sQ + warp * 16 * LQ, LQ, sKs, LQ, lane);
    warp_gemm_nt<DV, BN / 8>(dp, sdO + warp * 16 * LV, LV, sVs, LV, lane);

    // dS = P ∘ (dP − D) · scale, P = 0 after the diagonal (and for keys past T, which are after every row < T).
#pragma unroll
    for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int col = n0 + nt * 8 + 2 * t4 + e;
        const float p0 = col <= r0 ? exp2f(s[nt][e] * scale_log2 - l20) : 0.f;
        const float p1 = col <= r1 ? exp2f(s[nt][2 + e] * scale_log2 - l21) : 0.f;
        s[nt][e] = p0 * (dp[nt][e] - d0) * scale;
        s[nt][2 + e] = p1 * (dp[nt][2 + e] - d1) * scale;
      }
    }
    uint32_t dsf[BN / 16][4], dsl[BN / 16][4];
    if (SPLIT) acc_to_a_split<BN / 8>(dsf, dsl, s);
    else acc_to_a<BN / 8>(dsf, s);
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
      warp_gemm_nn_step<DQK / 8, SPLIT>(dqa, dsf[kk], dsl[kk], sKs + kk * 16 * LQ, LQ, lane);
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = half ? r1 : r0;
    if (r >= T) continue;
    float* dqr = dq + (head0 + (int64_t)r * H) * DQK + 2 * t4;
#pragma unroll
    for (int nt = 0; nt < DQK / 8; nt++) {
      dqr[nt * 8] = dqa[nt][2 * half];
      dqr[nt * 8 + 1] = dqa[nt][2 * half + 1];
    }
  }
}

// ---- fp32 SIMT kernels ---------------------------------------------------------------------------------------
// 256 threads as a 16 × 16 grid (ty = tid / 16, tx = tid % 16); a thread owns the rows ty + 16i and the columns
// tx + 16j of every tile product, so a row's 16 owners are one half-warp (row reductions are 4 xor shuffles) and a
// column walk over consecutive tx touches consecutive shared words.
constexpr int F_TY = 16, F_TX = 16, F_NT = F_TY * F_TX;

// acc[i][j] += Σ_k A[(ty + 16i)·lda + k] · B[(tx + 16j)·ldb + k]   (B given as [n][k] rows: Q·Kᵀ)
template <int RM, int CN, int K>
__device__ __forceinline__ void block_gemm_nt_f32(float (&acc)[RM][CN], const float* A, int lda, const float* B,
                                                  int ldb, int ty, int tx) {
#pragma unroll 4
  for (int kk = 0; kk < K; kk++) {
    float a[RM], bb[CN];
#pragma unroll
    for (int i = 0; i < RM; i++) a[i] = A[(ty + F_TY * i) * lda + kk];
#pragma unroll
    for (int j = 0; j < CN; j++) bb[j] = B[(tx + F_TX * j) * ldb + kk];
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < CN; j++) acc[i][j] = fmaf(a[i], bb[j], acc[i][j]);
  }
}

// acc[i][j] += Σ_k A[(ty + 16i)·lda + k] · B[k·ldb + tx + 16j]   (B given as [k][n] rows: P·V)
template <int RM, int CN, int K>
__device__ __forceinline__ void block_gemm_nn_f32(float (&acc)[RM][CN], const float* A, int lda, const float* B,
                                                  int ldb, int ty, int tx) {
#pragma unroll 4
  for (int kk = 0; kk < K; kk++) {
    float a[RM], bb[CN];
#pragma unroll
    for (int i = 0; i < RM; i++) a[i] = A[(ty + F_TY * i) * lda + kk];
#pragma unroll
    for (int j = 0; j < CN; j++) bb[j] = B[kk * ldb + tx + F_TX * j];
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < CN; j++) acc[i][j] = fmaf(a[i], bb[j], acc[i][j]);
  }
}

__device__ __forceinline__ float half_warp_max(float x) {
#pragma unroll
  for (int m = 1; m < 16; m <<= 1) x = fmaxf(x, shfl_xor_f32(x, m));
  return x;
}
__device__ __forceinline__ float half_warp_sum(float x) {
#pragma unroll
  for (int m = 1; m < 16; m <<= 1) x += shfl_xor_f32(x, m);
  return x;
}

template <int DQK, int DV>
struct FwdF32 {
  static constexpr int BM = 64, BN = 32, RM = BM / F_TY, CN = BN / F_TX, CV = DV / F_TX;
  static constexpr int LQ = DQK + 1, LV = DV + 1, LP = BN + 1;
  // sQ [BM][LQ], sK [BN][LQ], sV [BN][LV], sP [BM][LP]
  static constexpr size_t SMEM = (size_t)(BM * LQ + BN * LQ + BN * LV + BM * LP) * sizeof(float);
};

template <int DQK, int DV, bool OUT_BF16>
__global__ void __launch_bounds__(F_NT)
    attn_fwd_f32_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                        void* __restrict__ out, float* __restrict__ lse, int T, int H, float scale_log2) {
  using C = FwdF32<DQK, DV>;
  constexpr int BM = C::BM, BN = C::BN, RM = C::RM, CN = C::CN, CV = C::CV, LQ = C::LQ, LV = C::LV, LP = C::LP;
  ATT_DYNAMIC_SMEM(smem);
  float* sQ = reinterpret_cast<float*>(smem);
  float* sK = sQ + BM * LQ;
  float* sV = sK + BN * LQ;
  float* sP = sV + BN * LV;

  const int tid = threadIdx.x, ty = tid / F_TX, tx = tid % F_TX;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const float* qh = q + head0 * DQK;
  const float* kh = k + head0 * DQK;
  const float* vh = v + head0 * DV;
  load_tile_f32<BM, DQK, LQ, F_NT>(sQ, qh, sqk, m0, T, tid);

  float o[RM][CV], mrow[RM], lrow[RM];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    mrow[i] = -INFINITY;
    lrow[i] = 0.f;
#pragma unroll
    for (int j = 0; j < CV; j++) o[i][j] = 0.f;
  }
  const int kEnd = min(m0 + BM, T);
  for (int n0 = 0; n0 < kEnd; n0 += BN) {
    __syncthreads();  // the previous step's readers of sK, sV, sP are done
    load_tile_f32<BN, DQK, LQ, F_NT>(sK, kh, sqk, n0, T, tid);
    load_tile_f32<BN, DV, LV, F_NT>(sV, vh, sv, n0, T, tid);
    __syncthreads();
    float s[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < CN; j++) s[i][j] = 0.f;
    block_gemm_nt_f32<RM, CN, DQK>(s, sQ, LQ, sK, LQ, ty, tx);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = m0 + ty + F_TY * i;
      float mx = mrow[i];
#pragma unroll
      for (int j = 0; j < CN; j++) {
        const int c = n0 + tx + F_TX * j;
        s[i][j] = c > r ? -INFINITY : s[i][j] * scale_log2;
        mx = fmaxf(mx, s[i][j]);
      }
      mx = half_warp_max(mx);  // finite: key 0 is in the first step
      const float base = mx == -INFINITY ? 0.f : mx;
      const float alpha = exp2f(mrow[i] - base);
      mrow[i] = mx;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < CN; j++) {
        const float p = exp2f(s[i][j] - base);
        sum += p;
        sP[(ty + F_TY * i) * LP + tx + F_TX * j] = p;
      }
      lrow[i] = lrow[i] * alpha + sum;
#pragma unroll
      for (int j = 0; j < CV; j++) o[i][j] *= alpha;
    }
    __syncthreads();
    block_gemm_nn_f32<RM, CV, BN>(o, sP, LP, sV, LV, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const float l = half_warp_sum(lrow[i]);
    const int r = m0 + ty + F_TY * i;
    if (r >= T) continue;
    const float inv = 1.f / l;
    const int64_t rowOff = (head0 + (int64_t)r * H) * DV;
#pragma unroll
    for (int j = 0; j < CV; j++) {
      const float x = o[i][j] * inv;
      if (OUT_BF16) static_cast<uint16_t*>(out)[rowOff + tx + F_TX * j] = (uint16_t)(pack_bf16x2(x, 0.f) & 0xffffu);
      else static_cast<float*>(out)[rowOff + tx + F_TX * j] = x;
    }
    if (tx == 0) lse[((int64_t)b * H + h) * T + r] = (mrow[i] + log2f(l)) * kLn2;
  }
}

template <int DQK, int DV>
struct BwdKVF32 {
  static constexpr int BN = 32, BM = 32;  // keys per block, queries per step
  static constexpr int RK = BN / F_TY, CQ = BM / F_TX, CK = DQK / F_TX, CV = DV / F_TX;
  static constexpr int LQ = DQK + 1, LV = DV + 1, LP = BM + 1;
  // sK [BN][LQ], sV [BN][LV], sQ [BM][LQ], sdO [BM][LV], sP [BN][LP], sdS [BN][LP], sL [BM], sD [BM]
  static constexpr size_t SMEM = (size_t)(BN * LQ + BN * LV + BM * LQ + BM * LV + 2 * BN * LP + 2 * BM) * sizeof(float);
};

template <int DQK, int DV>
__global__ void __launch_bounds__(F_NT)
    attn_bwd_dkdv_f32_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                             const float* __restrict__ dout, const float* __restrict__ lse,
                             const float* __restrict__ delta, float* __restrict__ dk, float* __restrict__ dv, int T,
                             int H, float scale_log2, float scale) {
  using C = BwdKVF32<DQK, DV>;
  constexpr int BN = C::BN, BM = C::BM, RK = C::RK, CQ = C::CQ, CK = C::CK, CV = C::CV;
  constexpr int LQ = C::LQ, LV = C::LV, LP = C::LP;
  ATT_DYNAMIC_SMEM(smem);
  float* sK = reinterpret_cast<float*>(smem);
  float* sV = sK + BN * LQ;
  float* sQ = sV + BN * LV;
  float* sdO = sQ + BM * LQ;
  float* sP = sdO + BM * LV;
  float* sdS = sP + BN * LP;
  float* sL = sdS + BN * LP;
  float* sD = sL + BM;

  const int tid = threadIdx.x, ty = tid / F_TX, tx = tid % F_TX;
  const int n0 = blockIdx.x * BN;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const float* qh = q + head0 * DQK;
  const float* kh = k + head0 * DQK;
  const float* vh = v + head0 * DV;
  const float* doh = dout + head0 * DV;
  const float* lseh = lse + ((int64_t)b * H + h) * T;
  const float* deltah = delta + ((int64_t)b * H + h) * T;
  load_tile_f32<BN, DQK, LQ, F_NT>(sK, kh, sqk, n0, T, tid);
  load_tile_f32<BN, DV, LV, F_NT>(sV, vh, sv, n0, T, tid);

  float dka[RK][CK], dva[RK][CV];
#pragma unroll
  for (int i = 0; i < RK; i++) {
#pragma unroll
    for (int j = 0; j < CK; j++) dka[i][j] = 0.f;
#pragma unroll
    for (int j = 0; j < CV; j++) dva[i][j] = 0.f;
  }
  for (int m0 = (n0 / BM) * BM; m0 < T; m0 += BM) {
    __syncthreads();  // the previous step's readers of sQ, sdO, sP, sdS, sL, sD are done
    load_tile_f32<BM, DQK, LQ, F_NT>(sQ, qh, sqk, m0, T, tid);
    load_tile_f32<BM, DV, LV, F_NT>(sdO, doh, sv, m0, T, tid);
    if (tid < 2 * BM) {
      const int m = m0 + (tid % BM);
      if (tid < BM) sL[tid] = m < T ? lseh[m] * kLog2e : 0.f;
      else sD[tid - BM] = m < T ? deltah[m] : 0.f;
    }
    __syncthreads();
    float s[RK][CQ], dp[RK][CQ];
#pragma unroll
    for (int i = 0; i < RK; i++)
#pragma unroll
      for (int j = 0; j < CQ; j++) s[i][j] = dp[i][j] = 0.f;
    block_gemm_nt_f32<RK, CQ, DQK>(s, sK, LQ, sQ, LQ, ty, tx);   // Sᵀ [key][query]
    block_gemm_nt_f32<RK, CQ, DV>(dp, sV, LV, sdO, LV, ty, tx);  // dPᵀ
#pragma unroll
    for (int i = 0; i < RK; i++) {
      const int key = n0 + ty + F_TY * i;
#pragma unroll
      for (int j = 0; j < CQ; j++) {
        const int ql = tx + F_TX * j, qg = m0 + ql;
        const float p = (qg < T && qg >= key) ? exp2f(s[i][j] * scale_log2 - sL[ql]) : 0.f;
        sP[(ty + F_TY * i) * LP + ql] = p;
        sdS[(ty + F_TY * i) * LP + ql] = p * (dp[i][j] - sD[ql]) * scale;
      }
    }
    __syncthreads();
    block_gemm_nn_f32<RK, CV, BM>(dva, sP, LP, sdO, LV, ty, tx);
    block_gemm_nn_f32<RK, CK, BM>(dka, sdS, LP, sQ, LQ, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RK; i++) {
    const int key = n0 + ty + F_TY * i;
    if (key >= T) continue;
#pragma unroll
    for (int j = 0; j < CK; j++) dk[(head0 + (int64_t)key * H) * DQK + tx + F_TX * j] = dka[i][j];
#pragma unroll
    for (int j = 0; j < CV; j++) dv[(head0 + (int64_t)key * H) * DV + tx + F_TX * j] = dva[i][j];
  }
}

template <int DQK, int DV>
struct BwdQF32 {
  static constexpr int BM = 32, BN = 32;  // queries per block, keys per step
  static constexpr int RQ = BM / F_TY, CN = BN / F_TX, CK = DQK / F_TX;
  static constexpr int LQ = DQK + 1, LV = DV + 1, LP = BN + 1;
  // sQ [BM][LQ], sdO [BM][LV], sK [BN][LQ], sV [BN][LV], sdS [BM][LP]
  static constexpr size_t SMEM = (size_t)(BM * LQ + BM * LV + BN * LQ + BN * LV + BM * LP) * sizeof(float);
};

template <int DQK, int DV>
__global__ void __launch_bounds__(F_NT)
    attn_bwd_dq_f32_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           const float* __restrict__ dout, const float* __restrict__ lse,
                           const float* __restrict__ delta, float* __restrict__ dq, int T, int H, float scale_log2,
                           float scale) {
  using C = BwdQF32<DQK, DV>;
  constexpr int BM = C::BM, BN = C::BN, RQ = C::RQ, CN = C::CN, CK = C::CK, LQ = C::LQ, LV = C::LV, LP = C::LP;
  ATT_DYNAMIC_SMEM(smem);
  float* sQ = reinterpret_cast<float*>(smem);
  float* sdO = sQ + BM * LQ;
  float* sK = sdO + BM * LV;
  float* sV = sK + BN * LQ;
  float* sdS = sV + BN * LV;

  const int tid = threadIdx.x, ty = tid / F_TX, tx = tid % F_TX;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t head0 = (int64_t)b * T * H + h;
  const int64_t sqk = (int64_t)H * DQK, sv = (int64_t)H * DV;
  const float* qh = q + head0 * DQK;
  const float* kh = k + head0 * DQK;
  const float* vh = v + head0 * DV;
  const float* doh = dout + head0 * DV;
  const float* lseh = lse + ((int64_t)b * H + h) * T;
  const float* deltah = delta + ((int64_t)b * H + h) * T;
  load_tile_f32<BM, DQK, LQ, F_NT>(sQ, qh, sqk, m0, T, tid);
  load_tile_f32<BM, DV, LV, F_NT>(sdO, doh, sv, m0, T, tid);

  float l2[RQ], dd[RQ], dqa[RQ][CK];
#pragma unroll
  for (int i = 0; i < RQ; i++) {
    const int r = m0 + ty + F_TY * i;
    l2[i] = r < T ? lseh[r] * kLog2e : 0.f;
    dd[i] = r < T ? deltah[r] : 0.f;
#pragma unroll
    for (int j = 0; j < CK; j++) dqa[i][j] = 0.f;
  }
  const int kEnd = min(m0 + BM, T);
  for (int n0 = 0; n0 < kEnd; n0 += BN) {
    __syncthreads();
    load_tile_f32<BN, DQK, LQ, F_NT>(sK, kh, sqk, n0, T, tid);
    load_tile_f32<BN, DV, LV, F_NT>(sV, vh, sv, n0, T, tid);
    __syncthreads();
    float s[RQ][CN], dp[RQ][CN];
#pragma unroll
    for (int i = 0; i < RQ; i++)
#pragma unroll
      for (int j = 0; j < CN; j++) s[i][j] = dp[i][j] = 0.f;
    block_gemm_nt_f32<RQ, CN, DQK>(s, sQ, LQ, sK, LQ, ty, tx);
    block_gemm_nt_f32<RQ, CN, DV>(dp, sdO, LV, sV, LV, ty, tx);
#pragma unroll
    for (int i = 0; i < RQ; i++) {
      const int r = m0 + ty + F_TY * i;
#pragma unroll
      for (int j = 0; j < CN; j++) {
        const int c = n0 + tx + F_TX * j;
        const float p = c <= r ? exp2f(s[i][j] * scale_log2 - l2[i]) : 0.f;
        sdS[(ty + F_TY * i) * LP + tx + F_TX * j] = p * (dp[i][j] - dd[i]) * scale;
      }
    }
    __syncthreads();
    block_gemm_nn_f32<RQ, CK, BN>(dqa, sdS, LP, sK, LQ, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RQ; i++) {
    const int r = m0 + ty + F_TY * i;
    if (r >= T) continue;
#pragma unroll
    for (int j = 0; j < CK; j++) dq[(head0 + (int64_t)r * H) * DQK + tx + F_TX * j] = dqa[i][j];
  }
}

// ---- host side ------------------------------------------------------------------------------------------------------
struct Problem {
  int B, T, H;
  float scale_log2, scale;
};

// Kernels with more than 48 KiB of dynamic shared memory must opt in (a per-function attribute, not a stream
// operation: allowed while a graph is being captured).
template <class K>
cudaError_t allow_smem(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int DQK, int DV>
cudaError_t forward_impl(int precision, const void* q, const void* k, const void* v, void* out, int out_dtype,
                         float* lse, const Problem& p, cudaStream_t stream) {
  if (precision != OCTET_ATTN_FP32) {
    using C = FwdBf16<DQK, DV>;
    const dim3 grid((p.T + C::BM - 1) / C::BM, p.H, p.B);
    const bool split = precision == OCTET_ATTN_BF16, ob = out_dtype == OCTET_ATTN_OUT_BF16;
    auto kern = split ? (ob ? attn_fwd_bf16_kernel<DQK, DV, true, true> : attn_fwd_bf16_kernel<DQK, DV, false, true>)
                      : (ob ? attn_fwd_bf16_kernel<DQK, DV, true, false> : attn_fwd_bf16_kernel<DQK, DV, false, false>);
    cudaError_t e = allow_smem(kern, C::SMEM);
    if (e != cudaSuccess) return e;
    ATT_LAUNCH(kern, grid, C::NT, C::SMEM, stream)(static_cast<const uint16_t*>(q), static_cast<const uint16_t*>(k),
                                                   static_cast<const uint16_t*>(v), out, lse, p.T, p.H, p.scale_log2);
  } else {
    using C = FwdF32<DQK, DV>;
    const dim3 grid((p.T + C::BM - 1) / C::BM, p.H, p.B);
    auto kern = out_dtype == OCTET_ATTN_OUT_BF16 ? attn_fwd_f32_kernel<DQK, DV, true> : attn_fwd_f32_kernel<DQK, DV, false>;
    cudaError_t e = allow_smem(kern, C::SMEM);
    if (e != cudaSuccess) return e;
    ATT_LAUNCH(kern, grid, F_NT, C::SMEM, stream)(static_cast<const float*>(q), static_cast<const float*>(k),
                                                  static_cast<const float*>(v), out, lse, p.T, p.H, p.scale_log2);
  }
  return cudaGetLastError();
}

cudaError_t delta_impl(int precision, const void* dout, const void* out, int out_dtype, float* delta, const Problem& p,
                       int DV, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.B * p.T * p.H;
  const unsigned blocks = (unsigned)((rows + 7) / 8);  // 8 warps of 256 threads, one row each
  const bool dob = precision != OCTET_ATTN_FP32, ob = out_dtype == OCTET_ATTN_OUT_BF16;
  auto kern = dob ? (ob ? attn_delta_kernel<true, true> : attn_delta_kernel<true, false>)
                  : (ob ? attn_delta_kernel<false, true> : attn_delta_kernel<false, false>);
  ATT_LAUNCH(kern, blocks, 256, 0, stream)(dout, out, delta, rows, p.T, p.H, DV);
  return cudaGetLastError();
}

template <int DQK, int DV, bool SPLIT>
cudaError_t backward_bf16(const void* dout, const void* q, const void* k, const void* v, const float* lse,
                          const float* delta, float* dq, float* dk, float* dv, const Problem& p, cudaStream_t stream) {
  using KV = BwdKVBf16<DQK, DV, SPLIT>;
  using Q = BwdQBf16<DQK, DV>;
  auto kv = attn_bwd_dkdv_bf16_kernel<DQK, DV, SPLIT>;
  auto qk = attn_bwd_dq_bf16_kernel<DQK, DV, SPLIT>;
  cudaError_t e;
  if ((e = allow_smem(kv, KV::SMEM)) != cudaSuccess) return e;
  if ((e = allow_smem(qk, Q::SMEM)) != cudaSuccess) return e;
  const uint16_t *q16 = static_cast<const uint16_t*>(q), *k16 = static_cast<const uint16_t*>(k);
  const uint16_t *v16 = static_cast<const uint16_t*>(v), *do16 = static_cast<const uint16_t*>(dout);
  ATT_LAUNCH(kv, dim3((p.T + KV::BN - 1) / KV::BN, p.H, p.B), KV::NT, KV::SMEM, stream)(
      q16, k16, v16, do16, lse, delta, dk, dv, p.T, p.H, p.scale_log2, p.scale);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  ATT_LAUNCH(qk, dim3((p.T + Q::BM - 1) / Q::BM, p.H, p.B), Q::NT, Q::SMEM, stream)(
      q16, k16, v16, do16, lse, delta, dq, p.T, p.H, p.scale_log2, p.scale);
  return cudaGetLastError();
}

template <int DQK, int DV>
cudaError_t backward_impl(int precision, const void* dout, const void* q, const void* k, const void* v,
                          const float* lse, const float* delta, float* dq, float* dk, float* dv, const Problem& p,
                          cudaStream_t stream) {
  cudaError_t e;
  if (precision == OCTET_ATTN_BF16) {
    return backward_bf16<DQK, DV, true>(dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  } else if (precision == OCTET_ATTN_BF16_FA2) {
    return backward_bf16<DQK, DV, false>(dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  } else {
    using KV = BwdKVF32<DQK, DV>;
    using Q = BwdQF32<DQK, DV>;
    auto kv = attn_bwd_dkdv_f32_kernel<DQK, DV>;
    auto qk = attn_bwd_dq_f32_kernel<DQK, DV>;
    if ((e = allow_smem(kv, KV::SMEM)) != cudaSuccess) return e;
    if ((e = allow_smem(qk, Q::SMEM)) != cudaSuccess) return e;
    const float *q32 = static_cast<const float*>(q), *k32 = static_cast<const float*>(k);
    const float *v32 = static_cast<const float*>(v), *do32 = static_cast<const float*>(dout);
    ATT_LAUNCH(kv, dim3((p.T + KV::BN - 1) / KV::BN, p.H, p.B), F_NT, KV::SMEM, stream)(
        q32, k32, v32, do32, lse, delta, dk, dv, p.T, p.H, p.scale_log2, p.scale);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    ATT_LAUNCH(qk, dim3((p.T + Q::BM - 1) / Q::BM, p.H, p.B), F_NT, Q::SMEM, stream)(
        q32, k32, v32, do32, lse, delta, dq, p.T, p.H, p.scale_log2, p.scale);
  }
  return cudaGetLastError();
}

bool aligned16(const void* p) { return p != nullptr && (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

bool valid_problem(int precision, int out_dtype, int batch, int seq_len, int heads, int qk_dim, int v_dim, float scale) {
  return (precision == OCTET_ATTN_FP32 || precision == OCTET_ATTN_BF16 || precision == OCTET_ATTN_BF16_FA2) &&
         (out_dtype == OCTET_ATTN_OUT_F32 || out_dtype == OCTET_ATTN_OUT_BF16) && batch >= 1 && batch <= 65535 &&
         heads >= 1 && heads <= 65535 && seq_len >= 1 && octet_attention_supported(qk_dim, v_dim) &&
         std::isfinite(scale) && scale > 0.f;
}

Problem make_problem(int batch, int seq_len, int heads, float scale) {
  return Problem{batch, seq_len, heads, (float)((double)scale * 1.4426950408889634), scale};
}

}  // namespace

extern "C" int octet_attention_supported(int qk_dim, int v_dim) {
  return (qk_dim == 32 && v_dim == 32) || (qk_dim == 48 && v_dim == 32) || (qk_dim == 64 && v_dim == 64) ||
         (qk_dim == 128 && v_dim == 128) || (qk_dim == 192 && v_dim == 128);
}

extern "C" cudaError_t octet_attention_forward(int precision, const void* q, const void* k, const void* v, void* out,
                                               int out_dtype, float* lse, int batch, int seq_len, int heads,
                                               int qk_dim, int v_dim, float scale, cudaStream_t stream) {
  if (!valid_problem(precision, out_dtype, batch, seq_len, heads, qk_dim, v_dim, scale)) return cudaErrorInvalidValue;
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out) || !aligned16(lse)) return cudaErrorInvalidValue;
  const Problem p = make_problem(batch, seq_len, heads, scale);
  if (qk_dim == 32) return forward_impl<32, 32>(precision, q, k, v, out, out_dtype, lse, p, stream);
  if (qk_dim == 48) return forward_impl<48, 32>(precision, q, k, v, out, out_dtype, lse, p, stream);
  if (qk_dim == 64) return forward_impl<64, 64>(precision, q, k, v, out, out_dtype, lse, p, stream);
  if (qk_dim == 128) return forward_impl<128, 128>(precision, q, k, v, out, out_dtype, lse, p, stream);
  return forward_impl<192, 128>(precision, q, k, v, out, out_dtype, lse, p, stream);
}

extern "C" size_t octet_attention_backward_workspace_bytes(int batch, int seq_len, int heads) {
  if (batch < 1 || seq_len < 1 || heads < 1) return 0;
  return (size_t)batch * (size_t)heads * (size_t)seq_len * sizeof(float);
}

extern "C" cudaError_t octet_attention_backward(int precision, const void* dout, const void* q, const void* k,
                                                const void* v, const void* out, int out_dtype, const float* lse,
                                                float* dq, float* dk, float* dv, void* workspace,
                                                size_t workspace_bytes, int batch, int seq_len, int heads, int qk_dim,
                                                int v_dim, float scale, cudaStream_t stream) {
  if (!valid_problem(precision, out_dtype, batch, seq_len, heads, qk_dim, v_dim, scale)) return cudaErrorInvalidValue;
  if (!aligned16(dout) || !aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out) || !aligned16(lse) ||
      !aligned16(dq) || !aligned16(dk) || !aligned16(dv) || !aligned16(workspace))
    return cudaErrorInvalidValue;
  if (workspace_bytes < octet_attention_backward_workspace_bytes(batch, seq_len, heads)) return cudaErrorInvalidValue;
  const Problem p = make_problem(batch, seq_len, heads, scale);
  float* delta = static_cast<float*>(workspace);
  cudaError_t e = delta_impl(precision, dout, out, out_dtype, delta, p, v_dim, stream);
  if (e != cudaSuccess) return e;
  if (qk_dim == 32) return backward_impl<32, 32>(precision, dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  if (qk_dim == 48) return backward_impl<48, 32>(precision, dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  if (qk_dim == 64) return backward_impl<64, 64>(precision, dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  if (qk_dim == 128) return backward_impl<128, 128>(precision, dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
  return backward_impl<192, 128>(precision, dout, q, k, v, lse, delta, dq, dk, dv, p, stream);
}
