// Node-API bindings of the router's native CPU kernel (module octet_router). The argument readers, the error
// guard and info()'s object come from @octet/native-common (include/octet/native/napi.h). The kernel is
// compiled once per instruction set; Init picks one copy for the process (octet/native/isa.h: the best the
// CPU runs, or OCTET_NATIVE_ISA).
#include <octet/native/napi.h>

#include <cmath>
#include "common.h"

namespace {

// The copies of the kernel in this build, indexed by octet_native::Isa (scalar, avx2, avx512).
const octet_router::Kernels* const kCompiled[3] = {
    &octet_router::scalar::kernels,
#if defined(OCTET_HAVE_AVX2)
    &octet_router::avx2::kernels,
#else
    nullptr,
#endif
#if defined(OCTET_HAVE_AVX512)
    &octet_router::avx512::kernels,
#else
    nullptr,
#endif
};

// The copy this process runs (octet/native/isa.h: chosen once per process).
const octet_native::KernelChoice<octet_router::Kernels>& choice() { return octet_native::choose_kernels(kCompiled); }

// std::pow's 2^(j/32) from the moment the library is loaded (once per process, before any Init) until the
// loader installs V8's (setFractionPowers); Init does not touch the table, which another thread may be using.
struct FractionPowersAtLoad {
  FractionPowersAtLoad() {
    double powers[32];
    for (int j = 0; j < 32; j++) powers[j] = std::pow(2.0, j / 32.0);
    octet_router::set_fraction_powers(powers);
  }
} g_fraction_powers_at_load;

using octet_native::guarded;
using octet_native::need;
using octet_native::new_typed;
using octet_native::num;

// The router's sizes are int32 (its indices are Int32Array); booleans are required (Args::boolean).
struct Args : octet_native::Args {
  using octet_native::Args::Args;
  int64_t integer(size_t i, const char* name, int64_t min) { return octet_native::Args::integer(i, name, min, 2147483647.0); }
};

// routeSigmoid(logits, tokens, experts, topK, nGroup, topkGroup, bias, normTopkProb, routedScalingFactor,
//              indices, weights, scores | null) -> first NaN flat index or -1
napi_value RouteSigmoid(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 11, "routeSigmoid");
    size_t nl, nb, ni, nw, ns = 0;
    const float* logits = a.typed<float>(0, napi_float32_array, &nl, "logits");
    octet_router::RouteShape s;
    s.tokens = a.integer(1, "tokens", 1);
    s.experts = a.integer(2, "experts", 1);
    s.top_k = a.integer(3, "topK", 1);
    s.n_group = a.integer(4, "nGroup", 1);
    s.topk_group = a.integer(5, "topkGroup", 1);
    const float* bias = a.typed<float>(6, napi_float32_array, &nb, "bias");
    s.norm_topk_prob = a.boolean(7, "normTopkProb");
    s.routed_scaling_factor = a.number(8, "routedScalingFactor");
    int32_t* indices = a.typed<int32_t>(9, napi_int32_array, &ni, "indices");
    float* weights = a.typed<float>(10, napi_float32_array, &nw, "weights");
    float* scores = a.nullish(11) ? nullptr : a.typed<float>(11, napi_float32_array, &ns, "scores");
    const int64_t TE = s.tokens * s.experts, TK = s.tokens * s.top_k;
    need((int64_t)nl == TE, "routeSigmoid: logits.length must equal tokens * experts");
    need((int64_t)nb == s.experts, "routeSigmoid: bias.length must equal experts");
    need((int64_t)ni == TK && (int64_t)nw == TK, "routeSigmoid: indices and weights must have tokens * topK elements");
    need(scores == nullptr || (int64_t)ns == TE, "routeSigmoid: scores must have tokens * experts elements");
    need(s.experts % s.n_group == 0, "routeSigmoid: nGroup must divide experts");
    need(s.topk_group <= s.n_group, "routeSigmoid: topkGroup must not exceed nGroup");
    const int64_t gs = s.experts / s.n_group;
    need(s.top_k <= s.topk_group * gs, "routeSigmoid: topK must not exceed the eligible experts");
    need(!(s.n_group > 1 && s.topk_group < s.n_group) || gs >= 2, "routeSigmoid: group-limited routing needs >= 2 experts per group");
    for (int64_t e = 0; e < s.experts; e++) need(std::isfinite(bias[e]), "routeSigmoid: bias must be finite");
    return num(env, (double)choice().kernels->route_sigmoid(logits, s, bias, indices, weights, scores));
  });
}

// setFractionPowers(table: Float64Array(32)): src/sigmoid.ts' 2^(j/32) as V8 computed them.
napi_value SetFractionPowers(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 1, "setFractionPowers");
    size_t n;
    const double* t = a.typed<double>(0, napi_float64_array, &n, "table");
    need(n == 32, "setFractionPowers: the table must have 32 entries");
    octet_router::set_fraction_powers(t);
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
  });
}

// sigmoidF32(x: Float32Array) -> Float32Array, the scalar C++ sigmoid (for tests).
napi_value SigmoidF32(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 1, "sigmoidF32");
    size_t n;
    const float* x = a.typed<float>(0, napi_float32_array, &n, "x");
    float* y;
    napi_value out = new_typed(env, napi_float32_array, n, &y);
    for (size_t i = 0; i < n; i++) y[i] = octet_router::sigmoid_f32(x[i]);
    return out;
  });
}

napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    bool compiled[3];
    for (int i = 0; i < 3; i++) compiled[i] = kCompiled[i] != nullptr;
    return octet_native::build_info(env, octet_router::pool().threads(), choice().isa, choice().kernels->description, compiled);
  });
}

napi_value Init(napi_env env, napi_value exports) {
  // A bad or unsupported OCTET_NATIVE_ISA makes require() throw a RangeError (the loader reports it).
  if (!guarded(env, [&] {
        choice();
        return exports;
      }))
    return nullptr;
  const napi_property_descriptor props[] = {
      {"routeSigmoid", nullptr, RouteSigmoid, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setFractionPowers", nullptr, SetFractionPowers, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sigmoidF32", nullptr, SigmoidF32, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
