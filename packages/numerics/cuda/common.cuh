// Device helpers shared by the CUDA kernels of @octet/numerics: FP8 casts (PyTorch-exact), the DeepGEMM scale
// arithmetic, bf16 widening, warp reductions. Every step is the float32 arithmetic of src/quantize.ts and
// src/formats.ts, written so that nvcc cannot reassociate or contract it (explicit _rn intrinsics; no fast-math).
#pragma once
#ifdef OCTET_EMU
#include "emu/emu.h"  // CPU emulation for tests without a GPU (emu/README in emu.h)
#else
#include <cuda_runtime.h>
#endif
#include <cstdint>

// Kernel launches and dynamic shared memory through macros, so that the emulation can stand in for them.
#ifndef OCTET_EMU
#define OCTET_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
#define OCTET_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace octet_cuda {

constexpr uint32_t F32_INF_BITS = 0x7f800000u;
constexpr float AMAX_FLOOR = 1e-4f;  // float32(1e-4): DeepGEMM's clamp of a block's amax

__host__ __device__ constexpr float fp8_max(int fmt) { return fmt == 0 ? 448.0f : 57344.0f; }

__device__ __forceinline__ uint32_t f2u(float f) { return __float_as_uint(f); }
__device__ __forceinline__ float u2f(uint32_t u) { return __uint_as_float(u); }

// scale = f32(max(amax, 1e-4) / fmax); pow2: 2^ceil(log2(scale)) on the bits (a positive normal float32).
__device__ __forceinline__ float scale_from_amax(float amax, float fmax, bool pow2) {
  const float a = amax > AMAX_FLOOR ? amax : AMAX_FLOOR;
  float s = __fdiv_rn(a, fmax);
  if (pow2) {
    const uint32_t b = f2u(s);
    if (b & 0x7fffffu) s = u2f((b & 0x7f800000u) + 0x800000u);
  }
  return s;
}

// ---- PyTorch's non-saturating casts, bit for bit (c10 Float8_e4m3fn / Float8_e5m2 from float) -------------
// The integer algorithm of formats.ts; used by the exhaustive self-test and as the reference for the fast path.
__host__ __device__ inline uint8_t soft_e4m3(float x) {
#ifdef __CUDA_ARCH__
  const uint32_t bits = __float_as_uint(x);
#else
  uint32_t bits; __builtin_memcpy(&bits, &x, 4);
#endif
  const uint32_t sign = bits & 0x80000000u;
  uint32_t f = bits ^ sign;
  uint32_t r;
  if (f >= (1087u << 20)) {
    r = 0x7f;
  } else if (f < (121u << 23)) {
#ifdef __CUDA_ARCH__
    r = __float_as_uint(__fadd_rn(__uint_as_float(f), __uint_as_float(141u << 23))) - (141u << 23);
#else
    float ff, dm; uint32_t d = 141u << 23; __builtin_memcpy(&ff, &f, 4); __builtin_memcpy(&dm, &d, 4);
    float s = ff + dm; uint32_t sb; __builtin_memcpy(&sb, &s, 4); r = sb - d;
#endif
  } else {
    const uint32_t odd = (f >> 20) & 1u;
    f += (0u - (120u << 23)) + 0x7ffffu + odd;
    r = f >> 20;
  }
  return (uint8_t)((r & 0xffu) | (sign >> 24));
}

__host__ __device__ inline uint8_t soft_e5m2(float x) {
#ifdef __CUDA_ARCH__
  const uint32_t bits = __float_as_uint(x);
#else
  uint32_t bits; __builtin_memcpy(&bits, &x, 4);
#endif
  const uint32_t sign = bits & 0x80000000u;
  uint32_t f = bits ^ sign;
  uint32_t r;
  if (f >= (143u << 23)) {
    r = f > (255u << 23) ? 0x7fu : 0x7cu;
  } else if (f < (113u << 23)) {
#ifdef __CUDA_ARCH__
    r = __float_as_uint(__fadd_rn(__uint_as_float(f), __uint_as_float(134u << 23))) - (134u << 23);
#else
    float ff, dm; uint32_t d = 134u << 23; __builtin_memcpy(&ff, &f, 4); __builtin_memcpy(&dm, &d, 4);
    float s = ff + dm; uint32_t sb; __builtin_memcpy(&sb, &s, 4); r = sb - d;
#endif
  } else {
    const uint32_t odd = (f >> 21) & 1u;
    f += (0u - (112u << 23)) + 0xfffffu + odd;
    r = f >> 21;
  }
  return (uint8_t)((r & 0xffu) | (sign >> 24));
}

// ---- the hardware cast (sm_89+): cvt.rn.satfinite, two values per instruction -----------------------------
// PTX offers FP8 conversion from f32 only with .satfinite: round to nearest even, finite overflow clamped to
// ±max, NaN to NaN. PyTorch's cast instead maps |v| > 464 (E4M3) to NaN and |v| >= 61440 (E5M2) to inf. For
// the quantizer that difference can only show on non-finite inputs: |x·f32(1/scale)| <= 448·(1+3·2^-24) for
// every finite x in a block (scale >= amax/448 by construction), so the fast path casts with the hardware and
// applies fix_overflow() only in blocks that hold a NaN or an infinity. The exhaustive self-test
// (cast_selftest) checks hw_cast + fix_overflow == soft_* on all 2^32 float32 bit patterns on the device.
template <int FMT>
__device__ __forceinline__ uint32_t cvt2(float lo, float hi) {
#ifdef OCTET_EMU
  return emu::cvt_satfinite(lo, FMT) | (emu::cvt_satfinite(hi, FMT) << 8);
#else
  unsigned short r;
  if constexpr (FMT == 0) {
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  }
  return (uint32_t)r;
#endif
}

// PyTorch's overflow and NaN codes; the sign comes from the input (x86 keeps a NaN's sign through x·inverse,
// which is what the TypeScript specification sees; the GPU's multiply would canonicalize it).
template <int FMT>
__device__ __forceinline__ uint32_t fix_overflow(uint32_t code, float v, uint32_t xbits) {
  const float a = fabsf(v);
  const uint32_t sign = (xbits >> 24) & 0x80u;
  if constexpr (FMT == 0) {
    if (!(a <= 464.0f)) return 0x7fu | sign;
  } else {
    if (a != a) return 0x7fu | sign;
    if (a >= 61440.0f) return 0x7cu | sign;
  }
  return code;
}

// Encode 8 values (float32 bit patterns xb) as x·inv into 8 FP8 bytes (little-endian in a uint2).
template <int FMT>
__device__ __forceinline__ uint2 encode8(const uint32_t (&xb)[8], float inv, bool fix) {
  float v[8];
#pragma unroll
  for (int j = 0; j < 8; j++) v[j] = __fmul_rn(u2f(xb[j]), inv);
  uint32_t p[4];
#pragma unroll
  for (int j = 0; j < 4; j++) p[j] = cvt2<FMT>(v[2 * j], v[2 * j + 1]);
  if (fix) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const uint32_t lo = fix_overflow<FMT>(p[j] & 0xffu, v[2 * j], xb[2 * j]);
      const uint32_t hi = fix_overflow<FMT>(p[j] >> 8, v[2 * j + 1], xb[2 * j + 1]);
      p[j] = lo | (hi << 8);
    }
  }
  return make_uint2(p[0] | (p[1] << 16), p[2] | (p[3] << 16));
}

template <int FMT>
__device__ __forceinline__ uint32_t encode1(float x, float inv) {
  const float v = __fmul_rn(x, inv);
  const uint32_t c = cvt2<FMT>(v, 0.0f) & 0xffu;
  return fix_overflow<FMT>(c, v, f2u(x));
}

// ---- FP8 decode (exact) and bf16 -------------------------------------------------------------------------------
__device__ __forceinline__ float decode_fp8(uint32_t code, int fmt) {
  const uint32_t sign = (code & 0x80u) << 24;
  if (fmt == 0) {
    const uint32_t e = (code >> 3) & 0xfu, m = code & 7u;
    if (e == 15u && m == 7u) return u2f(sign | 0x7fc00000u);
    if (e == 0u) return u2f(sign | f2u((float)m * 0.001953125f));  // m · 2^-9
    return u2f(sign | ((e + 120u) << 23) | (m << 20));
  }
  const uint32_t e = (code >> 2) & 0x1fu, m = code & 3u;
  if (e == 31u) return u2f(sign | (m == 0u ? 0x7f800000u : 0x7fc00000u));
  if (e == 0u) return u2f(sign | f2u((float)m * 1.52587890625e-05f));  // m · 2^-16
  return u2f(sign | ((e + 112u) << 23) | (m << 21));
}

// Two FP8 codes (first in the low byte) decoded to float by the hardware: fp8x2 -> f16x2 is exact (every e4m3 and
// e5m2 value is an f16; e5m2 is the f16's upper byte) and f16 -> f32 is exact, so this equals decode_fp8 on every
// code but NaN (the hardware's NaN is canonical; callers send NaN codes to decode_fp8).
template <int FMT>
__device__ __forceinline__ void decode2_fast(uint32_t two, float& lo, float& hi) {
#ifdef OCTET_EMU
  lo = decode_fp8(two & 0xffu, FMT);
  hi = decode_fp8((two >> 8) & 0xffu, FMT);
#else
  uint32_t h2;
  const unsigned short in = (unsigned short)two;
  if constexpr (FMT == 0) asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"(in));
  else asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(h2) : "h"(in));
  asm("{\n.reg .f16 l, h;\nmov.b32 {l, h}, %2;\ncvt.f32.f16 %0, l;\ncvt.f32.f16 %1, h;\n}" : "=f"(lo), "=f"(hi) : "r"(h2));
#endif
}

// Any NaN code among four FP8 codes (one per byte): e4m3 NaN is S.1111.111, e5m2 NaN is S.11111.xx with xx != 0.
template <int FMT>
__device__ __forceinline__ bool has_nan4(uint32_t codes) {
  const uint32_t t = codes & 0x7f7f7f7fu;  // bytes <= 0x7f: adding <= 3 never carries into the next byte
  return ((t + (FMT == 0 ? 0x01010101u : 0x03030303u)) & 0x80808080u) != 0;
}

// formats.ts encodeBf16Scalar: round to nearest even, every NaN -> 0xFFFF (PyTorch's CPU tensor cast).
__device__ __forceinline__ uint16_t encode_bf16(float x) {
  if (x != x) return 0xffffu;
  const uint32_t b = f2u(x);
  return (uint16_t)((b + (((b >> 16) & 1u) + 0x7fffu)) >> 16);
}

// Two floats to bf16 (first in the low half), round to nearest even: equal to encode_bf16 for every non-NaN input
// (the hardware's NaN is canonical 0x7FFF, the specification's 0xFFFF; callers keep NaN off this path).
__device__ __forceinline__ uint32_t bf16x2_rn(float lo, float hi) {
#ifdef OCTET_EMU
  return (uint32_t)encode_bf16(lo) | ((uint32_t)encode_bf16(hi) << 16);
#else
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#endif
}

// 16-byte asynchronous copy global → shared (sm_80+ cp.async), zero-filling when `bytes` is 0; no registers held.
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src, int bytes) {
#ifdef OCTET_EMU
  if (bytes) __builtin_memcpy(smem_dst, gmem_src, 16);
  else __builtin_memset(smem_dst, 0, 16);
#else
  const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(bytes));
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#ifndef OCTET_EMU
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

__device__ __forceinline__ uint32_t max16(uint32_t v) {  // max over the 16 lanes of a half-warp
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ uint32_t max32(uint32_t v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace octet_cuda
