// Node-API helpers shared by Octet's native addons (@octet/numerics, @octet/router): argument readers that
// throw a TypeError or RangeError naming the argument, typed-array allocation, the guard that turns C++
// exceptions into JavaScript errors, and the info() object. Header-only, hidden visibility (see pool.h).
//
// Each function of an addon runs its body inside guarded(env, [&] { ... }); the readers and need() throw
// JsError, which guarded() rethrows into JavaScript as a TypeError or RangeError.
#pragma once
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "isa.h"

#ifndef NODE_GYP_MODULE_NAME
#error "octet/native/napi.h is for node-gyp builds, which define NODE_GYP_MODULE_NAME"
#endif
// The compiler flags of the build, set by binding.gyp and reported by info().
#ifndef OCTET_BUILD_FLAGS
#define OCTET_BUILD_FLAGS "unknown"
#endif
#define OCTET_NATIVE_STRINGIFY_(x) #x
#define OCTET_NATIVE_STRINGIFY(x) OCTET_NATIVE_STRINGIFY_(x)

#pragma GCC visibility push(hidden)

namespace octet_native {

struct JsError : std::runtime_error {
  bool range;  // RangeError when true, TypeError otherwise
  JsError(const std::string& m, bool r) : std::runtime_error(m), range(r) {}
};
[[noreturn]] inline void type_error(const std::string& m) { throw JsError(m, false); }
[[noreturn]] inline void range_error(const std::string& m) { throw JsError(m, true); }

// A RangeError with message m unless ok.
inline void need(bool ok, const std::string& m) { if (!ok) range_error(m); }

inline void check(napi_status s, const char* what) {
  if (s != napi_ok) type_error(std::string("N-API call failed: ") + what);
}

// The arguments of one call. Missing arguments past `want` read as undefined.
struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];

  Args(napi_env e, napi_callback_info info, size_t want, const char* fn) : env(e) {
    check(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "get_cb_info");
    if (argc < want) type_error(std::string(fn) + ": expected " + std::to_string(want) + " arguments, got " + std::to_string(argc));
    for (size_t i = argc; i < 16; i++) napi_get_undefined(env, &argv[i]);
  }

  napi_valuetype type_of(size_t i) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t;
  }
  bool undefined(size_t i) { return type_of(i) == napi_undefined; }
  bool nullish(size_t i) {
    const napi_valuetype t = type_of(i);
    return t == napi_null || t == napi_undefined;
  }

  // The data of a typed array of the given type (its element count in *length); a TypeError otherwise.
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

  // An integer number in [min, max]; a RangeError otherwise (the message names only the lower bound).
  int64_t integer(size_t i, const char* name, int64_t min, double max) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v) || v != std::floor(v) || v < (double)min || v > max)
      range_error(std::string(name) + " must be an integer >= " + std::to_string(min));
    return (int64_t)v;
  }

  // A finite number; a RangeError otherwise.
  double number(size_t i, const char* name) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v)) range_error(std::string(name) + " must be a finite number");
    return v;
  }

  // A boolean; a TypeError otherwise.
  bool boolean(size_t i, const char* name) {
    if (type_of(i) != napi_boolean) type_error(std::string(name) + " must be a boolean");
    bool b = false;
    napi_get_value_bool(env, argv[i], &b);
    return b;
  }

  // true only for the boolean true (optional flags: anything else, undefined included, is false).
  bool flag(size_t i) {
    bool b = false;
    if (type_of(i) == napi_boolean) napi_get_value_bool(env, argv[i], &b);
    return b;
  }
};

// A new typed array of n elements of T; *data points at its (uninitialized) storage.
template <class T>
napi_value new_typed(napi_env env, napi_typedarray_type type, size_t n, T** data) {
  napi_value ab, out;
  void* raw = nullptr;
  check(napi_create_arraybuffer(env, n * sizeof(T), &raw, &ab), "create_arraybuffer");
  check(napi_create_typedarray(env, type, n, ab, 0, &out), "create_typedarray");
  *data = static_cast<T*>(raw);
  return out;
}

inline void set(napi_env env, napi_value obj, const char* key, napi_value v) { check(napi_set_named_property(env, obj, key, v), key); }
inline napi_value num(napi_env env, double v) { napi_value r; napi_create_double(env, v, &r); return r; }

// Runs f() and returns its value; a C++ exception becomes a pending JavaScript error (and nullptr).
template <class F>
napi_value guarded(napi_env env, F&& f) {
  try {
    return f();
  } catch (const JsError& e) {
    if (e.range) napi_throw_range_error(env, nullptr, e.what()); else napi_throw_type_error(env, nullptr, e.what());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, OCTET_NATIVE_STRINGIFY(NODE_GYP_MODULE_NAME) ": out of memory");
  } catch (const std::invalid_argument& e) {  // e.g. select_isa's "OCTET_NATIVE_ISA must be ..."
    napi_throw_range_error(env, nullptr, e.what());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

// What an addon's info() reports: { threads, isa, kernels, supported, flags, compiler } — the instruction
// set this process runs (isa_name), what its kernels are (a sentence), the instruction sets that this build
// has and this CPU runs (each can be forced with OCTET_NATIVE_ISA), the build's flags and compiler.
inline napi_value build_info(napi_env env, int threads, Isa isa, const char* kernels, const bool (&compiled)[3]) {
  napi_value out, s, list;
  napi_create_object(env, &out);
  set(env, out, "threads", num(env, threads));
  napi_create_string_utf8(env, isa_name(isa), NAPI_AUTO_LENGTH, &s);
  set(env, out, "isa", s);
  napi_create_string_utf8(env, kernels, NAPI_AUTO_LENGTH, &s);
  set(env, out, "kernels", s);
  napi_create_array(env, &list);
  uint32_t n = 0;
  for (Isa each : {Isa::avx512, Isa::avx2, Isa::scalar}) {
    if (!compiled[(int)each] || !cpu_supports(each)) continue;
    napi_create_string_utf8(env, isa_name(each), NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, list, n++, s);
  }
  set(env, out, "supported", list);
  napi_create_string_utf8(env, OCTET_BUILD_FLAGS, NAPI_AUTO_LENGTH, &s);
  set(env, out, "flags", s);
  napi_create_string_utf8(env, "g++ " __VERSION__, NAPI_AUTO_LENGTH, &s);
  set(env, out, "compiler", s);
  return out;
}

}  // namespace octet_native

#pragma GCC visibility pop
