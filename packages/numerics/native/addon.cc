// Node-API bindings of the native CPU kernels (module octet_numerics). The argument readers, the error guard
// and info()'s object come from @octet/native-common (include/octet/native/napi.h). The kernels are compiled
// once per instruction set; Init picks one copy for the process (octet/native/isa.h: the best the CPU runs,
// or OCTET_NATIVE_ISA).
#include <octet/native/napi.h>

#include <string>
#include "common.h"

namespace {

// The copies of the kernels in this build, indexed by octet_native::Isa (scalar, avx2, avx512).
const octet::Kernels* const kCompiled[3] = {
    &octet::scalar::kernels,
#if defined(OCTET_HAVE_AVX2)
    &octet::avx2::kernels,
#else
    nullptr,
#endif
#if defined(OCTET_HAVE_AVX512)
    &octet::avx512::kernels,
#else
    nullptr,
#endif
};

// The copy this process runs (octet/native/isa.h: chosen once per process).
const octet_native::KernelChoice<octet::Kernels>& choice() { return octet_native::choose_kernels(kCompiled); }
const octet::Kernels& kernels() { return *choice().kernels; }

using octet_native::guarded;
using octet_native::need;
using octet_native::new_typed;
using octet_native::num;
using octet_native::range_error;
using octet_native::set;

// The numerics kernels take sizes up to 2^53 - 1 (JavaScript's safe integers) and FP8 format codes; their
// boolean options are optional flags (Args::flag).
struct Args : octet_native::Args {
  using octet_native::Args::Args;
  int64_t integer(size_t i, const char* name, int64_t min) { return octet_native::Args::integer(i, name, min, 9007199254740991.0); }
  int format(size_t i, const char* name) {
    int64_t f = integer(i, name, 0);
    if (f > 1) range_error(std::string(name) + " must be 0 (e4m3) or 1 (e5m2)");
    return (int)f;
  }
};

// quantize(x, rows, cols, blockRows, blockCols, format, pow2) -> { data, scales, firstNonFinite }
napi_value Quantize(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 7, "quantize");
    size_t n;
    const float* x = a.typed<float>(0, napi_float32_array, &n, "x");
    const int64_t rows = a.integer(1, "rows", 1), cols = a.integer(2, "cols", 1);
    const int64_t br = a.integer(3, "blockRows", 1), bc = a.integer(4, "blockCols", 1);
    const int fmt = a.format(5, "format");
    const bool pow2 = a.flag(6);
    need((int64_t)n == rows * cols, "quantize: x.length must equal rows * cols");
    const int64_t grid = ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
    uint8_t* data; float* scales;
    napi_value vd = new_typed(env, napi_uint8_array, rows * cols, &data);
    napi_value vs = new_typed(env, napi_float32_array, grid, &scales);
    const int64_t first = kernels().quantize(x, rows, cols, br, bc, fmt, pow2, data, scales);
    napi_value out;
    napi_create_object(env, &out);
    set(env, out, "data", vd);
    set(env, out, "scales", vs);
    set(env, out, "firstNonFinite", num(env, (double)first));
    return out;
  });
}

// quantizeTiledBoth(x, rows, cols, format = 0, pow2 = false) -> { rowwise: {data, scales}, colwise: {data, scales}, firstNonFinite }
napi_value QuantizeTiledBoth(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 3, "quantizeTiledBoth");
    size_t n;
    const float* x = a.typed<float>(0, napi_float32_array, &n, "x");
    const int64_t rows = a.integer(1, "rows", 1), cols = a.integer(2, "cols", 1);
    const int fmt = a.undefined(3) ? 0 : a.format(3, "format");
    const bool pow2 = a.flag(4);
    need((int64_t)n == rows * cols, "quantizeTiledBoth: x.length must equal rows * cols");
    uint8_t *rd, *cd; float *rs, *cs;
    napi_value vrd = new_typed(env, napi_uint8_array, rows * cols, &rd);
    napi_value vrs = new_typed(env, napi_float32_array, rows * ((cols + 127) / 128), &rs);
    napi_value vcd = new_typed(env, napi_uint8_array, rows * cols, &cd);
    napi_value vcs = new_typed(env, napi_float32_array, ((rows + 127) / 128) * cols, &cs);
    const int64_t first = kernels().quantize_tiled_both(x, rows, cols, fmt, pow2, rd, rs, cd, cs);
    napi_value out, rw, cw;
    napi_create_object(env, &out);
    napi_create_object(env, &rw);
    napi_create_object(env, &cw);
    set(env, rw, "data", vrd); set(env, rw, "scales", vrs);
    set(env, cw, "data", vcd); set(env, cw, "scales", vcs);
    set(env, out, "rowwise", rw);
    set(env, out, "colwise", cw);
    set(env, out, "firstNonFinite", num(env, (double)first));
    return out;
  });
}

// scaledMatmul(aData, aScales, M, K, aBlockRows, aBlockCols, aFormat, bData, bScales, N, bBlockRows, bBlockCols, bFormat, promoteEvery)
napi_value ScaledMatmul(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 13, "scaledMatmul");
    size_t na, nas, nb, nbs;
    const uint8_t* ad = a.typed<uint8_t>(0, napi_uint8_array, &na, "aData");
    const float* as = a.typed<float>(1, napi_float32_array, &nas, "aScales");
    const int64_t M = a.integer(2, "M", 1), K = a.integer(3, "K", 1);
    const int64_t abr = a.integer(4, "aBlockRows", 1), abc = a.integer(5, "aBlockCols", 1);
    const int afmt = a.format(6, "aFormat");
    const uint8_t* bd = a.typed<uint8_t>(7, napi_uint8_array, &nb, "bData");
    const float* bs = a.typed<float>(8, napi_float32_array, &nbs, "bScales");
    const int64_t N = a.integer(9, "N", 1);
    const int64_t bbr = a.integer(10, "bBlockRows", 1), bbc = a.integer(11, "bBlockCols", 1);
    const int bfmt = a.format(12, "bFormat");
    const int64_t P = a.undefined(13) ? 128 : a.integer(13, "promoteEvery", 1);
    need((int64_t)na == M * K, "scaledMatmul: aData.length must equal M * K");
    need((int64_t)nb == N * K, "scaledMatmul: bData.length must equal N * K");
    need((int64_t)nas == ((M + abr - 1) / abr) * ((K + abc - 1) / abc), "scaledMatmul: aScales has the wrong length");
    need((int64_t)nbs == ((N + bbr - 1) / bbr) * ((K + bbc - 1) / bbc), "scaledMatmul: bScales has the wrong length");
    need(abc % P == 0 && bbc % P == 0, "scaledMatmul: promoteEvery must divide both operands' block columns");
    float* c;
    napi_value out = new_typed(env, napi_float32_array, M * N, &c);
    kernels().scaled_matmul(ad, as, M, K, abr, abc, afmt, bd, bs, N, bbr, bbc, bfmt, P, c);
    return out;
  });
}

template <class T, napi_typedarray_type TYPE, class F>
napi_value plain_matmul(napi_env env, napi_callback_info info, const char* fn, F&& kernel) {
  return guarded(env, [&] {
    Args a(env, info, 5, fn);
    size_t na, nb;
    const T* x = a.typed<T>(0, TYPE, &na, "a");
    const T* y = a.typed<T>(1, TYPE, &nb, "b");
    const int64_t M = a.integer(2, "M", 1), N = a.integer(3, "N", 1), K = a.integer(4, "K", 1);
    need((int64_t)na == M * K && (int64_t)nb == N * K, std::string(fn) + ": a must have M*K and b N*K elements");
    float* c;
    napi_value out = new_typed(env, napi_float32_array, M * N, &c);
    kernel(x, y, M, N, K, c);
    return out;
  });
}

napi_value MatmulF32(napi_env env, napi_callback_info info) {
  return plain_matmul<float, napi_float32_array>(env, info, "matmulF32", kernels().matmul_f32);
}
napi_value MatmulBf16(napi_env env, napi_callback_info info) {
  return plain_matmul<uint16_t, napi_uint16_array>(env, info, "matmulBf16", kernels().matmul_bf16);
}

napi_value EncodeFp8(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 2, "encodeFp8");
    size_t n;
    const float* x = a.typed<float>(0, napi_float32_array, &n, "x");
    const int fmt = a.format(1, "format");
    uint8_t* out;
    napi_value v = new_typed(env, napi_uint8_array, n, &out);
    kernels().encode_fp8_array(x, (int64_t)n, fmt, a.flag(2), out);
    return v;
  });
}

napi_value DecodeFp8(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 2, "decodeFp8");
    size_t n;
    const uint8_t* x = a.typed<uint8_t>(0, napi_uint8_array, &n, "codes");
    const int fmt = a.format(1, "format");
    float* out;
    napi_value v = new_typed(env, napi_float32_array, n, &out);
    kernels().decode_fp8_array(x, (int64_t)n, fmt, out);
    return v;
  });
}

napi_value EncodeBf16(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 1, "encodeBf16");
    size_t n;
    const float* x = a.typed<float>(0, napi_float32_array, &n, "x");
    uint16_t* out;
    napi_value v = new_typed(env, napi_uint16_array, n, &out);
    kernels().encode_bf16_array(x, (int64_t)n, out);
    return v;
  });
}

napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    bool compiled[3];
    for (int i = 0; i < 3; i++) compiled[i] = kCompiled[i] != nullptr;
    return octet_native::build_info(env, octet::pool().threads(), choice().isa, kernels().description, compiled);
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
      {"quantize", nullptr, Quantize, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"quantizeTiledBoth", nullptr, QuantizeTiledBoth, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"scaledMatmul", nullptr, ScaledMatmul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulF32", nullptr, MatmulF32, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulBf16", nullptr, MatmulBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"encodeFp8", nullptr, EncodeFp8, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeFp8", nullptr, DecodeFp8, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"encodeBf16", nullptr, EncodeBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
