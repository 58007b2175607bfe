// Check of gate.cu against CPU references that follow packages/router/src/route.ts (routeTokens,
// routeTokensBackward) and dispatch.ts (planDispatch) step by step, at the shapes of the `tiny` and `gpu-small`
// presets (and DeepSeek-V3's 256-expert gate), plus exact-tie, NaN, skewed/invalid-index and bad-argument cases.
//
// Build and run (GPU machine, from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/gate_test \
//     packages/model/cuda/test/gate_test.cu packages/model/cuda/gate.cu && /tmp/gate_test
//
// What is compared:
// - route_sigmoid vs "ref": route.ts on the float64-rounded sigmoid (the specification). The GPU's sigmoid is
//   FP32 expf, so a score can differ by an ulp: the table counts those, and the weights must be within 1e-5. A
//   token's experts must equal ref's unless ref has a near tie (two choice values, or the kept/dropped group
//   scores, within 1e-6): near-tie tokens are counted, mismatches elsewhere fail.
// - route_sigmoid vs "ref on GPU scores": route.ts's selection and weight arithmetic run on the GPU's own scores;
//   indices and weights must then be bit-identical (this pins the tie rules and the f32 arithmetic exactly).
// - route_backward vs routeTokensBackward (float64, rounded once) on the GPU's forward: within 1e-5 (expected 0).
// - plan_dispatch vs planDispatch: every array equal (exact).
// - determinism: every kernel run twice, outputs bit-identical; a CUDA-graph replay of the three equal to eager.
// Error metric ("max rel err"): per element |gpu − ref| / max(|ref|, 1e-6 · max|ref| over the tensor), max over
// the tensor.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../gate.h"

#define CHECK_CUDA(x)                                                                            \
  do {                                                                                           \
    cudaError_t err_ = (x);                                                                      \
    if (err_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(err_)); \
      std::exit(2);                                                                              \
    }                                                                                            \
  } while (0)

namespace {

// ---- random numbers (fixed seed) --------------------------------------------------------------------------------
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// ---- CPU references: route.ts, operation for operation --------------------------------------------------------
struct Shape {
  int64_t T;
  int E, K, nGroup, topkGroup;
  bool norm;
  double scaling;
  int groupSize() const { return E / nGroup; }
  bool limitsGroups() const { return nGroup > 1 && topkGroup < nGroup; }
};

// sigmoidF32 of sigmoid.ts: the float64 sigmoid rounded once to float32 (with its saturation).
float sigmoid_ref(float z) {
  if (z > 30) return 1.f;
  if (z < -110) return 0.f;
  return (float)(1.0 / (1.0 + std::exp(-(double)z)));
}

struct RouteRef {
  std::vector<int32_t> indices;
  std::vector<float> weights;
  std::vector<uint8_t> nearTie;  // per token: a decision of ref was within 1e-6
};

// routeTokens' per-token selection and weights from given scores (float32 operations where route.ts rounds).
RouteRef route_reference(const std::vector<float>& scores, const std::vector<float>& bias, const Shape& sh) {
  RouteRef out;
  const int E = sh.E, K = sh.K, G = sh.nGroup, gs = sh.groupSize();
  out.indices.assign(sh.T * K, 0);
  out.weights.assign(sh.T * K, 0.f);
  out.nearTie.assign(sh.T, 0);
  std::vector<float> choice(E);
  std::vector<float> groupScore(G);
  std::vector<uint8_t> eligible(G);
  std::vector<double> bestValue(K);
  std::vector<int> bestIndex(K);
  const float scaling = (float)sh.scaling;
  for (int64_t t = 0; t < sh.T; t++) {
    const float* s = &scores[t * E];
    for (int g = 0; g < G; g++) {
      float first = -INFINITY, second = -INFINITY;
      for (int e = g * gs; e < (g + 1) * gs; e++) {
        const float c = s[e] + bias[e];
        choice[e] = c;
        if (c > first) {
          second = first;
          first = c;
        } else if (c > second) {
          second = c;
        }
      }
      groupScore[g] = first + second;
    }
    std::fill(eligible.begin(), eligible.end(), 1);
    if (sh.limitsGroups()) {
      std::fill(eligible.begin(), eligible.end(), 0);
      for (int picked = 0; picked < sh.topkGroup; picked++) {
        int best = -1;
        float bestScore = -INFINITY;
        for (int g = 0; g < G; g++)
          if (!eligible[g] && (groupScore[g] > bestScore || best < 0)) {
            best = g;
            bestScore = groupScore[g];
          }
        eligible[best] = 1;
      }
      // near tie between the last kept and the best dropped group
      std::vector<float> sorted(groupScore);
      std::sort(sorted.begin(), sorted.end(), std::greater<float>());
      if (std::fabs((double)sorted[sh.topkGroup - 1] - sorted[sh.topkGroup]) <= 1e-6) out.nearTie[t] = 1;
    }
    int filled = 0;
    std::vector<float> eligibleChoices;
    for (int g = 0; g < G; g++) {
      if (!eligible[g]) continue;
      for (int e = g * gs; e < (g + 1) * gs; e++) {
        const float c = choice[e];
        eligibleChoices.push_back(c);
        if (filled < K) {
          int j = filled++;
          while (j > 0 && bestValue[j - 1] < c) {
            bestValue[j] = bestValue[j - 1];
            bestIndex[j] = bestIndex[j - 1];
            j--;
          }
          bestValue[j] = c;
          bestIndex[j] = e;
        } else if (c > bestValue[K - 1]) {
          int j = K - 1;
          while (j > 0 && bestValue[j - 1] < c) {
            bestValue[j] = bestValue[j - 1];
            bestIndex[j] = bestIndex[j - 1];
            j--;
          }
          bestValue[j] = c;
          bestIndex[j] = e;
        }
      }
    }
    // near tie within the top K (their order) or between the K-th and the next (membership)
    std::sort(eligibleChoices.begin(), eligibleChoices.end(), std::greater<float>());
    for (int i = 0; i < K && i + 1 < (int)eligibleChoices.size(); i++)
      if (std::fabs((double)eligibleChoices[i] - eligibleChoices[i + 1]) <= 1e-6) out.nearTie[t] = 1;
    float sum = 0.f;
    for (int k = 0; k < K; k++) {
      out.indices[t * K + k] = bestIndex[k];
      const float w = s[bestIndex[k]];
      out.weights[t * K + k] = w;
      sum = sum + w;
    }
    const float denominator = sh.norm ? (float)((double)sum + 1e-20) : 1.f;
    for (int k = 0; k < K; k++) {
      float w = out.weights[t * K + k];
      if (sh.norm) w = w / denominator;
      out.weights[t * K + k] = w * scaling;
    }
  }
  return out;
}

// routeTokensBackward (sigmoid): float64, rounded once.
std::vector<float> backward_reference(const std::vector<int32_t>& indices, const std::vector<float>& scores,
                                      const std::vector<float>& gradWeights, const Shape& sh) {
  const int E = sh.E, K = sh.K;
  std::vector<float> dl(sh.T * E, 0.f);
  std::vector<double> gradScore(K);
  for (int64_t t = 0; t < sh.T; t++) {
    double sumPicked = 0, weightedGrad = 0;
    for (int k = 0; k < K; k++) {
      const double s = scores[t * E + indices[t * K + k]];
      sumPicked += s;
      weightedGrad += (double)gradWeights[t * K + k] * s;
    }
    const double denominator = sumPicked + 1e-20;
    for (int k = 0; k < K; k++) {
      const double g = gradWeights[t * K + k];
      gradScore[k] = sh.norm ? (sh.scaling / denominator) * (g - weightedGrad / denominator) : sh.scaling * g;
    }
    for (int k = 0; k < K; k++) {
      const int e = indices[t * K + k];
      const double s = scores[t * E + e];
      dl[t * E + e] = (float)(gradScore[k] * s * (1 - s));
    }
  }
  return dl;
}

struct PlanRef {
  std::vector<int32_t> counts, offsets, tokenOfRow, assignmentOfRow, rowOfAssignment;
  std::vector<float> combineWeights, loadStats;
};

// planDispatch without capacity; out-of-range indices dropped (rowOfAssignment −1), trailing rows marked.
PlanRef plan_reference(const std::vector<int32_t>& indices, const std::vector<float>& weights, int64_t T, int E,
                       int K) {
  PlanRef p;
  const int64_t A = T * K;
  p.counts.assign(E, 0);
  for (int64_t a = 0; a < A; a++)
    if (indices[a] >= 0 && indices[a] < E) p.counts[indices[a]]++;
  p.offsets.assign(E + 1, 0);
  for (int e = 0; e < E; e++) p.offsets[e + 1] = p.offsets[e] + p.counts[e];
  p.tokenOfRow.assign(A, -1);
  p.assignmentOfRow.assign(A, -1);
  p.combineWeights.assign(A, 0.f);
  p.rowOfAssignment.assign(A, -1);
  std::vector<int32_t> cursor(p.offsets.begin(), p.offsets.end() - 1);
  for (int64_t a = 0; a < A; a++) {
    const int e = indices[a];
    if (e < 0 || e >= E) continue;
    const int row = cursor[e]++;
    p.tokenOfRow[row] = (int32_t)(a / K);
    p.assignmentOfRow[row] = (int32_t)a;
    p.combineWeights[row] = weights[a];
    p.rowOfAssignment[a] = row;
  }
  double sum = 0, maxLoad = 0;
  for (int e = 0; e < E; e++) {
    sum += p.counts[e];
    maxLoad = std::max(maxLoad, (double)p.counts[e]);
  }
  const double mean = sum / E;
  p.loadStats = {(float)maxLoad, (float)mean, mean > 0 ? (float)(maxLoad / mean) : 1.f};
  return p;
}

// ---- helpers ------------------------------------------------------------------------------------------------------
double max_rel_err(const std::vector<float>& got, const std::vector<float>& ref, const std::vector<uint8_t>* mask = nullptr,
                   int perRow = 1) {
  double maxRef = 0;
  for (size_t i = 0; i < ref.size(); i++) maxRef = std::max(maxRef, (double)std::fabs(ref[i]));
  const double floor = std::max(1e-6 * maxRef, 1e-300);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    if (mask && !(*mask)[i / perRow]) continue;
    const double d = std::fabs((double)got[i] - (double)ref[i]);
    if (std::isnan(got[i]) != std::isnan(ref[i])) return INFINITY;
    worst = std::max(worst, d / std::max((double)std::fabs(ref[i]), floor));
  }
  return worst;
}

template <class T>
T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, std::max<size_t>(h.size(), 1) * sizeof(T)));
  if (!h.empty()) CHECK_CUDA(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
T* device_alloc(size_t n) {
  T* d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, std::max<size_t>(n, 1) * sizeof(T)));
  CHECK_CUDA(cudaMemset(d, 0xCD, std::max<size_t>(n, 1) * sizeof(T)));  // garbage: every element must be written
  return d;
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  if (n) CHECK_CUDA(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
template <class T>
int64_t count_diff(const std::vector<T>& a, const std::vector<T>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); i++) n += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return n + (int64_t)(a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

template <class F>
double median_us(F launch, int reps = 25) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) launch();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < reps; i++) {
    CHECK_CUDA(cudaEventRecord(a));
    launch();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    times.push_back(ms * 1e3);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Row {
  std::string op, shape;
  double err, tol;
  bool pass;
  double us, gbs;
  std::string notes;
};
std::vector<Row> g_rows;
bool g_failed = false;
void add_row(Row r) {
  if (!r.pass) g_failed = true;
  g_rows.push_back(std::move(r));
}

std::string shape_str(const Shape& sh) {
  char b[160];
  std::snprintf(b, sizeof b, "T=%lld E=%d K=%d grp %d/%d%s c=%g", (long long)sh.T, sh.E, sh.K, sh.topkGroup,
                sh.nGroup, sh.norm ? " norm" : "", sh.scaling);
  return b;
}

// ---- one gate case: route, backward, plan -------------------------------------------------------------------------
enum class Logits { Normal, Grid };

void run_case(const char* name, const Shape& sh, Logits kind, double sigma, double biasRange, uint64_t seed,
              bool timeIt) {
  const int E = sh.E, K = sh.K;
  const int64_t T = sh.T, TE = T * E, TK = T * K;
  Rng rng(seed);
  std::vector<float> logits(TE), bias(E), gradWeights(TK);
  for (auto& z : logits)
    z = kind == Logits::Normal ? (float)(sigma * rng.normal()) : (float)(0.5 * (int)(rng.uniform() * 9) - 2.0);
  for (auto& b : bias) b = (float)(biasRange * (2 * rng.uniform() - 1));
  for (auto& g : gradWeights) g = (float)rng.normal();

  float* dLogits = to_device(logits);
  float* dBias = to_device(bias);
  float* dGradW = to_device(gradWeights);
  int32_t* dIdx = device_alloc<int32_t>(TK);
  float* dW = device_alloc<float>(TK);
  float* dScores = device_alloc<float>(TE);
  float* dDl = device_alloc<float>(TE);
  OctetRouteStatus* dStatus = device_alloc<OctetRouteStatus>(1);
  int32_t *dCounts = device_alloc<int32_t>(E), *dOffsets = device_alloc<int32_t>(E + 1);
  int32_t *dTok = device_alloc<int32_t>(TK), *dAsg = device_alloc<int32_t>(TK), *dRoa = device_alloc<int32_t>(TK);
  float *dCw = device_alloc<float>(TK), *dStats = device_alloc<float>(3);
  const size_t wsBytes = octet_plan_dispatch_workspace_bytes(T, E, K);
  void* dWs = device_alloc<unsigned char>(wsBytes);

  auto route = [&] {
    CHECK_CUDA(octet_route_sigmoid(dLogits, dBias, T, E, K, sh.nGroup, sh.topkGroup, sh.norm, (float)sh.scaling, dIdx,
                                   dW, dScores, dStatus, 0));
  };
  auto backward = [&] {
    CHECK_CUDA(octet_route_backward(dIdx, dScores, dGradW, T, E, K, sh.norm, sh.scaling, dDl, 0));
  };
  auto plan = [&] {
    CHECK_CUDA(octet_plan_dispatch(dIdx, dW, T, E, K, dCounts, dOffsets, dTok, dAsg, dCw, dRoa, dStats, dWs, wsBytes,
                                   0));
  };
  struct Out {
    std::vector<int32_t> idx, counts, offsets, tok, asg, roa;
    std::vector<float> w, scores, dl, cw, stats;
    OctetRouteStatus status;
  };
  auto fetch = [&] {
    Out o;
    o.idx = to_host(dIdx, TK);
    o.w = to_host(dW, TK);
    o.scores = to_host(dScores, TE);
    o.dl = to_host(dDl, TE);
    o.counts = to_host(dCounts, E);
    o.offsets = to_host(dOffsets, E + 1);
    o.tok = to_host(dTok, TK);
    o.asg = to_host(dAsg, TK);
    o.roa = to_host(dRoa, TK);
    o.cw = to_host(dCw, TK);
    o.stats = to_host(dStats, 3);
    o.status = to_host(dStatus, 1)[0];
    return o;
  };
  auto runAll = [&] {
    CHECK_CUDA(octet_route_status_reset(dStatus, 0));
    route();
    backward();
    plan();
    CHECK_CUDA(cudaDeviceSynchronize());
    return fetch();
  };
  const Out o1 = runAll();
  const Out o2 = runAll();
  auto outputs_equal = [](const Out& a, const Out& b) {
    return same_bits(a.idx, b.idx) && same_bits(a.w, b.w) && same_bits(a.scores, b.scores) && same_bits(a.dl, b.dl) &&
           same_bits(a.counts, b.counts) && same_bits(a.offsets, b.offsets) && same_bits(a.tok, b.tok) &&
           same_bits(a.asg, b.asg) && same_bits(a.roa, b.roa) && same_bits(a.cw, b.cw) && same_bits(a.stats, b.stats);
  };
  const bool deterministic = outputs_equal(o1, o2);

  // CUDA graph: the three calls captured and replayed give the eager outputs.
  bool graphOk = false;
  {
    cudaStream_t s;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CHECK_CUDA(cudaMemset(dIdx, 0xCD, TK * 4));
    CHECK_CUDA(cudaMemset(dDl, 0xCD, TE * 4));
    CHECK_CUDA(cudaMemset(dTok, 0xCD, TK * 4));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CHECK_CUDA(octet_route_status_reset(dStatus, s));
    CHECK_CUDA(octet_route_sigmoid(dLogits, dBias, T, E, K, sh.nGroup, sh.topkGroup, sh.norm, (float)sh.scaling, dIdx,
                                   dW, dScores, dStatus, s));
    CHECK_CUDA(octet_route_backward(dIdx, dScores, dGradW, T, E, K, sh.norm, sh.scaling, dDl, s));
    CHECK_CUDA(octet_plan_dispatch(dIdx, dW, T, E, K, dCounts, dOffsets, dTok, dAsg, dCw, dRoa, dStats, dWs, wsBytes, s));
    CHECK_CUDA(cudaStreamEndCapture(s, &graph));
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    CHECK_CUDA(cudaGraphLaunch(exec, s));
    CHECK_CUDA(cudaStreamSynchronize(s));
    graphOk = outputs_equal(o1, fetch());
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
    CHECK_CUDA(cudaStreamDestroy(s));
  }

  // --- forward vs references
  std::vector<float> refScores(TE);
  for (int64_t i = 0; i < TE; i++) refScores[i] = sigmoid_ref(logits[i]);
  const RouteRef ref = route_reference(refScores, bias, sh);
  const RouteRef onGpuScores = route_reference(o1.scores, bias, sh);
  int64_t sigmoidDiffs = 0;
  double sigmoidMaxRel = 0;
  for (int64_t i = 0; i < TE; i++) {
    if (o1.scores[i] != refScores[i]) sigmoidDiffs++;
    sigmoidMaxRel = std::max(sigmoidMaxRel, std::fabs((double)o1.scores[i] - refScores[i]) /
                                                std::max((double)std::fabs(refScores[i]), 1e-30));
  }
  int64_t nearTies = 0, mismatchNear = 0, mismatchOther = 0;
  std::vector<uint8_t> sameChoice(T, 1);
  for (int64_t t = 0; t < T; t++) {
    nearTies += ref.nearTie[t];
    bool same = true;
    for (int k = 0; k < K; k++) same = same && o1.idx[t * K + k] == ref.indices[t * K + k];
    sameChoice[t] = same;
    if (!same) (ref.nearTie[t] ? mismatchNear : mismatchOther)++;
  }
  const int64_t exactIdxDiffs = count_diff(o1.idx, onGpuScores.indices);
  const int64_t exactWDiffs = count_diff(o1.w, onGpuScores.weights);
  const double wErr = max_rel_err(o1.w, ref.weights, &sameChoice, K);
  const bool statusOk = o1.status.nanCount == 0 && o1.status.firstNaN == ~0ull;
  {
    char notes[400];
    std::snprintf(notes, sizeof notes,
                  "choice≠ref: %lld at near-ties (%lld near-tie tokens), %lld elsewhere; vs ref on GPU scores: %lld idx, "
                  "%lld weight bit diffs; sigmoid≠f64-rounded: %lld/%lld (%.3g%%, max rel %.2g); det %s; graph %s",
                  (long long)mismatchNear, (long long)nearTies, (long long)mismatchOther, (long long)exactIdxDiffs,
                  (long long)exactWDiffs, (long long)sigmoidDiffs, (long long)TE, 100.0 * sigmoidDiffs / TE,
                  sigmoidMaxRel, deterministic ? "ok" : "FAIL", graphOk ? "ok" : "FAIL");
    const bool pass = wErr <= 1e-5 && mismatchOther == 0 && exactIdxDiffs == 0 && exactWDiffs == 0 && deterministic &&
                      graphOk && statusOk;
    const double us = timeIt ? median_us(route) : 0;
    const double bytes = TE * 4.0 * 2 + TK * 8.0 + E * 4.0;
    add_row({"route_sigmoid", std::string(name) + ": " + shape_str(sh), wErr, 1e-5, pass, us,
             timeIt ? bytes / us * 1e-3 : 0, notes});
  }
  // --- backward vs routeTokensBackward on the GPU's forward
  {
    const std::vector<float> refDl = backward_reference(o1.idx, o1.scores, gradWeights, sh);
    const double err = max_rel_err(o1.dl, refDl);
    const int64_t bitDiffs = count_diff(o1.dl, refDl);
    char notes[160];
    std::snprintf(notes, sizeof notes, "bit diffs vs ref: %lld/%lld; det %s", (long long)bitDiffs, (long long)TE,
                  deterministic ? "ok" : "FAIL");
    const double us = timeIt ? median_us(backward) : 0;
    const double bytes = TK * 12.0 + TE * 4.0;
    add_row({"route_backward", std::string(name) + ": " + shape_str(sh), err, 1e-5, err <= 1e-5 && deterministic, us,
             timeIt ? bytes / us * 1e-3 : 0, notes});
  }
  // --- plan vs planDispatch on the GPU's forward
  {
    const PlanRef pr = plan_reference(o1.idx, o1.w, T, E, K);
    const int64_t diffs = count_diff(o1.counts, pr.counts) + count_diff(o1.offsets, pr.offsets) +
                          count_diff(o1.tok, pr.tokenOfRow) + count_diff(o1.asg, pr.assignmentOfRow) +
                          count_diff(o1.roa, pr.rowOfAssignment) + count_diff(o1.cw, pr.combineWeights) +
                          count_diff(o1.stats, pr.loadStats);
    char notes[200];
    std::snprintf(notes, sizeof notes, "exact: %lld differing elements; max/mean load %g/%g; det %s; ws %zu B",
                  (long long)diffs, pr.loadStats[0], pr.loadStats[1], deterministic ? "ok" : "FAIL", wsBytes);
    const double us = timeIt ? median_us(plan) : 0;
    const double bytes = TK * 4.0 + TK * 8.0 + TK * 16.0;
    add_row({"plan_dispatch", std::string(name) + ": " + shape_str(sh), (double)diffs, 0, diffs == 0 && deterministic,
             us, timeIt ? bytes / us * 1e-3 : 0, notes});
  }
  for (void* p : std::initializer_list<void*>{dLogits, dBias, dGradW, dIdx, dW, dScores, dDl, dStatus, dCounts,
                                              dOffsets, dTok, dAsg, dRoa, dCw, dStats, dWs})
    CHECK_CUDA(cudaFree(p));
}

// ---- NaN logits: counted, the first one located, indices still K distinct kept experts -------------------------
void run_nan_case() {
  const Shape sh{1024, 8, 2, 4, 2, true, 1.0};
  const int E = sh.E, K = sh.K;
  const int64_t T = sh.T;
  Rng rng(7);
  std::vector<float> logits(T * E), bias(E, 0.f);
  for (auto& z : logits) z = (float)rng.normal();
  const int64_t nanAt[] = {5 * E + 3, 77 * E + 0, 77 * E + 1, 1000 * E + 7};
  for (int64_t i : nanAt) logits[i] = NAN;
  float* dLogits = to_device(logits);
  float* dBias = to_device(bias);
  int32_t* dIdx = device_alloc<int32_t>(T * K);
  float* dW = device_alloc<float>(T * K);
  OctetRouteStatus* dStatus = device_alloc<OctetRouteStatus>(1);
  CHECK_CUDA(octet_route_status_reset(dStatus, 0));
  CHECK_CUDA(octet_route_sigmoid(dLogits, dBias, T, E, K, sh.nGroup, sh.topkGroup, sh.norm, 1.f, dIdx, dW, nullptr,
                                 dStatus, 0));
  CHECK_CUDA(cudaDeviceSynchronize());
  const auto idx = to_host(dIdx, T * K);
  const auto st = to_host(dStatus, 1)[0];
  bool valid = true;
  for (int64_t t = 0; t < T; t++)
    for (int k = 0; k < K; k++) {
      const int e = idx[t * K + k];
      valid = valid && e >= 0 && e < E;
      for (int j = 0; j < k; j++) valid = valid && idx[t * K + j] != e;
    }
  const bool pass = st.nanCount == 4 && st.firstNaN == (unsigned long long)nanAt[0] && valid;
  char notes[160];
  std::snprintf(notes, sizeof notes, "status {count %llu, first %llu} (want {4, %lld}); indices valid+distinct %s",
                st.nanCount, st.firstNaN, (long long)nanAt[0], valid ? "yes" : "NO");
  add_row({"route_sigmoid", "nan: 4 NaN logits, scores=null", 0, 0, pass, 0, 0, notes});
  for (void* p : std::initializer_list<void*>{dLogits, dBias, dIdx, dW, dStatus}) CHECK_CUDA(cudaFree(p));
}

// ---- dispatch of skewed indices with duplicates and out-of-range entries (dropped) -------------------------------
void run_skewed_plan_case(bool timeIt) {
  const int64_t T = 16384;
  const int E = 64, K = 6;
  const int64_t TK = T * K;
  Rng rng(11);
  std::vector<int32_t> idx(TK);
  std::vector<float> w(TK);
  for (int64_t a = 0; a < TK; a++) {
    const double u = rng.uniform();
    idx[a] = u < 0.5 ? 0 : u < 0.999 ? (int32_t)(rng.next() % E) : (rng.next() & 1 ? -1 : E + 3);
    w[a] = (float)rng.uniform();
  }
  int32_t* dIdx = to_device(idx);
  float* dW = to_device(w);
  int32_t *dCounts = device_alloc<int32_t>(E), *dOffsets = device_alloc<int32_t>(E + 1);
  int32_t *dTok = device_alloc<int32_t>(TK), *dAsg = device_alloc<int32_t>(TK), *dRoa = device_alloc<int32_t>(TK);
  float *dCw = device_alloc<float>(TK), *dStats = device_alloc<float>(3);
  const size_t wsBytes = octet_plan_dispatch_workspace_bytes(T, E, K);
  void* dWs = device_alloc<unsigned char>(wsBytes);
  auto plan = [&] {
    CHECK_CUDA(octet_plan_dispatch(dIdx, dW, T, E, K, dCounts, dOffsets, dTok, dAsg, dCw, dRoa, dStats, dWs, wsBytes, 0));
  };
  plan();
  CHECK_CUDA(cudaDeviceSynchronize());
  const PlanRef pr = plan_reference(idx, w, T, E, K);
  const int64_t diffs = count_diff(to_host(dCounts, E), pr.counts) + count_diff(to_host(dOffsets, E + 1), pr.offsets) +
                        count_diff(to_host(dTok, TK), pr.tokenOfRow) + count_diff(to_host(dAsg, TK), pr.assignmentOfRow) +
                        count_diff(to_host(dRoa, TK), pr.rowOfAssignment) + count_diff(to_host(dCw, TK), pr.combineWeights) +
                        count_diff(to_host(dStats, 3), pr.loadStats);
  const double us = timeIt ? median_us(plan) : 0;
  char notes[160];
  std::snprintf(notes, sizeof notes, "exact: %lld differing elements; rows %d of %lld (dropped %lld); max load %g",
                (long long)diffs, pr.offsets[E], (long long)TK, (long long)(TK - pr.offsets[E]), pr.loadStats[0]);
  add_row({"plan_dispatch", "skewed: T=16384 E=64 K=6, 50% to expert 0, 0.1% out of range", (double)diffs, 0,
           diffs == 0, us, timeIt ? TK * 28.0 / us * 1e-3 : 0, notes});
  for (void* p : std::initializer_list<void*>{dIdx, dW, dCounts, dOffsets, dTok, dAsg, dRoa, dCw, dStats, dWs})
    CHECK_CUDA(cudaFree(p));
}

// ---- argument validation: nonsense sizes give cudaErrorInvalidValue and launch nothing ---------------------------
void run_validation_case() {
  float* f = device_alloc<float>(1 << 16);
  int32_t* i = device_alloc<int32_t>(1 << 16);
  int bad = 0, total = 0;
  auto expect_invalid = [&](cudaError_t e) {
    total++;
    if (e != cudaErrorInvalidValue) bad++;
  };
  expect_invalid(octet_route_sigmoid(f, f, 16, 257, 2, 1, 1, 1, 1.f, i, f, f, nullptr, 0));  // E > 256
  expect_invalid(octet_route_sigmoid(f, f, 16, 64, 17, 1, 1, 1, 1.f, i, f, f, nullptr, 0));  // K > 16
  expect_invalid(octet_route_sigmoid(f, f, 16, 64, 6, 7, 3, 1, 1.f, i, f, f, nullptr, 0));   // 64 % 7
  expect_invalid(octet_route_sigmoid(f, f, 16, 64, 6, 8, 9, 1, 1.f, i, f, f, nullptr, 0));   // topkGroup > nGroup
  expect_invalid(octet_route_sigmoid(f, f, 16, 64, 9, 8, 1, 1, 1.f, i, f, f, nullptr, 0));   // K > eligible (8)
  expect_invalid(octet_route_sigmoid(f, f, 16, 16, 2, 16, 2, 1, 1.f, i, f, f, nullptr, 0));  // groups of 1
  expect_invalid(octet_route_sigmoid(f, f, 0, 64, 6, 8, 4, 1, 1.f, i, f, f, nullptr, 0));    // no tokens
  expect_invalid(octet_route_sigmoid(f, f, 16, 64, 6, 8, 4, 1, NAN, i, f, f, nullptr, 0));   // scaling NaN
  expect_invalid(octet_route_sigmoid(nullptr, f, 16, 64, 6, 8, 4, 1, 1.f, i, f, f, nullptr, 0));
  expect_invalid(octet_route_backward(i, f, f, 16, 64, 65, 1, 1.0, f, 0));  // K > E
  expect_invalid(octet_route_backward(i, f, f, -1, 64, 6, 1, 1.0, f, 0));
  expect_invalid(octet_route_backward(i, f, f, 16, 64, 6, 1, INFINITY, f, 0));
  expect_invalid(octet_plan_dispatch(i, f, 16, 257, 2, i, i, i, i, f, i, f, f, 1 << 16, 0));  // E > 256
  expect_invalid(octet_plan_dispatch(i, f, 16, 64, 6, i, i, i, i, f, i, f, f, 4, 0));         // workspace too small
  expect_invalid(octet_plan_dispatch(i, nullptr, 16, 64, 6, i, i, i, i, f, i, f, f, 1 << 16, 0));  // weights null
  expect_invalid(octet_plan_dispatch(i, f, (int64_t)1 << 30, 64, 8, i, i, i, i, f, i, f, f, 1 << 16, 0));  // ≥ 2^31
  if (octet_plan_dispatch_workspace_bytes(16, 0, 2) != 0) bad++;
  total++;
  CHECK_CUDA(cudaDeviceSynchronize());
  const bool noStrayError = cudaGetLastError() == cudaSuccess;
  char notes[120];
  std::snprintf(notes, sizeof notes, "%d/%d bad-argument calls refused with cudaErrorInvalidValue", total - bad, total);
  add_row({"validation", "bad sizes / null pointers", (double)bad, 0, bad == 0 && noStrayError, 0, 0, notes});
  CHECK_CUDA(cudaFree(f));
  CHECK_CUDA(cudaFree(i));
}

}  // namespace

int main() {
  int device = 0;
  CHECK_CUDA(cudaGetDevice(&device));
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

  // `tiny`: 16·64 tokens, 8 experts, top-2 of 4 groups keep 2, normalized, scale 1.
  run_case("tiny", {1024, 8, 2, 4, 2, true, 1.0}, Logits::Normal, 1.0, 0.1, 1, true);
  // `gpu-small`: 8·2048 tokens, 64 experts, top-6 of 8 groups keep 4; DeepSeek-V3's scale 2.5.
  run_case("gpu-small", {16384, 64, 6, 8, 4, true, 2.5}, Logits::Normal, 1.0, 0.1, 2, true);
  // gpu-small without normalization; small logits (sigmoids crowd near 0.5: many near ties).
  run_case("gpu-small/nonorm", {16384, 64, 6, 8, 4, false, 1.0}, Logits::Normal, 0.05, 0.01, 3, false);
  // exact ties: zero bias, logits on a 0.5 grid (equal scores, equal group sums): tie rules must match exactly.
  run_case("ties", {4096, 64, 6, 8, 4, true, 1.0}, Logits::Grid, 0, 0, 4, false);
  // DeepSeek-V3's gate: 256 experts, top-8 of 8 groups keep 4 (8 experts per lane).
  run_case("dsv3-gate", {16384, 256, 8, 8, 4, true, 2.5}, Logits::Normal, 1.0, 0.1, 5, true);
  // no group limit (nGroup 1), E not a multiple of 32 or 4.
  run_case("flat-E=50", {3000, 50, 5, 1, 1, true, 1.0}, Logits::Normal, 2.0, 0.2, 6, false);
  run_nan_case();
  run_skewed_plan_case(true);
  run_validation_case();

  std::printf("\nmax rel err = max over elements |gpu - ref| / max(|ref|, 1e-6 * max|ref|); plan rows: number of "
              "differing elements (must be 0)\n");
  std::printf("%-15s %-58s %10s %8s %5s %9s %8s  %s\n", "op", "shape", "max rel err", "tol", "pass", "time us",
              "GB/s", "notes");
  for (const Row& r : g_rows) {
    char us[32] = "-", gbs[32] = "-";
    if (r.us > 0) {
      std::snprintf(us, sizeof us, "%.2f", r.us);
      std::snprintf(gbs, sizeof gbs, "%.1f", r.gbs);
    }
    std::printf("%-15s %-58s %10.3g %8.0e %5s %9s %8s  %s\n", r.op.c_str(), r.shape.c_str(), r.err, r.tol,
                r.pass ? "yes" : "NO", us, gbs, r.notes.c_str());
  }
  std::printf("\n%s\n", g_failed ? "FAILED" : "all checks passed");
  return g_failed ? 1 : 0;
}
