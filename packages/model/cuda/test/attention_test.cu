// Standalone harness for attention.cu (causal flash attention, forward and backward, fp32 and bf16): correctness
// against a float64 CPU reference that follows CpuBackend.attentionForward / attentionBackward
// (packages/model/src/backend/cpu.ts), determinism, CUDA-graph capture, argument validation and speed.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/t packages/model/cuda/test/attention_test.cu \
//        packages/model/cuda/attention.cu && /tmp/t            [--quick] [--reps N] [--no-timing]
//
// Inputs: q, k ~ N(0, qkStd²), v, dO ~ N(0, 1) from a fixed seed, rounded to bf16 values so that the fp32 and
// the bf16 kernels see the same numbers and one float64 reference serves both (the bf16 rows then measure only the
// kernels' own roundings: P and dS to bf16, FP32 accumulation). Outputs are poisoned (NaN bytes) before every call,
// so an element left unwritten fails the check.
//
// Error metric, per output tensor: max |gpu − ref| / max |ref| over the compared heads (all heads, or the sampled
// heads where the shape is too large for the reference); a row shows its worst tensor. Tolerance 2e-3 (issue 13)
// for fp32 and bf16; the "fa2" rows (OCTET_ATTN_BF16_FA2: FlashAttention-2's single bf16 rounding of P and dS in
// the backward) are reported only. Determinism: each call runs twice (outputs re-poisoned in between); the outputs must be
// bit-identical, and every element of every head finite (so none was left unwritten). Timing: CUDA events, median of --reps calls. FLOPs of causal attention: forward
// 2·B·H·T²·(qk + v)/2, backward 2.5× that (the conventional count; our backward recomputes P and dP twice, see
// attention.cu).
//
// Reference speed (for the TFLOP/s column): FlashAttention-2 reaches about 300-350 TFLOP/s forward (bf16, head
// dim 128, causal, long sequences) and ~250 backward on an H100 SXM, with 128-row tiles, a 4-warp tile shared by
// more rows and hand-scheduled pipelines; FlashAttention-3 (WGMMA + TMA) ~600. These kernels use mma.sync with 16
// rows per warp and a simple double-buffered cp.async pipeline; they are not tuned to match.
#include "../attention.h"

#ifndef OCTET_EMU
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

#define CK(call)                                                                                          \
  do {                                                                                                    \
    cudaError_t e_ = (call);                                                                              \
    if (e_ != cudaSuccess) {                                                                              \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                       \
    }                                                                                                     \
  } while (0)

constexpr double kTol = 2e-3;

uint16_t to_bf16(float x) {  // round to nearest even, as CpuBackend.toBf16
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return 0xffff;
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

struct Case {
  std::string name;
  int B, T, H, dqk, dv;
  float qkStd;
  bool sampleHeads;  // reference on two heads only: (0, 0) and (B-1, H-1)
  bool timing;
};

struct Options {
  bool quick = false;
  bool timing = true;
  int reps = 10;
  std::vector<Case> only;  // --case: these shapes instead of the built-in list
};

struct Row {
  std::string op, prec, shape, heads, worst, tol;
  double err;
  bool det, pass;
  double us, tflops;
  std::string errText;  // overrides the numeric error when set
  std::string detail;   // every tensor's error
};
std::vector<Row> g_rows;
bool g_fail = false;

// ---- float64 reference for one (b, h) ---------------------------------------------------------------------------
struct HeadRef {
  std::vector<double> o, lse, dq, dk, dv;  // [T][dv], [T], [T][dqk], [T][dqk], [T][dv]
};

void parallel_for(int n, const std::function<void(int)>& body) {
  const int threads = std::max(1u, std::min(64u, std::thread::hardware_concurrency()));
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++)
    pool.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < n;) body(i);
    });
  for (auto& th : pool) th.join();
}

HeadRef reference_head(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                       const std::vector<float>& dO, const Case& c, int b, int h, double scale) {
  const int T = c.T, H = c.H, Dk = c.dqk, Dv = c.dv;
  auto Q = [&](int t) { return &q[((size_t)(b * T + t) * H + h) * Dk]; };
  auto K = [&](int t) { return &k[((size_t)(b * T + t) * H + h) * Dk]; };
  auto V = [&](int t) { return &v[((size_t)(b * T + t) * H + h) * Dv]; };
  auto G = [&](int t) { return &dO[((size_t)(b * T + t) * H + h) * Dv]; };
  auto dot = [](const float* x, const float* y, int n) {
    double s = 0;
    for (int d = 0; d < n; d++) s += (double)x[d] * (double)y[d];
    return s;
  };
  HeadRef r;
  r.o.assign((size_t)T * Dv, 0);
  r.lse.assign(T, 0);
  r.dq.assign((size_t)T * Dk, 0);
  r.dk.assign((size_t)T * Dk, 0);
  r.dv.assign((size_t)T * Dv, 0);
  std::vector<double> D(T);
  // Pass 1, per query row i: softmax, O, lse, D = dO·O, dQ = Σ_j dS_ij k_j.
  parallel_for(T, [&](int i) {
    std::vector<double> p(i + 1);
    double m = -INFINITY;
    for (int j = 0; j <= i; j++) m = std::max(m, p[j] = scale * dot(Q(i), K(j), Dk));
    double l = 0;
    for (int j = 0; j <= i; j++) l += (p[j] = std::exp(p[j] - m));
    for (int j = 0; j <= i; j++) p[j] /= l;
    r.lse[i] = m + std::log(l);
    double* o = &r.o[(size_t)i * Dv];
    for (int j = 0; j <= i; j++)
      for (int d = 0; d < Dv; d++) o[d] += p[j] * V(j)[d];
    double Di = 0;
    for (int d = 0; d < Dv; d++) Di += (double)G(i)[d] * o[d];
    D[i] = Di;
    double* dq = &r.dq[(size_t)i * Dk];
    for (int j = 0; j <= i; j++) {
      const double ds = p[j] * (dot(G(i), V(j), Dv) - Di) * scale;
      for (int d = 0; d < Dk; d++) dq[d] += ds * K(j)[d];
    }
  });
  // Pass 2, per key j: dK = Σ_i dS_ij q_i, dV = Σ_i P_ij dO_i.
  parallel_for(T, [&](int j) {
    double* dk = &r.dk[(size_t)j * Dk];
    double* dv = &r.dv[(size_t)j * Dv];
    for (int i = j; i < T; i++) {
      const double p = std::exp(scale * dot(Q(i), K(j), Dk) - r.lse[i]);
      const double ds = p * (dot(G(i), V(j), Dv) - D[i]) * scale;
      for (int d = 0; d < Dk; d++) dk[d] += ds * Q(i)[d];
      for (int d = 0; d < Dv; d++) dv[d] += p * G(i)[d];
    }
  });
  return r;
}

// max |gpu − ref| / max |ref| of one tensor over the reference heads; gpu is the full [B·T, H, D] (or [B, H, T])
// array. Non-finite GPU values make the error infinite.
struct ErrAcc {
  double maxDiff = 0, maxRef = 0;
  bool nonfinite = false;
  void add(double g, double r) {
    if (!std::isfinite(g)) nonfinite = true;
    maxDiff = std::max(maxDiff, std::fabs(g - r));
    maxRef = std::max(maxRef, std::fabs(r));
  }
  double rel() const { return nonfinite ? INFINITY : maxDiff / std::max(maxRef, 1e-30); }
};

double token_err(const std::vector<float>& gpu, const std::vector<HeadRef>& refs,
                 const std::vector<std::pair<int, int>>& heads, const Case& c, int D,
                 std::vector<double> HeadRef::*field) {
  ErrAcc acc;
  for (size_t n = 0; n < heads.size(); n++) {
    const int b = heads[n].first, h = heads[n].second;
    const std::vector<double>& ref = refs[n].*field;
    for (int t = 0; t < c.T; t++)
      for (int d = 0; d < D; d++) acc.add(gpu[((size_t)(b * c.T + t) * c.H + h) * D + d], ref[(size_t)t * D + d]);
  }
  return acc.rel();
}

double lse_err(const std::vector<float>& gpu, const std::vector<HeadRef>& refs,
               const std::vector<std::pair<int, int>>& heads, const Case& c) {
  ErrAcc acc;
  for (size_t n = 0; n < heads.size(); n++) {
    const int b = heads[n].first, h = heads[n].second;
    for (int t = 0; t < c.T; t++) acc.add(gpu[((size_t)b * c.H + h) * c.T + t], refs[n].lse[t]);
  }
  return acc.rel();
}

// Non-finite elements anywhere in a full output (every head, also those the reference does not cover): an element
// left unwritten keeps the NaN poison.
size_t count_nonfinite(const std::vector<float>& x) {
  size_t n = 0;
  for (float v : x) n += !std::isfinite(v);
  return n;
}

// ---- device buffers ------------------------------------------------------------------------------------------------
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) { CK(cudaMalloc(&p, std::max<size_t>(n, 16))); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

template <class T>
void upload(DevBuf& d, const std::vector<T>& h, cudaStream_t s) {
  CK(cudaMemcpyAsync(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, s));
}
template <class T>
std::vector<T> download(const DevBuf& d, size_t n, cudaStream_t s) {
  std::vector<T> h(n);
  CK(cudaMemcpyAsync(h.data(), d.p, n * sizeof(T), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  return h;
}
void poison(DevBuf& d, cudaStream_t s) { CK(cudaMemsetAsync(d.p, 0xff, d.bytes, s)); }

double median_us(const std::function<void()>& call, int reps, cudaStream_t s) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    CK(cudaEventRecord(a, s));
    call();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e3);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t.empty() ? 0 : t[t.size() / 2];
}

std::string errs_text(std::initializer_list<std::pair<const char*, double>> errs) {
  std::string t;
  for (auto& e : errs) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s%s %.2e", t.empty() ? "" : ", ", e.first, e.second);
    t += buf;
  }
  return t;
}

std::string shape_text(const Case& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "B%d T%d H%d qk%d v%d", c.B, c.T, c.H, c.dqk, c.dv);
  return buf;
}

void add_row(Row r) {
  if (!r.pass) g_fail = true;
  g_rows.push_back(std::move(r));
}

// ---- one case: both precisions, forward and backward ---------------------------------------------------------------
void run_case(const Case& c, const Options& opt, cudaStream_t s, uint64_t seed) {
  const size_t nq = (size_t)c.B * c.T * c.H * c.dqk, nv = (size_t)c.B * c.T * c.H * c.dv;
  const size_t nl = (size_t)c.B * c.H * c.T;
  const double scale = 1.0 / std::sqrt((double)c.dqk);
  const float scalef = (float)scale;

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(nq), k(nq), v(nv), dO(nv);
  std::vector<uint16_t> q16(nq), k16(nq), v16(nv), dO16(nv);
  auto fill = [&](std::vector<float>& x, std::vector<uint16_t>& x16, float sd) {
    for (size_t i = 0; i < x.size(); i++) {
      x16[i] = to_bf16(nd(rng) * sd);
      x[i] = from_bf16(x16[i]);
    }
  };
  fill(q, q16, c.qkStd);
  fill(k, k16, c.qkStd);
  fill(v, v16, 1.f);
  fill(dO, dO16, 1.f);

  std::vector<std::pair<int, int>> heads;
  if (c.sampleHeads) heads = {{0, 0}, {c.B - 1, c.H - 1}};
  else
    for (int b = 0; b < c.B; b++)
      for (int h = 0; h < c.H; h++) heads.push_back({b, h});
  std::vector<HeadRef> refs;
  for (auto& bh : heads) refs.push_back(reference_head(q, k, v, dO, c, bh.first, bh.second, scale));
  const std::string headText = c.sampleHeads ? "2 of " + std::to_string(c.B * c.H) : "all " + std::to_string(c.B * c.H);

  DevBuf dq32(nq * 4), dk32(nq * 4), dv32(nv * 4), ddo32(nv * 4), dq16(nq * 2), dk16(nq * 2), dv16(nv * 2),
      ddo16(nv * 2);
  upload(dq32, q, s), upload(dk32, k, s), upload(dv32, v, s), upload(ddo32, dO, s);
  upload(dq16, q16, s), upload(dk16, k16, s), upload(dv16, v16, s), upload(ddo16, dO16, s);
  DevBuf out(nv * 4), outb(nv * 2), lse(nl * 4), gq(nq * 4), gk(nq * 4), gv(nv * 4);
  const size_t wsBytes = octet_attention_backward_workspace_bytes(c.B, c.T, c.H);
  DevBuf ws(wsBytes);

  const double flopsF = 2.0 * c.B * c.H * (double)c.T * c.T * (c.dqk + c.dv) / 2.0;
  const double flopsB = 2.5 * flopsF;

  for (int prec : {OCTET_ATTN_FP32, OCTET_ATTN_BF16, OCTET_ATTN_BF16_FA2}) {
    // OCTET_ATTN_BF16_FA2 (FlashAttention-2's single bf16 rounding of P and dS) is reported, not checked against 2e-3.
    const bool fa2 = prec == OCTET_ATTN_BF16_FA2, b16 = prec != OCTET_ATTN_FP32;
    const char* pname = fa2 ? "fa2" : b16 ? "bf16" : "fp32";
    const void* Qp = b16 ? dq16.p : dq32.p;
    const void* Kp = b16 ? dk16.p : dk32.p;
    const void* Vp = b16 ? dv16.p : dv32.p;
    const void* Gp = b16 ? ddo16.p : ddo32.p;
    auto fwd = [&](void* o, int odt) {
      CK(octet_attention_forward(prec, Qp, Kp, Vp, o, odt, lse.f(), c.B, c.T, c.H, c.dqk, c.dv, scalef, s));
    };
    auto bwd = [&](const void* o, int odt) {
      CK(octet_attention_backward(prec, Gp, Qp, Kp, Vp, o, odt, lse.f(), gq.f(), gk.f(), gv.f(), ws.p, wsBytes, c.B,
                                  c.T, c.H, c.dqk, c.dv, scalef, s));
    };

    // Forward (fp32 output), twice.
    poison(out, s), poison(lse, s);
    fwd(out.p, OCTET_ATTN_OUT_F32);
    const std::vector<float> o1 = download<float>(out, nv, s), l1 = download<float>(lse, nl, s);
    poison(out, s), poison(lse, s);
    fwd(out.p, OCTET_ATTN_OUT_F32);
    const std::vector<float> o2 = download<float>(out, nv, s), l2 = download<float>(lse, nl, s);
    const bool detF = std::memcmp(o1.data(), o2.data(), nv * 4) == 0 && std::memcmp(l1.data(), l2.data(), nl * 4) == 0;
    const double eO = token_err(o1, refs, heads, c, c.dv, &HeadRef::o), eL = lse_err(l1, refs, heads, c);
    Row rf{"fwd", pname, shape_text(c), headText, eO >= eL ? "O" : "lse", fa2 ? "info" : "2e-03", std::max(eO, eL),
           detF, false, 0, 0, ""};
    rf.detail = errs_text({{"O", eO}, {"lse", eL}});
    const size_t nfF = count_nonfinite(o1) + count_nonfinite(l1);
    if (nfF) rf.detail += ", " + std::to_string(nfF) + " non-finite";
    rf.pass = detF && nfF == 0 && (fa2 || rf.err <= kTol);
    if (opt.timing && c.timing) {
      rf.us = median_us([&] { fwd(out.p, OCTET_ATTN_OUT_F32); }, opt.reps, s);
      rf.tflops = flopsF / (rf.us * 1e-6) / 1e12;
    }
    add_row(rf);

    // Forward with bf16 output: the round-to-nearest-even of the fp32 output, bit for bit.
    poison(outb, s);
    fwd(outb.p, OCTET_ATTN_OUT_BF16);
    const std::vector<uint16_t> ob = download<uint16_t>(outb, nv, s);
    size_t mism = 0;
    for (size_t i = 0; i < nv; i++) mism += ob[i] != to_bf16(o1[i]);
    Row rb{"fwd out=bf16", pname, shape_text(c), "all", "O", "0 diff", 0, true, mism == 0, 0, 0,
           std::to_string(mism) + " diff"};
    add_row(rb);

    // Backward (O in fp32 from the first forward; lse from the last forward, bit-identical), twice.
    upload(out, o1, s);
    poison(gq, s), poison(gk, s), poison(gv, s), poison(ws, s);
    bwd(out.p, OCTET_ATTN_OUT_F32);
    const std::vector<float> q1 = download<float>(gq, nq, s), k1 = download<float>(gk, nq, s),
                             v1 = download<float>(gv, nv, s);
    poison(gq, s), poison(gk, s), poison(gv, s), poison(ws, s);
    bwd(out.p, OCTET_ATTN_OUT_F32);
    const std::vector<float> q2 = download<float>(gq, nq, s), k2 = download<float>(gk, nq, s),
                             v2 = download<float>(gv, nv, s);
    const bool detB = std::memcmp(q1.data(), q2.data(), nq * 4) == 0 &&
                      std::memcmp(k1.data(), k2.data(), nq * 4) == 0 && std::memcmp(v1.data(), v2.data(), nv * 4) == 0;
    const double eq = token_err(q1, refs, heads, c, c.dqk, &HeadRef::dq);
    const double ek = token_err(k1, refs, heads, c, c.dqk, &HeadRef::dk);
    const double ev = token_err(v1, refs, heads, c, c.dv, &HeadRef::dv);
    const double eB = std::max(eq, std::max(ek, ev));
    Row rw{"bwd", pname, shape_text(c), headText, eB == eq ? "dq" : eB == ek ? "dk" : "dv", fa2 ? "info" : "2e-03",
           eB, detB, false, 0, 0, ""};
    rw.detail = errs_text({{"dq", eq}, {"dk", ek}, {"dv", ev}});
    const size_t nfB = count_nonfinite(q1) + count_nonfinite(k1) + count_nonfinite(v1);
    if (nfB) rw.detail += ", " + std::to_string(nfB) + " non-finite";
    rw.pass = detB && nfB == 0 && (fa2 || eB <= kTol);
    if (opt.timing && c.timing) {
      rw.us = median_us([&] { bwd(out.p, OCTET_ATTN_OUT_F32); }, opt.reps, s);
      rw.tflops = flopsB / (rw.us * 1e-6) / 1e12;
    }
    add_row(rw);

    // Backward reading a bf16 O (D = rowsum(dO ∘ O) from the rounded O): reported, not a check.
    if (c.sampleHeads && !fa2) {
      poison(gq, s), poison(gk, s), poison(gv, s);
      bwd(outb.p, OCTET_ATTN_OUT_BF16);
      const std::vector<float> qb = download<float>(gq, nq, s), kb = download<float>(gk, nq, s),
                               vb = download<float>(gv, nv, s);
      const double a = token_err(qb, refs, heads, c, c.dqk, &HeadRef::dq);
      const double bb = token_err(kb, refs, heads, c, c.dqk, &HeadRef::dk);
      const double cc = token_err(vb, refs, heads, c, c.dv, &HeadRef::dv);
      const double e = std::max(a, std::max(bb, cc));
      Row ro{"bwd O=bf16", pname, shape_text(c), headText, e == a ? "dq" : e == bb ? "dk" : "dv", "info", e, true,
             true, 0, 0, ""};
      ro.detail = errs_text({{"dq", a}, {"dk", bb}, {"dv", cc}});
      add_row(ro);
    }
  }
}

// Forward + backward captured into a CUDA graph and replayed: the same bits as direct calls.
void graph_check(cudaStream_t s) {
  const int B = 2, T = 100, H = 2, dqk = 48, dv = 32;
  const size_t nq = (size_t)B * T * H * dqk, nv = (size_t)B * T * H * dv, nl = (size_t)B * H * T;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> q(nq), k(nq), v(nv), g(nv);
  for (auto* x : {&q, &k}) for (auto& e : *x) e = to_bf16(nd(rng));
  for (auto* x : {&v, &g}) for (auto& e : *x) e = to_bf16(nd(rng));
  DevBuf dq(nq * 2), dk(nq * 2), dv_(nv * 2), dg(nv * 2), out(nv * 4), lse(nl * 4), gq(nq * 4), gk(nq * 4), gv(nv * 4);
  const size_t wsb = octet_attention_backward_workspace_bytes(B, T, H);
  DevBuf ws(wsb);
  upload(dq, q, s), upload(dk, k, s), upload(dv_, v, s), upload(dg, g, s);
  const float scale = 1.f / std::sqrt((float)dqk);
  auto step = [&] {
    CK(octet_attention_forward(OCTET_ATTN_BF16, dq.p, dk.p, dv_.p, out.p, OCTET_ATTN_OUT_F32, lse.f(), B, T, H, dqk, dv,
                               scale, s));
    CK(octet_attention_backward(OCTET_ATTN_BF16, dg.p, dq.p, dk.p, dv_.p, out.p, OCTET_ATTN_OUT_F32, lse.f(), gq.f(),
                                gk.f(), gv.f(), ws.p, wsb, B, T, H, dqk, dv, scale, s));
  };
  step();
  const std::vector<float> a = download<float>(gq, nq, s), a2 = download<float>(gk, nq, s), a3 = download<float>(gv, nv, s);
  poison(gq, s), poison(gk, s), poison(gv, s), poison(out, s), poison(lse, s);
  CK(cudaStreamSynchronize(s));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  step();
  CK(cudaStreamEndCapture(s, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  CK(cudaGraphLaunch(exec, s));
  const std::vector<float> b = download<float>(gq, nq, s), b2 = download<float>(gk, nq, s), b3 = download<float>(gv, nv, s);
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  const bool same = std::memcmp(a.data(), b.data(), nq * 4) == 0 && std::memcmp(a2.data(), b2.data(), nq * 4) == 0 &&
                    std::memcmp(a3.data(), b3.data(), nv * 4) == 0;
  add_row(Row{"graph fwd+bwd", "bf16", "B2 T100 H2 qk48 v32", "-", "-", "same bits", 0, same, same, 0, 0,
              same ? "identical" : "differs"});
}

// Arguments outside the documented range are refused with cudaErrorInvalidValue, launching nothing.
void validation_check(cudaStream_t s) {
  DevBuf a(1 << 16), o(1 << 16), l(1 << 12), w(1 << 12), g(1 << 16);
  const void* p = a.p;
  float* lf = l.f();
  float* gf = g.f();
  const char* misaligned = static_cast<const char*>(a.p) + 4;
  int bad = 0, total = 0;
  auto expect = [&](cudaError_t e) {
    total++;
    if (e != cudaErrorInvalidValue) {
      bad++;
      std::fprintf(stderr, "validation case %d: got %d, expected cudaErrorInvalidValue\n", total, (int)e);
    }
  };
  auto F = [&](int prec, const void* q, int odt, int B, int T, int H, int dk, int dv, float sc) {
    return octet_attention_forward(prec, q, p, p, o.p, odt, lf, B, T, H, dk, dv, sc, s);
  };
  expect(F(3, p, 0, 1, 8, 1, 48, 32, 0.1f));          // precision
  expect(F(0, p, 2, 1, 8, 1, 48, 32, 0.1f));          // out dtype
  expect(F(0, p, 0, 0, 8, 1, 48, 32, 0.1f));          // batch
  expect(F(0, p, 0, 1, 0, 1, 48, 32, 0.1f));          // seqLen
  expect(F(0, p, 0, 1, 8, 0, 48, 32, 0.1f));          // heads
  expect(F(1, p, 0, 1, 8, 1, 40, 32, 0.1f));          // qkDim not compiled
  expect(F(1, p, 0, 1, 8, 1, 24, 16, 0.1f));          // micro preset's MLA dims
  expect(F(1, p, 0, 1, 8, 1, 192, 192, 0.1f));        // pair not compiled
  expect(F(0, p, 0, 1, 8, 1, 48, 32, 0.f));           // scale
  expect(F(0, p, 0, 1, 8, 1, 48, 32, NAN));           // scale
  expect(F(0, nullptr, 0, 1, 8, 1, 48, 32, 0.1f));    // null
  expect(F(0, misaligned, 0, 1, 8, 1, 48, 32, 0.1f)); // alignment
  expect(octet_attention_backward(1, p, p, p, p, o.p, 0, lf, gf, gf, gf, w.p, 4, 1, 8, 1, 48, 32, 0.1f, s));  // workspace
  expect(octet_attention_backward(1, p, p, p, p, o.p, 0, lf, gf, gf, gf, nullptr, 1 << 12, 1, 8, 1, 48, 32, 0.1f, s));
  expect(octet_attention_backward(1, p, p, p, p, o.p, 0, lf, gf, gf, gf, w.p, 1 << 12, 1, 8, 1, 64, 32, 0.1f, s));
  const bool ok = bad == 0 && cudaGetLastError() == cudaSuccess;
  add_row(Row{"bad arguments", "-", "-", "-", "-", "all refused", 0, true, ok, 0, 0,
              std::to_string(total - bad) + "/" + std::to_string(total) + " refused"});
}

void print_table() {
  std::printf("\n%-14s %-5s %-22s %-9s %-5s %-12s %-11s %-4s %-5s %10s %8s  %s\n", "op", "prec", "shape", "ref heads",
              "worst", "max rel err", "tol", "det", "pass", "time us", "TFLOP/s", "per tensor");
  for (const Row& r : g_rows) {
    char err[32], us[24], tf[24];
    if (!r.errText.empty()) std::snprintf(err, sizeof err, "%s", r.errText.c_str());
    else std::snprintf(err, sizeof err, "%.3e", r.err);
    if (r.us > 0) std::snprintf(us, sizeof us, "%.1f", r.us), std::snprintf(tf, sizeof tf, "%.1f", r.tflops);
    else std::snprintf(us, sizeof us, "-"), std::snprintf(tf, sizeof tf, "-");
    std::printf("%-14s %-5s %-22s %-9s %-5s %-12s %-11s %-4s %-5s %10s %8s  %s\n", r.op.c_str(), r.prec.c_str(),
                r.shape.c_str(), r.heads.c_str(), r.worst.c_str(), err, r.tol.c_str(), r.det ? "yes" : "NO",
                r.pass ? "PASS" : "FAIL", us, tf, r.detail.c_str());
  }
  std::printf("\nmax rel err = max|gpu - ref| / max|ref| per output tensor (O and lse forward; dq, dk, dv backward) over "
              "the reference heads, float64 reference on the same (bf16-representable) inputs; the row shows the worst "
              "tensor.\nTFLOP/s: causal FLOPs 2*B*H*T^2*(qk+v)/2 forward, 2.5x backward; for scale, FlashAttention-2 reaches "
              "~300-350 TFLOP/s forward in bf16 on an H100 SXM (head dim 128).\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--quick") opt.quick = true;
    else if (a == "--no-timing") opt.timing = false;
    else if (a == "--reps" && i + 1 < argc) opt.reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--case" && i + 1 < argc) {
      Case c{"--case", 0, 0, 0, 0, 0, 1.f, false, true};
      const int n = std::sscanf(argv[++i], "%d,%d,%d,%d,%d,%f", &c.B, &c.T, &c.H, &c.dqk, &c.dv, &c.qkStd);
      if (n < 5 || c.B < 1 || c.T < 1 || c.H < 1) {
        std::fprintf(stderr, "--case B,T,H,qk,v[,qkStd]\n");
        return 2;
      }
      c.sampleHeads = (double)c.B * c.H * c.T * c.T > 4.0 * 4096 * 4096;  // keep the reference under a few seconds
      opt.only.push_back(c);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--no-timing] [--reps N] [--case B,T,H,qk,v[,qkStd]]...\n", argv[0]);
      return 2;
    }
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

  // name, B, T, H, qk, v, qkStd, sampleHeads, timing
  std::vector<Case> cases = {
      {"tiny preset", 16, 64, 4, 48, 32, 1.f, false, true},
      {"tiny dims", 2, 1024, 2, 48, 32, 1.f, false, true},
      {"tiny dims", 1, 4096, 2, 48, 32, 1.f, false, true},
      {"gpu-small dims", 2, 64, 4, 192, 128, 1.f, false, true},
      {"gpu-small dims", 1, 1024, 2, 192, 128, 1.f, false, true},
      {"gpu-small dims", 1, 4096, 2, 192, 128, 1.f, false, true},
      {"gpu-small preset", 8, 2048, 16, 192, 128, 1.f, true, true},
      {"MHA 32, odd T", 1, 1000, 3, 32, 32, 1.f, false, false},
      {"MHA 64, odd T", 2, 77, 2, 64, 64, 1.f, false, false},
      {"MHA 128", 1, 1024, 2, 128, 128, 1.f, false, true},
      {"MHA 128 gpu-small", 8, 2048, 16, 128, 128, 1.f, true, true},
      {"peaked scores", 1, 333, 2, 192, 128, 4.f, false, false},
  };
  if (opt.quick) {  // small shapes only (e.g. under a CPU emulation)
    cases = {
        {"tiny preset", 2, 64, 2, 48, 32, 1.f, false, false},
        {"gpu-small dims", 1, 130, 2, 192, 128, 1.f, false, false},
        {"MHA 32, odd T", 1, 77, 1, 32, 32, 1.f, false, false},
        {"MHA 64", 1, 200, 1, 64, 64, 1.f, false, false},
        {"MHA 128", 1, 129, 1, 128, 128, 1.f, false, false},
        {"peaked scores", 1, 100, 1, 192, 128, 4.f, true, false},
    };
  }
  if (!opt.only.empty()) cases = opt.only;
  uint64_t seed = 12345;
  for (const Case& c : cases) {
    std::fprintf(stderr, "case %s: %s\n", c.name.c_str(), shape_text(c).c_str());
    run_case(c, opt, s, seed++);
  }
  graph_check(s);
  validation_check(s);
  CK(cudaStreamSynchronize(s));
  CK(cudaStreamDestroy(s));
  print_table();
  std::printf("%s\n", g_fail ? "FAILED" : "all checks passed");
  return g_fail ? 1 : 0;
}
