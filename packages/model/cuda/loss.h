// The output head's cross-entropy on the GPU, fused with its gradient, for @octet/model's CUDA backend.
//
// Specification: CpuBackend.crossEntropy (packages/model/src/backend/cpu.ts) and @octet/mtp's softmaxCrossEntropy
// (packages/mtp/src/ops.ts): for logits [rows, vocab] and targets [rows],
//   lse_r    = max_r + log Σ_j exp(logit[r, j] − max_r)
//   loss_r   = lse_r − logit[r, target_r]
//   loss     = (1/rows) Σ_r loss_r
//   dLogits  = (softmax(logit[r]) − onehot(target_r)) · gradScale / rows      (gradScale: 1, or MTP's 1/D)
//
// Why chunks: at gpu-small (16384 tokens × 32768 vocab) FP32 logits are 2 GiB, and dLogits as much again. So the
// [tokens, vocab] logits are never kept whole. The caller walks the batch in chunks of rows (e.g. 2048):
//   1. logits_chunk = x[chunk] · Wᵀ   with @octet/numerics' GEMMs, into one reused chunk buffer (FP32 or BF16);
//   2. octet_cross_entropy(chunk)     per-row losses into rowLoss[chunk]; the chunk OVERWRITTEN IN PLACE with
//                                     dLogits (same dtype as the input), so the same buffer feeds
//   3. dx[chunk] = dLogits · W (Dgrad) and dW += dLogitsᵀ · x[chunk] (Wgrad)   — before the next chunk's GEMM;
//   4. after the last chunk, octet_mean_loss(rowLoss[all rows]) → the mean loss, one double on the device,
//      read with the step's one device→host synchronisation.
// Everything is stream-ordered on the caller's stream: no allocation, no synchronisation, no host copy, so a step
// can be captured in a CUDA graph. No workspace is needed.
//
// The divisor of the mean (the "rows" above) is the number of VALID rows of the whole batch, not of the chunk:
//   - validRows == NULL: the divisor is totalRows, a host argument (every target valid — the CPU definition, which
//     has no ignored targets; this is what the backend passes);
//   - validRows != NULL: the divisor is *validRows, read ON THE DEVICE (fill it with octet_count_valid_targets over
//     the whole batch's targets), so that batches with ignored rows stay graph-capturable. A count of 0 divides by 1.
// Ignored rows (target == −1; the CPU backend never produces them, supported for padding): loss_r = 0 and a zero
// gradient row, and they do not count in the divisor. Any other target outside [0, vocab) is an error the kernel
// cannot return without a host sync: that row's loss is NaN and its gradient row is NaN, so the step's NaN check
// (which reads the mean loss) reports it.
//
// Arithmetic (FP32, like every op unless specified): each thread keeps an online (max, Σexp(x − max)) pair over its
// elements in a fixed order (expf of the value minus the running max), the pairs are merged in a fixed tree order
// (warp butterfly, then across warps), loss_r = logf(S) − (logit_t − M), and dLogit_j = expf(x_j − M) · (g / S)
// with g = gradScale / divisor (the target's element: fmaf(expf(x_t − M), g / S, −g)). BF16 in/out: values are
// uint16 bit patterns, widened exactly; the gradient is rounded to nearest even, equal to CpuBackend.toBf16 for every
// non-NaN value (a NaN gradient is 0xFFFF in a bad-target row, the hardware's 0x7FFF where NaN/Inf logits made it).
// Deterministic: the thread → element assignment and the reduction tree depend only on (vocab, dtype), never on
// scheduling; loss-only (OCTET_CE_NO_GRAD) calls give bit-identical losses to gradient calls.
//
// Kernels: one block per row, 16-byte vectorised loads (vocab must be a multiple of 8 so every row of an aligned
// buffer is 16-byte aligned, fp32 or bf16). When the row fits in shared memory (≤ 224 KiB: fp32 vocab ≤ 57344, bf16
// ≤ 114688) it is read from DRAM once into shared memory and the gradient is written from there (DRAM traffic: one
// read + one write, like a copy). Larger rows (up to OCTET_CE_MAX_VOCAB) read the row twice from global memory (the
// second read partly from L2). Loss-only calls read the row once and write nothing but the losses.
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// dtype of the logits chunk (and of the dLogits written over it)
#define OCTET_CE_F32 0
#define OCTET_CE_BF16 1
// flags
#define OCTET_CE_NO_GRAD 1  // evaluation: losses only, the chunk is left untouched
#define OCTET_CE_MAX_VOCAB 131072

// logits     [rows, vocab] device, dtype OCTET_CE_F32 (float) or OCTET_CE_BF16 (uint16 bf16 bits), 16-byte aligned;
//            overwritten with dLogits unless flags has OCTET_CE_NO_GRAD.
// targets    [rows] device int32: class index in [0, vocab), or −1 (ignored row).
// rowLoss    [rows] device float: loss_r (0 for ignored rows, NaN for out-of-range targets).
// validRows  device int32 scalar or NULL: the divisor of the mean (see above); NULL → totalRows.
// rows       rows of this chunk (≥ 0; 0 launches nothing); vocab: multiple of 8 in [8, OCTET_CE_MAX_VOCAB].
// totalRows  rows of the whole batch (≥ max(rows, 1)): the divisor when validRows is NULL.
// gradScale  upstream factor of ∂loss/∂logits (1 for the main loss; e.g. mtpWeight/D for an MTP module).
// Returns cudaErrorInvalidValue for bad sizes, dtype, flags, NULL or misaligned pointers; else the launch's error.
cudaError_t octet_cross_entropy(void* logits, const int32_t* targets, float* rowLoss, const int32_t* validRows, int rows,
                                int vocab, int totalRows, int dtype, float gradScale, int flags, cudaStream_t stream);

// validRows[0] = #{ r < rows : targets[r] != −1 } (device int32). rows ≥ 0. Out-of-range targets count as valid
// (their NaN loss must reach the mean).
cudaError_t octet_count_valid_targets(const int32_t* targets, int32_t* validRows, int rows, cudaStream_t stream);

// meanLoss[0] = (Σ_r rowLoss[r]) / divisor in FP64, summed in a fixed order (deterministic), where divisor is
// *validRows when validRows is non-NULL (0 → 1), else rows. rowLoss [rows] device float (rows ≥ 0: all rows of the
// batch, i.e. every chunk's rowLoss laid end to end); meanLoss: one device double.
cudaError_t octet_mean_loss(const float* rowLoss, const int32_t* validRows, double* meanLoss, int rows, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
