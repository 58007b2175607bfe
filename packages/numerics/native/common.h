// Shared helpers of the numerics kernels: aligned buffers, FP8 encode/decode, the kernels' declarations.
// The thread pool and FP guard come from @octet/native-common (include/octet/native/pool.h).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <octet/native/pool.h>

namespace octet {

inline uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// ---- thread pool, FP environment (@octet/native-common) ---------------------------------------------
using octet_native::ExactFpGuard;
using octet_native::Pool;
using octet_native::pool;

// ---- aligned buffers -------------------------------------------------------------------------------
struct FreeDeleter { void operator()(void* p) const { std::free(p); } };
template <class T> using Buf = std::unique_ptr<T[], FreeDeleter>;
template <class T> Buf<T> alloc_aligned(size_t n) {
  size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return Buf<T>(static_cast<T*>(p));
}

// ---- FP8 -------------------------------------------------------------------------------------------
// PyTorch c10 Float8_e4m3fn / Float8_e5m2 from-float conversions (non-saturating), bit for bit.
inline uint8_t encode_e4m3(float x) {
  uint32_t bits = bits_of(x);
  uint32_t sign = bits & 0x80000000u;
  uint32_t f = bits ^ sign;
  uint32_t r;
  if (f >= (1087u << 20)) {
    r = 0x7F;
  } else if (f < (121u << 23)) {
    const float denorm = float_of(141u << 23);
    r = bits_of(float_of(f) + denorm) - (141u << 23);
  } else {
    uint32_t odd = (f >> 20) & 1;
    f += (0u - (120u << 23)) + 0x7FFFF;
    f += odd;
    r = f >> 20;
  }
  return (uint8_t)(r | (sign >> 24));
}
inline uint8_t encode_e5m2(float x) {
  uint32_t bits = bits_of(x);
  uint32_t sign = bits & 0x80000000u;
  uint32_t f = bits ^ sign;
  uint32_t r;
  if (f >= (143u << 23)) {
    r = f > (255u << 23) ? 0x7F : 0x7C;
  } else if (f < (113u << 23)) {
    const float denorm = float_of(134u << 23);
    r = bits_of(float_of(f) + denorm) - (134u << 23);
  } else {
    uint32_t odd = (f >> 21) & 1;
    f += (0u - (112u << 23)) + 0xFFFFF;
    f += odd;
    r = f >> 21;
  }
  return (uint8_t)(r | (sign >> 24));
}
inline uint8_t encode_fp8(float x, int fmt) { return fmt == 0 ? encode_e4m3(x) : encode_e5m2(x); }

// 256-entry decode tables (code -> float32), fmt 0 = e4m3fn, 1 = e5m2.
const float* decode_table(int fmt);

#if defined(__AVX512F__)
// 16 lanes of the same conversions; returns the codes in the low byte of each 32-bit lane.
inline __m512i encode_e4m3_v(__m512 y) {
  const __m512i bits = _mm512_castps_si512(y);
  const __m512i sign = _mm512_and_si512(bits, _mm512_set1_epi32((int)0x80000000u));
  const __m512i f = _mm512_xor_si512(bits, sign);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(f, 20), _mm512_set1_epi32(1));
  __m512i norm = _mm512_add_epi32(f, _mm512_set1_epi32((int)((0u - (120u << 23)) + 0x7FFFFu)));
  norm = _mm512_srli_epi32(_mm512_add_epi32(norm, odd), 20);
  const __m512 sub_f = _mm512_add_ps(_mm512_castsi512_ps(f), _mm512_castsi512_ps(_mm512_set1_epi32(141 << 23)));
  const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(sub_f), _mm512_set1_epi32(141 << 23));
  const __mmask16 is_sub = _mm512_cmplt_epu32_mask(f, _mm512_set1_epi32(121 << 23));
  const __mmask16 is_ovf = _mm512_cmpge_epu32_mask(f, _mm512_set1_epi32(1087 << 20));
  __m512i r = _mm512_mask_blend_epi32(is_sub, norm, sub);
  r = _mm512_mask_mov_epi32(r, is_ovf, _mm512_set1_epi32(0x7F));
  return _mm512_or_si512(r, _mm512_srli_epi32(sign, 24));
}
inline __m512i encode_e5m2_v(__m512 y) {
  const __m512i bits = _mm512_castps_si512(y);
  const __m512i sign = _mm512_and_si512(bits, _mm512_set1_epi32((int)0x80000000u));
  const __m512i f = _mm512_xor_si512(bits, sign);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(f, 21), _mm512_set1_epi32(1));
  __m512i norm = _mm512_add_epi32(f, _mm512_set1_epi32((int)((0u - (112u << 23)) + 0xFFFFFu)));
  norm = _mm512_srli_epi32(_mm512_add_epi32(norm, odd), 21);
  const __m512 sub_f = _mm512_add_ps(_mm512_castsi512_ps(f), _mm512_castsi512_ps(_mm512_set1_epi32(134 << 23)));
  const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(sub_f), _mm512_set1_epi32(134 << 23));
  const __mmask16 is_sub = _mm512_cmplt_epu32_mask(f, _mm512_set1_epi32(113 << 23));
  const __mmask16 is_ovf = _mm512_cmpge_epu32_mask(f, _mm512_set1_epi32(143 << 23));
  const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(f, _mm512_set1_epi32(255 << 23));
  __m512i r = _mm512_mask_blend_epi32(is_sub, norm, sub);
  r = _mm512_mask_mov_epi32(r, is_ovf, _mm512_set1_epi32(0x7C));
  r = _mm512_mask_mov_epi32(r, is_nan, _mm512_set1_epi32(0x7F));
  return _mm512_or_si512(r, _mm512_srli_epi32(sign, 24));
}
inline __m512i encode_fp8_v(__m512 y, int fmt) { return fmt == 0 ? encode_e4m3_v(y) : encode_e5m2_v(y); }
#endif

// ---- kernels ---------------------------------------------------------------------------------------
// Returns the flat index of the first non-finite input or -1. data: rows*cols codes; scales: grid.
int64_t quantize(const float* x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int fmt, bool pow2,
                 uint8_t* data, float* scales);
// [1,128] (rowData/rowScales, grid [rows, ceil(cols/128)]) and [128,1] (colData/colScales, grid
// [ceil(rows/128), cols]) in one read of x.
int64_t quantize_tiled_both(const float* x, int64_t rows, int64_t cols, int fmt, bool pow2, uint8_t* row_data,
                            float* row_scales, uint8_t* col_data, float* col_scales);
void encode_fp8_array(const float* x, int64_t n, int fmt, bool saturate, uint8_t* out);
void decode_fp8_array(const uint8_t* x, int64_t n, int fmt, float* out);
void encode_bf16_array(const float* x, int64_t n, uint16_t* out);

// C[M,N] = A[M,K] . B[N,K]^T, promoted block-scaled FP8 (DeepSeek-V3).
void scaled_matmul(const uint8_t* a, const float* a_scales, int64_t M, int64_t K, int64_t abr, int64_t abc, int afmt,
                   const uint8_t* b, const float* b_scales, int64_t N, int64_t bbr, int64_t bbc, int bfmt,
                   int64_t promote_every, float* c);
void matmul_f32(const float* a, const float* b, int64_t M, int64_t N, int64_t K, float* c);
void matmul_bf16(const uint16_t* a, const uint16_t* b, int64_t M, int64_t N, int64_t K, float* c);

}  // namespace octet
