// Host planner of the sm_90a block-scaled FP8 GEMM: for a shape on a device, which compiled kernel (tile BM x BN,
// promotion interval, cluster size), how many pipeline stages, which epilogue and how many splits of K, chosen by
// a coarse time model. Plain C++17 without CUDA headers, so it builds with g++ alone and is unit-tested without a
// GPU (src/sm90-plan.test.ts through gemm_sm90_plan_cli.cc); gemm_sm90.cu launches what it plans. The model and
// its fitted constants are explained in bench/history/GEMM-NOTES.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

// scale_stage_bytes is evaluated by the kernel too: host and device under nvcc, host only under a plain compiler.
#if defined(__CUDACC__)
#define OCTET_SM90_HOST_DEVICE __host__ __device__
#else
#define OCTET_SM90_HOST_DEVICE
#endif

namespace octet::sm90 {

constexpr int kBlockK = 128;   // K of one k-block: the promotion interval of the specification
constexpr int kMaxStages = 32;

// Shared memory per pipeline stage for the k-block's scales: sa of BM rows, sb of two 128-column blocks, padded
// to 16 bytes. One definition for the kernel's layout and the planner's budget.
OCTET_SM90_HOST_DEVICE constexpr uint32_t scale_stage_bytes(int bm) { return static_cast<uint32_t>(bm + 4) * 4u; }

// One compiled kernel: fp8_gemm_sm90_kernel<bm, bn, promote_k, mc, halves>.
struct KernelShape {
  int bm, bn;
  int promote_k;  // 128: promotion to FP32 every 128 of K (the specification); 32: after every wgmma ("precise")
  int mc;         // CTAs per cluster sharing B by TMA multicast (1: no cluster)
  int halves;     // 2: the k-block is multiplied in two m64n(bn/2) halves through one accumulator set
};

// The compiled kernels. gemm_sm90.cu instantiates one kernel per row, in this order, so an index into this table
// is an index into its launch table.
inline constexpr KernelShape kKernelShapes[] = {
    {64, 16, 128, 1, 1},   {64, 32, 128, 1, 1},   {64, 48, 128, 1, 1},   {64, 64, 128, 1, 1},   {64, 96, 128, 1, 1},
    {64, 112, 128, 1, 1},  {64, 128, 128, 1, 1},  {64, 144, 128, 1, 1},  {64, 160, 128, 1, 1},  {64, 192, 128, 1, 1},
    {128, 16, 128, 1, 1},  {128, 32, 128, 1, 1},  {128, 48, 128, 1, 1},  {128, 64, 128, 1, 1},  {128, 96, 128, 1, 1},
    {128, 112, 128, 1, 1}, {128, 128, 128, 1, 1}, {128, 144, 128, 1, 1}, {128, 160, 128, 1, 1}, {128, 192, 128, 1, 1},
    // 128 x 256 in two m64n128 halves per k-block
    {128, 256, 128, 1, 2},
    // promotion after every wgmma (K = 32): chosen only through octet_fp8_gemm_sm90_debug_force(3, ...)
    {64, 64, 32, 1, 1}, {128, 128, 32, 1, 1},
    // 2-CTA clusters sharing B by TMA multicast, dense only: chosen only through octet_fp8_gemm_sm90_debug_force(4, ...)
    {128, 128, 128, 2, 1}, {128, 144, 128, 2, 1}, {128, 160, 128, 2, 1}, {128, 192, 128, 2, 1},
};
constexpr int kNumKernels = static_cast<int>(sizeof(kKernelShapes) / sizeof(kKernelShapes[0]));

// What the debugging hooks force (octet_fp8_gemm_sm90_debug_force / _debug_options); all 0 = automatic choice.
struct PlanOverride {
  int path;  // 0 automatic, 1 WGMMA kernel bm x bn, 2 the simple SIMT kernel, 3 the precise (promote every 32)
             // WGMMA kernels, 4 the 2-CTA multicast WGMMA kernels (dense only; grouped calls keep path 0);
             // for 3 and 4, bm = 0 picks automatically among that family
  int bm, bn, stages, group_n;
  int epilogue;  // 0 automatic, 1 direct stores (version 1), 2 TMA store where possible (staging chosen by the
                 // planner), 3 TMA store with the whole tile staged (version 2), 4 TMA store through the ring
  int splitk;    // 0 automatic, 1 never, > 1 that many splits (dense, where K allows)
};

struct Plan {
  int kernel = -1;  // index into kKernelShapes; -1: no plan (an invalid shape, or a forced kernel that does not exist)
  int stages = 0, grid = 0, group_n = 4, tiles = 0;  // bands of 4 N-tiles: best of 4-32 at M = 4096 (GEMM-NOTES.md §7)
  int epi_bytes = 0;  // > 0: TMA-store epilogue with this much staging shared memory
  int epi_slots = 0;  // TMA epilogue: 0 the whole tile staged (version 2), 1/2 a ring of 8 KiB boxes per warpgroup
  int splits = 1;     // split-K factor (dense only)
  double est_us = 0.0;
};

// What the planner needs to know of the device.
struct PlanDevice {
  int sms;         // multiprocessors: the persistent grid's size
  int smem_optin;  // shared memory one block may opt in to, bytes
  // Multicast kernels only: how many clusters of kernel `kernel` with `smem_bytes` of dynamic shared memory can be
  // resident at once (<= 0: none, the kernel is skipped). Empty: no multicast kernel is planned.
  std::function<int(int kernel, size_t smem_bytes)> max_active_clusters;
};

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Shared memory of one stage (A and B tiles, the k-block's scales, two mbarriers), the stages that fit beside
// `epi_bytes` of epilogue staging, and the dynamic shared memory a launch asks for.
int stage_bytes_for(int bm, int bn);
int stages_for(int bm, int bn, int smem_optin, int epi_bytes = 0);
size_t smem_bytes_for(int bm, int bn, int stages, int epi_bytes = 0);

// The time model's estimate (microseconds) of one launch; *tiles_out gets the number of output tiles.
double estimate_us(int bm, int bn, int mc, const int* counts, int E, int N, int K, int out_bytes, int ctas,
                   int* tiles_out, bool tma_epi = false, int stages = 8, int splits = 1, int epi_slots = 0);

// Index into kKernelShapes of the kernel bm x bn with that promotion interval and cluster size, or -1.
int find_kernel(int bm, int bn, int promote_k, int mc);

// The plan for experts with counts[0 .. E) rows each (E = 1: a dense GEMM of counts[0] rows) against B [N, K],
// output elements of out_bytes (2 bf16, 4 fp32); tma_ok: D can take the TMA-store epilogue (row pitch a multiple
// of 16 bytes, D 16-byte aligned). A plan with kernel = -1 refuses: E, N < 1, K not a positive multiple of 128,
// out_bytes not 2 or 4, or a forced kernel that is not compiled. Experts with no rows take no tiles (a plan whose
// tiles are 0 launches nothing).
Plan make_plan(const int* counts, int E, int N, int K, int out_bytes, const PlanDevice& dev, const PlanOverride& ov,
               bool tma_ok = false);

}  // namespace octet::sm90
