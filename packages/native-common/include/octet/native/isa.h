// Run-time choice of the instruction set a native kernel runs with.
//
// A prebuilt addon cannot be compiled with -march=native: it must run on any x86-64 CPU and still use the
// wide vectors of the one it lands on. So each addon compiles its kernels once per instruction set, and picks
// one copy when it loads:
//
//   avx512  x86-64 with AVX-512 F, BW, CD, DQ and VL (x86-64-v4), plus everything avx2 needs
//   avx2    x86-64 with AVX2, FMA, BMI1/2 and POPCNT (the core of x86-64-v3)
//   scalar  baseline x86-64 (SSE2), or any other architecture
//
// OCTET_NATIVE_ISA=avx512|avx2|scalar forces one (tests and benchmarks run every path the CPU supports);
// unset, empty or "auto" picks the best one the CPU supports. Every copy gives the same bits: the kernels are
// exact by construction (no fused or reassociated arithmetic), and each ISA's code does the same operations in
// the same order.
//
// How a kernel file is compiled per instruction set (binding.gyp, one static library per ISA):
//   - the library defines OCTET_ISA (avx512, avx2 or scalar: the namespace of that copy) and OCTET_ISA_LEVEL
//     (2, 1 or 0), all with the addon's baseline flags (no -march);
//   - the file includes its standard and shared headers first, then opens OCTET_ISA_BEGIN, and puts its code
//     in namespace OCTET_ISA; it ends with OCTET_ISA_END.
// Between BEGIN and END, GCC compiles every function for the ISA (#pragma GCC target). Everything included
// before BEGIN (the standard library, pool.h, shared inline helpers) keeps the baseline target, also where it
// is instantiated inside the region: a template or inline function shared by several copies is merged by the
// linker into one, which must run on every CPU. GCC's C++ front end does not define __AVX2__ and the like for
// a target pragma, so the code tests OCTET_ISA_AVX512 and OCTET_ISA_AVX2 instead.
#pragma once
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#define OCTET_ISA_STR_(x) #x
#define OCTET_ISA_STR(x) OCTET_ISA_STR_(x)

// GCC target features of each level (checked at run time by cpu_supports below, feature for feature).
#define OCTET_ISA_AVX2_TARGET "avx,avx2,fma,bmi,bmi2,popcnt"
#define OCTET_ISA_AVX512_TARGET OCTET_ISA_AVX2_TARGET ",avx512f,avx512bw,avx512cd,avx512dq,avx512vl"

#if defined(OCTET_ISA_LEVEL)
#if !defined(OCTET_ISA)
#error "OCTET_ISA_LEVEL is set without OCTET_ISA (the namespace of this copy of the kernels)"
#endif
#define OCTET_ISA_AVX512 (OCTET_ISA_LEVEL == 2)
#define OCTET_ISA_AVX2 (OCTET_ISA_LEVEL == 1)
#if OCTET_ISA_LEVEL > 0 && !(defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__))
#error "the avx2 and avx512 copies of the kernels are built with GCC for x86-64 only (binding.gyp)"
#endif
#if OCTET_ISA_LEVEL == 2
#define OCTET_ISA_BEGIN _Pragma("GCC push_options") _Pragma(OCTET_ISA_STR(GCC target(OCTET_ISA_AVX512_TARGET)))
#define OCTET_ISA_END _Pragma("GCC pop_options")
#elif OCTET_ISA_LEVEL == 1
#define OCTET_ISA_BEGIN _Pragma("GCC push_options") _Pragma(OCTET_ISA_STR(GCC target(OCTET_ISA_AVX2_TARGET)))
#define OCTET_ISA_END _Pragma("GCC pop_options")
#else
#define OCTET_ISA_BEGIN
#define OCTET_ISA_END
#endif
#endif

#pragma GCC visibility push(hidden)

namespace octet_native {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

// Whether this CPU runs code compiled for isa (including the operating system's support for the wider
// registers, which GCC's __builtin_cpu_supports checks through XGETBV).
inline bool cpu_supports(Isa isa) {
  if (isa == Isa::scalar) return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
  if (isa == Isa::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// The instruction set to run: OCTET_NATIVE_ISA when it names one, else the best one that is both compiled
// into the addon (`compiled`, indexed by Isa) and supported by the CPU. A value that is not a known name, or
// names an ISA this addon or this CPU lacks, throws std::invalid_argument naming the problem: a forced path
// that silently ran another would make a test or a benchmark lie.
inline Isa select_isa(const bool (&compiled)[3]) {
  const char* forced = std::getenv("OCTET_NATIVE_ISA");
  if (forced != nullptr && *forced != '\0' && std::strcmp(forced, "auto") != 0) {
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar}) {
      if (std::strcmp(forced, isa_name(isa)) != 0) continue;
      if (!compiled[(int)isa]) throw std::invalid_argument(std::string("OCTET_NATIVE_ISA=") + forced + ": this build has no " + forced + " kernels (not an x86-64 GCC build)");
      if (!cpu_supports(isa)) throw std::invalid_argument(std::string("OCTET_NATIVE_ISA=") + forced + ": this CPU does not support it");
      return isa;
    }
    throw std::invalid_argument(std::string("OCTET_NATIVE_ISA must be avx512, avx2, scalar or auto, got \"") + forced + "\"");
  }
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (compiled[(int)isa] && cpu_supports(isa)) return isa;
  }
  return Isa::scalar;
}

// The kernel table this process runs, out of an addon's compiled copies (indexed by Isa; nullptr where not built):
// chosen once, when the first environment (main thread or worker) loads the addon — a function-local static of
// the table type, so thread-safe, one per addon (hidden visibility), and a throw leaves it for the next load to retry.
template <typename Kernels>
struct KernelChoice {
  Isa isa;
  const Kernels* kernels;
};
template <typename Kernels>
const KernelChoice<Kernels>& choose_kernels(const Kernels* const (&compiled)[3]) {
  static const KernelChoice<Kernels> chosen = [&] {
    bool built[3];
    for (int i = 0; i < 3; i++) built[i] = compiled[i] != nullptr;
    const Isa isa = select_isa(built);
    return KernelChoice<Kernels>{isa, compiled[(int)isa]};
  }();
  return chosen;
}

}  // namespace octet_native

#pragma GCC visibility pop
