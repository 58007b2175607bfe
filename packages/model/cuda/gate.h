// The MoE gate and its dispatch plan on the device: C ABI of gate.cu.
//
// Specification: @octet/router's routeTokens / routeTokensBackward (packages/router/src/route.ts, HF
// DeepseekV3TopkRouter semantics) and planDispatch (packages/router/src/dispatch.ts), used as
// packages/model/src/layers/moe.ts uses them. All pointers are device pointers, row-major; every function only
// enqueues kernels on `stream` (no allocation, no synchronization, no host copy), so a training step that calls
// them can be captured as a CUDA graph. Every result is deterministic: integer atomics only where their order
// cannot matter (histogram counts, a min), no floating-point atomics.
//
// Each function returns cudaErrorInvalidValue for sizes outside its documented range or a null required pointer
// (nothing is launched then), otherwise cudaGetLastError() after its launches.
#pragma once
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>

#ifdef __cplusplus
extern "C" {
#endif

// Limits of the one-warp-per-token gate kernel.
#define OCTET_GATE_MAX_EXPERTS 256
#define OCTET_GATE_MAX_TOPK 16
#define OCTET_GATE_MAX_GROUPS 16

// NaN logits seen by octet_route_sigmoid (route.ts throws on them; a kernel cannot, so it counts them and keeps
// going). nanCount: how many logits were NaN; firstNaN: the smallest flat index t·E + e of one (UINT64_MAX when
// none). Accumulated with integer atomics (add, min), so the result does not depend on their order. The caller
// zeroes it before the step with octet_route_status_reset and reads it with the step's other statistics.
typedef struct OctetRouteStatus {
  unsigned long long nanCount;
  unsigned long long firstNaN;
} OctetRouteStatus;

// Sets *status to {0, UINT64_MAX} (one tiny kernel on `stream`).
cudaError_t octet_route_status_reset(OctetRouteStatus* status, cudaStream_t stream);

// DeepSeek-V3 gate (routeTokens with scoreFunction "sigmoid"):
//   scores  = sigmoid(logits)                        [T, E]  FP32: 1/(1+expf(-z)) (z ≥ 0), e/(1+e), e = expf(z)
//                                                            (z < 0, so that the subnormal tail is kept); it may
//                                                            differ by an ulp from route.ts's correctly rounded one
//   choice  = f32(scores + bias)                     (bias [E], finite, used only for the choice)
//   group score = f32(first + second) of the group's two best choices; the topkGroup best groups are kept
//   indices = the topK best kept experts by choice   [T, K]  int32, best first
//   weights = scores[indices] (f32 sum s, left to right best first; den = f32(sum + 1e-20) rounded from
//             float64; w = f32(s / den) when normTopkProb) · f32(routedScalingFactor)          [T, K] FP32
// Ties are broken lowest index first everywhere (groups, experts), exactly as route.ts. A NaN choice (NaN logit)
// ranks below every number, -inf included, and is counted in *status (may be null). Indices are always K distinct
// experts of kept groups, whatever the input.
// Sizes: tokens ≥ 1; 1 ≤ experts ≤ 256; experts % nGroup == 0; 1 ≤ nGroup ≤ 16; 1 ≤ topkGroup ≤ nGroup;
// 1 ≤ topK ≤ 16 and topK ≤ topkGroup · experts/nGroup; groups of ≥ 2 experts when nGroup > 1 and topkGroup <
// nGroup (a group is scored by its top two); routedScalingFactor finite. scores may be null (not written).
cudaError_t octet_route_sigmoid(const float* logits, const float* bias, int64_t tokens, int experts, int topK,
                                int nGroup, int topkGroup, int normTopkProb, float routedScalingFactor,
                                int32_t* indices, float* weights, float* scores, OctetRouteStatus* status,
                                cudaStream_t stream);

// Backward of the gate (routeTokensBackward, sigmoid): dLogits [T, E] from gradWeights [T, K] through the
// normalized sigmoid weights, never through the choice or the bias (indices are constants):
//   S = Σ_k s_k, G = Σ_k g_k s_k (float64, k in order), den = S + 1e-20,
//   ∂L/∂s_k = normTopkProb ? c/den · (g_k − G/den) : c · g_k     (c = routedScalingFactor, a double as in route.ts)
//   dLogits[t, i_k] = f32(∂L/∂s_k · s_k · (1 − s_k)), every other element 0 (the whole row is written).
// All in float64 with the operation order of route.ts, rounded once: bit for bit routeTokensBackward.
// scores [T, E] and indices [T, K] are octet_route_sigmoid's. An index outside [0, E) is ignored (route.ts would
// throw; octet_route_sigmoid never produces one). Sizes: tokens ≥ 1, 1 ≤ experts ≤ 2^20, 1 ≤ topK ≤ 16,
// topK ≤ experts.
cudaError_t octet_route_backward(const int32_t* indices, const float* scores, const float* gradWeights,
                                 int64_t tokens, int experts, int topK, int normTopkProb,
                                 double routedScalingFactor, float* dLogits, cudaStream_t stream);

// Scratch bytes octet_plan_dispatch needs for these sizes (0 for invalid sizes).
size_t octet_plan_dispatch_workspace_bytes(int64_t tokens, int experts, int topK);

// Dispatch plan (planDispatch without capacity: nothing dropped), on the device. indices [T, K] → the
// assignments a = t·K + k grouped by expert, stably (ascending a, i.e. ascending token then k, within an
// expert), in R = T·K rows:
//   expertCounts    [E]     rows of each expert (= its load, for the aux-free bias update)
//   expertOffsets   [E + 1] exclusive scan of the counts; expert e owns rows [offsets[e], offsets[e+1])
//   tokenOfRow      [R]     a / K of each row
//   assignmentOfRow [R]     a of each row
//   combineWeights  [R]     weights[a] of each row (weights [T, K]; may be null, then not written)
//   rowOfAssignment [R]     the inverse: the row of each assignment a (for the gather-form unpermute)
//   loadStats       [3]     FP32 {maxLoad, meanLoad = rows/E, maxLoad/meanLoad (1 when nothing routed)}, as
//                           router's summarizeLoads; may be null
// An index outside [0, E) (never produced by octet_route_sigmoid) is dropped, as a capacity drop in planDispatch:
// rowOfAssignment = -1, no row; the rows then number offsets[E] < R and rows [offsets[E], R) get token -1,
// assignment -1, weight 0. Sizes: tokens ≥ 1, 1 ≤ experts ≤ 256, topK ≥ 1, tokens·topK < 2^31.
// workspace: octet_plan_dispatch_workspace_bytes(tokens, experts, topK) bytes, 16-byte aligned, no initial
// contents needed.
cudaError_t octet_plan_dispatch(const int32_t* indices, const float* weights, int64_t tokens, int experts,
                                int topK, int32_t* expertCounts, int32_t* expertOffsets, int32_t* tokenOfRow,
                                int32_t* assignmentOfRow, float* combineWeights, int32_t* rowOfAssignment,
                                float* loadStats, void* workspace, size_t workspaceBytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
