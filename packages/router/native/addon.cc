// Node-API bindings of the router's native CPU kernel (module octet_router).
#define NAPI_VERSION 8
#include <node_api.h>

#include <cmath>
#include <new>
#include <stdexcept>
#include <string>
#include "common.h"

#ifndef OCTET_BUILD_FLAGS
#define OCTET_BUILD_FLAGS "unknown"
#endif

namespace {

struct JsError : std::runtime_error {
  bool range;
  JsError(const std::string& m, bool r) : std::runtime_error(m), range(r) {}
};
[[noreturn]] void type_error(const std::string& m) { throw JsError(m, false); }
[[noreturn]] void range_error(const std::string& m) { throw JsError(m, true); }

void check(napi_status s, const char* what) {
  if (s != napi_ok) type_error(std::string("N-API call failed: ") + what);
}

struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  Args(napi_env e, napi_callback_info info, size_t want, const char* fn) : env(e) {
    check(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "get_cb_info");
    if (argc < want) type_error(std::string(fn) + ": expected " + std::to_string(want) + " arguments, got " + std::to_string(argc));
    for (size_t i = argc; i < 16; i++) napi_get_undefined(env, &argv[i]);
  }
  bool nullish(size_t i) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t == napi_null || t == napi_undefined;
  }
  template <class T>
  T* typed(size_t i, napi_typedarray_type want, size_t* length, const char* name) {
    bool is = false;
    check(napi_is_typedarray(env, argv[i], &is), "is_typedarray");
    napi_typedarray_type type;
    void* data = nullptr;
    if (is) check(napi_get_typedarray_info(env, argv[i], &type, length, &data, nullptr, nullptr), "typedarray_info");
    if (!is || type != want) type_error(std::string(name) + " has the wrong typed-array type");
    return static_cast<T*>(data);
  }
  int64_t integer(size_t i, const char* name, int64_t min) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v) || v != std::floor(v) || v < (double)min || v > 2147483647.0)
      range_error(std::string(name) + " must be an integer >= " + std::to_string(min));
    return (int64_t)v;
  }
  double number(size_t i, const char* name) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v)) range_error(std::string(name) + " must be a finite number");
    return v;
  }
  bool boolean(size_t i, const char* name) {
    bool b = false;
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    if (t != napi_boolean) type_error(std::string(name) + " must be a boolean");
    napi_get_value_bool(env, argv[i], &b);
    return b;
  }
};

void set(napi_env env, napi_value obj, const char* key, napi_value v) { check(napi_set_named_property(env, obj, key, v), key); }
napi_value num(napi_env env, double v) { napi_value r; napi_create_double(env, v, &r); return r; }

template <class F>
napi_value guarded(napi_env env, F&& f) {
  try {
    return f();
  } catch (const JsError& e) {
    if (e.range) napi_throw_range_error(env, nullptr, e.what()); else napi_throw_type_error(env, nullptr, e.what());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "octet_router: out of memory");
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

void need(bool ok, const std::string& m) { if (!ok) range_error(m); }

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
    return num(env, (double)octet_router::route_sigmoid(logits, s, bias, indices, weights, scores));
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
    napi_value ab, out;
    void* raw = nullptr;
    check(napi_create_arraybuffer(env, n * sizeof(float), &raw, &ab), "create_arraybuffer");
    check(napi_create_typedarray(env, napi_float32_array, n, ab, 0, &out), "create_typedarray");
    float* y = static_cast<float*>(raw);
    for (size_t i = 0; i < n; i++) y[i] = octet_router::sigmoid_f32(x[i]);
    return out;
  });
}

napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    napi_value out, s;
    napi_create_object(env, &out);
    set(env, out, "threads", num(env, octet_router::pool().threads()));
    napi_create_string_utf8(env, octet_router::isa_description(), NAPI_AUTO_LENGTH, &s);
    set(env, out, "isa", s);
    napi_create_string_utf8(env, OCTET_BUILD_FLAGS, NAPI_AUTO_LENGTH, &s);
    set(env, out, "flags", s);
    napi_create_string_utf8(env, "g++ " __VERSION__, NAPI_AUTO_LENGTH, &s);
    set(env, out, "compiler", s);
    return out;
  });
}

napi_value Init(napi_env env, napi_value exports) {
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
