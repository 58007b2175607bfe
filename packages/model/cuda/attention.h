// Causal softmax attention on the device, forward and backward, flash-style: C ABI of attention.cu.
//
// Specification: CpuBackend.attentionForward / attentionBackward (packages/model/src/backend/cpu.ts), as the MHA and
// MLA layers (packages/model/src/layers/attention.ts) call them:
//   q, k  [B·T, H, qkDim]   v [B·T, H, vDim]   (row-major; token b·T + t, head h)
//   z_ij  = scale · q_i·k_j                   for j ≤ i (causal), per (b, h)
//   P_ij  = exp(z_ij − lse_i),  lse_i = log Σ_{j ≤ i} exp(z_ij)
//   out   [B·T, H·vDim] = P · V
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − D) · scale with D_i = Σ_j P_ij dP_ij = rowsum(dO_i ∘ O_i),
//   dQ = dS·K,  dK = dSᵀ·Q                      (dq, dk [B·T, H, qkDim], dv [B·T, H, vDim])
// Unlike the CPU backend, no [B, H, T, T] probabilities are kept: the forward saves the FP32 logsumexp per
// (batch, head, query) and the backward recomputes P tile by tile from it (FlashAttention-2).
//
// Precision (argument `precision`):
//   OCTET_ATTN_FP32: q, k, v, dout are float32; FP32 SIMT arithmetic throughout, no TF32 (the `fp32` recipe).
//   OCTET_ATTN_BF16: q, k, v, dout are bf16 bit patterns (uint16_t); the products Q·Kᵀ, P·V, dO·Vᵀ, Pᵀ·dO,
//     dS·K and dSᵀ·Q run on tensor cores (mma.sync m16n8k16, bf16 operands, FP32 accumulation); softmax
//     statistics, D and the elementwise math are FP32 (the `bf16` and fp8 recipes: DeepSeek-V3 keeps attention in
//     BF16/FP32). P and dS, FP32 values, enter the second products as bf16 pairs hi + lo (hi = bf16(x),
//     lo = bf16(x − hi); two mma per fragment, ~16 significant bits), so the outputs stay within ~1e-4 of float64 on
//     the bf16 inputs. FlashAttention-2's single bf16 rounding of P and dS (OCTET_ATTN_BF16_FA2) misses issue 13's
//     2e-3 in the backward: its rounding is 2^-9 relative, and rows with few keys do not average it out
//     (measured 2.1-2.8e-3 max|err|/max|ref| at T = 64..1024; its forward is ~8e-4, whose error in O then reaches
//     the backward through D = rowsum(dO ∘ O)).
//   OCTET_ATTN_BF16_FA2: the same inputs and kernels with FlashAttention-2's numerics: P rounded once to bf16 for
//     P·V (the row sum and lse from the FP32 P), P and dS rounded once to bf16 in the backward. Fewer tensor-core
//     operations (the split adds 40% to the forward's and ~50% to the backward's), errors ~1-3e-3.
//   The forward output `out` is float32 or bf16 (out_dtype, either precision; bf16 = the round-to-nearest-even
//   of the float32 result, bit for bit). dq, dk, dv are always float32, lse and the workspace float32.
//
// Supported (qkDim, vDim): (32, 32), (48, 32), (64, 64), (128, 128), (192, 128) — MLA at tiny (32+16, 32) and
// gpu-small (128+64, 128), MHA heads of 32, 64 and 128. Others are refused with cudaErrorInvalidValue.
// Sizes: batch in [1, 65535], heads in [1, 65535], seqLen ≥ 1 (any; tested up to 4096), scale finite and > 0.
// Every tensor pointer non-null and 16-byte aligned (lse and the workspace too).
//
// Every function only enqueues kernels on `stream`: no allocation, no synchronization, no host copy, so a
// training step that calls them can be captured as a CUDA graph. Results are deterministic (no atomics; every
// reduction has a fixed order): two calls on the same inputs give the same bits. dq, dk, dv, out and lse are
// overwritten, never accumulated into. Each function returns cudaErrorInvalidValue for arguments outside the
// documented range (nothing is launched then), otherwise cudaGetLastError() after its launches.
#pragma once
#ifndef OCTET_EMU
#include <cuda_runtime.h>
#endif
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OCTET_ATTN_FP32 0
#define OCTET_ATTN_BF16 1
#define OCTET_ATTN_BF16_FA2 2

#define OCTET_ATTN_OUT_F32 0
#define OCTET_ATTN_OUT_BF16 1

// 1 when (qk_dim, v_dim) has compiled kernels, else 0.
int octet_attention_supported(int qk_dim, int v_dim);

// Forward. q, k [B·T, H, qk_dim], v [B·T, H, v_dim]: float32 (OCTET_ATTN_FP32) or bf16 (OCTET_ATTN_BF16,
// OCTET_ATTN_BF16_FA2).
// out [B·T, H·v_dim]: float32 or bf16 per out_dtype. lse [B, H, T] float32: the natural-log logsumexp of the
// scaled causal scores of each query row, kept for the backward.
cudaError_t octet_attention_forward(int precision, const void* q, const void* k, const void* v, void* out,
                                    int out_dtype, float* lse, int batch, int seq_len, int heads, int qk_dim,
                                    int v_dim, float scale, cudaStream_t stream);

// Scratch of octet_attention_backward: D = rowsum(dO ∘ O) per (batch, head, query), float32 [B, H, T].
size_t octet_attention_backward_workspace_bytes(int batch, int seq_len, int heads);

// Backward. dout [B·T, H·v_dim] in the precision's input type (float32 or bf16); q, k, v as given to the
// forward; out and lse as the forward returned them (out float32 or bf16 per out_dtype; only D reads it: a bf16
// O puts its 2^-9 rounding into D and costs accuracy — ~5e-3 max|err|/max|ref| in dq, dk instead of ~1e-5 — so
// keep the float32 O for the backward).
// dq, dk [B·T, H, qk_dim], dv [B·T, H, v_dim]: float32, overwritten. workspace: at least
// octet_attention_backward_workspace_bytes(batch, seq_len, heads) bytes (workspace_bytes says how many).
// Three launches: D (one warp per row), dK/dV (a block per key tile, looping over query tiles), dQ (a block per
// query tile, looping over key tiles): every gradient element is written by exactly one thread, no atomics.
cudaError_t octet_attention_backward(int precision, const void* dout, const void* q, const void* k,
                                     const void* v, const void* out, int out_dtype, const float* lse,
                                     float* dq, float* dk, float* dv, void* workspace, size_t workspace_bytes,
                                     int batch, int seq_len, int heads, int qk_dim, int v_dim, float scale,
                                     cudaStream_t stream);

#ifdef __cplusplus
}
#endif
