#include <cstdlib>
#include "common.h"

namespace octet_router {

int configured_threads() {
  if (const char* env = std::getenv("OCTET_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n > 256 ? 256 : n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : (int)hc;
}

Pool::Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < threads_; i++) workers_.emplace_back([this] { worker(); });
}

void Pool::drain() {
  for (;;) {
    int i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= tasks_) return;
    (*job_)(i);
  }
}

void Pool::worker() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
    }
    drain();
    {
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void Pool::run(int tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  if (tasks == 1 || workers_.empty() || !busy_.try_lock()) {
    for (int i = 0; i < tasks; i++) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(m_);
    job_ = &fn;
    tasks_ = tasks;
    next_.store(0);
    pending_ = (int)workers_.size();
    generation_++;
  }
  cv_.notify_all();
  drain();
  {
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  busy_.unlock();
}

Pool& pool() {
  static Pool* p = new Pool(configured_threads());  // never destroyed: workers sleep until the process exits
  return *p;
}

const char* isa_description() {
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return "avx512 (8 x f64 sigmoid, 16 x f32 choice/top-2/selection)";
#else
  return "scalar (portable C++, same float64/float32 operations)";
#endif
}

}  // namespace octet_router
