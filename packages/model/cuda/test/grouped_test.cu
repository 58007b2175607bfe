// Harness for grouped.cu (the experts' GEMMs with device offsets): each kernel against a float64 reference on
// random inputs at the tiny and gpu-small expert shapes (uneven loads, empty experts), determinism (two runs
// bit-identical), the fake-quant kernel bit for bit against a host model of @octet/numerics' quantizer (its
// scale arithmetic and PyTorch's cast), bad offsets clamped (no access outside the buffers), and one table.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/t packages/model/cuda/test/grouped_test.cu \
//        packages/model/cuda/grouped.cu && /tmp/t            [quick]
// Without a GPU, under @octet/numerics' CPU emulation (quick only):
//   g++ -std=c++20 -O2 -ffp-contract=off -DOCTET_EMU -I packages/numerics/cuda/emu/shim -x c++ \
//        packages/model/cuda/test/grouped_test.cu -x c++ packages/model/cuda/grouped.cu -o /tmp/g_emu && /tmp/g_emu quick
#include "../grouped.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../../numerics/cuda/common.cuh"

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);     \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

namespace {

int failures = 0;

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) { CK(cudaMalloc(&p, bytes ? bytes : 4)); }
  ~Dev() { cudaFree(p); }
  template <class T> T* as() { return static_cast<T*>(p); }
};

// Fill device bytes (cudaMemset through a host buffer, which the emulation also has).
void poison(Dev& d, size_t bytes, uint8_t b) {
  std::vector<uint8_t> h(bytes, b);
  CK(cudaMemcpyAsync(d.p, h.data(), bytes, cudaMemcpyHostToDevice, 0));
  CK(cudaStreamSynchronize(0));
}

template <class T> void up(Dev& d, const std::vector<T>& h) { CK(cudaMemcpyAsync(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, 0));
  CK(cudaStreamSynchronize(0)); }
template <class T> std::vector<T> down(Dev& d, size_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpyAsync(h.data(), d.p, n * sizeof(T), cudaMemcpyDeviceToHost, 0));
  CK(cudaStreamSynchronize(0));
  return h;
}

std::vector<int32_t> make_offsets(int E, int total, std::mt19937_64& rng, int empties) {
  std::vector<double> w(E);
  for (auto& x : w) x = std::exponential_distribution<double>(1.0)(rng);
  for (int z = 0; z < empties; ++z) w[rng() % E] = 0;
  double s = 0;
  for (double x : w) s += x;
  std::vector<int32_t> o(E + 1, 0);
  double acc = 0;
  for (int e = 0; e < E; ++e) {
    acc += w[e];
    o[e + 1] = e == E - 1 ? total : (int32_t)std::floor(acc / s * total);
  }
  return o;
}

std::vector<float> randn(size_t n, std::mt19937_64& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void report(const std::string& name, double err, double tol, bool det, const std::string& extra = "") {
  const bool pass = err <= tol && det;
  if (!pass) ++failures;
  std::printf("%-44s %-4s max rel err %.2e (tol %.0e), two runs %s %s\n", name.c_str(), pass ? "PASS" : "FAIL", err, tol,
              det ? "bit-identical" : "DIFFER", extra.c_str());
}

// rows: transB 1 (Fprop) and 0 (Dgrad).
void test_rows(const char* label, int E, int M, int N, int K, int transB, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto off = make_offsets(E, M, rng, E / 4);
  const auto A = randn((size_t)M * K, rng), B = randn((size_t)E * N * K, rng);
  Dev dA(A.size() * 4), dB(B.size() * 4), dC((size_t)M * N * 4), dO(off.size() * 4);
  up(dA, A); up(dB, B); up(dO, off);
  poison(dC, (size_t)M * N * 4, 0xFF);
  CK(octet_grouped_gemm_rows(dA.as<float>(), dB.as<float>(), dC.as<float>(), dO.as<int32_t>(), E, M, N, K, transB, 0));
  const auto c1 = down<float>(dC, (size_t)M * N);
  poison(dC, (size_t)M * N * 4, 0xFF);
  CK(octet_grouped_gemm_rows(dA.as<float>(), dB.as<float>(), dC.as<float>(), dO.as<int32_t>(), E, M, N, K, transB, 0));
  const auto c2 = down<float>(dC, (size_t)M * N);
  double err = 0, mag = 0;
  for (int e = 0; e < E; ++e)
    for (int r = off[e]; r < off[e + 1]; ++r)
      for (int n = 0; n < N; ++n) {
        double s = 0, sa = 0;
        for (int k = 0; k < K; ++k) {
          const double b = transB ? B[((size_t)e * N + n) * K + k] : B[((size_t)e * K + k) * N + n];
          s += (double)A[(size_t)r * K + k] * b;
          sa += std::fabs((double)A[(size_t)r * K + k] * b);
        }
        err = std::max(err, std::fabs(c1[(size_t)r * N + n] - s) / std::max(sa, 1e-30));
        mag = std::max(mag, sa);
      }
  report(std::string(label) + (transB ? " fprop" : " dgrad"), err, 1e-5, std::memcmp(c1.data(), c2.data(), c1.size() * 4) == 0,
         "(error relative to Σ|a·b| per output)");
}

void test_wgrad(const char* label, int E, int M, int N1, int N2, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto off = make_offsets(E, M, rng, E / 4);
  const auto A = randn((size_t)M * N1, rng), B = randn((size_t)M * N2, rng), C0 = randn((size_t)E * N1 * N2, rng);
  Dev dA(A.size() * 4), dB(B.size() * 4), dC(C0.size() * 4), dO(off.size() * 4);
  up(dA, A); up(dB, B); up(dO, off);
  std::vector<float> runs[2];
  for (int t = 0; t < 2; ++t) {
    up(dC, C0);
    CK(octet_grouped_gemm_wgrad(dA.as<float>(), dB.as<float>(), dC.as<float>(), dO.as<int32_t>(), E, M, N1, N2, 1, 0));
    runs[t] = down<float>(dC, C0.size());
  }
  double err = 0;
  for (int e = 0; e < E; ++e)
    for (int i = 0; i < N1; ++i)
      for (int j = 0; j < N2; ++j) {
        double s = 0, sa = std::fabs((double)C0[((size_t)e * N1 + i) * N2 + j]);
        for (int r = off[e]; r < off[e + 1]; ++r) {
          const double p = (double)A[(size_t)r * N1 + i] * B[(size_t)r * N2 + j];
          s += p;
          sa += std::fabs(p);
        }
        const double ref = C0[((size_t)e * N1 + i) * N2 + j] + s;
        err = std::max(err, std::fabs(runs[0][((size_t)e * N1 + i) * N2 + j] - ref) / std::max(sa, 1e-30));
      }
  report(std::string(label) + " wgrad (accumulate)", err, 1e-5, runs[0] == runs[1]);
}

float host_decode(uint32_t code, int fmt) {
  const float sign = (code & 0x80u) ? -1.0f : 1.0f;
  if (fmt == 0) {
    const int e = (code >> 3) & 0xf, m = code & 7;
    if (e == 15 && m == 7) return NAN;
    return sign * (e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7));
  }
  const int e = (code >> 2) & 0x1f, m = code & 3;
  if (e == 31) return m == 0 ? sign * INFINITY : NAN;
  return sign * (e == 0 ? std::ldexp((float)m, -16) : std::ldexp(1.0f + m / 4.0f, e - 15));
}

void test_fake_quant(const char* label, int E, int M, int F, int fmt, int pow2, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto off = make_offsets(E, M, rng, E / 4);
  auto x = randn((size_t)M * F, rng, 0.05f);
  for (size_t i = 0; i < x.size(); i += 97) x[i] *= 300.0f;  // outliers set some tiles' scales
  for (size_t i = 5; i < x.size(); i += 1013) x[i] = 0.0f;
  Dev dx(x.size() * 4), dOut(x.size() * 4), dO(off.size() * 4);
  up(dx, x); up(dO, off);
  std::vector<float> runs[2];
  for (int t = 0; t < 2; ++t) {
    poison(dOut, x.size() * 4, 0xFF);
    CK(octet_grouped_fake_quant_token_tiles(dx.as<float>(), dOut.as<float>(), dO.as<int32_t>(), E, M, F, fmt, pow2, 0));
    runs[t] = down<float>(dOut, x.size());
  }
  // Host model of @octet/numerics' quantizeTiles on each expert's rows, transposed: runs of 128 tokens per column.
  long long differ = 0;
  const float fmax = fmt == 0 ? 448.0f : 57344.0f;
  for (int e = 0; e < E; ++e)
    for (int r0 = off[e]; r0 < off[e + 1]; r0 += 128) {
      const int r1 = std::min(off[e + 1], r0 + 128);
      for (int f = 0; f < F; ++f) {
        float amax = 0;
        for (int r = r0; r < r1; ++r) amax = std::max(amax, std::fabs(x[(size_t)r * F + f]));
        float s = std::max(amax, 1e-4f) / fmax;
        if (pow2) {
          uint32_t b;
          std::memcpy(&b, &s, 4);
          if (b & 0x7fffffu) b = (b & 0x7f800000u) + 0x800000u;
          std::memcpy(&s, &b, 4);
        }
        const float inv = 1.0f / s;
        for (int r = r0; r < r1; ++r) {
          const float v = x[(size_t)r * F + f] * inv;
          const uint32_t code = fmt == 0 ? octet_cuda::soft_e4m3(v) : octet_cuda::soft_e5m2(v);
          const float want = host_decode(code, fmt) * s;
          const float got = runs[0][(size_t)r * F + f];
          differ += std::memcmp(&want, &got, 4) != 0;
        }
      }
    }
  char extra[96];
  std::snprintf(extra, sizeof extra, "(%lld of %zu values differ from the host model)", differ, x.size());
  report(std::string(label) + (fmt ? " fake-quant e5m2" : " fake-quant e4m3") + (pow2 ? " pow2" : ""), differ ? 1.0 : 0.0, 0.0,
         runs[0] == runs[1], extra);
}

void test_bad_offsets() {
  // Offsets beyond M_total and decreasing: clamped and flattened, nothing written outside C (guard words intact).
  const int E = 4, M = 70, N = 20, K = 9;
  std::mt19937_64 rng(5);
  const auto A = randn((size_t)M * K, rng), B = randn((size_t)E * N * K, rng);
  const std::vector<int32_t> off = {-5, 40, 30, 1000, 2000000};
  Dev dA(A.size() * 4), dB(B.size() * 4), dC(((size_t)M * N + 64) * 4), dO(off.size() * 4);
  up(dA, A); up(dB, B); up(dO, off);
  poison(dC, ((size_t)M * N + 64) * 4, 0x7F);
  CK(octet_grouped_gemm_rows(dA.as<float>(), dB.as<float>(), dC.as<float>(), dO.as<int32_t>(), E, M, N, K, 1, 0));
  const auto c = down<float>(dC, (size_t)M * N + 64);
  bool guard = true;
  for (int i = 0; i < 64; ++i) {
    uint32_t b;
    std::memcpy(&b, &c[(size_t)M * N + i], 4);
    guard = guard && b == 0x7F7F7F7Fu;
  }
  const bool refused = octet_grouped_gemm_rows(dA.as<float>(), dB.as<float>(), dC.as<float>(), dO.as<int32_t>(), 0, M, N, K, 1, 0) ==
                           cudaErrorInvalidValue &&
                       octet_grouped_gemm_wgrad(nullptr, nullptr, dC.as<float>(), nullptr, E, M, N, K, 1, 0) == cudaErrorInvalidValue &&
                       octet_grouped_fake_quant_token_tiles(dA.as<float>(), dC.as<float>(), dO.as<int32_t>(), E, M, K, 2, 0, 0) ==
                           cudaErrorInvalidValue;
  report("bad offsets clamped; bad sizes refused", guard && refused ? 0.0 : 1.0, 0.0, true);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "quick";
  // tiny: 8 experts, d 128, expert hidden 128, 16·64 tokens · top-2.
  test_rows("tiny w1 [2048 rows, 128 <- 128]", 8, 2048, 128, 128, 1, 1);
  test_rows("tiny w2 [2048 rows, 128 <- 128]", 8, 2048, 128, 128, 0, 2);
  test_wgrad("tiny w1 [8 x 128 x 128]", 8, 2048, 128, 128, 3);
  test_fake_quant("tiny x [2048, 128]", 8, 2048, 128, 0, 0, 4);
  test_fake_quant("tiny dy [2048, 128]", 8, 2048, 128, 1, 1, 5);
  test_bad_offsets();
  if (!quick) {
    // gpu-small: 64 experts, d 2048, expert hidden 1408; 16,384 tokens · top-6 = 98,304 rows (sampled here at 1/8).
    test_rows("gpu-small w1 [12288 rows, 1408 <- 2048]", 64, 12288, 1408, 2048, 1, 6);
    test_rows("gpu-small w2 dgrad [12288 rows, 1408 <- 2048]", 64, 12288, 1408, 2048, 0, 7);
    test_wgrad("gpu-small w1 [64 x 1408 x 2048]", 64, 12288, 1408, 2048, 8);
    test_fake_quant("gpu-small x [12288, 2048]", 64, 12288, 2048, 0, 0, 9);
  }
  std::printf("grouped_test: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
