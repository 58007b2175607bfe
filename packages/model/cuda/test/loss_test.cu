// Harness for the fused cross-entropy (packages/model/cuda/loss.{h,cu}): random logits (fixed seed) at the shapes of
// the tiny and gpu-small presets plus edge shapes, each kernel against a float64 reference of CpuBackend.crossEntropy
// (packages/model/src/backend/cpu.ts), run twice for bit-identical outputs, timed with cudaEvents (median), one table.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/t packages/model/cuda/test/loss_test.cu \
//        packages/model/cuda/loss.cu && /tmp/t            (add "quick" to skip gpu-small and shrink the edge cases)
// Without a GPU, under @octet/numerics' CPU emulation (quick only; timings meaningless):
//   g++ -std=c++20 -O2 -ffp-contract=off -DOCTET_EMU -I packages/numerics/cuda/emu/shim -x c++ \
//        packages/model/cuda/test/loss_test.cu -x c++ packages/model/cuda/loss.cu -o /tmp/t_emu && /tmp/t_emu quick
//
// Error metrics (all "max over elements"):
//   loss     per-row |gpu − ref| / max(|ref|, 1)   (relative, floored at 1 nat so near-zero losses are judged at
//            1e-5 nat absolute), tolerance 1e-5; mean loss: |gpu − ref| / |ref|, tolerance 1e-5.
//   dLogits  fp32: |gpu − ref| / g where g = |gradScale| / divisor (i.e. the error of softmax − onehot, "scaled by
//            rows"), tolerance 1e-5. bf16: distance in bf16 ulps between gpu and bf16(ref), tolerance 1 ulp, at every
//            non-target element; at the target element, 1 ulp OR the fp32 criterion |gpu − ref| / g ≤ 1e-5 (when
//            p_target → 1, p − 1 cancels in any FP32 evaluation); the "(info)" line counts targets let through so.
// The reference of a bf16 case is computed from the bf16 inputs (widened exactly), as the kernel sees them.
// Exit code 1 if any check fails.
#include "../loss.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

#define CK(call)                                                                                         \
  do {                                                                                                   \
    cudaError_t e_ = (call);                                                                             \
    if (e_ != cudaSuccess) {                                                                             \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                      \
    }                                                                                                    \
  } while (0)

bool quick = false;
cudaStream_t stream;

// ---- the table ---------------------------------------------------------------------------------------------------
struct Line {
  std::string op, shape, dtype, metric;
  double err, tol;  // tol < 0: informational
  bool pass;
  double us, rate;  // < 0: not timed; rate in GB/s
};
std::vector<Line> table;
bool all_pass = true;

void add(const std::string& op, const std::string& shape, const std::string& dtype, const std::string& metric, double err,
         double tol, bool pass, double us = -1, double rate = -1) {
  table.push_back({op, shape, dtype, metric, err, tol, pass, us, rate});
  if (!pass) all_pass = false;
}

// ---- data --------------------------------------------------------------------------------------------------------
uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
double uniform(uint64_t key) { return (double)(mix(key) >> 11) * (1.0 / 9007199254740992.0); }

struct Spec {
  std::string name;
  int rows, vocab, chunk, dtype;
  float gradScale;
  int ignoreEvery;     // every k-th row gets target −1 (0: none)
  int confidentEvery;  // every k-th row's target logit is raised by 30 (p_target → 1)
  bool deviceCount;    // divisor from octet_count_valid_targets (else totalRows)
  bool timing;
  uint64_t seed;
};

int target_of(const Spec& s, int r) {
  if (s.ignoreEvery && r % s.ignoreEvery == s.ignoreEvery - 1) return -1;
  return (int)(mix(s.seed * 0x1000193ull + (uint64_t)r) % (uint64_t)s.vocab);
}

// Logit [r, j]: about N(0, 2²) (sum of four uniforms), raised by 30 at the target of a confident row.
float logit_of(const Spec& s, int r, int j, int target) {
  const uint64_t k = (s.seed << 40) ^ ((uint64_t)r * (uint64_t)s.vocab + (uint64_t)j) * 4;
  const double u = uniform(k) + uniform(k + 1) + uniform(k + 2) + uniform(k + 3) - 2.0;
  double x = 2.0 * std::sqrt(3.0) * u;
  if (s.confidentEvery && r % s.confidentEvery == 0 && j == target) x += 30.0;
  return (float)x;
}

uint16_t to_bf16(float f) {  // CpuBackend.toBf16
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return (b & 0x7fffffffu) > 0x7f800000u ? 0xffff : (uint16_t)(((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu);
}
float from_bf16(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
int bf16_ulps(uint16_t a, uint16_t b) {
  auto ord = [](uint16_t h) { return (h & 0x8000) ? -(int)(h & 0x7fff) : (int)h; };
  return std::abs(ord(a) - ord(b));
}

template <class F>
void parallel_rows(int n, F fn) {  // fn(begin, end, worker)
  const int workers = std::max(1, std::min<int>((int)std::thread::hardware_concurrency(), 32));
  std::vector<std::thread> pool;
  const int per = (n + workers - 1) / workers;
  for (int w = 0; w < workers; w++) {
    const int b = w * per, e = std::min(n, b + per);
    if (b >= e) break;
    pool.emplace_back(fn, b, e, w);
  }
  for (auto& t : pool) t.join();
}

struct Errors {
  double loss = 0, grad = 0;  // grad: fp32 metric (also computed for bf16)
  int ulpOther = 0, ulpTarget = 0;  // bf16: non-target elements; target elements beyond the 1e-5 abs floor
  long targetsLoose = 0;            // bf16: target elements > 1 ulp but within the floor (p − 1 cancels)
  long nanMismatch = 0;
  void merge(const Errors& o) {
    loss = std::max(loss, o.loss);
    grad = std::max(grad, o.grad);
    ulpOther = std::max(ulpOther, o.ulpOther);
    ulpTarget = std::max(ulpTarget, o.ulpTarget);
    targetsLoose += o.targetsLoose;
    nanMismatch += o.nanMismatch;
  }
};

template <class T>
T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time (µs) of `reps` runs of fn on the stream.
template <class F>
double time_us(int reps, F fn) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  fn();  // warm-up
  std::vector<float> ms;
  for (int i = 0; i < reps; i++) {
    CK(cudaEventRecord(a, stream));
    fn();
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    float t;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return 1000.0 * median(ms);
}

std::string shape_of(const Spec& s) {
  std::string r = std::to_string(s.rows) + "x" + std::to_string(s.vocab);
  if (s.chunk != s.rows) r += " /" + std::to_string(s.chunk);
  return r;
}

void d2h(void* h, const void* d, size_t n) {
  CK(cudaMemcpyAsync(h, d, n, cudaMemcpyDeviceToHost, stream));
  CK(cudaStreamSynchronize(stream));
}
void h2d(void* d, const void* h, size_t n) {
  CK(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, stream));
  CK(cudaStreamSynchronize(stream));
}

// ---- one case: every chunk checked against the reference, twice for determinism, once loss-only -------------------
void run_case(const Spec& s) {
  const bool bf = s.dtype == OCTET_CE_BF16;
  const size_t esz = bf ? 2 : 4, rowBytes = (size_t)s.vocab * esz, chunkBytes = rowBytes * s.chunk;
  const std::string dt = bf ? "bf16" : "fp32", shape = shape_of(s);

  std::vector<int32_t> targets(s.rows);
  int valid = 0;
  for (int r = 0; r < s.rows; r++) valid += (targets[r] = target_of(s, r)) != -1;
  const int divisor = s.deviceCount ? std::max(valid, 1) : s.rows;
  const double g = std::fabs((double)s.gradScale) / divisor;

  int32_t *dTargets, *dCount;
  float *dLoss1, *dLoss2, *dLossEval;
  double* dMean;
  void *dPristine, *dWork;
  CK(cudaMalloc((void**)&dTargets, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dCount, 4));
  CK(cudaMalloc((void**)&dLoss1, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dLoss2, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dLossEval, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dMean, 2 * sizeof(double)));
  CK(cudaMalloc(&dPristine, chunkBytes));
  CK(cudaMalloc(&dWork, chunkBytes));
  h2d(dTargets, targets.data(), 4 * (size_t)s.rows);
  const int32_t* validPtr = nullptr;
  if (s.deviceCount) {
    CK(octet_count_valid_targets(dTargets, dCount, s.rows, stream));
    int32_t got = -1;
    d2h(&got, dCount, 4);
    add("count_valid_targets", std::to_string(s.rows), "-", "|gpu - host count|", std::abs(got - valid), 0, got == valid);
    validPtr = dCount;
  }

  std::vector<uint8_t> in(chunkBytes), out1(chunkBytes), out2(chunkBytes), after(chunkBytes);
  std::vector<float> loss1(s.rows), loss2(s.rows), lossEval(s.rows);
  std::vector<double> refLoss(s.rows);
  Errors err;
  bool deterministic = true, evalUntouched = true;
  const int nChunks = (s.rows + s.chunk - 1) / s.chunk;

  for (int c = 0; c < nChunks; c++) {
    const int r0 = c * s.chunk, n = std::min(s.chunk, s.rows - r0);
    const size_t bytes = rowBytes * n;
    parallel_rows(n, [&](int b, int e, int) {
      for (int i = b; i < e; i++)
        for (int j = 0; j < s.vocab; j++) {
          const float x = logit_of(s, r0 + i, j, targets[r0 + i]);
          if (bf) reinterpret_cast<uint16_t*>(in.data())[(size_t)i * s.vocab + j] = to_bf16(x);
          else reinterpret_cast<float*>(in.data())[(size_t)i * s.vocab + j] = x;
        }
    });
    h2d(dPristine, in.data(), bytes);
    auto run = [&](float* dLoss, int flags, void* buf) {
      CK(octet_cross_entropy(buf, dTargets + r0, dLoss + r0, validPtr, n, s.vocab, s.rows, s.dtype, s.gradScale, flags, stream));
    };
    CK(cudaMemcpyAsync(dWork, dPristine, bytes, cudaMemcpyDeviceToDevice, stream));
    run(dLoss1, 0, dWork);
    d2h(out1.data(), dWork, bytes);
    CK(cudaMemcpyAsync(dWork, dPristine, bytes, cudaMemcpyDeviceToDevice, stream));
    run(dLoss2, 0, dWork);
    d2h(out2.data(), dWork, bytes);
    if (std::memcmp(out1.data(), out2.data(), bytes) != 0) deterministic = false;
    run(dLossEval, OCTET_CE_NO_GRAD, dPristine);  // loss-only: must leave the chunk untouched
    d2h(after.data(), dPristine, bytes);
    if (std::memcmp(after.data(), in.data(), bytes) != 0) evalUntouched = false;
    d2h(loss1.data() + r0, dLoss1 + r0, 4 * (size_t)n);

    std::vector<Errors> part(64);
    parallel_rows(n, [&](int b, int e, int w) {
      Errors& E = part[w];
      std::vector<double> x(s.vocab);
      for (int i = b; i < e; i++) {
        const int r = r0 + i, t = targets[r];
        const size_t base = (size_t)i * s.vocab;
        for (int j = 0; j < s.vocab; j++)
          x[j] = bf ? from_bf16(reinterpret_cast<const uint16_t*>(in.data())[base + j]) : reinterpret_cast<const float*>(in.data())[base + j];
        double lse = 0, loss = 0;
        if (t != -1) {
          double M = -INFINITY, S = 0;
          for (int j = 0; j < s.vocab; j++) M = std::max(M, x[j]);
          for (int j = 0; j < s.vocab; j++) S += std::exp(x[j] - M);
          lse = M + std::log(S);
          loss = lse - x[t];
        }
        refLoss[r] = loss;
        E.loss = std::max(E.loss, std::fabs((double)loss1[r] - loss) / std::max(std::fabs(loss), 1.0));
        if (std::isnan(loss1[r])) E.nanMismatch++;
        for (int j = 0; j < s.vocab; j++) {
          const double ref = t == -1 ? 0.0 : (std::exp(x[j] - lse) - (j == t ? 1.0 : 0.0)) * s.gradScale / divisor;
          double got;
          if (bf) {
            const uint16_t h = reinterpret_cast<const uint16_t*>(out1.data())[base + j];
            got = from_bf16(h);
            const int u = bf16_ulps(h, to_bf16((float)ref));
            if (j != t) E.ulpOther = std::max(E.ulpOther, u);
            else if (std::fabs(got - ref) / g > 1e-5) E.ulpTarget = std::max(E.ulpTarget, u);
            else if (u > 1) E.targetsLoose++;
          } else {
            got = reinterpret_cast<const float*>(out1.data())[base + j];
          }
          if (std::isnan(got)) E.nanMismatch++;
          E.grad = std::max(E.grad, std::fabs(got - ref) / g);
        }
      }
    });
    for (auto& p : part) err.merge(p);
  }

  d2h(loss2.data(), dLoss2, 4 * (size_t)s.rows);
  d2h(lossEval.data(), dLossEval, 4 * (size_t)s.rows);
  if (std::memcmp(loss1.data(), loss2.data(), 4 * (size_t)s.rows) != 0) deterministic = false;
  const bool evalEqual = std::memcmp(loss1.data(), lossEval.data(), 4 * (size_t)s.rows) == 0;

  CK(octet_mean_loss(dLoss1, validPtr, dMean, s.rows, stream));
  CK(octet_mean_loss(dLoss2, validPtr, dMean + 1, s.rows, stream));
  double mean[2];
  d2h(mean, dMean, sizeof mean);
  if (std::memcmp(&mean[0], &mean[1], sizeof(double)) != 0) deterministic = false;
  double refSum = 0;
  for (int r = 0; r < s.rows; r++) refSum += refLoss[r];
  const double refMean = refSum / divisor, meanErr = std::fabs(mean[0] - refMean) / std::fabs(refMean);

  // Timing: one chunk, in place over and over (values stay finite; the work does not depend on them), against a
  // device-to-device copy of the same bytes (a copy reads and writes each byte once, as the kernel does).
  double us = -1, rate = -1, usEval = -1, rateEval = -1, usCopy = -1, rateCopy = -1, usMean = -1;
  if (s.timing) {
    const int n = std::min(s.chunk, s.rows), reps = quick ? 3 : 20;
    int ignored = 0;  // an ignored row is written (zeros) but not read
    for (int r = 0; r < n; r++) ignored += targets[r] == -1;
    const double bytes = (double)rowBytes * n, validBytes = (double)rowBytes * (n - ignored);
    us = time_us(reps, [&] { CK(octet_cross_entropy(dWork, dTargets, dLoss2, validPtr, n, s.vocab, s.rows, s.dtype, s.gradScale, 0, stream)); });
    usEval = time_us(reps, [&] { CK(octet_cross_entropy(dPristine, dTargets, dLossEval, validPtr, n, s.vocab, s.rows, s.dtype, s.gradScale, OCTET_CE_NO_GRAD, stream)); });
    usCopy = time_us(reps, [&] { CK(cudaMemcpyAsync(dWork, dPristine, (size_t)bytes, cudaMemcpyDeviceToDevice, stream)); });
    usMean = time_us(reps, [&] { CK(octet_mean_loss(dLoss1, validPtr, dMean, s.rows, stream)); });
    rate = (validBytes + bytes) / us * 1e-3;
    rateEval = validBytes / usEval * 1e-3;
    rateCopy = 2 * bytes / usCopy * 1e-3;
  }

  add("cross_entropy loss", shape, dt, "rel, floor 1", err.loss, 1e-5, err.loss <= 1e-5 && err.nanMismatch == 0);
  if (bf) {
    const int ulp = std::max(err.ulpOther, err.ulpTarget);
    add("cross_entropy dLogits", shape, dt, "bf16 ulp", ulp, 1, ulp <= 1 && err.nanMismatch == 0, us, rate);
    add("  (info)", shape, dt, "targets >1ulp, <=1e-5 abs", (double)err.targetsLoose, -1, true);
  } else {
    add("cross_entropy dLogits", shape, dt, "abs x divisor/scale", err.grad, 1e-5, err.grad <= 1e-5 && err.nanMismatch == 0, us, rate);
  }
  add("cross_entropy eval", shape, dt, "loss bits = grad path", evalEqual && evalUntouched ? 0 : 1, 0, evalEqual && evalUntouched, usEval, rateEval);
  add("mean_loss", std::to_string(s.rows), "fp64", "rel", meanErr, 1e-5, meanErr <= 1e-5, usMean, -1);
  add("determinism", shape, dt, "2 runs bit-identical", deterministic ? 0 : 1, 0, deterministic);
  if (s.timing) add("D2D copy (same bytes)", std::to_string(std::min(s.chunk, s.rows)) + "x" + std::to_string(s.vocab), dt, "-", 0, -1, true, usCopy, rateCopy);

  CK(cudaFree(dTargets));
  CK(cudaFree(dCount));
  CK(cudaFree(dLoss1));
  CK(cudaFree(dLoss2));
  CK(cudaFree(dLossEval));
  CK(cudaFree(dMean));
  CK(cudaFree(dPristine));
  CK(cudaFree(dWork));
}

// ---- bad targets: NaN loss and NaN gradient for out-of-range targets, zeros for −1 -----------------------------------
void run_bad_targets(int dtype) {
  const int rows = 4, vocab = 256;
  const bool bf = dtype == OCTET_CE_BF16;
  const size_t esz = bf ? 2 : 4;
  const int32_t targets[rows] = {3, vocab, -1, -5};
  std::vector<uint8_t> x(rows * vocab * esz);
  for (int i = 0; i < rows * vocab; i++) {
    const float v = (float)(uniform(i + 777) * 4 - 2);
    if (bf) reinterpret_cast<uint16_t*>(x.data())[i] = to_bf16(v);
    else reinterpret_cast<float*>(x.data())[i] = v;
  }
  void* dX;
  int32_t *dT, *dCount;
  float* dLoss;
  double* dMean;
  CK(cudaMalloc(&dX, x.size()));
  CK(cudaMalloc((void**)&dT, sizeof targets));
  CK(cudaMalloc((void**)&dCount, 4));
  CK(cudaMalloc((void**)&dLoss, 4 * rows));
  CK(cudaMalloc((void**)&dMean, 8));
  h2d(dX, x.data(), x.size());
  h2d(dT, targets, sizeof targets);
  CK(octet_count_valid_targets(dT, dCount, rows, stream));
  CK(octet_cross_entropy(dX, dT, dLoss, dCount, rows, vocab, rows, dtype, 1.0f, 0, stream));
  CK(octet_mean_loss(dLoss, dCount, dMean, rows, stream));
  std::vector<uint8_t> out(x.size());
  float loss[rows];
  double mean;
  int32_t count;
  d2h(out.data(), dX, out.size());
  d2h(loss, dLoss, sizeof loss);
  d2h(&mean, dMean, 8);
  d2h(&count, dCount, 4);
  auto at = [&](int r, int j) {
    const int i = r * vocab + j;
    return bf ? from_bf16(reinterpret_cast<const uint16_t*>(out.data())[i]) : reinterpret_cast<const float*>(out.data())[i];
  };
  bool ok = count == 3 && std::isfinite(loss[0]) && std::isnan(loss[1]) && loss[2] == 0.0f && std::isnan(loss[3]) && std::isnan(mean);
  for (int j = 0; j < vocab; j++)
    ok = ok && std::isfinite(at(0, j)) && std::isnan(at(1, j)) && at(2, j) == 0.0f && !std::signbit(at(2, j)) && std::isnan(at(3, j));
  add("bad targets (-1, >=V, <-1)", "4x256", bf ? "bf16" : "fp32", "0/NaN semantics", ok ? 0 : 1, 0, ok);
  CK(cudaFree(dX));
  CK(cudaFree(dT));
  CK(cudaFree(dCount));
  CK(cudaFree(dLoss));
  CK(cudaFree(dMean));
}

// ---- argument validation ---------------------------------------------------------------------------------------------
void run_validation() {
  float* dX;
  int32_t* dT;
  float* dLoss;
  double* dMean;
  CK(cudaMalloc((void**)&dX, 4 * 64 * 16 + 16));
  CK(cudaMalloc((void**)&dT, 4 * 64));
  CK(cudaMalloc((void**)&dLoss, 4 * 64));
  CK(cudaMalloc((void**)&dMean, 8));
  CK(cudaMemsetAsync(dT, 0, 4 * 64, stream));
  const cudaError_t bad = cudaErrorInvalidValue;
  int wrong = 0, total = 0;
  auto expect = [&](cudaError_t got, cudaError_t want) {
    total++;
    if (got != want) wrong++;
  };
  auto ce = [&](void* x, const int32_t* t, float* l, int rows, int vocab, int total, int dtype, int flags) {
    return octet_cross_entropy(x, t, l, nullptr, rows, vocab, total, dtype, 1.0f, flags, stream);
  };
  expect(ce(dX, dT, dLoss, 4, 16, 4, OCTET_CE_F32, 0), cudaSuccess);
  expect(ce(dX, dT, dLoss, 0, 16, 4, OCTET_CE_F32, 0), cudaSuccess);        // empty chunk: nothing to do
  expect(ce(dX, dT, dLoss, -1, 16, 4, OCTET_CE_F32, 0), bad);              // negative rows
  expect(ce(dX, dT, dLoss, 4, 12, 4, OCTET_CE_F32, 0), bad);               // vocab not a multiple of 8
  expect(ce(dX, dT, dLoss, 4, 0, 4, OCTET_CE_F32, 0), bad);                // vocab 0
  expect(ce(dX, dT, dLoss, 4, OCTET_CE_MAX_VOCAB + 8, 4, OCTET_CE_F32, 0), bad);
  expect(ce(dX, dT, dLoss, 4, 16, 3, OCTET_CE_F32, 0), bad);               // totalRows < rows
  expect(ce(dX, dT, dLoss, 4, 16, 4, 2, 0), bad);                          // unknown dtype
  expect(ce(dX, dT, dLoss, 4, 16, 4, OCTET_CE_F32, 2), bad);               // unknown flag
  expect(ce(nullptr, dT, dLoss, 4, 16, 4, OCTET_CE_F32, 0), bad);
  expect(ce(dX, nullptr, dLoss, 4, 16, 4, OCTET_CE_F32, 0), bad);
  expect(ce(dX, dT, nullptr, 4, 16, 4, OCTET_CE_F32, 0), bad);
  expect(ce(reinterpret_cast<char*>(dX) + 4, dT, dLoss, 4, 16, 4, OCTET_CE_F32, 0), bad);  // not 16-byte aligned
  expect(octet_mean_loss(dLoss, nullptr, dMean, -1, stream), bad);
  expect(octet_mean_loss(dLoss, nullptr, nullptr, 4, stream), bad);
  expect(octet_mean_loss(nullptr, nullptr, dMean, 4, stream), bad);
  expect(octet_mean_loss(dLoss, nullptr, dMean, 0, stream), cudaSuccess);
  expect(octet_count_valid_targets(dT, nullptr, 4, stream), bad);
  expect(octet_count_valid_targets(dT, reinterpret_cast<int32_t*>(dLoss), -2, stream), bad);
  CK(cudaStreamSynchronize(stream));
  double mean0 = -1;
  d2h(&mean0, dMean, 8);  // mean over no rows: 0
  expect(mean0 == 0.0 ? cudaSuccess : bad, cudaSuccess);
  add("argument validation", std::to_string(total) + " calls", "-", "wrong return codes", wrong, 0, wrong == 0);
  CK(cudaFree(dX));
  CK(cudaFree(dT));
  CK(cudaFree(dLoss));
  CK(cudaFree(dMean));
}

// ---- graph capture: the chunk loop (copy-in, cross-entropy, mean) captured once and replayed gives the same bits ----
void run_graph(const Spec& s) {
  const size_t esz = s.dtype == OCTET_CE_BF16 ? 2 : 4, bytes = (size_t)s.rows * s.vocab * esz;
  std::vector<uint8_t> in(bytes);
  std::vector<int32_t> targets(s.rows);
  for (int r = 0; r < s.rows; r++) targets[r] = target_of(s, r);
  for (int r = 0; r < s.rows; r++)
    for (int j = 0; j < s.vocab; j++) {
      const float x = logit_of(s, r, j, targets[r]);
      if (esz == 2) reinterpret_cast<uint16_t*>(in.data())[(size_t)r * s.vocab + j] = to_bf16(x);
      else reinterpret_cast<float*>(in.data())[(size_t)r * s.vocab + j] = x;
    }
  void *dIn, *dWork;
  int32_t *dT, *dCount;
  float* dLoss;
  double* dMean;
  CK(cudaMalloc(&dIn, bytes));
  CK(cudaMalloc(&dWork, bytes));
  CK(cudaMalloc((void**)&dT, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dCount, 4));
  CK(cudaMalloc((void**)&dLoss, 4 * (size_t)s.rows));
  CK(cudaMalloc((void**)&dMean, 8));
  h2d(dIn, in.data(), bytes);
  h2d(dT, targets.data(), 4 * (size_t)s.rows);
  const size_t chunkBytes = (size_t)s.chunk * s.vocab * esz;
  auto step = [&] {
    CK(cudaMemcpyAsync(dWork, dIn, bytes, cudaMemcpyDeviceToDevice, stream));
    CK(octet_count_valid_targets(dT, dCount, s.rows, stream));
    for (int r0 = 0; r0 < s.rows; r0 += s.chunk)
      CK(octet_cross_entropy(static_cast<char*>(dWork) + chunkBytes * (r0 / s.chunk), dT + r0, dLoss + r0, dCount,
                             std::min(s.chunk, s.rows - r0), s.vocab, s.rows, s.dtype, s.gradScale, 0, stream));
    CK(octet_mean_loss(dLoss, dCount, dMean, s.rows, stream));
  };
  step();
  std::vector<uint8_t> direct(bytes), replay(bytes);
  double meanDirect, meanReplay;
  d2h(direct.data(), dWork, bytes);
  d2h(&meanDirect, dMean, 8);
  CK(cudaMemsetAsync(dWork, 0, bytes, stream));
  CK(cudaMemsetAsync(dMean, 0, 8, stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  step();
  CK(cudaStreamEndCapture(stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  CK(cudaGraphLaunch(exec, stream));
  CK(cudaStreamSynchronize(stream));
  d2h(replay.data(), dWork, bytes);
  d2h(&meanReplay, dMean, 8);
  const bool same = std::memcmp(direct.data(), replay.data(), bytes) == 0 && std::memcmp(&meanDirect, &meanReplay, 8) == 0;
  add("graph capture + replay", shape_of(s), s.dtype == OCTET_CE_BF16 ? "bf16" : "fp32", "bits = direct run", same ? 0 : 1, 0, same);
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  CK(cudaFree(dIn));
  CK(cudaFree(dWork));
  CK(cudaFree(dT));
  CK(cudaFree(dCount));
  CK(cudaFree(dLoss));
  CK(cudaFree(dMean));
}

void print_table() {
  std::printf("\n%-28s %-16s %-5s %-27s %10s %8s %-4s %10s %8s\n", "op", "shape (/chunk)", "dtype", "error metric", "max err",
              "tol", "pass", "time us", "GB/s");
  for (const Line& l : table) {
    char tol[16], us[16], rate[16];
    if (l.tol < 0) std::snprintf(tol, sizeof tol, "-");
    else std::snprintf(tol, sizeof tol, "%.0e", l.tol);
    if (l.us < 0) std::snprintf(us, sizeof us, "-");
    else std::snprintf(us, sizeof us, "%.1f", l.us);
    if (l.rate < 0) std::snprintf(rate, sizeof rate, "-");
    else std::snprintf(rate, sizeof rate, "%.0f", l.rate);
    std::printf("%-28s %-16s %-5s %-27s %10.3g %8s %-4s %10s %8s\n", l.op.c_str(), l.shape.c_str(), l.dtype.c_str(),
                l.metric.c_str(), l.err, tol, l.pass ? "ok" : "FAIL", us, rate);
  }
  std::printf("\nGB/s: cross_entropy and D2D copy count bytes read + written (2 x chunk; an ignored row is only written);\n"
              "eval (loss-only) counts bytes read. Kernel timed in place on one chunk, repeatedly (the work does not depend on values).\n"
              "Time: median per call over one chunk (gpu-small: x %d chunks per step).\n",
              16384 / 2048);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++)
    if (std::string(argv[i]) == "quick") quick = true;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)%s\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount, quick ? " [quick]" : "");
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  const int F = OCTET_CE_F32, B = OCTET_CE_BF16;
  // name, rows, vocab, chunk, dtype, gradScale, ignoreEvery, confidentEvery, deviceCount, timing, seed
  std::vector<Spec> specs = {
      {"tiny", 1024, 256, 1024, F, 1.0f, 0, 61, false, true, 1},
      {"tiny", 1024, 256, 1024, B, 1.0f, 0, 61, false, true, 2},
  };
  if (!quick) {
    specs.push_back({"gpu-small", 16384, 32768, 2048, F, 1.0f, 0, 61, false, true, 3});
    specs.push_back({"gpu-small", 16384, 32768, 2048, B, 1.0f, 0, 61, false, true, 4});
  } else {  // gpu-small's vocab (its launch configurations: 1024 threads fp32, 512 bf16) on a few rows
    specs.push_back({"gpu-small rows", 12, 32768, 8, F, 1.0f, 0, 5, false, false, 3});
    specs.push_back({"gpu-small rows", 12, 32768, 8, B, 1.0f, 0, 5, false, false, 4});
  }
  // Edge shapes: the largest vocab (fp32 and bf16 both too large to stage: the two-read path), a vocab that is a
  // multiple of 8 but not of the block's vectors (tails), the smallest vocab (idle threads), ignored rows with the
  // device-side count, and an MTP-like gradScale.
  const int bigRows = quick ? 6 : 512, bigChunk = quick ? 4 : 256;
  specs.push_back({"max vocab", bigRows, OCTET_CE_MAX_VOCAB, bigChunk, F, 0.25f, 5, 7, true, !quick, 5});
  specs.push_back({"max vocab", bigRows, OCTET_CE_MAX_VOCAB, bigChunk, B, 0.25f, 5, 7, true, !quick, 6});
  specs.push_back({"odd vocab", quick ? 20 : 300, 50264, quick ? 8 : 100, F, 1.0f, 7, 11, true, false, 7});
  specs.push_back({"odd vocab", quick ? 20 : 300, 50264, quick ? 8 : 100, B, 1.0f, 7, 11, true, false, 8});
  specs.push_back({"vocab 8", 96, 8, 40, F, 1.0f, 9, 5, true, false, 9});
  specs.push_back({"vocab 8", 96, 8, 40, B, 1.0f, 9, 5, true, false, 10});
  for (const Spec& s : specs) run_case(s);
  run_bad_targets(OCTET_CE_F32);
  run_bad_targets(OCTET_CE_BF16);
  run_validation();
  run_graph({"graph", 1024, 256, 256, F, 1.0f, 13, 61, true, false, 11});
  run_graph({"graph", 1024, 256, 256, B, 1.0f, 13, 61, true, false, 12});
  print_table();
#ifndef OCTET_EMU  // the emulated runtime has no stream objects
  CK(cudaStreamDestroy(stream));
#endif
  std::printf("%s\n", all_pass ? "ALL PASS" : "SOME CHECKS FAILED");
  return all_pass ? 0 : 1;
}
