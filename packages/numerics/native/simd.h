// The vector forms of common.h's FP8 conversions, for this copy's instruction set (included by the per-ISA
// kernel sources after OCTET_ISA_BEGIN, so they are compiled for it and live in its namespace). Each lane
// does the scalar conversion's integer and float operations, so the codes are the scalar ones bit for bit.
#pragma once
#if !defined(OCTET_NUMERICS_KERNELS_H)
#error "include kernels.h (and every standard header) before OCTET_ISA_BEGIN, then simd.h"
#endif

namespace octet {
namespace OCTET_ISA {

#if OCTET_ISA_AVX512
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
#elif OCTET_ISA_AVX2
// 8 lanes of the same conversions; returns the codes in the low byte of each 32-bit lane. f = |x|'s bits is
// below 2^31, so AVX2's signed compares order it as the scalar code's unsigned ones.
inline __m256i encode_e4m3_v(__m256 y) {
  const __m256i bits = _mm256_castps_si256(y);
  const __m256i sign = _mm256_and_si256(bits, _mm256_set1_epi32((int)0x80000000u));
  const __m256i f = _mm256_xor_si256(bits, sign);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(f, 20), _mm256_set1_epi32(1));
  __m256i norm = _mm256_add_epi32(f, _mm256_set1_epi32((int)((0u - (120u << 23)) + 0x7FFFFu)));
  norm = _mm256_srli_epi32(_mm256_add_epi32(norm, odd), 20);
  const __m256 sub_f = _mm256_add_ps(_mm256_castsi256_ps(f), _mm256_castsi256_ps(_mm256_set1_epi32(141 << 23)));
  const __m256i sub = _mm256_sub_epi32(_mm256_castps_si256(sub_f), _mm256_set1_epi32(141 << 23));
  const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(121 << 23), f);
  const __m256i is_ovf = _mm256_cmpgt_epi32(f, _mm256_set1_epi32((1087 << 20) - 1));
  __m256i r = _mm256_blendv_epi8(norm, sub, is_sub);
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7F), is_ovf);
  return _mm256_or_si256(r, _mm256_srli_epi32(sign, 24));
}
inline __m256i encode_e5m2_v(__m256 y) {
  const __m256i bits = _mm256_castps_si256(y);
  const __m256i sign = _mm256_and_si256(bits, _mm256_set1_epi32((int)0x80000000u));
  const __m256i f = _mm256_xor_si256(bits, sign);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(f, 21), _mm256_set1_epi32(1));
  __m256i norm = _mm256_add_epi32(f, _mm256_set1_epi32((int)((0u - (112u << 23)) + 0xFFFFFu)));
  norm = _mm256_srli_epi32(_mm256_add_epi32(norm, odd), 21);
  const __m256 sub_f = _mm256_add_ps(_mm256_castsi256_ps(f), _mm256_castsi256_ps(_mm256_set1_epi32(134 << 23)));
  const __m256i sub = _mm256_sub_epi32(_mm256_castps_si256(sub_f), _mm256_set1_epi32(134 << 23));
  const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(113 << 23), f);
  const __m256i is_ovf = _mm256_cmpgt_epi32(f, _mm256_set1_epi32((143 << 23) - 1));
  const __m256i is_nan = _mm256_cmpgt_epi32(f, _mm256_set1_epi32(255 << 23));
  __m256i r = _mm256_blendv_epi8(norm, sub, is_sub);
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7C), is_ovf);
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7F), is_nan);
  return _mm256_or_si256(r, _mm256_srli_epi32(sign, 24));
}
inline __m256i encode_fp8_v(__m256 y, int fmt) { return fmt == 0 ? encode_e4m3_v(y) : encode_e5m2_v(y); }
// Stores the low bytes of the 8 lanes (each in [0, 255], so the unsigned-saturating packs keep them).
inline void store_codes8(uint8_t* out, __m256i codes) {
  const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(words, words));
}
#endif

}  // namespace OCTET_ISA
}  // namespace octet
