// Fine-grained FP8 quantization (DeepGEMM per_token_cast_to_fp8 / per_block_cast_to_fp8), bit-exact with
// packages/numerics/src/quantize.ts: every step in float32, PyTorch's non-saturating casts. Compiled once per
// instruction set (kernels.h): the AVX-512 and AVX2 loops do the scalar loops' operations lane by lane.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>
#include "kernels.h"

OCTET_ISA_BEGIN
#include "simd.h"

namespace octet {
namespace OCTET_ISA {

namespace {

const float kAmaxFloor = (float)1e-4;  // == Math.fround(1e-4): the double 1e-4 rounded to float

inline float fmax_of(int fmt) { return fmt == 0 ? 448.0f : 57344.0f; }

inline float scale_from_amax(float amax, float fmax, bool pow2) {
  float clamped = amax > kAmaxFloor ? amax : kAmaxFloor;
  float s = clamped / fmax;
  if (pow2) {
    uint32_t b = bits_of(s);
    if (b & 0x7FFFFFu) s = float_of((b & 0x7F800000u) + 0x800000u);
  }
  return s;
}

inline bool nonfinite(float v) { return (bits_of(v) & 0x7F800000u) == 0x7F800000u; }

// Per-column max |x| over rows [r0, r1) of columns [c0, c1); returns true if a non-finite value was seen.
bool column_amax(const float* x, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* colmax) {
  const int64_t w = c1 - c0;
  std::fill(colmax, colmax + w, 0.0f);
  bool bad = false;
#if OCTET_ISA_AVX512
  const __m512i expmask = _mm512_set1_epi32(0x7F800000);
  const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
  __mmask16 badm = 0;
  for (int64_t r = r0; r < r1; r++) {
    const float* row = x + r * cols + c0;
    for (int64_t c = 0; c < w; c += 16) {
      const __mmask16 m = w - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - c)) - 1);
      const __m512i v = _mm512_maskz_loadu_epi32(m, row + c);
      badm |= _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(v, expmask), expmask);
      const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(v, absmask));
      _mm512_mask_storeu_ps(colmax + c, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, colmax + c), a));
    }
  }
  bad = badm != 0;
#else
#if OCTET_ISA_AVX2
  const __m256i expmask = _mm256_set1_epi32(0x7F800000);
  const __m256i absmask = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i badv = _mm256_setzero_si256();
  const int64_t wv = w / 8 * 8;
  for (int64_t r = r0; r < r1; r++) {
    const float* row = x + r * cols + c0;
    for (int64_t c = 0; c < wv; c += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
      badv = _mm256_or_si256(badv, _mm256_cmpeq_epi32(_mm256_and_si256(v, expmask), expmask));
      const __m256 a = _mm256_castsi256_ps(_mm256_and_si256(v, absmask));
      _mm256_storeu_ps(colmax + c, _mm256_max_ps(_mm256_loadu_ps(colmax + c), a));
    }
  }
  bad = !_mm256_testz_si256(badv, badv);
#else
  const int64_t wv = 0;
#endif
  for (int64_t r = r0; r < r1; r++) {
    const float* row = x + r * cols + c0;
    for (int64_t c = wv; c < w; c++) {
      float a = std::fabs(row[c]);
      bad |= nonfinite(a);
      colmax[c] = a > colmax[c] ? a : colmax[c];
    }
  }
#endif
  return bad;
}

// codes of x[r, c0..c1) * inv[c - c0] for rows [r0, r1)
void encode_rows(const float* x, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const float* inv,
                 int fmt, uint8_t* data) {
  const int64_t w = c1 - c0;
  for (int64_t r = r0; r < r1; r++) {
    const float* row = x + r * cols + c0;
    uint8_t* out = data + r * cols + c0;
#if OCTET_ISA_AVX512
    for (int64_t c = 0; c < w; c += 16) {
      const __mmask16 m = w - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - c)) - 1);
      const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + c), _mm512_maskz_loadu_ps(m, inv + c));
      _mm512_mask_cvtepi32_storeu_epi8(out + c, m, encode_fp8_v(y, fmt));
    }
#else
    int64_t c = 0;
#if OCTET_ISA_AVX2
    for (; c + 8 <= w; c += 8)
      store_codes8(out + c, encode_fp8_v(_mm256_mul_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(inv + c)), fmt));
#endif
    if (fmt == 0)
      for (; c < w; c++) out[c] = encode_e4m3(row[c] * inv[c]);
    else
      for (; c < w; c++) out[c] = encode_e5m2(row[c] * inv[c]);
#endif
  }
}

int64_t first_nonfinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (nonfinite(x[i])) return i;
  return -1;
}

thread_local std::vector<float> tl_colmax, tl_inv;

}  // namespace

#if OCTET_ISA_AVX512
extern const char* const kDescription = "avx512: 16-lane quantizers, 14x32 fp32 GEMM microkernel";
#elif OCTET_ISA_AVX2
extern const char* const kDescription = "avx2: 8-lane quantizers, 6x16 fp32 GEMM microkernel";
#else
extern const char* const kDescription = "scalar: portable C++ (what the compiler vectorizes for baseline x86-64 or the host)";
#endif

int64_t quantize(const float* x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int fmt, bool pow2,
                 uint8_t* data, float* scales) {
  const int64_t grid_rows = (rows + br - 1) / br, grid_cols = (cols + bc - 1) / bc;
  const int64_t target = 32768;  // elements of one task's strip: stays in L2 between the two passes
  const int64_t brr = std::min(br, rows);
  int64_t strip_blocks = std::max<int64_t>(1, target / (brr * bc));
  strip_blocks = std::min(strip_blocks, grid_cols);
  const int64_t strip = strip_blocks * bc;
  const int64_t n_strips = (grid_cols + strip_blocks - 1) / strip_blocks;
  const int64_t group = std::max<int64_t>(1, target / (brr * std::min(strip, cols)));
  const int64_t n_groups = (grid_rows + group - 1) / group;
  const float fmax = fmax_of(fmt);
  std::atomic<bool> bad{false};
  const int64_t tasks = n_groups * n_strips;
  auto task = [&](int t) {
    ExactFpGuard guard;
    const int64_t g = t / n_strips, s = t % n_strips;
    const int64_t c0 = s * strip, c1 = std::min(cols, c0 + strip);
    const int64_t w = c1 - c0;
    if ((int64_t)tl_colmax.size() < w) { tl_colmax.resize(w); tl_inv.resize(w); }
    float* colmax = tl_colmax.data();
    float* inv = tl_inv.data();
    for (int64_t gr = g * group; gr < std::min(grid_rows, (g + 1) * group); gr++) {
      const int64_t r0 = gr * br, r1 = std::min(rows, r0 + br);
      if (column_amax(x, cols, r0, r1, c0, c1, colmax)) bad.store(true, std::memory_order_relaxed);
      for (int64_t b0 = 0; b0 < w; b0 += bc) {
        const int64_t b1 = std::min(w, b0 + bc);
        float amax = 0.0f;
        int64_t c = b0;
#if OCTET_ISA_AVX512
        if (b1 - b0 >= 16) {
          __m512 vm = _mm512_setzero_ps();
          for (; c + 16 <= b1; c += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(colmax + c));
          amax = _mm512_reduce_max_ps(vm);
        }
#endif
        for (; c < b1; c++) amax = colmax[c] > amax ? colmax[c] : amax;
        const float sc = scale_from_amax(amax, fmax, pow2);
        const float iv = 1.0f / sc;
        scales[gr * grid_cols + (c0 + b0) / bc] = sc;
        std::fill(inv + b0, inv + b1, iv);
      }
      encode_rows(x, cols, r0, r1, c0, c1, inv, fmt, data);
    }
  };
  if (rows * cols < 65536) {
    for (int64_t t = 0; t < tasks; t++) task((int)t);
  } else {
    pool().run((int)tasks, task);
  }
  return bad.load() ? first_nonfinite(x, rows * cols) : -1;
}

int64_t quantize_tiled_both(const float* x, int64_t rows, int64_t cols, int fmt, bool pow2, uint8_t* row_data,
                            float* row_scales, uint8_t* col_data, float* col_scales) {
  const int64_t T = 128;
  const int64_t row_grid_cols = (cols + T - 1) / T;  // [1,128]: grid [rows, ceil(cols/128)]
  const int64_t col_grid_rows = (rows + T - 1) / T;  // [128,1]: grid [ceil(rows/128), cols]
  const int64_t strip = 2 * T;
  const int64_t n_strips = (cols + strip - 1) / strip;
  const int64_t tasks = col_grid_rows * n_strips;
  const float fmax = fmax_of(fmt);
  std::atomic<bool> bad{false};
  auto task = [&](int t) {
    ExactFpGuard guard;
    const int64_t rb = t / n_strips, s = t % n_strips;
    const int64_t r0 = rb * T, r1 = std::min(rows, r0 + T);
    const int64_t c0 = s * strip, c1 = std::min(cols, c0 + strip);
    const int64_t w = c1 - c0;
    alignas(64) float colmax[2 * 128];
    alignas(64) float colinv[2 * 128];
    alignas(64) float rowinv[2 * 128];
    bool seen_bad = false;
    std::fill(colmax, colmax + w, 0.0f);
    // pass 1: per-row amax of each 128-column tile (finished at once: the row's tile scale) and per-column amax
    for (int64_t r = r0; r < r1; r++) {
      const float* row = x + r * cols + c0;
      for (int64_t b0 = 0; b0 < w; b0 += T) {
        const int64_t b1 = std::min(w, b0 + T);
        float amax = 0.0f;
#if OCTET_ISA_AVX512
        const __m512i expmask = _mm512_set1_epi32(0x7F800000);
        const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
        __m512 vmax = _mm512_setzero_ps();
        __mmask16 badm = 0;
        for (int64_t c = b0; c < b1; c += 16) {
          const __mmask16 m = b1 - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (b1 - c)) - 1);
          const __m512i v = _mm512_maskz_loadu_epi32(m, row + c);
          badm |= _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(v, expmask), expmask);
          const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(v, absmask));
          vmax = _mm512_max_ps(vmax, a);
          _mm512_mask_storeu_ps(colmax + c, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, colmax + c), a));
        }
        amax = _mm512_reduce_max_ps(vmax);
        seen_bad |= badm != 0;
#else
        int64_t c = b0;
#if OCTET_ISA_AVX2
        // max is exact and the values are never -0 (|x|), so any order of the maxima gives the same amax
        const __m256i expmask = _mm256_set1_epi32(0x7F800000);
        const __m256i absmask = _mm256_set1_epi32(0x7FFFFFFF);
        __m256 vmax = _mm256_setzero_ps();
        __m256i badv = _mm256_setzero_si256();
        for (; c + 8 <= b1; c += 8) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
          badv = _mm256_or_si256(badv, _mm256_cmpeq_epi32(_mm256_and_si256(v, expmask), expmask));
          const __m256 a = _mm256_castsi256_ps(_mm256_and_si256(v, absmask));
          vmax = _mm256_max_ps(vmax, a);
          _mm256_storeu_ps(colmax + c, _mm256_max_ps(_mm256_loadu_ps(colmax + c), a));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        amax = _mm_cvtss_f32(m4);
        seen_bad |= !_mm256_testz_si256(badv, badv);
#endif
        for (; c < b1; c++) {
          float a = std::fabs(row[c]);
          seen_bad |= nonfinite(a);
          amax = a > amax ? a : amax;
          colmax[c] = a > colmax[c] ? a : colmax[c];
        }
#endif
        const float sc = scale_from_amax(amax, fmax, pow2);
        row_scales[r * row_grid_cols + (c0 + b0) / T] = sc;
      }
    }
    for (int64_t c = 0; c < w; c++) {
      const float sc = scale_from_amax(colmax[c], fmax, pow2);
      col_scales[rb * cols + c0 + c] = sc;
      colinv[c] = 1.0f / sc;
    }
    // pass 2: both encodings from the strip, still in L2
    for (int64_t r = r0; r < r1; r++) {
      for (int64_t b0 = 0; b0 < w; b0 += T) {
        const int64_t b1 = std::min(w, b0 + T);
        std::fill(rowinv + b0, rowinv + b1, 1.0f / row_scales[r * row_grid_cols + (c0 + b0) / T]);
      }
      encode_rows(x, cols, r, r + 1, c0, c1, rowinv, fmt, row_data);
      encode_rows(x, cols, r, r + 1, c0, c1, colinv, fmt, col_data);
    }
    if (seen_bad) bad.store(true, std::memory_order_relaxed);
  };
  if (rows * cols < 65536) {
    for (int64_t t = 0; t < tasks; t++) task((int)t);
  } else {
    pool().run((int)tasks, task);
  }
  return bad.load() ? first_nonfinite(x, rows * cols) : -1;
}

void encode_fp8_array(const float* x, int64_t n, int fmt, bool saturate, uint8_t* out) {
  const float mx = fmax_of(fmt);
  const int64_t chunk = 1 << 16;
  const int64_t tasks = (n + chunk - 1) / chunk;
  auto task = [&](int t) {
    ExactFpGuard guard;
    const int64_t i0 = t * chunk, i1 = std::min(n, i0 + chunk);
#if OCTET_ISA_AVX512
    const __m512 hi = _mm512_set1_ps(mx), lo = _mm512_set1_ps(-mx);
    for (int64_t i = i0; i < i1; i += 16) {
      const __mmask16 m = i1 - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (i1 - i)) - 1);
      __m512 v = _mm512_maskz_loadu_ps(m, x + i);
      if (saturate) {  // v > max ? max : v < -max ? -max : v  (NaN compares false: stays NaN)
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), hi);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), lo);
      }
      _mm512_mask_cvtepi32_storeu_epi8(out + i, m, encode_fp8_v(v, fmt));
    }
#else
    int64_t i = i0;
#if OCTET_ISA_AVX2
    const __m256 hi = _mm256_set1_ps(mx), lo = _mm256_set1_ps(-mx);
    for (; i + 8 <= i1; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      if (saturate) {  // v > max ? max : v < -max ? -max : v  (NaN compares false: stays NaN)
        v = _mm256_blendv_ps(v, hi, _mm256_cmp_ps(v, hi, _CMP_GT_OQ));
        v = _mm256_blendv_ps(v, lo, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));
      }
      store_codes8(out + i, encode_fp8_v(v, fmt));
    }
#endif
    for (; i < i1; i++) {
      float v = x[i];
      if (saturate) v = v > mx ? mx : v < -mx ? -mx : v;
      out[i] = encode_fp8(v, fmt);
    }
#endif
  };
  if (n < 65536) { for (int64_t t = 0; t < tasks; t++) task((int)t); } else pool().run((int)tasks, task);
}

void decode_fp8_array(const uint8_t* x, int64_t n, int fmt, float* out) {
  const float* lut = decode_table(fmt);
  const int64_t chunk = 1 << 16;
  const int64_t tasks = (n + chunk - 1) / chunk;
  auto task = [&](int t) {
    const int64_t i0 = t * chunk, i1 = std::min(n, i0 + chunk);
    for (int64_t i = i0; i < i1; i++) out[i] = lut[x[i]];
  };
  if (n < 65536) { for (int64_t t = 0; t < tasks; t++) task((int)t); } else pool().run((int)tasks, task);
}

void encode_bf16_array(const float* x, int64_t n, uint16_t* out) {
  const int64_t chunk = 1 << 16;
  const int64_t tasks = (n + chunk - 1) / chunk;
  auto task = [&](int t) {
    const int64_t i0 = t * chunk, i1 = std::min(n, i0 + chunk);
    for (int64_t i = i0; i < i1; i++) {
      const uint32_t b = bits_of(x[i]);
      const bool nan = (b & 0x7FFFFFFFu) > 0x7F800000u;
      out[i] = nan ? (uint16_t)0xFFFF : (uint16_t)((b + (((b >> 16) & 1) + 0x7FFFu)) >> 16);
    }
  };
  if (n < 65536) { for (int64_t t = 0; t < tasks; t++) task((int)t); } else pool().run((int)tasks, task);
}

}  // namespace OCTET_ISA
}  // namespace octet

OCTET_ISA_END
