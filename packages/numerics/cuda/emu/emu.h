// A CPU emulation of the CUDA features quantize.cu uses, so that its kernels run (slowly, exactly) on a machine
// without a GPU: compile quantize.cu as C++ with -DOCTET_EMU (emu/quantize_emu_test.cc does; src/cuda-emu.test.ts
// builds and runs it in `npm test`). Each block runs as blockDim cooperative fibers (blocks one after another), with
// __syncthreads as a block barrier and the warp intrinsics (__shfl_xor_sync, __any_sync) as lock-step exchanges
// among the 32 lanes of a warp — so a shuffle that not all lanes reach hangs here, as it would misbehave there.
// Shared memory is one static instance per kernel (blocks do not overlap); dynamic shared memory starts as 0xCD
// garbage. The hardware FP8 conversion (cvt.rn.satfinite) is modelled independently of the PyTorch algorithm:
// round to nearest even on the value, then clamp finite overflow to ±max (NaN → 0x7F).
#pragma once
#include <algorithm>
#include <functional>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

// ---- types and runtime stubs -------------------------------------------------------------------------------------------
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }

typedef int cudaError_t;
typedef struct emu_stream* cudaStream_t;
typedef struct emu_event* cudaEvent_t;
typedef struct emu_graph* cudaGraph_t;
typedef struct emu_graph* cudaGraphExec_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorStreamCaptureUnsupported = 900 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeThreadLocal = 1 };
enum { cudaStreamNonBlocking = 1 };
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount, l2CacheSize;
  size_t totalGlobalMem;
};
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) { *v = 2; return cudaSuccess; }  // 2 "SMs": grid-stride loops iterate
template <class K>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, K, int, size_t) { *n = 2; return cudaSuccess; }
template <class K>
cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute, int) { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "out of memory (emulated)" : e ? "error (emulated)" : "no error"; }
inline const char* cudaGetErrorName(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : e ? "cudaErrorEmulated" : "cudaSuccess"; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __align__(n) alignas(n)
#define __shared__ static

// ---- threads, barriers, warps ------------------------------------------------------------------------------------------
// The threads of a block are cooperative fibers (ucontext) on the calling thread: a barrier yields to the scheduler
// until every member of its group (the block, or the 32 lanes of a warp) has arrived.
// The switch is a few instructions on x86-64 (callee-saved registers and the stack pointer); elsewhere ucontext.
#if defined(__x86_64__) && defined(__linux__)
asm(R"(
  .text
  .weak octet_emu_switch
  .type octet_emu_switch,@function
octet_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size octet_emu_switch, .-octet_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
extern "C" void octet_emu_switch(void** save_sp, void* load_sp);
#define OCTET_EMU_FAST_SWITCH 1
#else
#include <ucontext.h>
#endif
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

struct Group {
  unsigned size = 0, arrived = 0, generation = 0;
  uint32_t vals[32];
};
struct Fiber {
#ifdef OCTET_EMU_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  std::vector<char> stack;
  dim3 idx;
  bool done = false;
};
#ifdef OCTET_EMU_FAST_SWITCH
inline void* scheduler_sp = nullptr;
#else
inline ucontext_t scheduler;
#endif
inline std::vector<Fiber> fibers;
inline Fiber* current = nullptr;
inline unsigned lane = 0, warp = 0;
inline Group block_group;
inline std::vector<Group> warp_groups;
inline std::vector<unsigned char> dynamic_smem;
inline void (*entry)() = nullptr;
inline unsigned long long events = 0;  // arrivals at barriers and finished fibers: progress, for deadlock detection

inline void yield() {
#ifdef OCTET_EMU_FAST_SWITCH
  octet_emu_switch(&current->sp, scheduler_sp);
#else
  swapcontext(&current->ctx, &scheduler);
#endif
}
inline void arrive(Group& g) {
  events++;
  const unsigned gen = g.generation;
  if (++g.arrived == g.size) {
    g.arrived = 0;
    g.generation++;
  } else {
    while (g.generation == gen) yield();
  }
}
inline void fiber_main() {
  entry();
  current->done = true;
  events++;
  yield();  // never resumed
}
inline void start_fiber(Fiber& f) {
#ifdef OCTET_EMU_FAST_SWITCH
  // A stack that "returns" into fiber_main on the first switch: six zero registers, then the entry address on a
  // 16-byte boundary (so that fiber_main starts with the stack alignment of a call).
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack.data() + f.stack.size()) & ~(uintptr_t)15) - 16;
  *reinterpret_cast<void**>(top) = reinterpret_cast<void*>(&fiber_main);
  top -= 6 * sizeof(void*);
  std::memset(reinterpret_cast<void*>(top), 0, 6 * sizeof(void*));
  f.sp = reinterpret_cast<void*>(top);
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.data();
  f.ctx.uc_stack.ss_size = f.stack.size();
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
#endif
}
inline void resume(Fiber& f) {
#ifdef OCTET_EMU_FAST_SWITCH
  octet_emu_switch(&scheduler_sp, f.sp);
#else
  swapcontext(&scheduler, &f.ctx);
#endif
}

inline bool capturing = false;
inline std::vector<std::function<void()>> captured;

template <class... P, class... A>
void launch_now(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args);

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
  if (capturing) {
    captured.push_back([=] { launch_now(kernel, grid, block, smem, args...); });
    return;
  }
  launch_now(kernel, grid, block, smem, args...);
}

template <class... P, class... A>
void launch_now(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
  gridDim = grid;
  blockDim = block;
  dynamic_smem.assign(smem + 64, 0xCD);
  const unsigned n = block.x * block.y * block.z;
  static std::function<void()> body;
  body = [&] { kernel(static_cast<P>(args)...); };
  entry = [] { body(); };
  fibers.resize(n);
  for (auto& f : fibers) if (f.stack.size() < (256u << 10)) f.stack.assign(256u << 10, 0);
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        blockIdx = dim3(bx, by, bz);
        block_group = Group{};
        block_group.size = n;
        warp_groups.assign((n + 31) / 32, Group{});
        for (unsigned w = 0; w < warp_groups.size(); w++) warp_groups[w].size = std::min(32u, n - 32 * w);
        for (unsigned t = 0; t < n; t++) {
          Fiber& f = fibers[t];
          f.done = false;
          f.idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
          start_fiber(f);
        }
        for (bool running = true; running;) {
          running = false;
          const unsigned long long before = events;
          for (unsigned t = 0; t < n; t++) {
            Fiber& f = fibers[t];
            if (f.done) continue;
            running = true;
            current = &f;
            threadIdx = f.idx;
            lane = t % 32;
            warp = t / 32;
            resume(f);
          }
          if (running && events == before) {
            std::fprintf(stderr, "emu: deadlock in block (%u, %u, %u): threads wait at barriers (a warp shuffle or __syncthreads not reached by all)\n", bx, by, bz);
            std::abort();
          }
        }
      }
}

template <class K>
struct Launch {
  K kernel;
  dim3 grid, block;
  size_t smem;
  template <class... A>
  void operator()(A... args) const { launch(kernel, grid, block, smem, args...); }
};

// cvt.rn.satfinite.{e4m3,e5m2}x2.f32 modelled on values (not on PyTorch's bit tricks): RNE, finite overflow → ±max.
inline uint32_t cvt_satfinite(float v, int fmt) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  const uint32_t sign = (bits >> 24) & 0x80u;
  if (std::isnan(v)) return 0x7fu;
  const int mbits = fmt == 0 ? 3 : 2, bias = fmt == 0 ? 7 : 15;
  const double maxv = fmt == 0 ? 448.0 : 57344.0;
  const int emin = 1 - bias;
  double a = std::fabs((double)v), r;
  if (std::isinf(a)) {
    r = maxv;
  } else {
    const int e = a == 0 ? emin : std::max(emin, std::ilogb(a));
    const double q = std::ldexp(1.0, e - mbits);
    r = std::nearbyint(a / q) * q;  // round half to even (default rounding mode)
    if (r > maxv) r = maxv;
  }
  if (r == 0) return sign;
  const int e2 = std::ilogb(r);
  uint32_t code;
  if (e2 < emin) code = (uint32_t)(r / std::ldexp(1.0, emin - mbits));
  else code = ((uint32_t)(e2 + bias) << mbits) | (uint32_t)(r / std::ldexp(1.0, e2 - mbits) - (1 << mbits));
  return code | sign;
}

}  // namespace emu

#define OCTET_LAUNCH(kernel, grid, block, smem, stream) (::emu::Launch<decltype(kernel)>{kernel, dim3(grid), dim3(block), (size_t)(smem)})
#define OCTET_DYNAMIC_SMEM(name) unsigned char* name = ::emu::dynamic_smem.data()

inline void __syncthreads() { emu::arrive(emu::block_group); }
inline uint32_t __shfl_xor_sync(unsigned, uint32_t v, int offset) {
  emu::Group& w = emu::warp_groups[emu::warp];
  const unsigned me = emu::lane;
  w.vals[me] = v;
  emu::arrive(w);
  const uint32_t r = w.vals[me ^ (unsigned)offset];
  emu::arrive(w);
  return r;
}
inline unsigned long long __shfl_xor_sync(unsigned mask, unsigned long long v, int offset) {
  const uint32_t lo = __shfl_xor_sync(mask, (uint32_t)v, offset), hi = __shfl_xor_sync(mask, (uint32_t)(v >> 32), offset);
  return ((unsigned long long)hi << 32) | lo;
}
inline int __any_sync(unsigned, int pred) {
  emu::Group& w = emu::warp_groups[emu::warp];
  w.vals[emu::lane] = pred != 0;
  emu::arrive(w);
  uint32_t any = 0;
  for (unsigned i = 0; i < w.size; i++) any |= w.vals[i];
  emu::arrive(w);
  return (int)any;
}

// ---- intrinsics ------------------------------------------------------------------------------------------------------------
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T max(T a, T b) { return a > b ? a : b; }
template <class T> inline T min(T a, T b) { return a < b ? a : b; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  unsigned long long old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}

// ---- the runtime API the addon calls, on host memory (synchronous; graphs record closures) -------------------------------
#include <chrono>
#include <map>
struct emu_event { double ms = 0; };
struct emu_graph { std::vector<std::function<void()>> ops; };
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }
inline cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "CPU emulation of sm_90 (emu.h)");
  p->major = 9; p->minor = 0; p->multiProcessorCount = 2; p->l2CacheSize = 1 << 20; p->totalGlobalMem = (size_t)8 << 30;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
// The stream-ordered pool (cudaMallocAsync): host memory with the bytes in use and their high-water mark counted.
namespace emu {
inline std::map<void*, size_t>& pool_sizes() { static std::map<void*, size_t> m; return m; }
inline uint64_t pool_used = 0, pool_peak = 0;
}
struct emu_mem_pool { int unused; };
typedef emu_mem_pool* cudaMemPool_t;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold, cudaMemPoolAttrReservedMemCurrent, cudaMemPoolAttrUsedMemCurrent, cudaMemPoolAttrUsedMemHigh };
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* p, int) { static emu_mem_pool pool; *p = &pool; return cudaSuccess; }
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr a, void* v) {
  if (a == cudaMemPoolAttrUsedMemHigh) emu::pool_peak = *static_cast<uint64_t*>(v) == 0 ? emu::pool_used : emu::pool_peak;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t, cudaMemPoolAttr a, void* v) {
  uint64_t* out = static_cast<uint64_t*>(v);
  *out = a == cudaMemPoolAttrUsedMemHigh ? emu::pool_peak : a == cudaMemPoolAttrReleaseThreshold ? UINT64_MAX : emu::pool_used;
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) {
  const cudaError_t e = cudaMalloc(p, n);
  if (e == cudaSuccess) {
    emu::pool_sizes()[*p] = n;
    emu::pool_used += n;
    if (emu::pool_used > emu::pool_peak) emu::pool_peak = emu::pool_used;
  }
  return e;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  auto it = emu::pool_sizes().find(p);
  if (it != emu::pool_sizes().end()) {
    emu::pool_used -= it->second;
    emu::pool_sizes().erase(it);
  }
  return cudaFree(p);
}
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = *t = (size_t)8 << 30; return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind kind, cudaStream_t) {
  if (emu::capturing) {
    if (kind != cudaMemcpyDeviceToDevice) return cudaErrorStreamCaptureUnsupported;
    emu::captured.push_back([=] { std::memmove(d, s, n); });
  } else {
    std::memmove(d, s, n);
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dpitch, const void* s, size_t spitch, size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
  auto copy = [=] { for (size_t r = 0; r < height; r++) std::memmove(static_cast<char*>(d) + r * dpitch, static_cast<const char*>(s) + r * spitch, width); };
  if (emu::capturing) emu::captured.push_back(copy);
  else copy();
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = nullptr) {
  if (emu::capturing) emu::captured.push_back([=] { std::memset(d, v, n); });
  else std::memset(d, v, n);
  return cudaSuccess;
}
inline double emu_now_ms() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new emu_event(); return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  if (emu::capturing) emu::captured.push_back([=] { e->ms = emu_now_ms(); });
  else e->ms = emu_now_ms();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) { *ms = (float)(b->ms - a->ms); return cudaSuccess; }
inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  if (emu::capturing) return cudaErrorInvalidValue;
  emu::capturing = true;
  emu::captured.clear();
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
  emu::capturing = false;
  *g = new emu_graph{std::move(emu::captured)};
  emu::captured.clear();
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) { *e = new emu_graph(*g); return cudaSuccess; }
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) { delete g; return cudaSuccess; }
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t) {
  for (auto& op : g->ops) op();
  return cudaSuccess;
}
inline float exp10f(float x) { return std::pow(10.0f, x); }
