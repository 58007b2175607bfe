// The Node-API face of the model's op kernels (attention, elementwise ops, loss, gate): octet_model_cuda.node.
// Every kernel has a C ABI of raw device pointers, sizes and a stream; this file binds each one with ONE generic
// converter deduced from the function's own signature, so a binding is a line and cannot disagree with the header:
//   pointer parameters  <- bigint (a device address from @octet/numerics' devicePointer) or null
//   integer parameters  <- a JS number that is an integer in the parameter type's range
//   float / double      <- a JS number
//   cudaStream_t        <- bigint (@octet/numerics' deviceStream: the process's one stream)
// The memory is @octet/numerics' (its stream-ordered pool); this addon never allocates, copies or synchronizes, so
// a training step made of these calls can be captured as a CUDA graph. A kernel that refuses its arguments
// (cudaErrorInvalidValue) or fails to launch throws an Error naming the kernel and the CUDA error.

#include <cuda_runtime.h>
#include <node_api.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "attention.h"
#include "gate.h"
#include "grouped.h"
#include "loss.h"
#include "ops.h"

namespace {

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string arg_name(const char* fn, size_t i) { return std::string(fn) + ": argument " + std::to_string(i); }

template <typename T>
T convert(napi_env env, napi_value v, const char* fn, size_t i) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if constexpr (std::is_pointer_v<T>) {
    if (type == napi_null) return nullptr;
    if (type != napi_bigint) throw ArgError(arg_name(fn, i) + " must be a device address (bigint) or null");
    uint64_t raw = 0;
    bool lossless = false;
    napi_get_value_bigint_uint64(env, v, &raw, &lossless);
    if (!lossless) throw ArgError(arg_name(fn, i) + " is not a 64-bit address");
    return reinterpret_cast<T>(static_cast<uintptr_t>(raw));
  } else if constexpr (std::is_integral_v<T>) {
    if (type != napi_number) throw ArgError(arg_name(fn, i) + " must be a number");
    double d = 0;
    napi_get_value_double(env, v, &d);
    if (!(d == static_cast<double>(static_cast<int64_t>(d))) || d < static_cast<double>(std::numeric_limits<T>::min()) ||
        d > static_cast<double>(std::numeric_limits<T>::max())) {
      throw ArgError(arg_name(fn, i) + " must be an integer in range, got " + std::to_string(d));
    }
    return static_cast<T>(d);
  } else {
    static_assert(std::is_floating_point_v<T>, "unsupported kernel parameter type");
    if (type != napi_number) throw ArgError(arg_name(fn, i) + " must be a number");
    double d = 0;
    napi_get_value_double(env, v, &d);
    return static_cast<T>(d);
  }
}

napi_value throw_error(napi_env env, const std::string& m, bool type_error) {
  if (type_error) napi_throw_type_error(env, nullptr, m.c_str());
  else napi_throw_error(env, nullptr, m.c_str());
  return nullptr;
}

template <typename R, typename... A, size_t... I>
napi_value invoke(napi_env env, napi_callback_info info, const char* name, R (*fn)(A...), std::index_sequence<I...>) {
  constexpr size_t n = sizeof...(A);
  size_t argc = n;
  napi_value argv[n > 0 ? n : 1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != n) return throw_error(env, std::string(name) + ": expected " + std::to_string(n) + " arguments, got " + std::to_string(argc), true);
  try {
    std::tuple<A...> args{convert<A>(env, argv[I], name, I)...};
    if constexpr (std::is_same_v<R, cudaError_t>) {
      const cudaError_t e = std::apply(fn, args);
      if (e != cudaSuccess) {
        cudaGetLastError();
        return throw_error(env, std::string(name) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e), false);
      }
      napi_value undef;
      napi_get_undefined(env, &undef);
      return undef;
    } else {
      static_assert(std::is_integral_v<R>, "a kernel returns cudaError_t or a size");
      napi_value out;
      napi_create_double(env, static_cast<double>(std::apply(fn, args)), &out);
      return out;
    }
  } catch (const ArgError& e) {
    return throw_error(env, e.what(), true);
  }
}

template <auto Fn>
struct Binding;
template <typename R, typename... A, R (*Fn)(A...)>
struct Binding<Fn> {
  static const char* name;
  static napi_value call(napi_env env, napi_callback_info info) {
    return invoke(env, info, name, Fn, std::index_sequence_for<A...>{});
  }
};
template <typename R, typename... A, R (*Fn)(A...)>
const char* Binding<Fn>::name = "";

#define BIND(js, fn) \
  (Binding<&fn>::name = #fn, napi_property_descriptor{js, nullptr, Binding<&fn>::call, nullptr, nullptr, nullptr, napi_enumerable, nullptr})

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
#include "addon_bindings.inc"
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(octet_model_cuda, Init)
