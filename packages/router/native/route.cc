// DeepSeek-V3's gate (sigmoid affinities, bias-corrected group-limited top-K), bit for bit the TypeScript
// routeTokens of src/route.ts, which stays the readable specification (read its header comment first).
//
// Exactness, step by step:
// - sigmoid: the algorithm of src/sigmoid.ts, operation for operation in float64 (same range reduction
//   with Math.round's ties-toward-+inf, same split ln2/32, same degree-5 Horner polynomial, same table
//   2^(j/32) installed from JavaScript, 2^(k>>5) applied exactly (scalef, or a multiplication by the power
//   of two built from its exponent bits), 1/(1+e) by an IEEE division, one rounding to float32). Built with
//   -ffp-contract=off and without -ffast-math, so no operation is fused or reassociated: the results are the
//   TypeScript ones by construction.
// - choice = f32(s + bias), each group's top-2 sum, the + 1e-20 (in float64, then rounded, as
//   Math.fround(sum + 1e-20) does), the division and the scaling: float32 operations on float32 operands,
//   which equal JavaScript's float64 operation followed by Math.fround (double rounding is innocuous for
//   +, -, *, / of float32 operands).
// - selection: lowest index first on ties everywhere; the vector compare only pre-filters candidates
//   against the current K-th best, the insertion itself is the scalar loop of route.ts, in index order.
//
// Compiled once per instruction set (binding.gyp defines OCTET_ISA; see @octet/native-common's
// octet/native/isa.h): AVX-512 (16 lanes of float32, 8 of float64), AVX2 (8 and 4) and scalar C++, each
// doing the scalar code's operations lane by lane.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>
#include "common.h"

OCTET_ISA_BEGIN

namespace octet_router {
namespace OCTET_ISA {
namespace {

#if OCTET_ISA_AVX512
#define OCTET_ROUTER_AVX512 1
const double* const g_frac = g_fraction_powers;

// 8 lanes of sigmoidF32 before saturation: x = -z (exactly widened from float32), z already clamped to
// [-110, 30] (so the table index is always in range).
inline __m256 sigmoid8_core(__m512d x) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d v = _mm512_mul_pd(x, _mm512_set1_pd(kInvStep));
  const __m512d c = _mm512_roundscale_pd(v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
  const __mmask8 down = _mm512_cmp_pd_mask(_mm512_sub_pd(c, _mm512_set1_pd(0.5)), v, _CMP_GT_OQ);
  const __m512d k = _mm512_mask_sub_pd(c, down, c, one);
  const __m512d r = _mm512_sub_pd(_mm512_sub_pd(x, _mm512_mul_pd(k, _mm512_set1_pd(kStepHi))),
                                  _mm512_mul_pd(k, _mm512_set1_pd(kStepLo)));
  __m512d p = _mm512_add_pd(_mm512_set1_pd(kC24), _mm512_mul_pd(r, _mm512_set1_pd(kC120)));
  p = _mm512_add_pd(_mm512_set1_pd(kC6), _mm512_mul_pd(r, p));
  p = _mm512_add_pd(_mm512_set1_pd(0.5), _mm512_mul_pd(r, p));
  p = _mm512_add_pd(one, _mm512_mul_pd(r, p));
  p = _mm512_add_pd(one, _mm512_mul_pd(r, p));
  const __m256i ki = _mm512_cvtpd_epi32(k);  // exact: k is an integer in [-1385, 5079]
  const __m512d octave = _mm512_cvtepi32_pd(_mm256_srai_epi32(ki, 5));
  const __m512i j = _mm512_cvtepu32_epi64(_mm256_and_si256(ki, _mm256_set1_epi32(31)));
  const __m512d f_lo = _mm512_permutex2var_pd(_mm512_load_pd(g_frac), j, _mm512_load_pd(g_frac + 8));
  const __m512d f_hi = _mm512_permutex2var_pd(_mm512_load_pd(g_frac + 16), j, _mm512_load_pd(g_frac + 24));
  const __m512d f = _mm512_mask_blend_pd(_mm512_test_epi64_mask(j, _mm512_set1_epi64(16)), f_lo, f_hi);
  // OCTAVE_POWERS[k>>5] * FRACTION_POWERS[k&31] is exact (a power of two in range), as is scalef.
  const __m512d e = _mm512_mul_pd(_mm512_scalef_pd(f, octave), p);
  // (An rcp14 + Newton reciprocal with a rounding-boundary check was tried: slower on this machine, the
  // divider runs in parallel with the other ~40 operations per vector.)
  return _mm512_cvtpd_ps(_mm512_div_pd(one, _mm512_add_pd(one, e)));
}

// 16 lanes of sigmoidF32. The saturation tests and the clamp are done on the float32 values (the same
// comparisons as on their exact float64 widening); NaN lanes give garbage (the caller reports them).
inline __m512 sigmoid16(__m512 zf) {
  const __mmask16 high = _mm512_cmp_ps_mask(zf, _mm512_set1_ps((float)kSaturateHigh), _CMP_GT_OQ);
  const __mmask16 low = _mm512_cmp_ps_mask(zf, _mm512_set1_ps((float)kSaturateLow), _CMP_LT_OQ);
  // min returns its second operand for NaN, so NaN lanes become 30
  const __m512 zc = _mm512_max_ps(_mm512_min_ps(zf, _mm512_set1_ps((float)kSaturateHigh)), _mm512_set1_ps((float)kSaturateLow));
  const __m512 x = _mm512_xor_ps(zc, _mm512_set1_ps(-0.0f));
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
  const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
  __m512 s = _mm512_insertf32x8(_mm512_castps256_ps512(sigmoid8_core(lo)), sigmoid8_core(hi), 1);
  s = _mm512_mask_mov_ps(s, high, _mm512_set1_ps(1.f));
  return _mm512_mask_mov_ps(s, low, _mm512_setzero_ps());
}

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }
#elif OCTET_ISA_AVX2
#define OCTET_ROUTER_AVX2 1

// 4 lanes of sigmoidF32 before saturation: x = -z (exactly widened from float32), z already clamped to
// [-110, 30] (so the table index is always in range). The scalar sigmoid_f32's operations, lane by lane.
inline __m128 sigmoid4_core(__m256d x) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d v = _mm256_mul_pd(x, _mm256_set1_pd(kInvStep));
  const __m256d c = _mm256_round_pd(v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
  const __m256d down = _mm256_cmp_pd(_mm256_sub_pd(c, _mm256_set1_pd(0.5)), v, _CMP_GT_OQ);
  const __m256d k = _mm256_sub_pd(c, _mm256_and_pd(down, one));
  const __m256d r = _mm256_sub_pd(_mm256_sub_pd(x, _mm256_mul_pd(k, _mm256_set1_pd(kStepHi))),
                                  _mm256_mul_pd(k, _mm256_set1_pd(kStepLo)));
  __m256d p = _mm256_add_pd(_mm256_set1_pd(kC24), _mm256_mul_pd(r, _mm256_set1_pd(kC120)));
  p = _mm256_add_pd(_mm256_set1_pd(kC6), _mm256_mul_pd(r, p));
  p = _mm256_add_pd(_mm256_set1_pd(0.5), _mm256_mul_pd(r, p));
  p = _mm256_add_pd(one, _mm256_mul_pd(r, p));
  p = _mm256_add_pd(one, _mm256_mul_pd(r, p));
  const __m128i ki = _mm256_cvtpd_epi32(k);  // exact: k is an integer in [-1385, 5079]
  const __m256d f = _mm256_i32gather_pd(g_fraction_powers, _mm_and_si128(ki, _mm_set1_epi32(31)), 8);
  // 2^(k>>5) from its exponent bits (k>>5 in [-44, 158]): f * 2^(k>>5) is exact, as ldexp is
  const __m128i biased = _mm_add_epi32(_mm_srai_epi32(ki, 5), _mm_set1_epi32(1023));
  const __m256d octave = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_cvtepi32_epi64(biased), 52));
  const __m256d e = _mm256_mul_pd(_mm256_mul_pd(f, octave), p);
  return _mm256_cvtpd_ps(_mm256_div_pd(one, _mm256_add_pd(one, e)));
}

// 8 lanes of sigmoidF32 (NaN lanes give garbage: the caller reports them first).
inline __m256 sigmoid8(__m256 zf) {
  const __m256 high = _mm256_cmp_ps(zf, _mm256_set1_ps((float)kSaturateHigh), _CMP_GT_OQ);
  const __m256 low = _mm256_cmp_ps(zf, _mm256_set1_ps((float)kSaturateLow), _CMP_LT_OQ);
  const __m256 zc = _mm256_max_ps(_mm256_min_ps(zf, _mm256_set1_ps((float)kSaturateHigh)), _mm256_set1_ps((float)kSaturateLow));
  const __m256 x = _mm256_xor_ps(zc, _mm256_set1_ps(-0.0f));
  const __m128 lo = sigmoid4_core(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
  const __m128 hi = sigmoid4_core(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
  const __m256 s = _mm256_blendv_ps(_mm256_set_m128(hi, lo), _mm256_set1_ps(1.f), high);
  return _mm256_andnot_ps(low, s);
}

// Top-2 of each lane's values so far, merged across the 8 lanes at the end (max and min are exact, so any
// merge order gives the scalar loop's first and second).
struct Top2x8 {
  __m256 hi, lo;
  // (A user-provided constructor: an implicit one would not be compiled for the region's target.)
  Top2x8() : hi(_mm256_set1_ps(-std::numeric_limits<float>::infinity())), lo(hi) {}
  void add(__m256 v) {
    lo = _mm256_max_ps(lo, _mm256_min_ps(hi, v));
    hi = _mm256_max_ps(hi, v);
  }
  void merge(__m256 h2, __m256 l2) {
    lo = _mm256_max_ps(_mm256_max_ps(lo, l2), _mm256_min_ps(hi, h2));
    hi = _mm256_max_ps(hi, h2);
  }
  void reduce(float* first, float* second) {
    merge(_mm256_permute2f128_ps(hi, hi, 1), _mm256_permute2f128_ps(lo, lo, 1));
    merge(_mm256_permute_ps(hi, _MM_SHUFFLE(1, 0, 3, 2)), _mm256_permute_ps(lo, _MM_SHUFFLE(1, 0, 3, 2)));
    merge(_mm256_permute_ps(hi, _MM_SHUFFLE(2, 3, 0, 1)), _mm256_permute_ps(lo, _MM_SHUFFLE(2, 3, 0, 1)));
    *first = _mm256_cvtss_f32(hi);
    *second = _mm256_cvtss_f32(lo);
  }
};
#endif

struct Scratch {
  std::vector<float> choice, srow, group_score, group_second, best_value;
  std::vector<int32_t> best_index;
  std::vector<uint8_t> eligible;
  void size(const RouteShape& s) {
    const size_t padded = (size_t)((s.experts + 15) / 16 * 16);
    if (choice.size() < padded) { choice.assign(padded, 0.f); srow.assign(padded, 0.f); }
    if (group_score.size() < (size_t)s.n_group) { group_score.assign(s.n_group, 0.f); group_second.assign(s.n_group, 0.f); eligible.assign(s.n_group, 0); }
    if (best_value.size() < (size_t)s.top_k) { best_value.assign(s.top_k, 0.f); best_index.assign(s.top_k, 0); }
  }
};

// Top-2 of a group's biased scores (HF: topk(2).values; their float32 sum is the group score).
inline void group_top2(const float* c, int64_t n, float* first_out, float* second_out) {
#ifdef OCTET_ROUTER_AVX512
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 hi = ninf, lo = ninf;
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_mask_loadu_ps(ninf, tail_mask(n - i), c + i);
    lo = _mm512_max_ps(lo, _mm512_min_ps(hi, v));
    hi = _mm512_max_ps(hi, v);
  }
  auto merge = [&](__m512 h2, __m512 l2) {
    lo = _mm512_max_ps(_mm512_max_ps(lo, l2), _mm512_min_ps(hi, h2));
    hi = _mm512_max_ps(hi, h2);
  };
  merge(_mm512_shuffle_f32x4(hi, hi, _MM_SHUFFLE(1, 0, 3, 2)), _mm512_shuffle_f32x4(lo, lo, _MM_SHUFFLE(1, 0, 3, 2)));
  merge(_mm512_shuffle_f32x4(hi, hi, _MM_SHUFFLE(2, 3, 0, 1)), _mm512_shuffle_f32x4(lo, lo, _MM_SHUFFLE(2, 3, 0, 1)));
  merge(_mm512_permute_ps(hi, _MM_SHUFFLE(1, 0, 3, 2)), _mm512_permute_ps(lo, _MM_SHUFFLE(1, 0, 3, 2)));
  merge(_mm512_permute_ps(hi, _MM_SHUFFLE(2, 3, 0, 1)), _mm512_permute_ps(lo, _MM_SHUFFLE(2, 3, 0, 1)));
  const float first = _mm512_cvtss_f32(hi), second = _mm512_cvtss_f32(lo);
#else
  float first = -std::numeric_limits<float>::infinity(), second = first;
  int64_t i = 0;
#ifdef OCTET_ROUTER_AVX2
  if (n >= 8) {
    Top2x8 top;
    for (; i + 8 <= n; i += 8) top.add(_mm256_loadu_ps(c + i));
    top.reduce(&first, &second);
  }
#endif
  for (; i < n; i++) {
    const float v = c[i];
    if (v > first) { second = first; first = v; } else if (v > second) { second = v; }
  }
#endif
  *first_out = first;
  *second_out = second;
}

#ifdef OCTET_ROUTER_AVX512
struct Top2 { __m512 hi, lo; };
// Top-2 of the union of two per-lane top-2 lists.
inline Top2 merge2(Top2 a, Top2 b) {
  return {_mm512_max_ps(a.hi, b.hi), _mm512_max_ps(_mm512_max_ps(a.lo, b.lo), _mm512_min_ps(a.hi, b.hi))};
}
// All groups' top-2 at once (groups of a multiple of 16 experts, at most 8 groups, missing ones -inf): the
// per-lane lists are reduced in a tree that packs two groups per vector at each level, 8 merges in all
// instead of 4 cross-lane merges per group. Writes each group's score (first + second) and second.
inline void groups_top2_tree(const float* choice, int64_t G, int64_t gs, float* gscore, float* gsecond) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  Top2 t[8];
  for (int64_t g = 0; g < 8; g++) {
    t[g] = {ninf, ninf};
    if (g >= G) continue;
    const float* c = choice + g * gs;
    for (int64_t i = 0; i < gs; i += 16) {
      const __m512 v = _mm512_loadu_ps(c + i);
      t[g].lo = _mm512_max_ps(t[g].lo, _mm512_min_ps(t[g].hi, v));
      t[g].hi = _mm512_max_ps(t[g].hi, v);
    }
  }
  // level 1: (g, g+1) -> 8 lanes each: lanes 0-7 group g, 8-15 group g+1
  Top2 l1[4];
  for (int i = 0; i < 4; i++) {
    const Top2 a = t[2 * i], b = t[2 * i + 1];
    l1[i] = merge2({_mm512_shuffle_f32x4(a.hi, b.hi, 0x44), _mm512_shuffle_f32x4(a.lo, b.lo, 0x44)},
                   {_mm512_shuffle_f32x4(a.hi, b.hi, 0xEE), _mm512_shuffle_f32x4(a.lo, b.lo, 0xEE)});
  }
  // level 2: 128-bit quarter q holds group 4i+q (4 lanes)
  Top2 l2[2];
  for (int i = 0; i < 2; i++) {
    const Top2 a = l1[2 * i], b = l1[2 * i + 1];
    l2[i] = merge2({_mm512_shuffle_f32x4(a.hi, b.hi, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(a.lo, b.lo, _MM_SHUFFLE(2, 0, 2, 0))},
                   {_mm512_shuffle_f32x4(a.hi, b.hi, _MM_SHUFFLE(3, 1, 3, 1)), _mm512_shuffle_f32x4(a.lo, b.lo, _MM_SHUFFLE(3, 1, 3, 1))});
  }
  // level 3: quarter q, lanes 0-1 group q, lanes 2-3 group q+4
  const Top2 a = l2[0], b = l2[1];
  Top2 l3 = merge2({_mm512_shuffle_ps(a.hi, b.hi, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(a.lo, b.lo, _MM_SHUFFLE(1, 0, 1, 0))},
                   {_mm512_shuffle_ps(a.hi, b.hi, _MM_SHUFFLE(3, 2, 3, 2)), _mm512_shuffle_ps(a.lo, b.lo, _MM_SHUFFLE(3, 2, 3, 2))});
  // level 4: lane 4q holds group q, lane 4q+2 group q+4
  l3 = merge2(l3, {_mm512_permute_ps(l3.hi, _MM_SHUFFLE(2, 3, 0, 1)), _mm512_permute_ps(l3.lo, _MM_SHUFFLE(2, 3, 0, 1))});
  alignas(64) float hi[16], lo[16];
  _mm512_store_ps(hi, l3.hi);
  _mm512_store_ps(lo, l3.lo);
  for (int64_t g = 0; g < G; g++) {
    const int lane = (int)(g % 4) * 4 + (int)(g / 4) * 2;
    gsecond[g] = lo[lane];
    gscore[g] = hi[lane] + lo[lane];
  }
}
#endif

// Inserts (c, e) into the sorted list of the top_k best (route.ts selectExperts' insertion).
inline void insert_best(float* bv, int32_t* bi, int64_t K, float c, int32_t e) {
  int64_t j = K - 1;
  while (j > 0 && bv[j - 1] < c) {
    bv[j] = bv[j - 1];
    bi[j] = bi[j - 1];
    j--;
  }
  bv[j] = c;
  bi[j] = e;
}

#ifdef OCTET_ROUTER_AVX512
// The sorted list of the K <= 16 best (value, index), best first, in one vector each: insert_best without
// branches. Lanes at and beyond K hold the overflow (still sorted), so "values below c" is a suffix.
struct TopList {
  __m512 value = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512i index = _mm512_set1_epi32(-1);
  const __m512i shift = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
  const __m512i last;
  float threshold = -std::numeric_limits<float>::infinity();  // the K-th best so far
  explicit TopList(int64_t K) : last(_mm512_set1_epi32((int)K - 1)) {}
  void insert(float c, int32_t e) {
    const __m512 cv = _mm512_set1_ps(c);
    const __mmask16 below = _mm512_cmp_ps_mask(value, cv, _CMP_LT_OQ);  // after every value >= c: ties keep the lower index first
    const __mmask16 at = below & (__mmask16)(-(int)below);
    value = _mm512_mask_mov_ps(value, below, _mm512_permutexvar_ps(shift, value));
    index = _mm512_mask_mov_epi32(index, below, _mm512_permutexvar_epi32(shift, index));
    value = _mm512_mask_mov_ps(value, at, cv);
    index = _mm512_mask_mov_epi32(index, at, _mm512_set1_epi32(e));
    threshold = _mm512_cvtss_f32(_mm512_permutexvar_ps(last, value));
  }
  void store(float* bv, int32_t* bi, int64_t K) const {
    alignas(64) float v[16];
    alignas(64) int32_t i[16];
    _mm512_store_ps(v, value);
    _mm512_store_si512(i, index);
    std::memcpy(bv, v, sizeof(float) * (size_t)K);
    std::memcpy(bi, i, sizeof(int32_t) * (size_t)K);
  }
};

// Candidates of one group in index order, pre-filtered by floor_value and the current K-th best.
inline void select_group_vector(const float* choice, int64_t start, int64_t end, float floor_value, TopList& top) {
  const __m512 floor_v = _mm512_set1_ps(floor_value);
  for (int64_t e = start; e < end; e += 16) {
    const __mmask16 m = tail_mask(end - e);
    const __m512 v = _mm512_maskz_loadu_ps(m, choice + e);
    unsigned bits = _mm512_mask_cmp_ps_mask(m, v, _mm512_max_ps(floor_v, _mm512_set1_ps(top.threshold)), _CMP_GE_OQ);
    while (bits) {
      const int i = __builtin_ctz(bits);
      bits &= bits - 1;
      const float c = choice[e + i];
      if (c > top.threshold) top.insert(c, (int32_t)(e + i));
    }
  }
}
#endif

int64_t route_range(const float* logits, const RouteShape& s, const float* bias, int32_t* indices, float* weights,
                    float* scores, int64_t t0, int64_t t1, Scratch& sc) {
  const int64_t E = s.experts, K = s.top_k, G = s.n_group, gs = E / G;
  const bool limits = G > 1 && s.topk_group < G;
  const float scaling = (float)s.routed_scaling_factor;
  const float ninf = -std::numeric_limits<float>::infinity();
  float* choice = sc.choice.data();
  float* gscore = sc.group_score.data();
  float* gsecond = sc.group_second.data();
  uint8_t* eligible = sc.eligible.data();
  float* bv = sc.best_value.data();
  int32_t* bi = sc.best_index.data();
  for (int64_t t = t0; t < t1; t++) {
    const float* z = logits + t * E;
    float* sr = scores ? scores + t * E : sc.srow.data();
    // 1. s = sigmoid(z), choice = f32(s + bias)
#ifdef OCTET_ROUTER_AVX512
    for (int64_t e = 0; e < E; e += 16) {
      const __mmask16 m = tail_mask(E - e);
      const __m512 zf = _mm512_maskz_loadu_ps(m, z + e);
      const __mmask16 nan = _mm512_mask_cmp_ps_mask(m, zf, zf, _CMP_UNORD_Q);
      if (nan) return t * E + e + __builtin_ctz((unsigned)nan);
      const __m512 sv = sigmoid16(zf);
      _mm512_mask_storeu_ps(sr + e, m, sv);
      _mm512_storeu_ps(choice + e, _mm512_add_ps(sv, _mm512_maskz_loadu_ps(m, bias + e)));
    }
#else
    int64_t e = 0;
#ifdef OCTET_ROUTER_AVX2
    for (; e + 8 <= E; e += 8) {
      const __m256 zf = _mm256_loadu_ps(z + e);
      const int nan = _mm256_movemask_ps(_mm256_cmp_ps(zf, zf, _CMP_UNORD_Q));
      if (nan) return t * E + e + __builtin_ctz((unsigned)nan);
      const __m256 sv = sigmoid8(zf);
      _mm256_storeu_ps(sr + e, sv);
      _mm256_storeu_ps(choice + e, _mm256_add_ps(sv, _mm256_loadu_ps(bias + e)));
    }
#endif
    for (; e < E; e++) {
      if (std::isnan(z[e])) return t * E + e;
      const float v = sigmoid_f32(z[e]);
      sr[e] = v;
      choice[e] = v + bias[e];
    }
#endif
    // 2. group scores and the topk_group best groups (ties: lower group index)
    if (limits) {
      // Only the sign of a zero sum can depend on which of equal values were taken, and the group scores
      // are only compared, so the group selection is route.ts's.
#ifdef OCTET_ROUTER_AVX512
      if (gs % 16 == 0 && G <= 8) {
        groups_top2_tree(choice, G, gs, gscore, gsecond);
      } else
#endif
      for (int64_t g = 0; g < G; g++) {
        float first;
        group_top2(choice + g * gs, gs, &first, &gsecond[g]);
        gscore[g] = first + gsecond[g];
      }
#ifdef OCTET_ROUTER_AVX512
      if (G <= 16) {
        // route.ts picks the best remaining group topkGroup times (larger score, then lower index; the
        // scores are never NaN). That is: g is eligible iff fewer than topkGroup groups come before it in
        // that total order. Branch-free rank count.
        const __mmask16 gm = tail_mask(G);
        const __m512 all = _mm512_maskz_loadu_ps(gm, gscore);
        for (int64_t g = 0; g < G; g++) {
          const __m512 b = _mm512_set1_ps(gscore[g]);
          const unsigned before = (unsigned)_mm512_mask_cmp_ps_mask(gm, all, b, _CMP_GT_OQ) |
                                  ((unsigned)_mm512_mask_cmp_ps_mask(gm, all, b, _CMP_EQ_OQ) & ((1u << g) - 1));
          eligible[g] = __builtin_popcount(before) < s.topk_group;
        }
      } else
#endif
      {
      std::memset(eligible, 0, (size_t)G);
      for (int64_t picked = 0; picked < s.topk_group; picked++) {
        int64_t best = -1;
        float best_score = ninf;
        for (int64_t g = 0; g < G; g++) {
          if (eligible[g] == 0 && (gscore[g] > best_score || best < 0)) {
            best = g;
            best_score = gscore[g];
          }
        }
        eligible[best] = 1;
      }
      }
    }
    // 3. top_k experts of the eligible groups, in index order (strict > keeps the lower index on ties).
    //    choice is always finite (s in [0, 1], bias finite), so -inf sentinels stand for "not filled yet".
    for (int64_t k = 0; k < K; k++) { bv[k] = ninf; bi[k] = -1; }
#ifdef OCTET_ROUTER_AVX512
    TopList top(K);
#endif
    // Pre-filter: the two best of each eligible group are actual candidates, so when there are at least K
    // of them, the smallest of those (the second bests' minimum) is <= the K-th best value, and every
    // candidate below it can be skipped. Candidates equal to it are kept (ties are decided by index), and
    // the insertion below sees the kept ones in index order, so it returns the same list as without the
    // filter (the top-K of a superset of the top-K is the top-K).
    float floor_value = ninf;
    if (limits && 2 * s.topk_group >= K) {
      floor_value = std::numeric_limits<float>::infinity();
      for (int64_t g = 0; g < G; g++)
        if (eligible[g] && gsecond[g] < floor_value) floor_value = gsecond[g];
    }
    for (int64_t g = 0; g < G; g++) {
      if (limits && eligible[g] == 0) continue;
      const int64_t start = g * gs, end = start + gs;
#ifdef OCTET_ROUTER_AVX512
      if (K <= 16) {
        select_group_vector(choice, start, end, floor_value, top);
        continue;
      }
      const __m512 floor_v = _mm512_set1_ps(floor_value);
      for (int64_t e = start; e < end; e += 16) {
        const __mmask16 m = tail_mask(end - e);
        const __m512 v = _mm512_maskz_loadu_ps(m, choice + e);
        unsigned bits = _mm512_mask_cmp_ps_mask(m, v, _mm512_max_ps(floor_v, _mm512_set1_ps(bv[K - 1])), _CMP_GE_OQ);
        while (bits) {
          const int i = __builtin_ctz(bits);
          bits &= bits - 1;
          const float c = choice[e + i];
          if (c > bv[K - 1]) insert_best(bv, bi, K, c, (int32_t)(e + i));
        }
      }
#else
      int64_t e = start;
#ifdef OCTET_ROUTER_AVX2
      // Candidates of 8 experts at a time pre-filtered against max(floor_value, the K-th best when the block
      // starts); the K-th best only grows, so the rest are rejected by the scalar test as well.
      const __m256 floor_v = _mm256_set1_ps(floor_value);
      for (; e + 8 <= end; e += 8) {
        const __m256 v = _mm256_loadu_ps(choice + e);
        unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_max_ps(floor_v, _mm256_set1_ps(bv[K - 1])), _CMP_GE_OQ));
        while (bits) {
          const int i = __builtin_ctz(bits);
          bits &= bits - 1;
          const float c = choice[e + i];
          if (c > bv[K - 1]) insert_best(bv, bi, K, c, (int32_t)(e + i));
        }
      }
#endif
      for (; e < end; e++) {
        const float c = choice[e];
        if (c >= floor_value && c > bv[K - 1]) insert_best(bv, bi, K, c, (int32_t)e);
      }
#endif
    }
#ifdef OCTET_ROUTER_AVX512
    if (K <= 16) top.store(bv, bi, K);
#endif
    // 4. weights (route.ts writeWeights)
    int32_t* oi = indices + t * K;
    float* ow = weights + t * K;
    float sum = 0.f;
    for (int64_t k = 0; k < K; k++) {
      oi[k] = bi[k];
      const float w = sr[bi[k]];
      ow[k] = w;
      sum = sum + w;
    }
    const float denominator = s.norm_topk_prob ? (float)((double)sum + 1e-20) : 1.f;
    for (int64_t k = 0; k < K; k++) {
      float w = ow[k];
      if (s.norm_topk_prob) w = w / denominator;
      ow[k] = w * scaling;
    }
  }
  return -1;
}

}  // namespace

int64_t route_sigmoid(const float* logits, const RouteShape& shape, const float* bias, int32_t* indices,
                      float* weights, float* scores) {
  const int64_t T = shape.tokens;
  Pool& p = pool();
  // Chunks of whole tokens, a few per thread (dynamic scheduling evens out a busy core); small batches inline.
  int64_t chunk = (T + (int64_t)p.threads() * 8 - 1) / ((int64_t)p.threads() * 8);
  if (chunk < 64) chunk = 64;
  const int tasks = (int)((T + chunk - 1) / chunk);
  std::vector<int64_t> first_nan((size_t)tasks, -1);
  p.run(tasks, [&](int task) {
    ExactFpGuard guard;
    thread_local Scratch sc;
    sc.size(shape);
    const int64_t t0 = task * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
    first_nan[(size_t)task] = route_range(logits, shape, bias, indices, weights, scores, t0, t1, sc);
  });
  for (int64_t f : first_nan)
    if (f >= 0) return f;  // tasks cover increasing token ranges, so the first reported is the smallest
  return -1;
}

#if OCTET_ISA_AVX512
#define OCTET_ROUTER_DESCRIPTION "avx512: 8 x f64 sigmoid, 16 x f32 choice, top-2 and selection"
#elif OCTET_ISA_AVX2
#define OCTET_ROUTER_DESCRIPTION "avx2: 4 x f64 sigmoid, 8 x f32 choice, top-2 and selection"
#else
#define OCTET_ROUTER_DESCRIPTION "scalar: portable C++, the same float64/float32 operations"
#endif
extern const Kernels kernels = {&route_sigmoid, OCTET_ROUTER_DESCRIPTION};

}  // namespace OCTET_ISA
}  // namespace octet_router

OCTET_ISA_END
