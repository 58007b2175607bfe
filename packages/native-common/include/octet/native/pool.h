// The thread pool and floating-point guard shared by Octet's native CPU kernels (@octet/numerics,
// @octet/router). Header-only: each addon compiles its own copy.
//
// Everything here has hidden visibility, so each addon keeps its own pool even when both are loaded in one
// process: with default visibility, GCC would make the static Pool of the inline pool() a process-wide
// (STB_GNU_UNIQUE) symbol, and the router's and numerics' kernels would then contend for one pool.
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

#pragma GCC visibility push(hidden)

namespace octet_native {

// OCTET_NUM_THREADS when it is a positive integer (at most 256), else the hardware concurrency (at least 1).
inline int configured_threads() {
  if (const char* env = std::getenv("OCTET_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n > 256 ? 256 : n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : (int)hc;
}

// Persistent workers (threads - 1 of them); the calling thread takes part. A call that finds the pool busy
// (another isolate's call) runs serially on its own thread.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this] { worker(); });
  }
  int threads() const { return threads_; }

  // Runs fn(0) .. fn(tasks - 1), spread over the workers and the calling thread; returns when all are done.
  void run(int tasks, const std::function<void(int)>& fn) {
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

 private:
  void drain() {
    for (;;) {
      int i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= tasks_) return;
      (*job_)(i);
    }
  }
  void worker() {
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

// The addon's pool, created on first use with configured_threads() threads.
inline Pool& pool() {
  static Pool* p = new Pool(configured_threads());  // never destroyed: workers sleep until the process exits
  return *p;
}

// Clears FTZ/DAZ for the duration of a kernel on the calling thread (bit-exactness with subnormals).
struct ExactFpGuard {
#if defined(__SSE__)
  unsigned saved;
  ExactFpGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved & ~0x8040u); }
  ~ExactFpGuard() { _mm_setcsr(saved); }
#endif
};

}  // namespace octet_native

#pragma GCC visibility pop
