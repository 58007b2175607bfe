// Node-API bindings of the CUDA backend (module octet_numerics_cuda). Host code only: the kernels live in
// quantize.cu / util.cu, cuBLASLt in cublaslt.cu (or cublaslt_stub.cu), the Hopper GEMMs in gemm_sm90.cu.
//
// Device memory is held by handles (napi_external) freed by free() or by the garbage collector's finalizer.
// All work runs on one non-blocking stream, in call order; host↔device copies are explicit (upload/download).
// Loading the module touches no CUDA API: status() says whether a device is usable and why not, and every other
// call throws an Error naming the failing CUDA call. Argument errors are TypeError / RangeError.
#define NAPI_VERSION 8
#include <node_api.h>

#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>
#include "common.cuh"
#include "kernels.h"

#ifdef OCTET_HAVE_SM90
#include "gemm_sm90.h"
#endif

// The FP32 GEMM of cublaslt.cu (cublaslt_stub.cu: why it is unavailable), declared here beside its one caller.
namespace octet_cuda {
namespace lt {
std::string gemm_f32(const float* a, const float* b, float* d, int64_t M, int64_t N, int64_t K, cudaStream_t stream);
}  // namespace lt
}  // namespace octet_cuda

using namespace octet_cuda;

namespace {

// ---- errors ---------------------------------------------------------------------------------------------------------
struct JsError : std::runtime_error {
  int kind;  // 0 Error, 1 TypeError, 2 RangeError
  JsError(const std::string& m, int k) : std::runtime_error(m), kind(k) {}
};
[[noreturn]] void fail(const std::string& m) { throw JsError(m, 0); }
[[noreturn]] void type_error(const std::string& m) { throw JsError(m, 1); }
[[noreturn]] void range_error(const std::string& m) { throw JsError(m, 2); }

void cuda_check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    fail(what + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
}

void napi_check(napi_status s, const char* what) {
  if (s != napi_ok) type_error(std::string("N-API call failed: ") + what);
}

// ---- context ----------------------------------------------------------------------------------------------------------
struct Ctx {
  bool tried = false;
  std::string unavailable;  // empty: usable
  int device = 0;
  cudaDeviceProp prop{};
  int driver = 0, runtime = 0;
  cudaStream_t stream = nullptr;
  QuantStatus* qstatus = nullptr;         // device
  unsigned long long* scratch = nullptr;  // device, 8 words
  void* sm90_ws = nullptr;
  size_t sm90_ws_bytes = 0;
  bool capturing = false;
  std::vector<void*> deferred;  // frees requested (by the GC) while a graph was being captured
};
Ctx& ctx() {
  static Ctx c;
  return c;
}

void try_init() {
  Ctx& c = ctx();
  if (c.tried) return;
  c.tried = true;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    c.unavailable = std::string("no usable CUDA device: cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return;
  }
  if (count < 1) {
    c.unavailable = "no CUDA device (cudaGetDeviceCount returned 0)";
    return;
  }
  cudaDriverGetVersion(&c.driver);
  cudaRuntimeGetVersion(&c.runtime);
  if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaGetDeviceProperties(&c.prop, 0)) != cudaSuccess ||
      (e = cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking)) != cudaSuccess ||
      (e = cudaMalloc(reinterpret_cast<void**>(&c.qstatus), sizeof(QuantStatus))) != cudaSuccess ||
      (e = cudaMalloc(reinterpret_cast<void**>(&c.scratch), 8 * sizeof(unsigned long long))) != cudaSuccess) {
    cudaGetLastError();
    c.unavailable = std::string("CUDA device 0 could not be set up: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return;
  }
  // One stream-ordered allocator for the process: the device's default memory pool, which keeps freed memory
  // for reuse (release threshold: never) instead of returning it to the driver at every synchronization. The
  // model's addon allocates nothing itself; every device tensor of the process comes from here.
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  cudaGetLastError();
  if (c.prop.major < 9) {
    c.unavailable = std::string("device 0 (") + c.prop.name + ") has compute capability " + std::to_string(c.prop.major) +
                    "." + std::to_string(c.prop.minor) + "; this addon is built for sm_90a (Hopper) only";
  }
}

Ctx& ready() {
  try_init();
  Ctx& c = ctx();
  if (!c.unavailable.empty()) fail("CUDA backend unavailable: " + c.unavailable);
  return c;
}

void no_capture(const char* what) {
  if (ctx().capturing) fail(std::string(what) + " is not allowed while a CUDA graph is being captured (it synchronizes or allocates); do it before captureBegin()");
}

void sync_stream(const char* after) {
  cuda_check(cudaStreamSynchronize(ctx().stream), std::string("cudaStreamSynchronize (after ") + after + ")");
}

// ---- handles ------------------------------------------------------------------------------------------------------------
struct DevBuf {
  void* ptr = nullptr;
  size_t bytes = 0;
};

void free_ptr(void* p) {
  if (!p) return;
  if (ctx().capturing) ctx().deferred.push_back(p);
  else cudaFreeAsync(p, ctx().stream);  // stream-ordered: after the work already queued that may read it
}

void finalize_buf(napi_env, void* data, void*) {
  DevBuf* b = static_cast<DevBuf*>(data);
  free_ptr(b->ptr);
  delete b;
}

struct EventBox {
  cudaEvent_t ev = nullptr;
};
void finalize_event(napi_env, void* data, void*) {
  EventBox* e = static_cast<EventBox*>(data);
  if (e->ev) cudaEventDestroy(e->ev);
  delete e;
}
struct GraphBox {
  cudaGraphExec_t exec = nullptr;
};
void finalize_graph(napi_env, void* data, void*) {
  GraphBox* g = static_cast<GraphBox*>(data);
  if (g->exec) cudaGraphExecDestroy(g->exec);
  delete g;
}

// Type tags tell our externals apart (a handle of one kind passed where another is expected is a TypeError).
const napi_type_tag kBufTag = {0x6f63746574627566ull, 0x0000000000000001ull};
const napi_type_tag kEventTag = {0x6f63746574627566ull, 0x0000000000000002ull};
const napi_type_tag kGraphTag = {0x6f63746574627566ull, 0x0000000000000003ull};

// ---- arguments ------------------------------------------------------------------------------------------------------------
struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  const char* fn;
  Args(napi_env e, napi_callback_info info, size_t want, const char* name) : env(e), fn(name) {
    napi_check(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "get_cb_info");
    if (argc < want) type_error(std::string(fn) + ": expected " + std::to_string(want) + " arguments, got " + std::to_string(argc));
    for (size_t i = argc; i < 16; i++) napi_get_undefined(env, &argv[i]);
  }
  std::string label(const char* name) const { return std::string(fn) + ": " + name; }
  template <class T>
  T* external(size_t i, const napi_type_tag& tag, const char* name, const char* kind) {
    napi_valuetype t;
    napi_check(napi_typeof(env, argv[i], &t), "typeof");
    bool ok = false;
    if (t == napi_external) napi_check(napi_check_object_type_tag(env, argv[i], &tag, &ok), "check_object_type_tag");
    if (!ok) type_error(label(name) + " must be a " + kind + " handle");
    void* p = nullptr;
    napi_check(napi_get_value_external(env, argv[i], &p), "get_value_external");
    return static_cast<T*>(p);
  }
  DevBuf* buf(size_t i, const char* name, size_t need_bytes) {
    DevBuf* b = external<DevBuf>(i, kBufTag, name, "device buffer");
    if (!b->ptr) fail(label(name) + " was freed");
    if (b->bytes < need_bytes)
      range_error(label(name) + " holds " + std::to_string(b->bytes) + " bytes but " + std::to_string(need_bytes) + " are needed");
    return b;
  }
  bool is_undefined(size_t i) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t == napi_undefined || t == napi_null;
  }
  int64_t integer(size_t i, const char* name, int64_t min, int64_t max = 9007199254740991ll) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v) || v != std::floor(v) || v < (double)min || v > (double)max)
      range_error(label(name) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return (int64_t)v;
  }
  double number(size_t i, const char* name) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok || !std::isfinite(v)) range_error(label(name) + " must be a finite number");
    return v;
  }
  bool boolean(size_t i) {
    bool b = false;
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    if (t == napi_boolean) napi_get_value_bool(env, argv[i], &b);
    return b;
  }
  int fmt(size_t i, const char* name) { return (int)integer(i, name, 0, 1); }
  int float_dtype(size_t i, const char* name) {
    const int d = (int)integer(i, name, 0, 5);
    if (d != DT_F32 && d != DT_BF16) type_error(label(name) + " must be float32 (0) or bfloat16 (1)");
    return d;
  }
  void* typed(size_t i, const char* name, size_t* bytes) {
    bool is = false;
    napi_check(napi_is_typedarray(env, argv[i], &is), "is_typedarray");
    if (!is) type_error(label(name) + " must be a typed array");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t offset;
    napi_check(napi_get_typedarray_info(env, argv[i], &type, &length, &data, &ab, &offset), "typedarray_info");
    size_t elt = 1;
    switch (type) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: elt = 1; break;
      case napi_int16_array: case napi_uint16_array: elt = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elt = 4; break;
      default: elt = 8;
    }
    *bytes = length * elt;
    return data;
  }
};

size_t elt_size(int dtype) { return dtype == DT_F32 || dtype == DT_I32 ? 4 : dtype == DT_BF16 ? 2 : 1; }

napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}
napi_value str(napi_env env, const std::string& s) {
  napi_value r;
  napi_create_string_utf8(env, s.c_str(), s.size(), &r);
  return r;
}
napi_value boolean(napi_env env, bool b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}
napi_value undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}
void set(napi_env env, napi_value obj, const char* key, napi_value v) { napi_check(napi_set_named_property(env, obj, key, v), key); }
napi_value object(napi_env env) {
  napi_value o;
  napi_check(napi_create_object(env, &o), "create_object");
  return o;
}

template <class F>
napi_value guarded(napi_env env, F&& f) {
  try {
    return f();
  } catch (const JsError& e) {
    if (e.kind == 2) napi_throw_range_error(env, nullptr, e.what());
    else if (e.kind == 1) napi_throw_type_error(env, nullptr, e.what());
    else napi_throw_error(env, nullptr, e.what());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "octet_numerics_cuda: host out of memory");
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

#define NAPI_FN(name) napi_value name(napi_env env, napi_callback_info info)

// ---- status ---------------------------------------------------------------------------------------------------------------
std::string sm90_reason() {
#ifdef OCTET_HAVE_SM90
  return "";
#else
  return "gemm_sm90.cu was not present when build.sh ran";
#endif
}

NAPI_FN(Status) {
  return guarded(env, [&] {
    (void)info;
    try_init();
    Ctx& c = ctx();
    napi_value out = object(env);
    set(env, out, "available", boolean(env, c.unavailable.empty()));
    set(env, out, "reason", c.unavailable.empty() ? undefined(env) : str(env, c.unavailable));
    if (c.prop.name[0]) {
      set(env, out, "device", str(env, c.prop.name));
      set(env, out, "computeCapability", str(env, std::to_string(c.prop.major) + "." + std::to_string(c.prop.minor)));
      set(env, out, "multiprocessors", num(env, c.prop.multiProcessorCount));
      set(env, out, "memoryBytes", num(env, (double)c.prop.totalGlobalMem));
      set(env, out, "l2Bytes", num(env, c.prop.l2CacheSize));
    }
    set(env, out, "driverVersion", num(env, c.driver));
    set(env, out, "runtimeVersion", num(env, c.runtime));
    const std::string why = sm90_reason();
    napi_value sm90 = object(env);
    set(env, sm90, "built", boolean(env, why.empty()));
    set(env, sm90, "reason", why.empty() ? undefined(env) : str(env, why));
    set(env, out, "sm90", sm90);
    napi_value blas = object(env);
    set(env, blas, "built", boolean(env, lt::built()));
    set(env, blas, lt::built() ? "version" : "reason", str(env, lt::version()));
    set(env, out, "cublasLt", blas);
    return out;
  });
}

// ---- memory ---------------------------------------------------------------------------------------------------------------
NAPI_FN(Alloc) {
  return guarded(env, [&] {
    Args a(env, info, 1, "alloc");
    const int64_t bytes = a.integer(0, "bytes", 0);
    Ctx& c = ready();
    no_capture("alloc");
    DevBuf* b = new DevBuf();
    b->bytes = (size_t)bytes;
    const cudaError_t e = cudaMallocAsync(&b->ptr, bytes > 0 ? (size_t)bytes : 16, c.stream);
    if (e != cudaSuccess) {
      delete b;
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("cudaMalloc(" + std::to_string(bytes) + " bytes) failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
           " (" + std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) + " MiB on " + c.prop.name + ")");
    }
    napi_value out;
    if (napi_create_external(env, b, finalize_buf, nullptr, &out) != napi_ok) {
      cudaFreeAsync(b->ptr, c.stream);
      delete b;
      fail("napi_create_external failed");
    }
    napi_check(napi_type_tag_object(env, out, &kBufTag), "type_tag_object");
    return out;
  });
}

NAPI_FN(Free) {
  return guarded(env, [&] {
    Args a(env, info, 1, "free");
    DevBuf* b = a.external<DevBuf>(0, kBufTag, "handle", "device buffer");
    no_capture("free");
    if (b->ptr) cuda_check(cudaFreeAsync(b->ptr, ready().stream), "cudaFreeAsync(" + std::to_string(b->bytes) + " bytes)");
    b->ptr = nullptr;
    return undefined(env);
  });
}

// upload(handle, typedArray, byteOffset = 0)
NAPI_FN(Upload) {
  return guarded(env, [&] {
    Args a(env, info, 2, "upload");
    size_t bytes;
    const void* src = a.typed(1, "source", &bytes);
    const int64_t off = a.is_undefined(2) ? 0 : a.integer(2, "byteOffset", 0);
    DevBuf* b = a.buf(0, "handle", (size_t)off + bytes);
    Ctx& c = ready();
    no_capture("upload");
    // Pageable source: the call returns once the bytes are staged, so the array may change afterwards.
    cuda_check(cudaMemcpyAsync(static_cast<char*>(b->ptr) + off, src, bytes, cudaMemcpyHostToDevice, c.stream),
               "cudaMemcpyAsync(host→device, " + std::to_string(bytes) + " bytes)");
    sync_stream("upload");
    return undefined(env);
  });
}

// download(handle, typedArray, byteOffset = 0): fills the array from the buffer (waits for the stream).
NAPI_FN(Download) {
  return guarded(env, [&] {
    Args a(env, info, 2, "download");
    size_t bytes;
    void* dst = a.typed(1, "destination", &bytes);
    const int64_t off = a.is_undefined(2) ? 0 : a.integer(2, "byteOffset", 0);
    DevBuf* b = a.buf(0, "handle", (size_t)off + bytes);
    Ctx& c = ready();
    no_capture("download");
    cuda_check(cudaMemcpyAsync(dst, static_cast<const char*>(b->ptr) + off, bytes, cudaMemcpyDeviceToHost, c.stream),
               "cudaMemcpyAsync(device→host, " + std::to_string(bytes) + " bytes)");
    sync_stream("download");
    return undefined(env);
  });
}

// memset(handle, byte, bytes = all)
NAPI_FN(Memset) {
  return guarded(env, [&] {
    Args a(env, info, 2, "memset");
    DevBuf* b = a.buf(0, "handle", 0);
    const int v = (int)a.integer(1, "byte", 0, 255);
    const int64_t off = a.is_undefined(3) ? 0 : a.integer(3, "byteOffset", 0, (int64_t)b->bytes);
    const int64_t n = a.is_undefined(2) ? (int64_t)b->bytes - off : a.integer(2, "bytes", 0, (int64_t)b->bytes - off);
    Ctx& c = ready();
    cuda_check(cudaMemsetAsync(static_cast<char*>(b->ptr) + off, v, (size_t)n, c.stream), "cudaMemsetAsync(" + std::to_string(n) + " bytes)");
    return undefined(env);
  });
}

// copy(dst, src, bytes, dstOffset = 0, srcOffset = 0): device-to-device, on the stream.
NAPI_FN(Copy) {
  return guarded(env, [&] {
    Args a(env, info, 3, "copy");
    const int64_t n = a.integer(2, "bytes", 0);
    const int64_t doff = a.is_undefined(3) ? 0 : a.integer(3, "dstOffset", 0);
    const int64_t soff = a.is_undefined(4) ? 0 : a.integer(4, "srcOffset", 0);
    DevBuf* d = a.buf(0, "dst", (size_t)(doff + n));
    DevBuf* s = a.buf(1, "src", (size_t)(soff + n));
    Ctx& c = ready();
    cuda_check(cudaMemcpyAsync(static_cast<char*>(d->ptr) + doff, static_cast<const char*>(s->ptr) + soff, (size_t)n,
                               cudaMemcpyDeviceToDevice, c.stream),
               "cudaMemcpyAsync(device→device, " + std::to_string(n) + " bytes)");
    return undefined(env);
  });
}

// copy2d(dst, dstOffset, dstPitch, src, srcOffset, srcPitch, widthBytes, height): `height` rows of widthBytes
// each, row i from src + srcOffset + i·srcPitch to dst + dstOffset + i·dstPitch (cudaMemcpy2DAsync, device to
// device, on the stream): column slices, head splits and padding of row-major tensors in one call.
NAPI_FN(Copy2d) {
  return guarded(env, [&] {
    Args a(env, info, 8, "copy2d");
    const int64_t doff = a.integer(1, "dstOffset", 0), dpitch = a.integer(2, "dstPitch", 1);
    const int64_t soff = a.integer(4, "srcOffset", 0), spitch = a.integer(5, "srcPitch", 1);
    const int64_t width = a.integer(6, "widthBytes", 0), height = a.integer(7, "height", 0);
    if (width > dpitch || width > spitch) range_error("copy2d: widthBytes " + std::to_string(width) + " exceeds a pitch");
    const int64_t dneed = height == 0 ? 0 : doff + (height - 1) * dpitch + width;
    const int64_t sneed = height == 0 ? 0 : soff + (height - 1) * spitch + width;
    DevBuf* d = a.buf(0, "dst", (size_t)dneed);
    DevBuf* s = a.buf(3, "src", (size_t)sneed);
    Ctx& c = ready();
    if (width == 0 || height == 0) return undefined(env);
    cuda_check(cudaMemcpy2DAsync(static_cast<char*>(d->ptr) + doff, (size_t)dpitch, static_cast<const char*>(s->ptr) + soff,
                                 (size_t)spitch, (size_t)width, (size_t)height, cudaMemcpyDeviceToDevice, c.stream),
               "cudaMemcpy2DAsync(" + std::to_string(height) + " rows of " + std::to_string(width) + " bytes)");
    return undefined(env);
  });
}

NAPI_FN(Synchronize) {
  return guarded(env, [&] {
    (void)info;
    ready();
    no_capture("synchronize");
    sync_stream("synchronize");
    return undefined(env);
  });
}

// fillRandom(handle, dtype, n, seed, dist, scale)
NAPI_FN(FillRandom) {
  return guarded(env, [&] {
    Args a(env, info, 6, "fillRandom");
    const int dt = (int)a.integer(1, "dtype", 0, 4);
    const int64_t n = a.integer(2, "n", 0);
    DevBuf* b = a.buf(0, "handle", (size_t)n * elt_size(dt));
    const uint64_t seed = (uint64_t)a.integer(3, "seed", 0);
    const int dist = (int)a.integer(4, "dist", 0, 2);
    const float scale = (float)a.number(5, "scale");
    Ctx& c = ready();
    cuda_check(fill_random(b->ptr, dt, n, seed, dist, scale, c.stream), "fill_random kernel launch");
    return undefined(env);
  });
}

// countNaN(handle, dtype, n) -> number (waits for the stream)
NAPI_FN(CountNaN) {
  return guarded(env, [&] {
    Args a(env, info, 3, "countNaN");
    const int dt = a.float_dtype(1, "dtype");
    const int64_t n = a.integer(2, "n", 0);
    DevBuf* b = a.buf(0, "handle", (size_t)n * elt_size(dt));
    Ctx& c = ready();
    no_capture("countNaN");
    cuda_check(count_nan(b->ptr, dt, n, c.scratch, c.stream), "count_nan kernel launch");
    unsigned long long count = 0;
    cuda_check(cudaMemcpyAsync(&count, c.scratch, sizeof(count), cudaMemcpyDeviceToHost, c.stream), "cudaMemcpyAsync(NaN count)");
    sync_stream("count_nan");
    return num(env, (double)count);
  });
}

// ---- quantization ------------------------------------------------------------------------------------------------------------
void reset_qstatus(Ctx& c) {
  const QuantStatus init{0ull, ~0ull};
  cuda_check(cudaMemcpyAsync(c.qstatus, &init, sizeof(init), cudaMemcpyHostToDevice, c.stream), "cudaMemcpyAsync(reset quantize status)");
}

napi_value read_qstatus(napi_env env, Ctx& c, const char* after) {
  QuantStatus s{};
  cuda_check(cudaMemcpyAsync(&s, c.qstatus, sizeof(s), cudaMemcpyDeviceToHost, c.stream), "cudaMemcpyAsync(quantize status)");
  sync_stream(after);
  napi_value out = object(env);
  set(env, out, "count", num(env, (double)s.count));
  set(env, out, "first", num(env, s.count ? (double)s.first : -1.0));
  return out;
}

// quantize(x, inDtype, rows, cols, blockRows, blockCols, format, pow2, data, scales, check)
//   -> check ? { count, first } (non-finite inputs; waits for the stream) : undefined
NAPI_FN(Quantize) {
  return guarded(env, [&] {
    Args a(env, info, 10, "quantize");
    const int dt = a.float_dtype(1, "inDtype");
    const int64_t rows = a.integer(2, "rows", 1), cols = a.integer(3, "cols", 1);
    const int64_t br = a.integer(4, "blockRows", 1), bc = a.integer(5, "blockCols", 1);
    const int fmt = a.fmt(6, "format");
    const bool pow2 = a.boolean(7);
    const int64_t grid = ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
    DevBuf* x = a.buf(0, "x", (size_t)(rows * cols) * elt_size(dt));
    DevBuf* data = a.buf(8, "data", (size_t)(rows * cols));
    DevBuf* scales = a.buf(9, "scales", (size_t)grid * 4);
    const bool check = a.boolean(10);
    Ctx& c = ready();
    if (check) {
      no_capture("quantize with the non-finite check");
      reset_qstatus(c);
    }
    QuantStatus* st = check ? c.qstatus : nullptr;
    uint8_t* d = static_cast<uint8_t*>(data->ptr);
    float* s = static_cast<float*>(scales->ptr);
    cudaError_t e;
    const char* kernel;
    if (br == 1 && bc == 128) {
      kernel = "quantize_rows (1x128)";
      e = quantize_rows(x->ptr, dt, rows, cols, fmt, pow2, d, s, st, c.stream);
    } else if (br == 128 && bc == 128) {
      kernel = "quantize_blocks128 (128x128)";
      e = quantize_blocks128(x->ptr, dt, rows, cols, fmt, pow2, d, s, st, c.stream);
    } else {
      kernel = "quantize_generic";
      e = quantize_generic(x->ptr, dt, rows, cols, br, bc, fmt, pow2, d, s, st, c.stream);
    }
    cuda_check(e, std::string(kernel) + " kernel launch");
    return check ? read_qstatus(env, c, kernel) : undefined(env);
  });
}

// quantizeBoth(x, inDtype, rows, cols, format, pow2, rdata, rscales, tdata, tscales, check)
NAPI_FN(QuantizeBoth) {
  return guarded(env, [&] {
    Args a(env, info, 10, "quantizeBoth");
    const int dt = a.float_dtype(1, "inDtype");
    const int64_t rows = a.integer(2, "rows", 1, 65535ll * 128), cols = a.integer(3, "cols", 1);
    const int fmt = a.fmt(4, "format");
    const bool pow2 = a.boolean(5);
    DevBuf* x = a.buf(0, "x", (size_t)(rows * cols) * elt_size(dt));
    DevBuf* rd = a.buf(6, "rowData", (size_t)(rows * cols));
    DevBuf* rs = a.buf(7, "rowScales", (size_t)(rows * ((cols + 127) / 128)) * 4);
    DevBuf* td = a.buf(8, "transposedData", (size_t)(rows * cols));
    DevBuf* ts = a.buf(9, "transposedScales", (size_t)(cols * ((rows + 127) / 128)) * 4);
    const bool check = a.boolean(10);
    Ctx& c = ready();
    if (check) {
      no_capture("quantizeBoth with the non-finite check");
      reset_qstatus(c);
    }
    cuda_check(quantize_both(x->ptr, dt, rows, cols, fmt, pow2, static_cast<uint8_t*>(rd->ptr), static_cast<float*>(rs->ptr),
                             static_cast<uint8_t*>(td->ptr), static_cast<float*>(ts->ptr), check ? c.qstatus : nullptr, c.stream),
               "quantize_both kernel launch");
    return check ? read_qstatus(env, c, "quantize_both") : undefined(env);
  });
}

// dequantize(data, scales, rows, cols, blockRows, blockCols, format, out, outDtype)
NAPI_FN(Dequantize) {
  return guarded(env, [&] {
    Args a(env, info, 9, "dequantize");
    const int64_t rows = a.integer(2, "rows", 1), cols = a.integer(3, "cols", 1);
    const int64_t br = a.integer(4, "blockRows", 1), bc = a.integer(5, "blockCols", 1);
    const int fmt = a.fmt(6, "format");
    const int od = a.float_dtype(8, "outDtype");
    DevBuf* data = a.buf(0, "data", (size_t)(rows * cols));
    DevBuf* scales = a.buf(1, "scales", (size_t)(((rows + br - 1) / br) * ((cols + bc - 1) / bc)) * 4);
    DevBuf* out = a.buf(7, "out", (size_t)(rows * cols) * elt_size(od));
    Ctx& c = ready();
    cuda_check(dequantize(static_cast<const uint8_t*>(data->ptr), static_cast<const float*>(scales->ptr), rows, cols, br, bc, fmt,
                          out->ptr, od, c.stream),
               "dequantize kernel launch");
    return undefined(env);
  });
}

// castSelfTest() -> { e4m3: { mismatches, first }, e5m2: { mismatches, first } } (first: float32 bits or -1)
NAPI_FN(CastSelfTest) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    no_capture("castSelfTest");
    cuda_check(cast_selftest(c.scratch, c.stream), "cast_selftest kernel launch");
    unsigned long long r[4];
    cuda_check(cudaMemcpyAsync(r, c.scratch, sizeof(r), cudaMemcpyDeviceToHost, c.stream), "cudaMemcpyAsync(self-test result)");
    sync_stream("cast_selftest");
    napi_value out = object(env);
    for (int f = 0; f < 2; f++) {
      napi_value o = object(env);
      set(env, o, "mismatches", num(env, (double)r[2 * f]));
      set(env, o, "first", num(env, r[2 * f] ? (double)r[2 * f + 1] : -1.0));
      set(env, out, f == 0 ? "e4m3" : "e5m2", o);
    }
    return out;
  });
}

// setKnob(name, value): kernel tuning knobs (see kernels.h)
NAPI_FN(SetKnob) {
  return guarded(env, [&] {
    Args a(env, info, 2, "setKnob");
    size_t len = 0;
    char name[64] = {0};
    if (napi_get_value_string_utf8(env, a.argv[0], name, sizeof(name), &len) != napi_ok) type_error("setKnob: name must be a string");
    const int64_t v = a.integer(1, "value", -1, 1 << 20);
    const std::string err = set_knob(name, (int)v);
    if (!err.empty()) range_error("setKnob: " + err);
    return undefined(env);
  });
}

// ---- scale relayouts, conversions ----------------------------------------------------------------------------------------------
// out [cols, rows] = inᵀ for in [rows, cols] of 1-, 2- or 4-byte elements (FP8 codes, BF16 bits, FP32): 32x32
// tiles through shared memory, both sides coalesced. A plain copy of bits, so exact for every element type.
template <typename T>
__global__ void transpose_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t rows, int64_t cols) {
  __shared__ T tile[32][33];
  const int64_t c0 = (int64_t)blockIdx.x * 32, r0 = (int64_t)blockIdx.y * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][i];
  }
}

// transpose(in, inOffset, out, outOffset, rows, cols, eltBytes): byte offsets into the two buffers.
NAPI_FN(Transpose) {
  return guarded(env, [&] {
    Args a(env, info, 7, "transpose");
    const int64_t ioff = a.integer(1, "inOffset", 0), ooff = a.integer(3, "outOffset", 0);
    const int64_t rows = a.integer(4, "rows", 0), cols = a.integer(5, "cols", 0);
    const int64_t elt = a.integer(6, "eltBytes", 1, 4);
    if (elt == 3) range_error("transpose: eltBytes must be 1, 2 or 4");
    if (rows > 65535ll * 32) range_error("transpose: at most " + std::to_string(65535ll * 32) + " rows");
    const size_t bytes = (size_t)(rows * cols * elt);
    DevBuf* in = a.buf(0, "in", (size_t)ioff + bytes);
    DevBuf* out = a.buf(2, "out", (size_t)ooff + bytes);
    Ctx& c = ready();
    if (rows == 0 || cols == 0) return undefined(env);
    const dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32)), block(32, 8);
    const char* src = static_cast<const char*>(in->ptr) + ioff;
    char* dst = static_cast<char*>(out->ptr) + ooff;
    // A pointer variable, so the launch macro reads the same under nvcc and under the CPU emulation.
    if (elt == 1) {
      auto k = &transpose_kernel<uint8_t>;
      OCTET_LAUNCH(k, grid, block, 0, c.stream)(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<uint8_t*>(dst), rows, cols);
    } else if (elt == 2) {
      auto k = &transpose_kernel<uint16_t>;
      OCTET_LAUNCH(k, grid, block, 0, c.stream)(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<uint16_t*>(dst), rows, cols);
    } else {
      auto k = &transpose_kernel<uint32_t>;
      OCTET_LAUNCH(k, grid, block, 0, c.stream)(reinterpret_cast<const uint32_t*>(src), reinterpret_cast<uint32_t*>(dst), rows, cols);
    }
    cuda_check(cudaGetLastError(), "transpose kernel launch");
    return undefined(env);
  });
}

// transposeF32(in, rows, cols, out)
NAPI_FN(TransposeF32) {
  return guarded(env, [&] {
    Args a(env, info, 4, "transposeF32");
    const int64_t rows = a.integer(1, "rows", 1), cols = a.integer(2, "cols", 1);
    DevBuf* in = a.buf(0, "in", (size_t)(rows * cols) * 4);
    DevBuf* out = a.buf(3, "out", (size_t)(rows * cols) * 4);
    cuda_check(transpose_f32(static_cast<const float*>(in->ptr), rows, cols, static_cast<float*>(out->ptr), ready().stream),
               "transpose_f32 kernel launch");
    return undefined(env);
  });
}

// transposeF32Grouped(in, offsets (device int32 [E+1]), experts, totalRows, cols, out)
NAPI_FN(TransposeF32Grouped) {
  return guarded(env, [&] {
    Args a(env, info, 6, "transposeF32Grouped");
    const int64_t experts = a.integer(2, "experts", 1, 1 << 20);
    const int64_t total = a.integer(3, "totalRows", 0), cols = a.integer(4, "cols", 1);
    DevBuf* in = a.buf(0, "in", (size_t)(total * cols) * 4);
    DevBuf* offsets = a.buf(1, "offsets", (size_t)(experts + 1) * 4);
    DevBuf* out = a.buf(5, "out", (size_t)(total * cols) * 4);
    cuda_check(transpose_f32_grouped(static_cast<const float*>(in->ptr), static_cast<const int*>(offsets->ptr), (int)experts, cols,
                                     static_cast<float*>(out->ptr), ready().stream),
               "transpose_f32_grouped kernel launch");
    return undefined(env);
  });
}

// padRowsF32(in, rows, cols, ld, out)
NAPI_FN(PadRowsF32) {
  return guarded(env, [&] {
    Args a(env, info, 5, "padRowsF32");
    const int64_t rows = a.integer(1, "rows", 1), cols = a.integer(2, "cols", 1);
    const int64_t ld = a.integer(3, "ld", cols);
    DevBuf* in = a.buf(0, "in", (size_t)(rows * cols) * 4);
    DevBuf* out = a.buf(4, "out", (size_t)(rows * ld) * 4);
    cuda_check(pad_rows_f32(static_cast<const float*>(in->ptr), rows, cols, ld, static_cast<float*>(out->ptr), ready().stream),
               "pad_rows_f32 kernel launch");
    return undefined(env);
  });
}

// convert(in, inDtype, out, outDtype, n)
NAPI_FN(Convert) {
  return guarded(env, [&] {
    Args a(env, info, 5, "convert");
    const int idt = a.float_dtype(1, "inDtype"), odt = a.float_dtype(3, "outDtype");
    const int64_t n = a.integer(4, "n", 0);
    DevBuf* in = a.buf(0, "in", (size_t)n * elt_size(idt));
    DevBuf* out = a.buf(2, "out", (size_t)n * elt_size(odt));
    cuda_check(convert(in->ptr, idt, out->ptr, odt, n, ready().stream), "convert kernel launch");
    return undefined(env);
  });
}

// ---- GEMMs ---------------------------------------------------------------------------------------------------------------------
#ifdef OCTET_HAVE_SM90
void ensure_sm90_workspace(Ctx& c, size_t need) {
  if (need <= c.sm90_ws_bytes) return;
  if (c.capturing)
    fail("the sm90 GEMM needs a larger workspace (" + std::to_string(need) + " bytes) while a CUDA graph is being captured; run the same GEMM once before captureBegin()");
  if (c.sm90_ws) cuda_check(cudaFree(c.sm90_ws), "cudaFree(sm90 workspace)");
  c.sm90_ws = nullptr;
  c.sm90_ws_bytes = 0;
  cuda_check(cudaMalloc(&c.sm90_ws, need), "cudaMalloc(sm90 workspace, " + std::to_string(need) + " bytes)");
  c.sm90_ws_bytes = need;
}
#endif

std::string shape_text(int64_t M, int64_t N, int64_t K) {
  return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
}

// Byte offsets into five buffers (arguments first .. first+4, each optional): a loop over experts addresses
// slices of one buffer through them.
struct Offsets {
  int64_t v[5] = {0, 0, 0, 0, 0};
  Offsets(Args& a, size_t first) {
    const char* names[5] = {"aOffset", "aScaleOffset", "bOffset", "bScaleOffset", "dOffset"};
    for (int i = 0; i < 5; i++) v[i] = a.is_undefined(first + i) ? 0 : a.integer(first + i, names[i], 0);
  }
};
template <class T>
T* at(DevBuf* b, int64_t off) { return reinterpret_cast<T*>(static_cast<char*>(b->ptr) + off); }

// gemmSm90(a, sa, b, sb, d, outDtype, M, N, K, aOffset, aScaleOffset, bOffset, bScaleOffset, dOffset):
// D [M,N] = A [M,K] · B [N,K]ᵀ, e4m3, 1x128 / 128x128 scales.
NAPI_FN(GemmSm90) {
  return guarded(env, [&] {
    Args a(env, info, 9, "gemmSm90");
    const int od = a.float_dtype(5, "outDtype");
    const int64_t M = a.integer(6, "M", 1, INT32_MAX), N = a.integer(7, "N", 1, INT32_MAX), K = a.integer(8, "K", 128, INT32_MAX);
    if (K % 128) range_error("gemmSm90: K must be a multiple of 128, got " + std::to_string(K));
    const Offsets o(a, 9);
    DevBuf* A = a.buf(0, "a", (size_t)(o.v[0] + M * K));
    DevBuf* SA = a.buf(1, "aScales", (size_t)(o.v[1] + M * (K / 128) * 4));
    DevBuf* B = a.buf(2, "b", (size_t)(o.v[2] + N * K));
    DevBuf* SB = a.buf(3, "bScales", (size_t)(o.v[3] + ((N + 127) / 128) * (K / 128) * 4));
    DevBuf* D = a.buf(4, "d", (size_t)(o.v[4] + M * N * (int64_t)elt_size(od)));
    Ctx& c = ready();
#ifdef OCTET_HAVE_SM90
    ensure_sm90_workspace(c, octet_fp8_gemm_sm90_workspace((int)M, (int)N, (int)K));
    const int rc = octet_fp8_gemm_sm90(at<void>(A, o.v[0]), at<const float>(SA, o.v[1]), at<void>(B, o.v[2]), at<const float>(SB, o.v[3]),
                                       at<void>(D, o.v[4]), od == DT_BF16 ? 1 : 0, (int)M, (int)N, (int)K, c.sm90_ws, c.sm90_ws_bytes, c.stream);
    if (rc != 0) fail("octet_fp8_gemm_sm90(" + shape_text(M, N, K) + ") failed: " + octet_gemm_sm90_error(rc));
    cuda_check(cudaGetLastError(), "octet_fp8_gemm_sm90 kernel launch (" + shape_text(M, N, K) + ")");
    return undefined(env);
#else
    (void)A; (void)SA; (void)B; (void)SB; (void)D; (void)c;
    fail("gemmSm90: the sm90 GEMM is not built into this addon: " + sm90_reason());
    return undefined(env);
#endif
  });
}

// groupedGemmSm90(a, sa, b, sb, d, outDtype, offsets (host Int32Array [E+1]), E, N, K)
NAPI_FN(GroupedGemmSm90) {
  return guarded(env, [&] {
    Args a(env, info, 10, "groupedGemmSm90");
    const int od = a.float_dtype(5, "outDtype");
    const int64_t E = a.integer(7, "experts", 1, 1 << 20), N = a.integer(8, "N", 1, INT32_MAX), K = a.integer(9, "K", 128, INT32_MAX);
    if (K % 128) range_error("groupedGemmSm90: K must be a multiple of 128, got " + std::to_string(K));
    size_t obytes;
    const int* offsets = static_cast<const int*>(a.typed(6, "offsets", &obytes));
    if (obytes != (size_t)(E + 1) * 4) range_error("groupedGemmSm90: offsets must be an Int32Array of experts + 1 entries");
    if (offsets[0] != 0) range_error("groupedGemmSm90: offsets[0] must be 0");
    for (int64_t e = 0; e < E; e++)
      if (offsets[e + 1] < offsets[e]) range_error("groupedGemmSm90: offsets must be non-decreasing (expert " + std::to_string(e) + ")");
    const int64_t M = offsets[E];
    DevBuf* A = a.buf(0, "a", (size_t)(M * K));
    DevBuf* SA = a.buf(1, "aScales", (size_t)(M * (K / 128)) * 4);
    DevBuf* B = a.buf(2, "b", (size_t)(E * N * K));
    DevBuf* SB = a.buf(3, "bScales", (size_t)(E * ((N + 127) / 128) * (K / 128)) * 4);
    DevBuf* D = a.buf(4, "d", (size_t)(M * N) * elt_size(od));
    Ctx& c = ready();
#ifdef OCTET_HAVE_SM90
    ensure_sm90_workspace(c, octet_fp8_grouped_gemm_sm90_workspace((int)E, (int)M, (int)N, (int)K));
    const int rc = octet_fp8_grouped_gemm_sm90(A->ptr, static_cast<const float*>(SA->ptr), B->ptr, static_cast<const float*>(SB->ptr), D->ptr,
                                               od == DT_BF16 ? 1 : 0, offsets, (int)E, (int)N, (int)K, c.sm90_ws, c.sm90_ws_bytes, c.stream);
    if (rc != 0) fail("octet_fp8_grouped_gemm_sm90(E=" + std::to_string(E) + " " + shape_text(M, N, K) + ") failed: " + octet_gemm_sm90_error(rc));
    cuda_check(cudaGetLastError(), "octet_fp8_grouped_gemm_sm90 kernel launch");
    return undefined(env);
#else
    (void)A; (void)SA; (void)B; (void)SB; (void)D; (void)c;
    fail("groupedGemmSm90: the sm90 GEMM is not built into this addon: " + sm90_reason());
    return undefined(env);
#endif
  });
}

// gemmLt(a, fmtA, aScalesVec128 [K/128, M], b, fmtB, bScalesBlk [ceil(N/128), round_up(K/128, 4)], d, outDtype, M, N, K,
//        aOffset, aScaleOffset, bOffset, bScaleOffset, dOffset)
NAPI_FN(GemmLt) {
  return guarded(env, [&] {
    Args a(env, info, 11, "gemmLt");
    const int fa = a.fmt(1, "fmtA"), fb = a.fmt(4, "fmtB");
    const int od = a.float_dtype(7, "outDtype");
    const int64_t M = a.integer(8, "M", 1), N = a.integer(9, "N", 1), K = a.integer(10, "K", 128);
    if (K % 128) range_error("gemmLt: K must be a multiple of 128, got " + std::to_string(K));
    const Offsets o(a, 11);
    const int64_t kb = K / 128, kb4 = (kb + 3) / 4 * 4;
    DevBuf* A = a.buf(0, "a", (size_t)(o.v[0] + M * K));
    DevBuf* SA = a.buf(2, "aScales", (size_t)(o.v[1] + M * kb * 4));
    DevBuf* B = a.buf(3, "b", (size_t)(o.v[2] + N * K));
    DevBuf* SB = a.buf(5, "bScales", (size_t)(o.v[3] + ((N + 127) / 128) * kb4 * 4));
    DevBuf* D = a.buf(6, "d", (size_t)(o.v[4] + M * N * (int64_t)elt_size(od)));
    Ctx& c = ready();
    const std::string err = lt::gemm_fp8_blockscaled(at<const void>(A, o.v[0]), fa, at<const float>(SA, o.v[1]), at<const void>(B, o.v[2]), fb,
                                                     at<const float>(SB, o.v[3]), at<void>(D, o.v[4]), od, M, N, K, c.stream);
    if (!err.empty()) fail("cuBLASLt block-scaled FP8 GEMM (" + shape_text(M, N, K) + "): " + err);
    return undefined(env);
  });
}

// gemmBf16Lt(a, b, d, outDtype, M, N, K)
NAPI_FN(GemmBf16Lt) {
  return guarded(env, [&] {
    Args a(env, info, 7, "gemmBf16Lt");
    const int od = a.float_dtype(3, "outDtype");
    const int64_t M = a.integer(4, "M", 1), N = a.integer(5, "N", 1), K = a.integer(6, "K", 1);
    DevBuf* A = a.buf(0, "a", (size_t)(M * K) * 2);
    DevBuf* B = a.buf(1, "b", (size_t)(N * K) * 2);
    DevBuf* D = a.buf(2, "d", (size_t)(M * N) * elt_size(od));
    Ctx& c = ready();
    const std::string err = lt::gemm_bf16(A->ptr, B->ptr, D->ptr, od, M, N, K, c.stream);
    if (!err.empty()) fail("cuBLASLt BF16 GEMM (" + shape_text(M, N, K) + "): " + err);
    return undefined(env);
  });
}

// gemmF32Lt(a, b, d, M, N, K): D [M,N] = A [M,K] · B [N,K]ᵀ, all FP32, FP32 compute without TF32 (cuBLASLt).
NAPI_FN(GemmF32Lt) {
  return guarded(env, [&] {
    Args a(env, info, 6, "gemmF32Lt");
    const int64_t M = a.integer(3, "M", 1), N = a.integer(4, "N", 1), K = a.integer(5, "K", 1);
    DevBuf* A = a.buf(0, "a", (size_t)(M * K) * 4);
    DevBuf* B = a.buf(1, "b", (size_t)(N * K) * 4);
    DevBuf* D = a.buf(2, "d", (size_t)(M * N) * 4);
    Ctx& c = ready();
    const std::string err = lt::gemm_f32(static_cast<const float*>(A->ptr), static_cast<const float*>(B->ptr), static_cast<float*>(D->ptr), M, N, K, c.stream);
    if (!err.empty()) fail("cuBLASLt FP32 GEMM (" + shape_text(M, N, K) + "): " + err);
    return undefined(env);
  });
}

NAPI_FN(ReleaseCublasLt) {
  return guarded(env, [&] {
    (void)info;
    no_capture("releaseCublasLt");
    lt::release();
    return undefined(env);
  });
}

// ---- timing: events and graphs ---------------------------------------------------------------------------------------------------
NAPI_FN(EventCreate) {
  return guarded(env, [&] {
    (void)info;
    ready();
    EventBox* e = new EventBox();
    const cudaError_t err = cudaEventCreate(&e->ev);
    if (err != cudaSuccess) {
      delete e;
      cuda_check(err, "cudaEventCreate");
    }
    napi_value out;
    napi_check(napi_create_external(env, e, finalize_event, nullptr, &out), "create_external");
    napi_check(napi_type_tag_object(env, out, &kEventTag), "type_tag_object");
    return out;
  });
}

NAPI_FN(EventRecord) {
  return guarded(env, [&] {
    Args a(env, info, 1, "eventRecord");
    EventBox* e = a.external<EventBox>(0, kEventTag, "event", "CUDA event");
    cuda_check(cudaEventRecord(e->ev, ready().stream), "cudaEventRecord");
    return undefined(env);
  });
}

// eventElapsed(start, end) -> milliseconds (waits for end)
NAPI_FN(EventElapsed) {
  return guarded(env, [&] {
    Args a(env, info, 2, "eventElapsed");
    EventBox* s = a.external<EventBox>(0, kEventTag, "start", "CUDA event");
    EventBox* e = a.external<EventBox>(1, kEventTag, "end", "CUDA event");
    no_capture("eventElapsed");
    cuda_check(cudaEventSynchronize(e->ev), "cudaEventSynchronize");
    float ms = 0;
    cuda_check(cudaEventElapsedTime(&ms, s->ev, e->ev), "cudaEventElapsedTime");
    return num(env, ms);
  });
}

NAPI_FN(CaptureBegin) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    if (c.capturing) fail("captureBegin: a capture is already in progress");
    cuda_check(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    c.capturing = true;
    return undefined(env);
  });
}

// captureEnd() -> graph handle (instantiated). Always ends the capture, also after a failed call inside it.
NAPI_FN(CaptureEnd) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    if (!c.capturing) fail("captureEnd: no capture in progress");
    cudaGraph_t graph = nullptr;
    const cudaError_t e = cudaStreamEndCapture(c.stream, &graph);
    c.capturing = false;
    for (void* p : c.deferred) cudaFreeAsync(p, c.stream);
    c.deferred.clear();
    cuda_check(e, "cudaStreamEndCapture");
    GraphBox* g = new GraphBox();
    const cudaError_t ie = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ie != cudaSuccess) {
      delete g;
      cuda_check(ie, "cudaGraphInstantiate");
    }
    napi_value out;
    napi_check(napi_create_external(env, g, finalize_graph, nullptr, &out), "create_external");
    napi_check(napi_type_tag_object(env, out, &kGraphTag), "type_tag_object");
    return out;
  });
}

// graphLaunch(graph, times = 1)
NAPI_FN(GraphLaunch) {
  return guarded(env, [&] {
    Args a(env, info, 1, "graphLaunch");
    GraphBox* g = a.external<GraphBox>(0, kGraphTag, "graph", "CUDA graph");
    const int64_t times = a.is_undefined(1) ? 1 : a.integer(1, "times", 0, 1 << 20);
    Ctx& c = ready();
    for (int64_t i = 0; i < times; i++) cuda_check(cudaGraphLaunch(g->exec, c.stream), "cudaGraphLaunch");
    return undefined(env);
  });
}

// timeGraph(graph, warmup, reps) -> Float64Array of milliseconds per replay (CUDA events around each replay).
NAPI_FN(TimeGraph) {
  return guarded(env, [&] {
    Args a(env, info, 3, "timeGraph");
    GraphBox* g = a.external<GraphBox>(0, kGraphTag, "graph", "CUDA graph");
    const int64_t warmup = a.integer(1, "warmup", 0, 1 << 16), reps = a.integer(2, "reps", 1, 1 << 16);
    Ctx& c = ready();
    no_capture("timeGraph");
    for (int64_t i = 0; i < warmup; i++) cuda_check(cudaGraphLaunch(g->exec, c.stream), "cudaGraphLaunch (warm-up)");
    std::vector<cudaEvent_t> ev((size_t)reps + 1, nullptr);
    std::string err;
    for (auto& e : ev)
      if (cudaEventCreate(&e) != cudaSuccess) err = "cudaEventCreate";
    if (err.empty()) {
      for (int64_t i = 0; i < reps && err.empty(); i++) {
        if (cudaEventRecord(ev[(size_t)i], c.stream) != cudaSuccess) err = "cudaEventRecord";
        else if (cudaGraphLaunch(g->exec, c.stream) != cudaSuccess) err = "cudaGraphLaunch";
      }
      if (err.empty() && cudaEventRecord(ev[(size_t)reps], c.stream) != cudaSuccess) err = "cudaEventRecord";
    }
    double* times = nullptr;
    napi_value ab, out;
    napi_check(napi_create_arraybuffer(env, (size_t)reps * 8, reinterpret_cast<void**>(&times), &ab), "create_arraybuffer");
    napi_check(napi_create_typedarray(env, napi_float64_array, (size_t)reps, ab, 0, &out), "create_typedarray");
    cudaError_t se = err.empty() ? cudaStreamSynchronize(c.stream) : cudaSuccess;
    if (err.empty() && se != cudaSuccess) err = std::string("cudaStreamSynchronize (timed graph replays): ") + cudaGetErrorName(se) + ": " + cudaGetErrorString(se);
    for (int64_t i = 0; i < reps && err.empty(); i++) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, ev[(size_t)i], ev[(size_t)i + 1]) != cudaSuccess) err = "cudaEventElapsedTime";
      times[i] = ms;
    }
    for (auto e : ev)
      if (e) cudaEventDestroy(e);
    if (!err.empty()) {
      cudaGetLastError();
      fail("timeGraph: " + err + " failed");
    }
    return out;
  });
}

// ---- for other addons of the process (the model's kernels) --------------------------------------------------------------
// They take raw device pointers and the one stream, so every tensor stays in this addon's pool and every kernel is
// ordered on one stream (and captured into the same graph).

// devicePointer(handle, byteOffset = 0) -> bigint
NAPI_FN(DevicePointer) {
  return guarded(env, [&] {
    Args a(env, info, 1, "devicePointer");
    const int64_t off = a.is_undefined(1) ? 0 : a.integer(1, "byteOffset", 0);
    DevBuf* b = a.buf(0, "handle", (size_t)off);
    if (!b->ptr) fail("devicePointer: the buffer was freed");
    napi_value out;
    napi_check(napi_create_bigint_uint64(env, (uint64_t)(reinterpret_cast<uintptr_t>(b->ptr) + (uintptr_t)off), &out), "create_bigint");
    return out;
  });
}

// streamPointer() -> bigint (the cudaStream_t every call of this addon runs on)
NAPI_FN(StreamPointer) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    napi_value out;
    napi_check(napi_create_bigint_uint64(env, (uint64_t)reinterpret_cast<uintptr_t>(c.stream), &out), "create_bigint");
    return out;
  });
}

// memoryStats() -> { usedBytes, peakBytes, reservedBytes, freeBytes, totalBytes }: the pool's tensors in use, their
// high-water mark since the last resetPeakMemory(), what the pool holds, and the device's free/total memory.
NAPI_FN(MemoryStats) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    cudaMemPool_t pool = nullptr;
    cuda_check(cudaDeviceGetDefaultMemPool(&pool, c.device), "cudaDeviceGetDefaultMemPool");
    uint64_t used = 0, peak = 0, reserved = 0;
    cuda_check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used), "cudaMemPoolGetAttribute(used)");
    cuda_check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &peak), "cudaMemPoolGetAttribute(peak)");
    cuda_check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved), "cudaMemPoolGetAttribute(reserved)");
    size_t free_b = 0, total_b = 0;
    cuda_check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    napi_value out = object(env);
    set(env, out, "usedBytes", num(env, (double)used));
    set(env, out, "peakBytes", num(env, (double)peak));
    set(env, out, "reservedBytes", num(env, (double)reserved));
    set(env, out, "freeBytes", num(env, (double)free_b));
    set(env, out, "totalBytes", num(env, (double)total_b));
    return out;
  });
}

NAPI_FN(ResetPeakMemory) {
  return guarded(env, [&] {
    (void)info;
    Ctx& c = ready();
    cudaMemPool_t pool = nullptr;
    cuda_check(cudaDeviceGetDefaultMemPool(&pool, c.device), "cudaDeviceGetDefaultMemPool");
    uint64_t zero = 0;
    cuda_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), "cudaMemPoolSetAttribute(peak)");
    return undefined(env);
  });
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
#define P(js, fn) {js, nullptr, fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr}
      P("status", Status),
      P("alloc", Alloc),
      P("free", Free),
      P("upload", Upload),
      P("download", Download),
      P("memset", Memset),
      P("copy", Copy),
      P("copy2d", Copy2d),
      P("synchronize", Synchronize),
      P("fillRandom", FillRandom),
      P("countNaN", CountNaN),
      P("quantize", Quantize),
      P("quantizeBoth", QuantizeBoth),
      P("dequantize", Dequantize),
      P("castSelfTest", CastSelfTest),
      P("setKnob", SetKnob),
      P("transpose", Transpose),
      P("transposeF32", TransposeF32),
      P("transposeF32Grouped", TransposeF32Grouped),
      P("padRowsF32", PadRowsF32),
      P("convert", Convert),
      P("gemmSm90", GemmSm90),
      P("groupedGemmSm90", GroupedGemmSm90),
      P("gemmLt", GemmLt),
      P("gemmBf16Lt", GemmBf16Lt),
      P("gemmF32Lt", GemmF32Lt),
      P("releaseCublasLt", ReleaseCublasLt),
      P("eventCreate", EventCreate),
      P("eventRecord", EventRecord),
      P("eventElapsed", EventElapsed),
      P("captureBegin", CaptureBegin),
      P("captureEnd", CaptureEnd),
      P("graphLaunch", GraphLaunch),
      P("timeGraph", TimeGraph),
      P("devicePointer", DevicePointer),
      P("streamPointer", StreamPointer),
      P("memoryStats", MemoryStats),
      P("resetPeakMemory", ResetPeakMemory),
#undef P
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(octet_numerics_cuda, Init)
