// Shared helpers of the router's native CPU kernel: thread pool, FP environment guard.
// (The same patterns as @octet/numerics' native/common.h; the router does not depend on that addon.)
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace octet_router {

// ---- thread pool -----------------------------------------------------------------------------------
// Persistent workers (threads - 1 of them); the calling thread takes part. A call that finds the pool busy
// (another isolate's call) runs serially on its own thread.
class Pool {
 public:
  explicit Pool(int threads);
  int threads() const { return threads_; }
  void run(int tasks, const std::function<void(int)>& fn);
 private:
  void worker();
  void drain();
  int threads_;
  std::vector<std::thread> workers_;
  std::mutex m_, busy_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<int> next_{0};
  int tasks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};
Pool& pool();
int configured_threads();

// Clears FTZ/DAZ for the duration of a kernel on the calling thread (bit-exactness with subnormals).
struct ExactFpGuard {
#if defined(__SSE__)
  unsigned saved;
  ExactFpGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved & ~0x8040u); }
  ~ExactFpGuard() { _mm_setcsr(saved); }
#endif
};

// ---- kernel ----------------------------------------------------------------------------------------
struct RouteShape {
  int64_t tokens;
  int64_t experts;
  int64_t top_k;
  int64_t n_group;
  int64_t topk_group;
  bool norm_topk_prob;
  double routed_scaling_factor;
};

// 2^(j/32), j = 0..31: the table of src/sigmoid.ts. The loader installs the values V8 computed (Math.pow),
// so that both paths use the very same doubles; until then std::pow's are used.
void set_fraction_powers(const double* table32);

// DeepSeek-V3's gate with the sigmoid score function, bit for bit the TypeScript routeTokens (src/route.ts).
// scores may be null (not written). Returns the flat index of the first NaN logit, or -1 (outputs are then
// unspecified).
int64_t route_sigmoid(const float* logits, const RouteShape& shape, const float* bias, int32_t* indices,
                      float* weights, float* scores);

// float32(1 / (1 + exp(-z))) exactly as sigmoidF32 of src/sigmoid.ts (scalar path; for the tests).
float sigmoid_f32(float z);

const char* isa_description();

}  // namespace octet_router
