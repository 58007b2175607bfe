// The model's elementwise and reduction ops on the device: C ABI of ops.cu.
//
// Specification: CpuBackend (packages/model/src/backend/cpu.ts), clipGradNorm (packages/model/src/optim.ts) and
// router's updatedBias (packages/router/src/balance.ts). The CPU backend is JavaScript: its scalars are float64 and
// every store into a Float32Array rounds to float32 (round to nearest even). Several kernels here repeat that
// arithmetic exactly — float64 with the CPU's operation order, written with _rn intrinsics so nvcc cannot contract
// it into FMAs — and are then bit for bit the CPU's result; each function says which it is:
//   bit-exact:  embedding forward/backward, permute, unpermute-add, scaleRows, AdamW (FP32 and BF16 moments),
//               scale (host or device factor), addInPlace, fp32↔bf16, the bias update, the clip coefficient
//               (given the same sum of squares);
//   rope:       bit-exact given the same cos/sin table; the table is computed in float64 like the CPU's (pow,
//               sincos, rounded to float32), so an entry can differ only where CUDA's and V8's float64 pow/sin/cos
//               differ by an ulp across a float32 rounding boundary;
//   reductions (rmsnorm, rowDot, sumSquares): float64 accumulation like the CPU's, in a fixed tree order instead
//               of the CPU's left-to-right order (relative differences ~1e-16 before the final float32 rounding);
//   swiglu:     float64 with the CPU's order; exp is CUDA's float64 exp, so a result can differ only where it and
//               V8's Math.exp differ by an ulp across a float32 rounding boundary.
//
// Conventions, for every function:
// - All pointers are device pointers; tensors are row-major with their shape written beside them. Every function
//   only enqueues kernels on `stream`: no allocation, no synchronization, no host copy, so a training step can be
//   captured as a CUDA graph. Scratch memory comes from the caller (`*_workspace_bytes`, then `workspace`; any
//   contents, 256-byte aligned, which cudaMalloc and a CUDA memory pool both give).
// - Deterministic: no floating-point atomics; every reduction sums in an order fixed by the sizes alone (not by the
//   device, the alignment of the pointers or scheduling), so two runs give the same bits. Integer atomics appear
//   only in histograms, whose result does not depend on their order.
// - Sizes are int64_t. Nonsense sizes (negative, a limit exceeded), a required NULL pointer, or a too-small
//   workspace give cudaErrorInvalidValue and launch nothing; a zero-sized problem launches nothing and returns
//   cudaSuccess; otherwise the result is cudaGetLastError() after the launches.
// - Data-dependent errors (an id or row index out of range) cannot be returned without a host synchronization;
//   each function says what it does with them instead (never an out-of-bounds access).
// - Any alignment works; 16-byte aligned float rows (and 8-byte aligned bf16 ones) take the vectorized path.
//   The result never depends on which path ran.
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- embedding --------------------------------------------------------------------------------------------------

// out [n, cols] = table[ids] (table [vocab, cols], ids [n] int32). An id outside [0, vocab) gives a zero row.
// Bit-exact (a copy).
cudaError_t octet_embedding_forward(const float* table, const int32_t* ids, float* out, int64_t n, int64_t cols,
                                    int64_t vocab, cudaStream_t stream);

// Scratch bytes of octet_embedding_backward (0 for invalid sizes).
size_t octet_embedding_backward_workspace_bytes(int64_t n, int64_t vocab);

// dTable[ids[i]] += dOut[i] for i = 0 .. n-1 (dOut [n, cols], dTable [vocab, cols]), without float atomics:
// the positions are sorted by id on the device (a stable LSD radix sort, 8-bit digits, from positions in
// ascending order, so each id's positions stay ascending), then one block per (touched id, 256-column slice) adds
// that id's rows in ascending position order in FP32 onto dTable's row — the CPU's loop order, so bit-exact.
// Ids outside [0, vocab) are ignored. Sizes: 0 ≤ n < 2^31, 1 ≤ vocab < 2^31 - 1, cols ≥ 1.
cudaError_t octet_embedding_backward(const float* dOut, const int32_t* ids, float* dTable, int64_t n, int64_t cols,
                                     int64_t vocab, void* workspace, size_t workspaceBytes, cudaStream_t stream);

// ---- RMSNorm ----------------------------------------------------------------------------------------------------

// y [rows, cols] = x / sqrt(mean(x²) + eps) · weight, rstd [rows] = f32(1 / sqrt(mean(x²) + eps)).
// float64 as the CPU: ss = Σ x² (fixed tree order), s = 1 / sqrt(ss / cols + eps), y = f32((x · s) · w).
// Recomputing with the same inputs gives the same bits. Sizes: 0 ≤ rows < 2^31, 1 ≤ cols ≤ 2^30.
cudaError_t octet_rmsnorm_forward(const float* x, const float* weight, float* y, float* rstd, int64_t rows,
                                  int64_t cols, double eps, cudaStream_t stream);

// Scratch bytes of octet_rmsnorm_backward (0 for invalid sizes).
size_t octet_rmsnorm_backward_workspace_bytes(int64_t rows, int64_t cols);

// dx [rows, cols] and dWeight [cols] += Σ_rows dy · x · rstd, from dy, x [rows, cols], weight [cols], rstd [rows]
// (the forward's). float64 as the CPU: dot = Σ (dy·w)·x (fixed tree order), k = s³·dot / cols,
// dx = f32((s·dy)·w − x·k). dWeight: each block sums its fixed range of rows in float64 into a workspace row, a
// second kernel adds the blocks' rows in a fixed order, then dWeight[c] = f32(dWeight[c] + total). The grouping
// depends on (rows, cols) only. Sizes: 0 ≤ rows < 2^31, 1 ≤ cols ≤ 8192.
cudaError_t octet_rmsnorm_backward(const float* dy, const float* x, const float* weight, const float* rstd, float* dx,
                                   float* dWeight, int64_t rows, int64_t cols, void* workspace, size_t workspaceBytes,
                                   cudaStream_t stream);

// ---- RoPE -------------------------------------------------------------------------------------------------------

// In place on x viewed as [tokens, heads, stride]: on the `dim` columns starting at `offset` of each head,
// rotate-half pairs (i, i + dim/2), i < dim/2, by the angle p / theta^(2i/dim) at position p = token % seqLen
// (inverse != 0: by minus the angle, the backward). cos/sin as the CPU's table: float64 pow and sincos, rounded to
// float32; then a' = f32(a·c − b·s), b' = f32(b·c + a·s) in float64 (both products exact).
// Sizes: tokens ≥ 0, seqLen ≥ 1, heads ≥ 1, dim even in [2, 2048], 0 ≤ offset, offset + dim ≤ stride, theta > 0.
cudaError_t octet_rope(float* x, int64_t tokens, int64_t seqLen, int64_t heads, int64_t stride, int64_t offset,
                       int64_t dim, double theta, int inverse, cudaStream_t stream);

// ---- SwiGLU -----------------------------------------------------------------------------------------------------

// h [n] = silu(gate) · up = f32((gate / (1 + exp(-gate))) · up), float64 as the CPU. (Float64, not FP32: the
// backward's 1 + g·(1 − sig) cancels near g ≈ −1.28 and FP32 there is ~1e-5 relative off the CPU's result.)
cudaError_t octet_swiglu_forward(const float* gate, const float* up, float* h, int64_t n, cudaStream_t stream);

// sig = 1 / (1 + exp(-g)): dUp = f32(dh · (g·sig)), dGate = f32(((dh · up) · sig) · (1 + g·(1 − sig))); float64,
// the CPU's order. All of gate, up, dh [n]; dGate, dUp [n] written.
cudaError_t octet_swiglu_backward(const float* dh, const float* gate, const float* up, float* dGate, float* dUp,
                                  int64_t n, cudaStream_t stream);

// ---- MoE dispatch / combine -------------------------------------------------------------------------------------

// out [outRows, cols] = x[index] (x [inRows, cols], index [outRows] int32): the MoE permute. An index outside
// [0, inRows) (e.g. the −1 of a dropped row) gives a zero row. Bit-exact (a copy).
cudaError_t octet_permute_rows(const float* x, const int32_t* index, float* out, int64_t outRows, int64_t cols,
                               int64_t inRows, cudaStream_t stream);

#define OCTET_UNPERMUTE_MAX_TOPK 32

// The MoE unpermute in its deterministic GATHER form. The CPU's scatter is
//   for r ascending: out[index[r]] += scale[r] · x[r]          (index = tokenOfRow)
// so token t receives its rows in ascending r. Here the caller passes the inverse map instead:
//   rowsOfToken [tokens, topK] int32: the row r of each assignment (t, k), or −1 when dropped
// (octet_plan_dispatch's rowOfAssignment). Each token's rows need NOT be sorted: the kernel sorts them ascending
// itself, then out[t] = f32(out[t] + scale[r] · x[r]) for each row in that order — the CPU's order and float64
// rounding (the product is exact in float64; one float64 rounding, then float32), so bit-exact. scale may be NULL
// (factor 1: f32(out + x)). x [xRows, cols], scale [xRows], out [tokens, cols]. Rows < 0 or ≥ xRows are skipped.
// Sizes: tokens ≥ 0, 1 ≤ topK ≤ OCTET_UNPERMUTE_MAX_TOPK, cols ≥ 1, xRows ≥ 0.
cudaError_t octet_unpermute_add(const float* x, const int32_t* rowsOfToken, const float* scale, float* out,
                                int64_t tokens, int64_t topK, int64_t cols, int64_t xRows, cudaStream_t stream);

// g[outIndex ? outIndex[r] : r] = f32(Σ_c a[r,c]·b[r,c]) for a, b [rows, cols]: float64 accumulation (each product
// exact) in a fixed order (the CPU sums left to right in float64). The MoE backward's gradient of the combine
// weights: a = ∂L/∂y permuted, b = the expert outputs, outIndex = assignmentOfRow (may be NULL); an outIndex < 0 is
// skipped. g must have room for every outIndex. Sizes: rows ≥ 0, cols ≥ 1.
cudaError_t octet_row_dot(const float* a, const float* b, float* g, const int32_t* outIndex, int64_t rows,
                          int64_t cols, cudaStream_t stream);

// x[r, :] *= w[r] (x [rows, cols], w [rows]), FP32 (= the CPU's float64 product rounded: bit-exact).
cudaError_t octet_scale_rows(float* x, const float* w, int64_t rows, int64_t cols, cudaStream_t stream);

// ---- AdamW ------------------------------------------------------------------------------------------------------

// Hyperparameters of one step, read from DEVICE memory so that a captured graph replays with new values (the
// caller writes them before each step, e.g. cudaMemcpyAsync from pinned host memory inside the graph).
// biasCorrection1/2 are 1 − beta1^step and 1 − beta2^step (1-based step) computed by the caller with the CPU's
// Math.pow, so that the device uses the same bits.
typedef struct OctetAdamWHyper {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weightDecay;     // applied to segments with decay != 0; the others use 0 (CpuBackend: p.decay ? wd : 0)
  double biasCorrection1; // 1 - beta1^step
  double biasCorrection2; // 1 - beta2^step
} OctetAdamWHyper;

// One parameter tensor inside the flat buffers: elements [offset, offset + size).
typedef struct OctetAdamWSegment {
  int64_t offset;
  int64_t size;
  int32_t decay;  // non-zero: weight decay applies
  int32_t reserved;
} OctetAdamWSegment;

// One AdamW step over flat buffers of n elements holding many tensors: param, grad [n] FP32, moments m, v [n]
// FP32 (…_f32) or BF16 bit patterns (…_bf16). segments [numSegments] (device) sorted by offset, not overlapping,
// inside [0, n); elements in no segment keep their values (a vector store may rewrite them with the same bits).
// One launch for all tensors. Per element, CpuBackend.adamwUpdate exactly (float64, its order of operations):
//   m' = beta1·m + (1 − beta1)·g,  v' = beta2·v + ((1 − beta2)·g)·g
//   FP32 moments: stored f32(m'), f32(v'); the update uses the unrounded float64 m', v' (as the JS does).
//   BF16 moments: m', v' rounded to float32, then to BF16 (nearest even, the CPU's bit trick); the update uses
//                 the stored BF16 values.
//   decay = 1 − lr·wd,  param' = f32(param·decay − (lr·(m'/c1)) / (sqrt(v'/c2) + eps))
// Bit-exact with the CPU. skip: NULL, or a device int32; when *skip != 0 the kernel changes nothing (the step
// skipped for NaN/Inf gradients, decided on the device, e.g. octet_clip_coefficient's nonFinite).
// Sizes: n ≥ 0, numSegments ≥ 0.
cudaError_t octet_adamw_update_f32(float* param, const float* grad, float* m, float* v, int64_t n,
                                   const OctetAdamWSegment* segments, int64_t numSegments,
                                   const OctetAdamWHyper* hyper, const int32_t* skip, cudaStream_t stream);
cudaError_t octet_adamw_update_bf16(float* param, const float* grad, uint16_t* m, uint16_t* v, int64_t n,
                                    const OctetAdamWSegment* segments, int64_t numSegments,
                                    const OctetAdamWHyper* hyper, const int32_t* skip, cudaStream_t stream);

// ---- gradient norm and clipping ---------------------------------------------------------------------------------

// Scratch bytes of octet_sum_squares (0 for invalid sizes).
size_t octet_sum_squares_workspace_bytes(int64_t n);

// out[0] (device double) = Σ x² over x [n], in FP64 throughout (each square is exact in float64): pass 1, a
// number of blocks fixed by n, each sums a fixed set of elements and writes a partial; pass 2, one block adds the
// partials in a fixed order. For the global norm over a flat gradient buffer. Sizes: n ≥ 0 (n = 0 writes 0).
cudaError_t octet_sum_squares(const float* x, int64_t n, double* out, void* workspace, size_t workspaceBytes,
                              cudaStream_t stream);

// clipGradNorm's decision on the device, one thread: norm = sqrt(*sumSquares);
//   scale = (maxNorm > 0 && norm > maxNorm) ? maxNorm / (norm + 1e-6) : 1      (float64, as optim.ts)
// norm, scale: device doubles (norm may be NULL); nonFinite: NULL or a device int32 set to 1 when the sum of
// squares is NaN or ±Inf (some gradient is not finite), else 0 — pass it as AdamW's skip.
// Then octet_scale_device(grad, n, scale) applies it (and does nothing when the scale is 1).
cudaError_t octet_clip_coefficient(const double* sumSquares, double maxNorm, double* norm, double* scale,
                                   int32_t* nonFinite, cudaStream_t stream);

// ---- small elementwise ops --------------------------------------------------------------------------------------

// x [n] = f32(x · a), the product in float64 (a is the CPU's JS number): bit-exact.
cudaError_t octet_scale(float* x, int64_t n, double a, cudaStream_t stream);
// The same with a read from DEVICE memory (e.g. octet_clip_coefficient's scale). When *a == 1 nothing is written
// (x · 1 = x, so the bits are the same).
cudaError_t octet_scale_device(float* x, int64_t n, const double* a, cudaStream_t stream);
// y [n] += x [n], FP32 (bit-exact).
cudaError_t octet_add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
// y [n] = bf16(x): round to nearest even, every NaN → 0xFFFF (CpuBackend.toBf16 / numerics' encodeBf16).
cudaError_t octet_f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream);
// y [n] = float(x): exact widening (bits << 16).
cudaError_t octet_bf16_to_f32(const uint16_t* x, float* y, int64_t n, cudaStream_t stream);

// ---- auxiliary-loss-free balancing ------------------------------------------------------------------------------

// DeepSeek-V3's bias update (router's updatedBias), one block: mean = Σ loads / experts (exact integer sum, then
// float64), bias[e] = f32(bias[e] + gamma · sign(mean − loads[e])). bias [experts] FP32 in place, loads [experts]
// int32 token counts (e.g. octet_plan_dispatch's expertCounts), gamma: one DEVICE double (the schedule's value for
// this step, written by the caller, so that a captured graph can be replayed). Bit-exact.
// Sizes: 1 ≤ experts ≤ 2^20.
cudaError_t octet_aux_free_bias_update(float* bias, const int32_t* loads, int64_t experts, const double* gamma,
                                       cudaStream_t stream);

#ifdef __cplusplus
}
#endif
