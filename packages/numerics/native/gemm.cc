// C[M,N] = A[M,K] . B[N,K]^T on the CPU: packed, register-blocked GEMM (GotoBLAS/BLIS structure).
//
// The operands are decoded (FP8 via a 256-entry table, BF16 by widening) while they are packed into
// contiguous fp32 panels: A in MR-row panels [k][MR], B in NR-column panels [k][NR]. The microkernel keeps an
// MR x NR tile of accumulators in registers. For the promoted FP8 GEMM (DeepSeek-V3) the registers hold one
// interval's partial sums of code products (exact products, sequential in k: the same roundings as the
// specification); at the end of each interval they are multiplied by f32(sa * sb) and added to C in memory.
//
// Compiled once per instruction set (kernels.h), each with its own tile: 14x32 (AVX-512: 28 zmm
// accumulators), 6x16 (AVX2: 12 ymm), 4x8 (scalar: what SSE2's 16 xmm registers hold). The tile changes only
// which outputs are computed together: every output is the same fused multiply-add chain over k within a
// chunk of KC, then one add per chunk (one multiply-add per interval for the promoted GEMM), so every copy
// gives the same bits.
#include <algorithm>
#include <cmath>
#include <mutex>
#include "kernels.h"

OCTET_ISA_BEGIN

namespace octet {
namespace OCTET_ISA {

namespace {

#if OCTET_ISA_AVX512
constexpr int MR = 14;
constexpr int NR = 32;
#elif OCTET_ISA_AVX2
constexpr int MR = 6;
constexpr int NR = 16;
#else
constexpr int MR = 4;
constexpr int NR = 8;
#endif

// ---- microkernels -----------------------------------------------------------------------------------
#if OCTET_ISA_AVX512
// One interval (or, unscaled, the whole chunk) of kc steps into 28 zmm accumulators.
#define OCTET_KLOOP(KLEN)                                                     \
  for (int64_t k = 0; k < (KLEN); k++, a += MR, b += NR) {                   \
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);        \
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; i++) {                  \
      const __m512 av = _mm512_set1_ps(a[i]);                                \
      acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                            \
      acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                            \
    }                                                                        \
  }

void kernel_scaled(int64_t kc, int64_t P, const float* __restrict a, const float* __restrict b,
                   const float* __restrict sa, const float* __restrict sb, float* __restrict c, int64_t ldc, bool first) {
  for (int64_t k0 = 0; k0 < kc; k0 += P, sa += MR, sb += NR, first = false) {
    __m512 acc0[MR], acc1[MR];
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    OCTET_KLOOP(P)
    const __m512 s0 = _mm512_load_ps(sb), s1 = _mm512_load_ps(sb + 16);
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; i++) {
      const __m512 si = _mm512_set1_ps(sa[i]);
      float* cr = c + i * ldc;
      // acc = f32(acc + f32(partial * f32(sa * sb))): separate roundings, as the specification; the first
      // interval adds to +0 (which turns a -0 into +0) instead of reading C
      const __m512 c0 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(cr);
      const __m512 c1 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(cr + 16);
      _mm512_storeu_ps(cr, _mm512_add_ps(c0, _mm512_mul_ps(acc0[i], _mm512_mul_ps(si, s0))));
      _mm512_storeu_ps(cr + 16, _mm512_add_ps(c1, _mm512_mul_ps(acc1[i], _mm512_mul_ps(si, s1))));
    }
  }
}

template <bool kExactProducts>
void kernel_plain(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                  bool accumulate) {
  __m512 acc0[MR], acc1[MR];
  _Pragma("GCC unroll 14") for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
  OCTET_KLOOP(kc)
  _Pragma("GCC unroll 14") for (int i = 0; i < MR; i++) {
    float* cr = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_loadu_ps(cr));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, acc0[i]);
    _mm512_storeu_ps(cr + 16, acc1[i]);
  }
}
#elif OCTET_ISA_AVX2
// One interval (or, unscaled, the whole chunk) of kc steps into 12 ymm accumulators.
#define OCTET_KLOOP(KLEN)                                                     \
  for (int64_t k = 0; k < (KLEN); k++, a += MR, b += NR) {                   \
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);         \
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                   \
      const __m256 av = _mm256_broadcast_ss(a + i);                          \
      acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);                            \
      acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);                            \
    }                                                                        \
  }

void kernel_scaled(int64_t kc, int64_t P, const float* __restrict a, const float* __restrict b,
                   const float* __restrict sa, const float* __restrict sb, float* __restrict c, int64_t ldc, bool first) {
  for (int64_t k0 = 0; k0 < kc; k0 += P, sa += MR, sb += NR, first = false) {
    __m256 acc0[MR], acc1[MR];
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
    OCTET_KLOOP(P)
    const __m256 s0 = _mm256_load_ps(sb), s1 = _mm256_load_ps(sb + 8);
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
      const __m256 si = _mm256_broadcast_ss(sa + i);
      float* cr = c + i * ldc;
      // acc = f32(acc + f32(partial * f32(sa * sb))), as the AVX-512 kernel
      const __m256 c0 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(cr);
      const __m256 c1 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(cr + 8);
      _mm256_storeu_ps(cr, _mm256_add_ps(c0, _mm256_mul_ps(acc0[i], _mm256_mul_ps(si, s0))));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(c1, _mm256_mul_ps(acc1[i], _mm256_mul_ps(si, s1))));
    }
  }
}

template <bool kExactProducts>
void kernel_plain(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                  bool accumulate) {
  __m256 acc0[MR], acc1[MR];
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
  OCTET_KLOOP(kc)
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
    float* cr = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm256_add_ps(acc0[i], _mm256_loadu_ps(cr));
      acc1[i] = _mm256_add_ps(acc1[i], _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, acc0[i]);
    _mm256_storeu_ps(cr + 8, acc1[i]);
  }
}
#else
// Portable: the compiler vectorizes the j loops for whatever ISA it targets. Where every product is exact in
// fp32 (FP8 and BF16 operands: at most 8 x 8 significant bits) a multiply and an add give the fused
// multiply-add's bits, and vectorize without FMA hardware; fp32 products need the fused operation (a libm
// call on baseline x86-64, which glibc runs on the FMA unit when the CPU has one).
inline float mul_add_exact(float a, float b, float c) { return c + a * b; }

void kernel_scaled(int64_t kc, int64_t P, const float* __restrict a, const float* __restrict b,
                   const float* __restrict sa, const float* __restrict sb, float* __restrict c, int64_t ldc, bool first) {
  for (int64_t k0 = 0; k0 < kc; k0 += P, sa += MR, sb += NR, first = false) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < P; k++, a += MR, b += NR)
      for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = mul_add_exact(a[i], b[j], acc[i][j]);
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) c[i * ldc + j] = (first ? 0.0f : c[i * ldc + j]) + acc[i][j] * (sa[i] * sb[j]);
  }
}
template <bool kExactProducts>
void kernel_plain(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                  bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++)
        acc[i][j] = kExactProducts ? mul_add_exact(a[i], b[j], acc[i][j]) : std::fma(a[i], b[j], acc[i][j]);
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}
#endif

// ---- packing ----------------------------------------------------------------------------------------
// dst[k * R + r] = decode(src[r * K + k]) for the rows present; zeros pad rows and k in [K, Kp).
template <int R, class Src, class Dec>
void pack_panel(float* __restrict dst, const Src* __restrict src, int64_t rows_valid, int64_t K, int64_t Kp, Dec dec) {
  constexpr int64_t KB = 64;
  for (int64_t k0 = 0; k0 < Kp; k0 += KB) {
    const int64_t k1 = std::min(Kp, k0 + KB), kv = std::min(K, k1);
    for (int64_t r = 0; r < R; r++) {
      float* d = dst + r;
      if (r < rows_valid) {
        const Src* s = src + r * K;
        int64_t k = k0;
        for (; k < kv; k++) d[k * R] = dec(s[k]);
        for (; k < k1; k++) d[k * R] = 0.0f;
      } else {
        for (int64_t k = k0; k < k1; k++) d[k * R] = 0.0f;
      }
    }
  }
}

// Packing buffers are reused across calls (no page faults on every call); a call that finds the workspace
// in use by another thread, or needs more than kMaxCached floats, allocates its own.
constexpr size_t kMaxCached = size_t(1) << 27;  // 512 MiB
struct Workspace {
  std::mutex m;
  Buf<float> buf;
  size_t cap = 0;
};
Workspace& workspace() { static Workspace* w = new Workspace; return *w; }

class Scratch {
 public:
  explicit Scratch(size_t n) {
    Workspace& w = workspace();
    if (n <= kMaxCached && w.m.try_lock()) {
      locked_ = true;
      if (w.cap < n) { w.buf.reset(); w.buf = alloc_aligned<float>(n); w.cap = n; }
      ptr_ = w.buf.get();
    } else {
      own_ = alloc_aligned<float>(n);
      ptr_ = own_.get();
    }
  }
  ~Scratch() { if (locked_) workspace().m.unlock(); }
  float* get() const { return ptr_; }
 private:
  bool locked_ = false;
  Buf<float> own_;
  float* ptr_ = nullptr;
};

inline size_t round16(int64_t n) { return (size_t)((n + 15) / 16 * 16); }

struct Plan {
  int64_t M, N, K, Kp, P, KC;  // P = 0: unscaled
};

// Runs the blocked loops over packed panels; ap/bp: [panels][Kp][MR|NR]; sap/sbp: [panels][T][MR|NR].
template <bool kExactProducts>
void compute(const Plan& p, const float* ap, const float* bp, const float* sap, const float* sbp, float* c) {
  const int64_t mp = (p.M + MR - 1) / MR, np = (p.N + NR - 1) / NR;
  const int64_t T = p.P ? p.Kp / p.P : 0;
  // Task blocks: MCP panels of A (168 rows, kept in L2) x NCP panels of B (256 columns).
  const int64_t MCP = 168 / MR, NCP = 256 / NR;
  const int64_t mb = (mp + MCP - 1) / MCP, nb = (np + NCP - 1) / NCP;
  auto task = [&](int t) {
    ExactFpGuard guard;
    const int64_t bi = t % mb, bj = t / mb;
    const int64_t i0 = bi * MCP, i1 = std::min(mp, i0 + MCP), j0 = bj * NCP, j1 = std::min(np, j0 + NCP);
    alignas(64) float tmp[MR * NR];
    for (int64_t pc = 0; pc < p.Kp; pc += p.KC) {
      const int64_t kc = std::min(p.KC, p.Kp - pc);
      for (int64_t j = j0; j < j1; j++) {
        const float* b = bp + (j * p.Kp + pc) * NR;
        const int64_t col = j * NR, nr = std::min<int64_t>(NR, p.N - col);
        for (int64_t i = i0; i < i1; i++) {
          const float* a = ap + (i * p.Kp + pc) * MR;
          const int64_t row = i * MR, mr = std::min<int64_t>(MR, p.M - row);
          float* cc = c + row * p.N + col;
          const bool full = mr == MR && nr == NR;
          float* dst = full ? cc : tmp;
          const int64_t ldd = full ? p.N : NR;
          if (!full) {
            std::fill(tmp, tmp + MR * NR, 0.0f);
            for (int64_t r = 0; r < mr; r++) std::copy(cc + r * p.N, cc + r * p.N + nr, tmp + r * NR);
          }
          if (p.P) {
            const int64_t t0 = pc / p.P;
            kernel_scaled(kc, p.P, a, b, sap + (i * T + t0) * MR, sbp + (j * T + t0) * NR, dst, ldd, pc == 0);
          } else {
            kernel_plain<kExactProducts>(kc, a, b, dst, ldd, pc > 0);
          }
          if (!full)
            for (int64_t r = 0; r < mr; r++) std::copy(tmp + r * NR, tmp + r * NR + nr, cc + r * p.N);
        }
      }
    }
  };
  pool().run((int)(mb * nb), task);
}

template <class SrcA, class DecA, class SrcB, class DecB>
void pack_all(const Plan& p, const SrcA* a, DecA da, const SrcB* b, DecB db, float* ap, float* bp) {
  const int64_t mp = (p.M + MR - 1) / MR, np = (p.N + NR - 1) / NR;
  pool().run((int)(mp + np), [&](int t) {
    if (t < mp) {
      pack_panel<MR>(ap + t * p.Kp * MR, a + t * MR * p.K, std::min<int64_t>(MR, p.M - t * MR), p.K, p.Kp, da);
    } else {
      const int64_t j = t - mp;
      pack_panel<NR>(bp + j * p.Kp * NR, b + j * NR * p.K, std::min<int64_t>(NR, p.N - j * NR), p.K, p.Kp, db);
    }
  });
}

template <bool kExactProducts, class SrcA, class DecA, class SrcB, class DecB>
void plain_gemm(const SrcA* a, DecA da, const SrcB* b, DecB db, int64_t M, int64_t N, int64_t K, float* c) {
  Plan p{M, N, K, K, 0, 256};
  const int64_t mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  const size_t na = round16(mp * K * MR), nb = round16(np * K * NR);
  Scratch ws(na + nb);
  float* ap = ws.get();
  float* bp = ap + na;
  pack_all(p, a, da, b, db, ap, bp);
  compute<kExactProducts>(p, ap, bp, nullptr, nullptr, c);
}

}  // namespace

void scaled_matmul(const uint8_t* a, const float* a_scales, int64_t M, int64_t K, int64_t abr, int64_t abc, int afmt,
                   const uint8_t* b, const float* b_scales, int64_t N, int64_t bbr, int64_t bbc, int bfmt,
                   int64_t P, float* c) {
  ExactFpGuard guard;
  Plan p;
  p.M = M; p.N = N; p.K = K; p.P = P;
  p.Kp = (K + P - 1) / P * P;
  p.KC = P >= 256 ? P : P * (256 / P);
  const int64_t T = p.Kp / P;
  const int64_t mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  const size_t na = round16(mp * p.Kp * MR), nb = round16(np * p.Kp * NR), nsa = round16(mp * T * MR), nsb = round16(np * T * NR);
  Scratch ws(na + nb + nsa + nsb);  // every part a multiple of 16 floats: 64-byte aligned
  float* const ap = ws.get();
  float* const bp = ap + na;
  float* const sap = bp + nb;
  float* const sbp = sap + nsa;
  const float* lut_a = decode_table(afmt);
  const float* lut_b = decode_table(bfmt);
  pack_all(p, a, [lut_a](uint8_t v) { return lut_a[v]; }, b, [lut_b](uint8_t v) { return lut_b[v]; }, ap, bp);
  const int64_t agc = (K + abc - 1) / abc, bgc = (K + bbc - 1) / bbc;
  for (int64_t i = 0; i < mp; i++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t r = 0; r < MR; r++) {
        const int64_t row = i * MR + r;
        sap[(i * T + t) * MR + r] = row < M ? a_scales[(row / abr) * agc + (t * P) / abc] : 0.0f;
      }
  for (int64_t j = 0; j < np; j++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t r = 0; r < NR; r++) {
        const int64_t col = j * NR + r;
        sbp[(j * T + t) * NR + r] = col < N ? b_scales[(col / bbr) * bgc + (t * P) / bbc] : 0.0f;
      }
  compute<true>(p, ap, bp, sap, sbp, c);
}

void matmul_f32(const float* a, const float* b, int64_t M, int64_t N, int64_t K, float* c) {
  ExactFpGuard guard;
  auto id = [](float v) { return v; };
  plain_gemm<false>(a, id, b, id, M, N, K, c);
}

void matmul_bf16(const uint16_t* a, const uint16_t* b, int64_t M, int64_t N, int64_t K, float* c) {
  ExactFpGuard guard;
  auto widen = [](uint16_t v) { return float_of((uint32_t)v << 16); };
  plain_gemm<true>(a, widen, b, widen, M, N, K, c);
}

}  // namespace OCTET_ISA
}  // namespace octet

OCTET_ISA_END
