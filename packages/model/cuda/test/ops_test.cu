// GPU check of the elementwise and reduction ops (packages/model/cuda/ops.cu) against a CPU reference.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/ops_test \
//        packages/model/cuda/test/ops_test.cu packages/model/cuda/ops.cu && /tmp/ops_test [tiny|gpu-small|all]
//
// For each op, at the shapes of the `tiny` and `gpu-small` presets: random inputs (fixed seed), the kernel, and the
// reference computed here on the CPU: CpuBackend's definition replayed exactly. JS numbers are float64 and every
// Float32Array store rounds to float32, so the reference is cpu.ts's float64 formula with a float cast wherever
// cpu.ts stores (host code is plain x86-64 SSE2: no FMA contraction, no reassociation). It is what the CPU backend
// computes, so "GPU against CPU" is this comparison.
// Columns:
//   maxRelErr  max over elements of |gpu − cpu| / max(|cpu|, 1e-3 · max|cpu|): per-element relative error, with a
//              floor at 1e-3 of the tensor's largest magnitude (near-zero elements of a cancelling sum are judged
//              against the tensor's scale, not their own);
//   ≠cpu       elements whose bits differ from the reference ("-": not computed). Ops documented as bit-exact
//              must show 0 to pass;
//   det        two runs from the same inputs give identical bits (compared on the device; outputs are filled with
//              0xFF before each run, so an element a kernel fails to write also shows up in the ≠cpu count);
//   time       median of several runs (cudaEvent); GB/s = bytes the op must move / time; %copy = against a
//              cudaMemcpy device-to-device measured here (read + write bytes / time).
// AdamW, the sum of squares and scale run on a flat buffer of 1M (tiny) / 256M (gpu-small) parameters; at 256M the
// inputs are one random 16M block tiled over the buffer, and the bits are checked on the whole first block and on
// every 97th element after it. The one-line-per-op table goes to stdout, progress to stderr.
// Exit code 1 if any check fails (2 on a CUDA error).
#include "../ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "%s:%d: %s -> %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));     \
      exit(2);                                                                                     \
    }                                                                                              \
  } while (0)

static cudaStream_t g_stream;
static double g_copyGBs = 0;

// ---- host utilities -------------------------------------------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  float sym(float a) { return (float)((uniform() * 2.0 - 1.0) * a); }                // [-a, a)
  float normal(float sd) {  // triangular on [-√6·sd, √6·sd) (variance sd²): one draw, cheap for 10⁹ values
    const uint64_t r = next();
    const double u = (double)(r >> 32) * (1.0 / 4294967296.0) + (double)(r & 0xffffffffu) * (1.0 / 4294967296.0) - 1.0;
    return (float)(u * 2.449489742783178 * sd);
  }
  int64_t below(int64_t n) { return (int64_t)(next() % (uint64_t)n); }
};

static uint32_t bitsOf(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fromBits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

template <class T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  Dev() = default;
  explicit Dev(size_t count) : n(count) { CK(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(count, 1) * sizeof(T))); }
  Dev(const std::vector<T>& h) : Dev(h.size()) { up(h); }
  ~Dev() { if (p) cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  size_t bytes() const { return n * sizeof(T); }
  void up(const std::vector<T>& h) { CK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> down() const {
    CK(cudaStreamSynchronize(g_stream));
    std::vector<T> h(n);
    CK(cudaMemcpy(h.data(), p, bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
  void copyFrom(const Dev& o) { CK(cudaMemcpyAsync(p, o.p, bytes(), cudaMemcpyDeviceToDevice, g_stream)); }
  // 0xFF bytes (NaN floats): an element the kernel should write but does not shows up in the comparison
  void poison() { CK(cudaMemsetAsync(p, 0xFF, bytes(), g_stream)); }
};

__global__ void countDiffKernel(const unsigned char* a, const unsigned char* b, size_t n, unsigned long long* count) {
  unsigned long long local = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) local += a[i] != b[i];
  if (local) atomicAdd(count, local);  // an integer count: the order of the adds does not matter
}

static bool equalOnDevice(const void* a, const void* b, size_t bytes) {
  Dev<unsigned long long> count(1);
  CK(cudaMemsetAsync(count.p, 0, 8, g_stream));
  countDiffKernel<<<1024, 256, 0, g_stream>>>(static_cast<const unsigned char*>(a), static_cast<const unsigned char*>(b), bytes, count.p);
  CK(cudaGetLastError());
  return count.down()[0] == 0;
}

struct Out {
  void* p;
  size_t bytes;
};
template <class T>
static Out out(Dev<T>& d) { return {d.p, d.bytes()}; }

// prepare(); run(); twice — the outputs of the first run kept on the device and compared byte for byte with the
// second's (which stay in place for the accuracy check). True when identical.
template <class Prepare, class Run>
static bool twice(std::vector<Out> outs, Prepare prepare, Run run) {
  prepare();
  run();
  std::vector<void*> first;
  for (const Out& o : outs) {
    void* c = nullptr;
    CK(cudaMalloc(&c, std::max<size_t>(o.bytes, 1)));
    CK(cudaMemcpyAsync(c, o.p, o.bytes, cudaMemcpyDeviceToDevice, g_stream));
    first.push_back(c);
  }
  prepare();
  run();
  bool same = true;
  for (size_t i = 0; i < outs.size(); ++i) {
    same &= equalOnDevice(first[i], outs[i].p, outs[i].bytes);
    CK(cudaFree(first[i]));
  }
  return same;
}

template <class F>
static double medianUs(F&& launch, int reps) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  launch();  // warm-up
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a, g_stream));
    launch();
    CK(cudaEventRecord(b, g_stream));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1000.0f);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// max |gpu − ref| / max(|ref|, 1e-3 · max|ref|); NaN where ref is not NaN (or vice versa) counts as infinite.
template <class R>
static double relErr(const float* gpu, const R* ref, size_t n) {
  double mx = 0;
  for (size_t i = 0; i < n; ++i) if (std::isfinite((double)ref[i])) mx = std::max(mx, std::fabs((double)ref[i]));
  const double floor = mx > 0 ? 1e-3 * mx : 1e-300;
  double e = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = gpu[i], r = (double)ref[i];
    if (std::isnan(g) || std::isnan(r)) {
      if (std::isnan(g) != std::isnan(r)) return INFINITY;
      continue;
    }
    if (std::isinf(r) || std::isinf(g)) {
      if (g != r) return INFINITY;
      continue;
    }
    e = std::max(e, std::fabs(g - r) / std::max(std::fabs(r), floor));
  }
  return e;
}

template <class T>
static long long bitDiff(const T* a, const T* b, size_t n) {
  using U = typename std::conditional<sizeof(T) == 2, uint16_t, typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type>::type;
  static_assert(sizeof(U) == sizeof(T), "2-, 4- or 8-byte elements");
  long long d = 0;
  for (size_t i = 0; i < n; ++i) {
    U x, y;
    memcpy(&x, &a[i], sizeof(T));
    memcpy(&y, &b[i], sizeof(T));
    d += x != y;
  }
  return d;
}

template <class T>
static bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

static std::vector<float> randVec(Rng& rng, size_t n, float sd) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal(sd);
  return v;
}

// ---- the table --------------------------------------------------------------------------------------------------

struct Row {
  std::string op, shape;
  double err = 0, tol = 0;
  long long bits = -1;        // ≠cpu count; -1: not computed
  bool bitsRequired = false;  // bit-exact op: bits must be 0
  bool det = true;
  double us = -1, bytes = 0;
  bool pass() const { return err <= tol && det && (!bitsRequired || bits == 0); }
};
static std::vector<Row> g_rows;

static void add(Row r) {
  g_rows.push_back(r);
  fprintf(stderr, "  done %-22s %-34s %s\n", r.op.c_str(), r.shape.c_str(), r.pass() ? "ok" : "FAIL");
}

static std::string shp(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (auto it = d.begin(); it != d.end(); ++it) s += (it == d.begin() ? "" : ",") + std::to_string(*it);
  return s + "]";
}

struct Preset {
  const char* name;
  int64_t tokens, seqLen, dModel, vocab, heads, qkNope, qkRope, vDim, experts, topK, expertHidden, ffnHidden, adamN;
  int reps;
};

static const double kTol = 1e-5;

// ---- embedding ----------------------------------------------------------------------------------------------------

static void testEmbedding(const Preset& P, Rng& rng) {
  const int64_t n = P.tokens, C = P.dModel, V = P.vocab;
  {  // forward, with one out-of-range id (a zero row)
    std::vector<float> table = randVec(rng, V * C, 1.0f);
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = (int32_t)rng.below(V);
    ids[n / 2] = -1;
    Dev<float> dT(table), dO(n * C);
    Dev<int32_t> dI(ids);
    auto run = [&] { CK(octet_embedding_forward(dT.p, dI.p, dO.p, n, C, V, g_stream)); };
    Row r{"embedding_fwd", shp({V, C}) + " ids " + shp({n})};
    r.det = twice({out(dO)}, [&] { dO.poison(); }, run);
    const auto o = dO.down();
    std::vector<float> cpu(n * C, 0.0f);
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < V) memcpy(&cpu[i * C], &table[ids[i] * C], C * 4);
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * n * C * 4 + n * 4;
    add(r);
  }
  // backward: ids uniform, then skewed (30% of the positions on 4 hot ids: long runs, where the order matters),
  // onto a random dTable (the rows are added to it); one out-of-range id (ignored)
  for (int skew = 0; skew < 2; ++skew) {
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = (int32_t)((skew && rng.uniform() < 0.3) ? rng.below(4) * 7 : rng.below(V));
    ids[n / 3] = (int32_t)V;
    std::vector<float> dOut = randVec(rng, n * C, 1.0f);
    std::vector<float> cpu = randVec(rng, V * C, 1.0f);
    Dev<float> dD(dOut), dTab(V * C), dTabInit(cpu);
    Dev<int32_t> dI(ids);
    const size_t wsBytes = octet_embedding_backward_workspace_bytes(n, V);
    Dev<char> ws(wsBytes);
    auto run = [&] { CK(octet_embedding_backward(dD.p, dI.p, dTab.p, n, C, V, ws.p, wsBytes, g_stream)); };
    Row r{skew ? "embedding_bwd skewed" : "embedding_bwd", shp({n, C}) + " -> " + shp({V, C})};
    r.det = twice({out(dTab)}, [&] { dTab.copyFrom(dTabInit); }, run);
    const auto o = dTab.down();
    std::vector<char> touched(V, 0);
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= V) continue;
      touched[ids[i]] = 1;
      for (int64_t c = 0; c < C; ++c) cpu[ids[i] * C + c] = (float)((double)cpu[ids[i] * C + c] + (double)dOut[i * C + c]);
    }
    int64_t distinct = 0;
    for (char t : touched) distinct += t;
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = (double)n * C * 4 + 2.0 * distinct * C * 4 + n * 8;
    add(r);
  }
}

// ---- RMSNorm ------------------------------------------------------------------------------------------------------

static void testRmsnorm(const Preset& P, Rng& rng) {
  const int64_t rows = P.tokens, cols = P.dModel;
  const double eps = 1e-6;
  std::vector<float> x = randVec(rng, rows * cols, 1.0f), w(cols);
  for (auto& v : w) v = 1.0f + rng.sym(0.5f);
  // CpuBackend.rmsnormForward
  std::vector<float> yCpu(rows * cols), rstdCpu(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = &x[r * cols];
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += (double)xr[c] * (double)xr[c];
    const double s = 1 / std::sqrt(ss / cols + eps);
    rstdCpu[r] = (float)s;
    for (int64_t c = 0; c < cols; ++c) yCpu[r * cols + c] = (float)((double)xr[c] * s * (double)w[c]);
  }
  Dev<float> dx(x), dw(w);
  {
    Dev<float> dy(rows * cols), drs(rows);
    auto run = [&] { CK(octet_rmsnorm_forward(dx.p, dw.p, dy.p, drs.p, rows, cols, eps, g_stream)); };
    Row r{"rmsnorm_fwd", shp({rows, cols})};
    r.det = twice({out(dy), out(drs)}, [&] { dy.poison(); drs.poison(); }, run);
    const auto y = dy.down(), rs = drs.down();
    r.err = std::max(relErr(y.data(), yCpu.data(), yCpu.size()), relErr(rs.data(), rstdCpu.data(), rows));
    r.tol = kTol;
    r.bits = bitDiff(y.data(), yCpu.data(), yCpu.size()) + bitDiff(rs.data(), rstdCpu.data(), rows);
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * rows * cols * 4 + rows * 4 + cols * 4;
    add(r);
  }
  {
    std::vector<float> dy = randVec(rng, rows * cols, 1.0f), dW0 = randVec(rng, cols, 1.0f);
    Dev<float> ddy(dy), drs(rstdCpu), ddx(rows * cols), ddW(cols), ddW0(dW0);
    const size_t wsBytes = octet_rmsnorm_backward_workspace_bytes(rows, cols);
    Dev<char> ws(wsBytes);
    auto run = [&] {
      CK(octet_rmsnorm_backward(ddy.p, dx.p, dw.p, drs.p, ddx.p, ddW.p, rows, cols, ws.p, wsBytes, g_stream));
    };
    Row r{"rmsnorm_bwd (dx, dW)", shp({rows, cols})};
    r.det = twice({out(ddx), out(ddW)}, [&] { ddx.poison(); ddW.copyFrom(ddW0); }, run);
    const auto gdx = ddx.down(), gdW = ddW.down();
    // CpuBackend.rmsnormBackward
    std::vector<float> dxCpu(rows * cols), dWCpu(cols);
    std::vector<double> dwAcc(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double s = rstdCpu[r];
      double dot = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * cols + c;
        dot += (double)dy[i] * (double)w[c] * (double)x[i];
        dwAcc[c] += (double)dy[i] * (double)x[i] * s;
      }
      const double k = (s * s * s * dot) / cols;
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * cols + c;
        dxCpu[i] = (float)(s * (double)dy[i] * (double)w[c] - (double)x[i] * k);
      }
    }
    for (int64_t c = 0; c < cols; ++c) dWCpu[c] = (float)((double)dW0[c] + dwAcc[c]);
    r.err = std::max(relErr(gdx.data(), dxCpu.data(), dxCpu.size()), relErr(gdW.data(), dWCpu.data(), cols));
    r.tol = kTol;
    r.bits = bitDiff(gdx.data(), dxCpu.data(), dxCpu.size()) + bitDiff(gdW.data(), dWCpu.data(), cols);
    r.us = medianUs(run, P.reps);
    r.bytes = 3.0 * rows * cols * 4 + rows * 4 + 3.0 * cols * 4;
    add(r);
  }
}

// ---- RoPE ---------------------------------------------------------------------------------------------------------

static void testRope(const Preset& P, Rng& rng) {
  const double theta = 10000;
  struct Case { const char* what; int64_t heads, stride, offset, dim; int inverse; };
  const int64_t dqk = P.qkNope + P.qkRope, dr = P.qkRope;
  const Case cases[] = {
      {"rope q (MLA rope part)", P.heads, dqk, P.qkNope, dr, 0},
      {"rope q inverse", P.heads, dqk, P.qkNope, dr, 1},
      {"rope k_rope (1 head)", 1, dr, 0, dr, 0},
  };
  const int64_t T = P.tokens, seqLen = P.seqLen;
  for (const Case& cs : cases) {
    const int64_t half = cs.dim / 2, total = T * cs.heads * cs.stride;
    std::vector<float> cpu = randVec(rng, total, 1.0f);
    Dev<float> dx(total), dx0(cpu);
    auto run = [&] {
      CK(octet_rope(dx.p, T, seqLen, cs.heads, cs.stride, cs.offset, cs.dim, theta, cs.inverse, g_stream));
    };
    Row r{cs.what, shp({T, cs.heads, cs.stride}) + " off " + std::to_string(cs.offset) + " dim " + std::to_string(cs.dim)};
    r.det = twice({out(dx)}, [&] { dx.copyFrom(dx0); }, run);
    const auto o = dx.down();
    // CpuBackend.rope with its Float32Array cos/sin table
    std::vector<float> cosT(seqLen * half), sinT(seqLen * half);
    for (int64_t p = 0; p < seqLen; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p / std::pow(theta, (double)(2 * i) / cs.dim);
        cosT[p * half + i] = (float)std::cos(angle);
        sinT[p * half + i] = (float)std::sin(angle);
      }
    const double sign = cs.inverse ? -1 : 1;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = t % seqLen;
      for (int64_t h = 0; h < cs.heads; ++h) {
        const int64_t base = (t * cs.heads + h) * cs.stride + cs.offset;
        for (int64_t i = 0; i < half; ++i) {
          const double c = cosT[p * half + i], s = sign * sinT[p * half + i];
          const double a = cpu[base + i], b = cpu[base + i + half];
          cpu[base + i] = (float)(a * c - b * s);
          cpu[base + i + half] = (float)(b * c + a * s);
        }
      }
    }
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * T * cs.heads * cs.dim * 4;
    add(r);
  }
}

// ---- SwiGLU -------------------------------------------------------------------------------------------------------

static void testSwiglu(const Preset& P, Rng& rng) {
  const int64_t rows = P.tokens, cols = P.ffnHidden, n = rows * cols;
  std::vector<float> g = randVec(rng, n, 2.0f), u = randVec(rng, n, 1.0f), dh = randVec(rng, n, 1.0f);
  g[0] = -100.0f;  // exp(-g) overflows float32 (not float64)
  g[1] = 100.0f;
  Dev<float> dg(g), du(u), ddh(dh), dH(n), dG(n), dU(n);
  {
    auto run = [&] { CK(octet_swiglu_forward(dg.p, du.p, dH.p, n, g_stream)); };
    Row r{"swiglu_fwd", shp({rows, cols})};
    r.det = twice({out(dH)}, [&] { dH.poison(); }, run);
    const auto o = dH.down();
    std::vector<float> cpu(n);
    for (int64_t i = 0; i < n; ++i) {
      const double gg = g[i];
      cpu[i] = (float)((gg / (1 + std::exp(-gg))) * (double)u[i]);
    }
    r.err = relErr(o.data(), cpu.data(), n);
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), n);
    r.us = medianUs(run, P.reps);
    r.bytes = 3.0 * n * 4;
    add(r);
  }
  {
    auto run = [&] { CK(octet_swiglu_backward(ddh.p, dg.p, du.p, dG.p, dU.p, n, g_stream)); };
    Row r{"swiglu_bwd (dGate, dUp)", shp({rows, cols})};
    r.det = twice({out(dG), out(dU)}, [&] { dG.poison(); dU.poison(); }, run);
    const auto og = dG.down(), ou = dU.down();
    std::vector<float> cpuG(n), cpuU(n);
    for (int64_t i = 0; i < n; ++i) {
      const double gg = g[i];
      const double sig = 1 / (1 + std::exp(-gg));
      const double silu = gg * sig;
      cpuU[i] = (float)((double)dh[i] * silu);
      cpuG[i] = (float)((double)dh[i] * (double)u[i] * sig * (1 + gg * (1 - sig)));
    }
    r.err = std::max(relErr(og.data(), cpuG.data(), n), relErr(ou.data(), cpuU.data(), n));
    r.tol = kTol;
    r.bits = bitDiff(og.data(), cpuG.data(), n) + bitDiff(ou.data(), cpuU.data(), n);
    r.us = medianUs(run, P.reps);
    r.bytes = 5.0 * n * 4;
    add(r);
  }
}

// ---- MoE dispatch / combine ---------------------------------------------------------------------------------------

static void testMoe(const Preset& P, Rng& rng) {
  const int64_t T = P.tokens, K = P.topK, E = P.experts, C = P.dModel, A = T * K;
  // A random routing and its dispatch plan (planDispatch: rows grouped by expert, ascending assignment within one).
  std::vector<int32_t> expertOf(A);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < K; ++k) {
      int32_t e;
      bool dup;
      do {
        e = (int32_t)rng.below(E);
        dup = false;
        for (int64_t j = 0; j < k; ++j) dup |= expertOf[t * K + j] == e;
      } while (dup);
      expertOf[t * K + k] = e;
    }
  }
  std::vector<int64_t> offsets(E + 1, 0), cursor(E, 0);
  for (int64_t a = 0; a < A; ++a) offsets[expertOf[a] + 1]++;
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
  std::vector<int32_t> tokenOfRow(A), assignmentOfRow(A), rowOfAssignment(A);
  std::vector<float> combine(A);
  for (int64_t a = 0; a < A; ++a) {
    const int64_t row = offsets[expertOf[a]] + cursor[expertOf[a]]++;
    tokenOfRow[row] = (int32_t)(a / K);
    assignmentOfRow[row] = (int32_t)a;
    rowOfAssignment[a] = (int32_t)row;
    combine[row] = (float)rng.uniform();
  }
  // A few dropped assignments (capacity drops): their rows are not added back.
  std::vector<char> rowDropped(A, 0);
  for (int d = 0; d < 5; ++d) {
    const int64_t a = rng.below(A);
    if (rowOfAssignment[a] >= 0) rowDropped[rowOfAssignment[a]] = 1;
    rowOfAssignment[a] = -1;
  }
  Dev<int32_t> dTok(tokenOfRow), dAssign(assignmentOfRow), dRowOf(rowOfAssignment);
  Dev<float> dComb(combine);
  {  // permute
    std::vector<float> x = randVec(rng, T * C, 1.0f);
    Dev<float> dx(x), dPerm(A * C);
    auto run = [&] { CK(octet_permute_rows(dx.p, dTok.p, dPerm.p, A, C, T, g_stream)); };
    Row r{"permute_rows", shp({T, C}) + " -> " + shp({A, C})};
    r.det = twice({out(dPerm)}, [&] { dPerm.poison(); }, run);
    const auto o = dPerm.down();
    std::vector<float> cpu(A * C);
    for (int64_t q = 0; q < A; ++q) memcpy(&cpu[q * C], &x[(int64_t)tokenOfRow[q] * C], C * 4);
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * A * C * 4 + A * 4;
    add(r);
  }
  std::vector<float> xe = randVec(rng, A * C, 1.0f);  // expert outputs [rows, C]
  Dev<float> dXe(xe);
  for (int scaled = 1; scaled >= 0; --scaled) {  // unpermute-add, with the combine weights (forward) and without
    std::vector<float> cpu = randVec(rng, T * C, 1.0f);  // out: e.g. the shared expert's output
    Dev<float> dOut(T * C), dOut0(cpu);
    auto run = [&] {
      CK(octet_unpermute_add(dXe.p, dRowOf.p, scaled ? dComb.p : nullptr, dOut.p, T, K, C, A, g_stream));
    };
    Row r{scaled ? "unpermute_add (scaled)" : "unpermute_add", shp({A, C}) + " -> " + shp({T, C})};
    r.det = twice({out(dOut)}, [&] { dOut.copyFrom(dOut0); }, run);
    const auto o = dOut.down();
    for (int64_t q = 0; q < A; ++q) {  // CpuBackend.unpermuteAdd: the scatter in row order
      if (rowDropped[q]) continue;
      const int64_t t = tokenOfRow[q];
      const double a = scaled ? combine[q] : 1.0;
      for (int64_t c = 0; c < C; ++c) cpu[t * C + c] = (float)((double)cpu[t * C + c] + a * (double)xe[q * C + c]);
    }
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = (double)A * C * 4 + 2.0 * T * C * 4 + A * 8;
    add(r);
  }
  std::vector<float> dyd = randVec(rng, A * C, 1.0f);
  Dev<float> dDy(dyd);
  {  // rowDot into gradWeights[assignmentOfRow[r]]
    Dev<float> dG(A);
    auto run = [&] { CK(octet_row_dot(dDy.p, dXe.p, dG.p, dAssign.p, A, C, g_stream)); };
    Row r{"row_dot", shp({A, C}) + " -> " + shp({A})};
    r.det = twice({out(dG)}, [&] { dG.poison(); }, run);
    const auto o = dG.down();
    std::vector<float> cpu(A, 0.0f);
    for (int64_t q = 0; q < A; ++q) {
      double dot = 0;
      for (int64_t c = 0; c < C; ++c) dot += (double)dyd[q * C + c] * (double)xe[q * C + c];
      cpu[assignmentOfRow[q]] = (float)dot;
    }
    r.err = relErr(o.data(), cpu.data(), A);
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), A);
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * A * C * 4 + A * 8;
    add(r);
  }
  {  // scaleRows on the same [rows, C]
    Dev<float> dS(A * C);
    auto run = [&] { CK(octet_scale_rows(dS.p, dComb.p, A, C, g_stream)); };
    Row r{"scale_rows", shp({A, C})};
    r.det = twice({out(dS)}, [&] { dS.copyFrom(dDy); }, run);
    const auto o = dS.down();
    std::vector<float>& cpu = dyd;
    for (int64_t q = 0; q < A; ++q)
      for (int64_t c = 0; c < C; ++c) cpu[q * C + c] = (float)((double)cpu[q * C + c] * (double)combine[q]);
    r.err = relErr(o.data(), cpu.data(), cpu.size());
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), cpu.size());
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = 2.0 * A * C * 4 + A * 4;
    add(r);
  }
}

// ---- AdamW, gradient norm, clipping -------------------------------------------------------------------------------

static uint16_t adamRound(float f) {  // the CPU's BF16 rounding of the moments
  uint32_t b = bitsOf(f);
  b = ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) << 16;
  return (uint16_t)(b >> 16);
}

// Fills dst [n] with copies of src (a random block): big buffers without generating 10⁹ numbers on the host.
template <class T>
static void tile(Dev<T>& dst, const std::vector<T>& src) {
  for (size_t off = 0; off < dst.n; off += src.size()) {
    const size_t len = std::min(src.size(), dst.n - off);
    CK(cudaMemcpy(dst.p + off, src.data(), len * sizeof(T), cudaMemcpyHostToDevice));
  }
}

// Calls f(i, a[i], b[i], c[i]) for each index of `checked` (ascending), copying the device arrays to the host in
// chunks through reused buffers (a 256M-element array never sits whole in host memory). b, c may be null.
template <class A, class Bt, class Ct, class F>
static void forChecked(const std::vector<int64_t>& checked, int64_t n, const A* a, const Bt* b, const Ct* c, F f) {
  const int64_t chunk = (int64_t)4 << 20;
  std::vector<A> ha(chunk);
  std::vector<Bt> hb(b ? chunk : 0);
  std::vector<Ct> hc(c ? chunk : 0);
  CK(cudaStreamSynchronize(g_stream));
  size_t k = 0;
  for (int64_t c0 = 0; c0 < n && k < checked.size(); c0 += chunk) {
    const int64_t len = std::min(chunk, n - c0);
    if (checked[k] >= c0 + len) continue;
    CK(cudaMemcpy(ha.data(), a + c0, len * sizeof(A), cudaMemcpyDeviceToHost));
    if (b) CK(cudaMemcpy(hb.data(), b + c0, len * sizeof(Bt), cudaMemcpyDeviceToHost));
    if (c) CK(cudaMemcpy(hc.data(), c + c0, len * sizeof(Ct), cudaMemcpyDeviceToHost));
    for (; k < checked.size() && checked[k] < c0 + len; ++k) {
      const int64_t i = checked[k];
      f(i, ha[i - c0], b ? hb[i - c0] : Bt(), c ? hc[i - c0] : Ct());
    }
  }
}

static void testAdamw(const Preset& P, Rng& rng) {
  const int64_t n = P.adamN;
  // Inputs: one random block of B elements, tiled over the n-element buffers (element i holds block[i % B]).
  // Bits are checked on every element of the first block and on every 97th element after it.
  const int64_t B = std::min<int64_t>(n, (int64_t)16 << 20);
  std::vector<int64_t> checked;
  for (int64_t i = 0; i < B; ++i) checked.push_back(i);
  for (int64_t i = B; i < n; i += 97) checked.push_back(i);
  // Tensor-like segments: mostly large, some small (norm weights, biases), a few of odd sizes, a few gaps.
  std::vector<OctetAdamWSegment> segs;
  std::vector<uint8_t> kind(n, 0);  // 0: in no segment, 1: no decay, 2: decay
  const int64_t big = std::max<int64_t>(P.dModel * P.expertHidden, 4096);
  for (int64_t off = 0; off < n;) {
    if (rng.uniform() < 0.05) off += 1 + rng.below(13);  // a gap
    if (off >= n) break;
    const double u = rng.uniform();
    const int64_t size = std::min(n - off, u < 0.4 ? big : u < 0.7 ? P.dModel : u < 0.9 ? 1 + rng.below(5000) : 1 + rng.below(7));
    const int32_t decay = rng.uniform() < 0.6;
    segs.push_back({off, size, decay, 0});
    memset(&kind[off], decay ? 2 : 1, size);
    off += size;
  }
  OctetAdamWHyper h;
  h.lr = 3e-3 * 0.9137;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weightDecay = 0.1;
  const int step = 7;
  h.biasCorrection1 = 1 - std::pow(h.beta1, step);  // what the caller computes with Math.pow
  h.biasCorrection2 = 1 - std::pow(h.beta2, step);

  std::vector<float> param(B), grad(B);
  for (int64_t i = 0; i < B; ++i) {
    param[i] = rng.normal(0.02f);
    grad[i] = rng.normal(1e-2f);
  }
  Dev<float> dP0(n), dG(n), dP(n);
  tile(dP0, param);
  tile(dG, grad);
  Dev<OctetAdamWSegment> dSeg(segs);
  Dev<OctetAdamWHyper> dH(std::vector<OctetAdamWHyper>{h});
  Dev<int32_t> dSkip(std::vector<int32_t>{1});
  const std::string sh = shp({n}) + ", " + std::to_string(segs.size()) + " tensors";

  for (int bf16 = 1; bf16 >= 0; --bf16) {
    std::vector<float> m32, v32;
    std::vector<uint16_t> m16, v16;
    if (bf16) {
      m16.resize(B);
      v16.resize(B);
      for (int64_t i = 0; i < B; ++i) {
        m16[i] = adamRound(rng.normal(5e-3f));
        v16[i] = adamRound(std::fabs(rng.normal(1e-4f)));
      }
    } else {
      m32.resize(B);
      v32.resize(B);
      for (int64_t i = 0; i < B; ++i) {
        m32[i] = rng.normal(5e-3f);
        v32[i] = std::fabs(rng.normal(1e-4f));
      }
    }
    Row r{bf16 ? "adamw (bf16 moments)" : "adamw (fp32 moments)", sh};
    r.tol = 0;  // bit-exact
    r.bitsRequired = true;
    r.bits = 0;
    // CpuBackend.adamwUpdate replayed at element i (inputs block[i % B]); compared with the GPU's bits.
    auto check = [&](int64_t i, float p, auto mg, auto vg) {
      const int64_t j = i % B;
      float pc = param[j];
      float mc32 = 0, vc32 = 0;
      uint16_t mc16 = 0, vc16 = 0;
      if (kind[i]) {
        const double decay = 1 - h.lr * (kind[i] == 2 ? h.weightDecay : 0.0);
        const double g = grad[j];
        double mi, vi;
        if (bf16) {
          mi = h.beta1 * (double)fromBits((uint32_t)m16[j] << 16) + (1 - h.beta1) * g;
          vi = h.beta2 * (double)fromBits((uint32_t)v16[j] << 16) + (1 - h.beta2) * g * g;
          mc16 = adamRound((float)mi);
          vc16 = adamRound((float)vi);
          mi = fromBits((uint32_t)mc16 << 16);
          vi = fromBits((uint32_t)vc16 << 16);
        } else {
          mi = h.beta1 * (double)m32[j] + (1 - h.beta1) * g;
          vi = h.beta2 * (double)v32[j] + (1 - h.beta2) * g * g;
          mc32 = (float)mi;
          vc32 = (float)vi;
        }
        pc = (float)((double)pc * decay - (h.lr * (mi / h.biasCorrection1)) / (std::sqrt(vi / h.biasCorrection2) + h.eps));
      } else if (bf16) {
        mc16 = m16[j], vc16 = v16[j];
      } else {
        mc32 = m32[j], vc32 = v32[j];
      }
      r.err = std::max(r.err, std::fabs((double)p - pc) / std::max(std::fabs((double)pc), 1e-30));
      r.bits += bitsOf(p) != bitsOf(pc);
      if constexpr (sizeof(mg) == 2) {
        r.bits += (mg != mc16) + (vg != vc16);
      } else {
        r.bits += (bitsOf(mg) != bitsOf(mc32)) + (bitsOf(vg) != bitsOf(vc32));
      }
    };
    if (bf16) {
      Dev<uint16_t> dM0(n), dV0(n), dM(n), dV(n);
      tile(dM0, m16);
      tile(dV0, v16);
      auto reset = [&] { dP.copyFrom(dP0); dM.copyFrom(dM0); dV.copyFrom(dV0); };
      auto run = [&](const int32_t* skip) {
        CK(octet_adamw_update_bf16(dP.p, dG.p, dM.p, dV.p, n, dSeg.p, (int64_t)segs.size(), dH.p, skip, g_stream));
      };
      reset();
      run(dSkip.p);  // *skip = 1: nothing may change
      const bool skipped = equalOnDevice(dP.p, dP0.p, dP.bytes()) && equalOnDevice(dM.p, dM0.p, dM.bytes()) &&
                           equalOnDevice(dV.p, dV0.p, dV.bytes());
      r.det = twice({out(dP), out(dM), out(dV)}, reset, [&] { run(nullptr); }) && skipped;
      forChecked(checked, n, dP.p, dM.p, dV.p, check);
      r.us = medianUs([&] { run(nullptr); }, std::max(3, P.reps / 2));
      r.bytes = (double)n * (4 + 4 + 2 + 2 + 4 + 2 + 2);
    } else {
      Dev<float> dM0(n), dV0(n), dM(n), dV(n);
      tile(dM0, m32);
      tile(dV0, v32);
      auto reset = [&] { dP.copyFrom(dP0); dM.copyFrom(dM0); dV.copyFrom(dV0); };
      auto run = [&] {
        CK(octet_adamw_update_f32(dP.p, dG.p, dM.p, dV.p, n, dSeg.p, (int64_t)segs.size(), dH.p, nullptr, g_stream));
      };
      r.det = twice({out(dP), out(dM), out(dV)}, reset, run);
      forChecked(checked, n, dP.p, dM.p, dV.p, check);
      r.us = medianUs(run, std::max(3, P.reps / 2));
      r.bytes = (double)n * (4 + 4 + 4 + 4 + 4 + 4 + 4);
    }
    r.shape += ", bits of " + std::to_string(checked.size());
    add(r);
  }

  // ---- gradient norm, clip coefficient, scale (on the same flat gradient buffer) ----
  double ssCpu = 0;  // optim.ts: Σ over the tensors of sumSquares (float64, left to right)
  for (int64_t i = 0; i < n; ++i) ssCpu += (double)grad[i % B] * (double)grad[i % B];
  const size_t wsBytes = octet_sum_squares_workspace_bytes(n);
  Dev<char> ws(wsBytes);
  Dev<double> dSS(1), dNorm(1), dScale(1);
  Dev<int32_t> dNonFinite(1);
  {
    auto run = [&] { CK(octet_sum_squares(dG.p, n, dSS.p, ws.p, wsBytes, g_stream)); };
    Row r{"sum_squares (fp64)", shp({n})};
    r.det = twice({out(dSS)}, [&] { dSS.poison(); }, run);
    const double ss = dSS.down()[0];
    r.err = std::fabs(ss - ssCpu) / ssCpu;
    r.tol = kTol;
    r.us = medianUs(run, P.reps);
    r.bytes = 4.0 * n;
    add(r);
  }
  const double ss = dSS.down()[0];
  double scale = 0;
  {  // clip: maxNorm below the norm, so that it scales; the coefficient from the GPU's own sum (same input bits)
    const double maxNorm = 0.5 * std::sqrt(ss);
    CK(octet_clip_coefficient(dSS.p, maxNorm, dNorm.p, dScale.p, dNonFinite.p, g_stream));
    const double norm = dNorm.down()[0];
    scale = dScale.down()[0];
    const int32_t nonFinite = dNonFinite.down()[0];
    const double normCpu = std::sqrt(ss);
    const double scaleCpu = (maxNorm > 0 && normCpu > maxNorm) ? maxNorm / (normCpu + 1e-6) : 1;
    // a gradient with an Inf, then with a NaN: nonFinite = 1, and optim.ts's coefficient (Inf norm: maxNorm/Inf = 0;
    // NaN norm: the comparison is false, 1)
    int bad = 0;
    for (float poison : {INFINITY, NAN}) {
      std::vector<float> g(1000, 1.0f);
      g[123] = poison;
      Dev<float> dBad(g);
      Dev<char> ws2(octet_sum_squares_workspace_bytes(1000));
      Dev<double> dSS2(1), dScale2(1);
      CK(octet_sum_squares(dBad.p, 1000, dSS2.p, ws2.p, octet_sum_squares_workspace_bytes(1000), g_stream));
      CK(octet_clip_coefficient(dSS2.p, 1.0, nullptr, dScale2.p, dNonFinite.p, g_stream));
      const double nrm = std::isinf(poison) ? INFINITY : NAN;
      const double expect = (1.0 > 0 && nrm > 1.0) ? 1.0 / (nrm + 1e-6) : 1;
      bad += dNonFinite.down()[0] != 1;
      bad += dScale2.down()[0] != expect;
    }
    Row c{"clip_coefficient", "maxNorm = norm/2; Inf, NaN grad"};
    c.bits = (memcmp(&norm, &normCpu, 8) != 0) + (memcmp(&scale, &scaleCpu, 8) != 0) + (nonFinite != 0) + bad;
    c.bitsRequired = true;
    c.tol = kTol;
    add(c);
  }
  {  // scale by the device coefficient: x = f32(x · a) in float64
    Dev<float> dX(n);
    auto run = [&] { CK(octet_scale_device(dX.p, n, dScale.p, g_stream)); };
    Row q{"scale (device factor)", shp({n})};
    q.det = twice({out(dX)}, [&] { dX.copyFrom(dG); }, run);
    // a host factor gives the same bits (dX2); a device factor of exactly 1 writes nothing
    Dev<float> dX2(n);
    dX2.copyFrom(dG);
    CK(octet_scale(dX2.p, n, scale, g_stream));
    {
      Dev<float> dX1(n);
      Dev<double> dOne(std::vector<double>{1.0});
      dX1.copyFrom(dG);
      CK(octet_scale_device(dX1.p, n, dOne.p, g_stream));
      q.det = q.det && equalOnDevice(dX1.p, dG.p, dX1.bytes());
    }
    q.bits = 0;
    forChecked(checked, n, dX.p, dX2.p, (const char*)nullptr, [&](int64_t i, float o1, float o2, char) {
      const float c = (float)((double)grad[i % B] * scale);
      q.err = std::max(q.err, std::fabs((double)o1 - c) / std::max(std::fabs((double)c), 1e-30));
      q.bits += (bitsOf(o1) != bitsOf(c)) + (bitsOf(o2) != bitsOf(c));
    });
    q.tol = kTol;
    q.bitsRequired = true;
    q.us = medianUs(run, P.reps);
    q.bytes = 8.0 * n;
    add(q);
  }
}

// ---- small elementwise ops, bias update ---------------------------------------------------------------------------

static void testSmall(const Preset& P, Rng& rng) {
  const int64_t n = P.tokens * P.dModel;
  const std::string sh = shp({P.tokens, P.dModel});
  std::vector<float> x = randVec(rng, n, 1.0f);
  {
    std::vector<float> cpu = randVec(rng, n, 1.0f);
    Dev<float> dx(x), dy(n), dy0(cpu);
    auto run = [&] { CK(octet_add_inplace(dy.p, dx.p, n, g_stream)); };
    Row r{"add_inplace", sh};
    r.det = twice({out(dy)}, [&] { dy.copyFrom(dy0); }, run);
    const auto o = dy.down();
    for (int64_t i = 0; i < n; ++i) cpu[i] = (float)((double)cpu[i] + (double)x[i]);
    r.err = relErr(o.data(), cpu.data(), n);
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), n);
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = 12.0 * n;
    add(r);
  }
  {
    // special values: NaNs (both signs, payloads), ±Inf, ±0, subnormals, exact ties, the largest finite
    const uint32_t specials[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7f800000u, 0xff800000u, 0x00000000u,
                                 0x80000000u, 0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu,
                                 0x3f80ffffu, 0xbf807fffu};
    for (size_t i = 0; i < sizeof(specials) / 4; ++i) x[i * 7] = fromBits(specials[i]);
    Dev<float> dx(x);
    Dev<uint16_t> db(n);
    auto run = [&] { CK(octet_f32_to_bf16(dx.p, db.p, n, g_stream)); };
    Row r{"f32_to_bf16", sh};
    r.det = twice({out(db)}, [&] { db.poison(); }, run);
    const auto o = db.down();
    std::vector<uint16_t> cpu(n);  // CpuBackend.toBf16
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t b = bitsOf(x[i]);
      cpu[i] = (b & 0x7fffffffu) > 0x7f800000u ? 0xffff : (uint16_t)(((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu);
    }
    r.bits = bitDiff(o.data(), cpu.data(), n);
    r.bitsRequired = true;
    r.tol = kTol;
    r.us = medianUs(run, P.reps);
    r.bytes = 6.0 * n;
    add(r);
    Dev<float> df(n);
    auto runB = [&] { CK(octet_bf16_to_f32(db.p, df.p, n, g_stream)); };
    Row q{"bf16_to_f32", sh};
    q.det = twice({out(df)}, [&] { df.poison(); }, runB);
    const auto f = df.down();
    std::vector<float> back(n);
    for (int64_t i = 0; i < n; ++i) back[i] = fromBits((uint32_t)cpu[i] << 16);
    q.bits = bitDiff(f.data(), back.data(), n);
    q.bitsRequired = true;
    q.tol = kTol;
    q.us = medianUs(runB, P.reps);
    q.bytes = 6.0 * n;
    add(q);
  }
  {  // aux-free bias update; one expert exactly at the mean
    const int64_t E = P.experts;
    std::vector<int32_t> loads(E);
    for (int64_t e = 0; e < E; ++e) loads[e] = (int32_t)rng.below(2 * P.tokens * P.topK / E + 1);
    // loads[0] at the mean exactly (sign 0): the mean equals l0 when l0 = Σ_{e>0} l_e / (E − 1), so make that sum
    // a multiple of E − 1 first.
    int64_t rest = 0;
    for (int64_t e = 1; e < E; ++e) rest += loads[e];
    loads[1] += (int32_t)(((E - 1) - rest % (E - 1)) % (E - 1));
    rest += ((E - 1) - rest % (E - 1)) % (E - 1);
    loads[0] = (int32_t)(rest / (E - 1));
    std::vector<float> cpu = randVec(rng, E, 0.01f);
    const double gamma = 0.001;
    Dev<float> dB(E), dB0(cpu);
    Dev<int32_t> dL(loads);
    Dev<double> dGamma(std::vector<double>{gamma});
    auto run = [&] { CK(octet_aux_free_bias_update(dB.p, dL.p, E, dGamma.p, g_stream)); };
    Row r{"aux_free_bias_update", shp({E})};
    r.det = twice({out(dB)}, [&] { dB.copyFrom(dB0); }, run);
    const auto o = dB.down();
    double total = 0;  // router's updatedBias
    for (int64_t e = 0; e < E; ++e) total += loads[e];
    const double mean = total / E;
    int atMean = 0;
    for (int64_t e = 0; e < E; ++e) {
      const double d = mean - loads[e];
      const double s = d > 0 ? 1.0 : d < 0 ? -1.0 : d;
      atMean += d == 0;
      cpu[e] = (float)((double)cpu[e] + gamma * s);
    }
    if (atMean) r.shape += " (1 at mean)";
    r.err = relErr(o.data(), cpu.data(), E);
    r.tol = kTol;
    r.bits = bitDiff(o.data(), cpu.data(), E);
    r.bitsRequired = true;
    r.us = medianUs(run, P.reps);
    r.bytes = 12.0 * E;
    add(r);
  }
}

// ---- results that must not depend on alignment; argument validation ----------------------------------------------

static void testAlignmentAndArgs(Rng& rng) {
  const int64_t rows = 37, cols = 130, n = rows * cols + 3;  // odd sizes: tails and unaligned rows
  std::vector<float> x = randVec(rng, n + 1, 1.0f), w = randVec(rng, cols + 1, 1.0f);
  Dev<float> dx(x), dw(w), dxa(n + 4), dwa(cols + 4), y(rows * cols + 4), ya(rows * cols + 4), rs(rows), rsa(rows);
  // the same values at a 16-byte aligned address (dxa) and at an odd one (dx + 1)
  CK(cudaMemcpy(dxa.p, dx.p + 1, n * 4, cudaMemcpyDeviceToDevice));
  CK(cudaMemcpy(dwa.p, dw.p + 1, cols * 4, cudaMemcpyDeviceToDevice));
  Dev<char> ws(octet_sum_squares_workspace_bytes(n));
  Dev<double> s1(1), s2(1);
  CK(octet_sum_squares(dx.p + 1, n, s1.p, ws.p, ws.n, g_stream));
  CK(octet_sum_squares(dxa.p, n, s2.p, ws.p, ws.n, g_stream));
  const int64_t cols4 = 128;  // rows of a multiple of 4: the vector path when aligned
  CK(octet_rmsnorm_forward(dx.p + 1, dw.p + 1, y.p + 1, rs.p, rows, cols4, 1e-6, g_stream));
  CK(octet_rmsnorm_forward(dxa.p, dwa.p, ya.p, rsa.p, rows, cols4, 1e-6, g_stream));
  const auto a = s1.down(), b = s2.down();
  const auto ya1 = y.down(), yb = ya.down();
  bool ok = memcmp(a.data(), b.data(), 8) == 0 && same(rs.down(), rsa.down()) &&
            memcmp(ya1.data() + 1, yb.data(), rows * cols4 * 4) == 0;
  // invalid arguments → cudaErrorInvalidValue, nothing launched
  float* f = dx.p;
  int32_t* idx = reinterpret_cast<int32_t*>(dx.p);
  ok &= octet_rope(f, 4, 4, 1, 8, 0, 3, 10000, 0, g_stream) == cudaErrorInvalidValue;        // odd dim
  ok &= octet_rope(f, 4, 4, 1, 8, 6, 4, 10000, 0, g_stream) == cudaErrorInvalidValue;        // offset + dim > stride
  ok &= octet_unpermute_add(f, idx, nullptr, f, 4, 33, 4, 4, g_stream) == cudaErrorInvalidValue;
  ok &= octet_embedding_backward(f, idx, f, 4, 4, 4, ws.p, 1, g_stream) == cudaErrorInvalidValue;  // workspace
  ok &= octet_rmsnorm_backward_workspace_bytes(4, 8193) == 0;
  ok &= octet_rmsnorm_forward(f, f, f, f, -1, 4, 1e-6, g_stream) == cudaErrorInvalidValue;
  ok &= octet_add_inplace(nullptr, f, 4, g_stream) == cudaErrorInvalidValue;
  ok &= octet_aux_free_bias_update(f, idx, 0, nullptr, g_stream) == cudaErrorInvalidValue;
  ok &= octet_add_inplace(f, f, 0, g_stream) == cudaSuccess;  // empty: nothing to do
  CK(cudaStreamSynchronize(g_stream));
  CK(cudaGetLastError());
  Row r{"alignment-free + args", "unaligned = aligned; bad sizes"};
  r.bits = ok ? 0 : 1;
  r.bitsRequired = true;
  r.tol = kTol;
  add(r);
}

// ---- main ---------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  {  // copy bandwidth: 1 GiB device to device
    const size_t bytes = (size_t)1 << 30;
    Dev<char> a(bytes), b(bytes);
    CK(cudaMemsetAsync(a.p, 1, bytes, g_stream));
    const double us = medianUs([&] { CK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, g_stream)); }, 10);
    g_copyGBs = 2.0 * bytes / (us * 1e3);
  }
  const Preset presets[] = {
      // name       tokens  seqLen dModel vocab heads nope rope v  E  K  expertH ffnH adamN              reps
      {"tiny", 1024, 64, 128, 256, 4, 32, 16, 32, 8, 2, 128, 384, 1000003, 20},
      {"gpu-small", 16384, 2048, 2048, 32768, 16, 128, 64, 128, 64, 6, 1408, 5632, (int64_t)256 << 20, 10},
  };
  Rng rng(20240613);
  testAlignmentAndArgs(rng);
  std::vector<std::pair<size_t, const char*>> starts;
  for (const Preset& P : presets) {
    if (which != "all" && which != P.name) continue;
    starts.push_back({g_rows.size(), P.name});
    fprintf(stderr, "preset %s\n", P.name);
    testEmbedding(P, rng);
    testRmsnorm(P, rng);
    testRope(P, rng);
    testSwiglu(P, rng);
    testMoe(P, rng);
    testAdamw(P, rng);
    testSmall(P, rng);
  }

  printf("device: %s (%d SMs); cudaMemcpy D2D: %.0f GB/s (read + write)\n", prop.name, prop.multiProcessorCount, g_copyGBs);
  printf("reference: CpuBackend (cpu.ts) replayed on the host: float64 arithmetic, float32 wherever cpu.ts stores\n");
  printf("maxRelErr: max |gpu - cpu| / max(|cpu|, 1e-3 * max|cpu|), per element; tol 0 = bit-exact\n");
  printf("!=cpu: elements whose bits differ from the reference (must be 0 where marked *)\n\n");
  printf("%-10s %-24s %-40s %10s %7s %10s %4s %5s %10s %8s %6s\n", "preset", "op", "shape", "maxRelErr", "tol", "!=cpu",
         "det", "pass", "time us", "GB/s", "%copy");
  bool allPass = true;
  for (size_t i = 0; i < g_rows.size(); ++i) {
    const char* preset = "-";
    for (auto& s : starts) if (i >= s.first) preset = s.second;
    const Row& r = g_rows[i];
    char bits[32], t[32], gbs[32], pct[32];
    if (r.bits < 0) snprintf(bits, sizeof bits, "-");
    else snprintf(bits, sizeof bits, "%lld%s", r.bits, r.bitsRequired ? "*" : "");
    if (r.us < 0) snprintf(t, sizeof t, "-"), snprintf(gbs, sizeof gbs, "-"), snprintf(pct, sizeof pct, "-");
    else {
      snprintf(t, sizeof t, "%.1f", r.us);
      snprintf(gbs, sizeof gbs, "%.0f", r.bytes / (r.us * 1e3));
      snprintf(pct, sizeof pct, "%.0f%%", 100.0 * r.bytes / (r.us * 1e3) / g_copyGBs);
    }
    printf("%-10s %-24s %-40s %10.2e %7.0e %10s %4s %5s %10s %8s %6s\n", preset, r.op.c_str(), r.shape.c_str(), r.err,
           r.tol, bits, r.det ? "yes" : "NO", r.pass() ? "ok" : "FAIL", t, gbs, pct);
    allPass &= r.pass();
  }
  printf("\n%s\n", allPass ? "ALL PASS" : "SOME CHECKS FAILED");
  return allPass ? 0 : 1;
}
