// What every copy of the numerics kernels shares (compiled for the baseline target: see
// @octet/native-common's octet/native/isa.h): aligned buffers, the scalar FP8 conversions, the FP8 decode
// tables, and the table of one instruction set's kernels that the addon picks at load.
// The thread pool and FP guard come from @octet/native-common (include/octet/native/pool.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <octet/native/isa.h>
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

// 256-entry decode tables (code -> float32), fmt 0 = e4m3fn, 1 = e5m2. One copy for all instruction sets
// (an inline function's static: the linker keeps one).
inline const float* decode_table(int fmt) {
  struct Tables {
    alignas(64) float t[2][256];
    Tables() {
      for (int f = 0; f < 2; f++) {
        const int ebits = f == 0 ? 4 : 5, mbits = f == 0 ? 3 : 2, bias = f == 0 ? 7 : 15;
        const int emask = (1 << ebits) - 1, mscale = 1 << mbits;
        for (int code = 0; code < 256; code++) {
          const bool neg = code & 0x80;
          const int e = (code >> mbits) & emask, m = code & (mscale - 1);
          double v;
          if (f == 0 && e == emask && m == mscale - 1) v = NAN;
          else if (f == 1 && e == emask) v = m == 0 ? INFINITY : NAN;
          else if (e == 0) v = std::ldexp((double)m / mscale, 1 - bias);
          else v = std::ldexp(1.0 + (double)m / mscale, e - bias);
          t[f][code] = (float)(neg ? -v : v);
        }
      }
    }
  };
  static const Tables tables;
  return tables.t[fmt == 0 ? 0 : 1];
}

// ---- kernels ---------------------------------------------------------------------------------------
// One instruction set's copy of the kernels (declared in kernels.h, compiled once per ISA by binding.gyp).
// The addon picks one table when it loads (addon.cc); every table computes the same bits.
struct Kernels {
  // Returns the flat index of the first non-finite input or -1. data: rows*cols codes; scales: grid.
  int64_t (*quantize)(const float* x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int fmt, bool pow2,
                      uint8_t* data, float* scales);
  // [1,128] (rowData/rowScales, grid [rows, ceil(cols/128)]) and [128,1] (colData/colScales, grid
  // [ceil(rows/128), cols]) in one read of x.
  int64_t (*quantize_tiled_both)(const float* x, int64_t rows, int64_t cols, int fmt, bool pow2, uint8_t* row_data,
                                 float* row_scales, uint8_t* col_data, float* col_scales);
  void (*encode_fp8_array)(const float* x, int64_t n, int fmt, bool saturate, uint8_t* out);
  void (*decode_fp8_array)(const uint8_t* x, int64_t n, int fmt, float* out);
  void (*encode_bf16_array)(const float* x, int64_t n, uint16_t* out);
  // C[M,N] = A[M,K] . B[N,K]^T, promoted block-scaled FP8 (DeepSeek-V3).
  void (*scaled_matmul)(const uint8_t* a, const float* a_scales, int64_t M, int64_t K, int64_t abr, int64_t abc, int afmt,
                        const uint8_t* b, const float* b_scales, int64_t N, int64_t bbr, int64_t bbc, int bfmt,
                        int64_t promote_every, float* c);
  void (*matmul_f32)(const float* a, const float* b, int64_t M, int64_t N, int64_t K, float* c);
  void (*matmul_bf16)(const uint16_t* a, const uint16_t* b, int64_t M, int64_t N, int64_t K, float* c);
  // What this copy's vector code is, for info().
  const char* description;
};

namespace scalar { extern const Kernels kernels; }
#if defined(OCTET_HAVE_AVX2)
namespace avx2 { extern const Kernels kernels; }
#endif
#if defined(OCTET_HAVE_AVX512)
namespace avx512 { extern const Kernels kernels; }
#endif

}  // namespace octet
