// What every copy of the router's kernel shares (compiled for the baseline target: see @octet/native-common's
// octet/native/isa.h): the gate's shape, the scalar sigmoid of src/sigmoid.ts and its table, and the table
// of one instruction set's kernel that the addon picks at load. The thread pool and FP guard come from
// @octet/native-common (include/octet/native/pool.h), shared with @octet/numerics' kernels (the router does
// not depend on that addon).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <octet/native/isa.h>
#include <octet/native/pool.h>

namespace octet_router {

// ---- thread pool, FP environment (@octet/native-common) ---------------------------------------------
using octet_native::ExactFpGuard;
using octet_native::Pool;
using octet_native::pool;

// ---- shape ------------------------------------------------------------------------------------------
struct RouteShape {
  int64_t tokens;
  int64_t experts;
  int64_t top_k;
  int64_t n_group;
  int64_t topk_group;
  bool norm_topk_prob;
  double routed_scaling_factor;
};

// ---- sigmoid (src/sigmoid.ts) -------------------------------------------------------------------------
constexpr double kLn2 = 0.69314718055994530942;  // Math.LN2
constexpr double kInvStep = 32.0 / kLn2;
constexpr double kStepHi = (double)(float)(kLn2 / 32.0);
constexpr double kStepLo = kLn2 / 32.0 - kStepHi;
constexpr double kC6 = 1.0 / 6, kC24 = 1.0 / 24, kC120 = 1.0 / 120;
constexpr double kSaturateHigh = 30, kSaturateLow = -110;

// 2^(j/32), j = 0..31: the table of src/sigmoid.ts. The addon fills it with std::pow's values when it loads,
// then the loader installs the values V8 computed (Math.pow, setFractionPowers), so that both paths use the
// very same doubles. One table for every copy of the kernel.
alignas(64) inline double g_fraction_powers[32];

inline void set_fraction_powers(const double* table32) { std::memcpy(g_fraction_powers, table32, sizeof(g_fraction_powers)); }

// Math.round: the integer closest to v, ties toward +infinity.
inline double js_round(double v) {
  double c = std::ceil(v);
  if (c - 0.5 > v) c -= 1.0;
  return c;
}

// 2^n as a double, for n in [-1022, 1023] (the octaves here are in [-44, 158]): multiplying by it is exact,
// as std::ldexp is, without a library call.
inline double pow2(int n) {
  const uint64_t bits = (uint64_t)(n + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

// float32(1 / (1 + exp(-z))) exactly as sigmoidF32 of src/sigmoid.ts: the scalar path, the vector paths'
// tails, and the addon's sigmoidF32 (for the tests).
inline float sigmoid_f32(float zf) {
  const double z = zf;
  if (z != z) return zf;
  if (z > kSaturateHigh) return 1.f;
  if (z < kSaturateLow) return 0.f;
  const double x = -z;
  const double k = js_round(x * kInvStep);
  const double r = x - k * kStepHi - k * kStepLo;
  const double p = 1 + r * (1 + r * (0.5 + r * (kC6 + r * (kC24 + r * kC120))));
  const int ki = (int)k;
  const double e = g_fraction_powers[ki & 31] * pow2(ki >> 5) * p;
  return (float)(1 / (1 + e));
}

// ---- kernel -----------------------------------------------------------------------------------------
// One instruction set's copy of the kernel (route.cc, compiled once per ISA by binding.gyp). The addon picks
// one when it loads (addon.cc); every copy computes the same bits.
struct Kernels {
  // DeepSeek-V3's gate with the sigmoid score function, bit for bit the TypeScript routeTokens (src/route.ts).
  // scores may be null (not written). Returns the flat index of the first NaN logit, or -1 (outputs are then
  // unspecified).
  int64_t (*route_sigmoid)(const float* logits, const RouteShape& shape, const float* bias, int32_t* indices,
                           float* weights, float* scores);
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

}  // namespace octet_router
