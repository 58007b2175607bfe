// Block-scaled FP8 GEMM for Hopper (sm_90a), C = A · Bᵀ with FP32 promotion every 128 of K.
// Specification: packages/numerics/src/gemm.ts (scaledMatmulReference, accumulation "promoted").
// Design notes and predictions: packages/numerics/bench/GEMM-NOTES.md.
//
// Kernel (one template per tile shape BM x BN, BLOCK_K = 128):
//   * warpgroups 0 .. BM/64-1 are consumers, the last warpgroup is the producer: one elected thread issues TMA,
//     one warp copies each k-block's scales (sa of the tile's rows, sb of its one or two 128-column blocks) into
//     the stage with 4-byte cp.async;
//   * a ring of `stages` shared-memory slots, each one A tile [BM x 128] and one B tile [BN x 128] of e4m3 codes,
//     written by TMA with the 128-byte swizzle, plus the scales; per slot a "full" mbarrier (TMA transaction
//     bytes + the scale warp's 32 arrivals) and an "empty" mbarrier (one arrival per consumer warp);
//   * each consumer warpgroup owns 64 rows: per k-block it reads its scales from shared memory, issues
//     4 x wgmma m64nBNk32 (e4m3 x e4m3 -> f32, both operands K-major from shared memory), waits, releases the
//     slot, and promotes: fin += partial * (sa[row] * sb[n-block]) in FP32 registers, the n-block of each column
//     group fixed at compile time; with two consumer warpgroups they take turns issuing (ping-pong); the
//     128 x 256 kernel multiplies each k-block in two m64n128 halves through one accumulator set (kHalves);
//   * persistent grid (min(tiles, SMs)); tiles are visited in bands of `group_n` N-tiles (rows fastest inside
//     a band) so concurrently running CTAs share A and B tiles in L2;
//   * grouped GEMM (MoE): the M-tiles of all experts form one index space; a tile's expert is found by a
//     binary search over per-expert tile prefixes held in the kernel parameters;
//   * edges: TMA zero-fills rows past the tensor; rows past an expert's end read the next expert's rows but
//     their outputs are never stored; stores are masked per element.
#include "gemm_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <mutex>
#include <type_traits>

namespace {

constexpr int kBlockK = 128;
constexpr int kMaxExpertsPerLaunch = 256;
constexpr int kMaxStages = 32;
// A waiter that has not seen its barrier complete after this long records a hang and stops waiting, so a
// deadlocked pipeline ends the kernel (with wrong output and a hang record) instead of hanging the process.
// Register split of the two-consumer kernels (setmaxnreg): 128 x P + 256 x C <= 65536.
#ifndef OCTET_PRODUCER_REGS
#define OCTET_PRODUCER_REGS "40"
#define OCTET_CONSUMER_REGS "232"
#endif
#ifndef OCTET_GEMM_SM90_HANG_NS
#define OCTET_GEMM_SM90_HANG_NS 2000000000ull
#endif

struct Schedule {
  int num_experts;   // experts in this launch (>= 1)
  int expert_base;   // global index of this launch's expert 0 (B rows and sb blocks are offset by it)
  int M_total;       // rows of A (scale loads are clamped to it)
  int N, K;
  int num_kb;        // K / 128
  int num_nb;        // ceil(N / 128): rows of sb per expert
  int num_n_tiles, num_m_tiles, num_tiles;
  int group_n;       // N-tiles per rasterization band
  int stages;
  int out_bf16;      // 0: fp32 output, 1: bf16 output
  int vec_store;     // 1: pairs of columns are stored with one aligned vector store
  int epi_bytes;     // > 0: the TMA-store epilogue, with this many bytes of shared memory (BM x BN outputs) after
                     // the stages; 0: direct stores from registers (version 1)
  int epi_slots;     // TMA epilogue: 0 = one staging box per 64 columns of the tile (version 2, epi_bytes =
                     // BM x BN outputs); 1 or 2 = a ring of that many 8 KiB boxes per warpgroup (version 3)
  int splits;        // split-K: units = tiles x splits; split s covers k-blocks [s * kb_per_split, ...)
  int kb_per_split;
  int pingpong;      // two-consumer kernels: 1 = the warpgroups take turns issuing MMAs (version 4), 0 = not
  float* ws;         // splits > 1: fp32 partial sums [splits, M_total, N] (the output of this kernel)
  int offsets[kMaxExpertsPerLaunch + 1];      // row range of each expert in A / D: [offsets[e], offsets[e+1])
  int tile_prefix[kMaxExpertsPerLaunch + 1];  // M-tiles of the experts before e
};

struct TileCoord {
  int m0, m_end, n0, expert;
};

__device__ unsigned int g_hang_count = 0;
__device__ unsigned long long g_hang_info = 0;

// ------------------------------------------------------------------------------------------------------------
// PTX wrappers
// ------------------------------------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile(
      "{\n.reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(ok)
      : "r"(bar), "r"(parity)
      : "memory");
  return ok != 0;
}

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}

// Waits for the phase of `parity` to complete. `role` (0 producer, 1 consumer) and the slot go into the hang
// record. After OCTET_GEMM_SM90_HANG_NS, or once another waiter has recorded a hang, it gives up.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity, uint32_t role, uint32_t slot) {
  if (mbar_try_wait(bar, parity)) return;
  const uint64_t t0 = global_timer_ns();
  uint64_t last_check = t0;
  while (!mbar_try_wait(bar, parity)) {
    const uint64_t now = global_timer_ns();
    if (now - last_check > 1000000ull) {  // every ~1 ms: has another thread given up already?
      last_check = now;
      if (*reinterpret_cast<volatile unsigned int*>(&g_hang_count) != 0) return;
    }
    if (now - t0 > OCTET_GEMM_SM90_HANG_NS) {
      if (atomicAdd(&g_hang_count, 1u) == 0) {
        g_hang_info = (static_cast<unsigned long long>(blockIdx.x) << 32) | (static_cast<unsigned long long>(role) << 31) |
                      (static_cast<unsigned long long>(threadIdx.x) << 16) | (slot << 1) | parity;
      }
      return;
    }
  }
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile(
      "{\n.reg .b64 st;\n"
      "mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar)
      : "memory");
}

__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile(
      "{\n.reg .b64 st;\n"
      "mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
}

__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// The same load, delivered to the same shared-memory offset (data and complete_tx on the same mbarrier offset)
// in every CTA of the cluster named in cta_mask.
__device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar,
                                                      uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(cta_mask)
      : "memory");
}

__device__ __forceinline__ uint32_t cluster_cta_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

// All non-exited threads of the cluster; release/acquire orders shared-memory accesses across its CTAs.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

// Arrive on the mbarrier at the same offset in CTA `rank` of the cluster. The plain form has the default
// .release.cta semantics (what CUTLASS's ClusterBarrier::arrive(cta_id) emits): the slot's shared memory was read
// by wgmma, whose completion the arriving warp has already waited for, so no cluster-scope release is needed to
// order those reads before the peer's next multicast into the slot. Version 1 used .release.cluster, which
// compiles to MEMBAR.ALL.GPU per k-block: the multicast kernels ran at 0.55-0.60 of the plain ones (GEMM-NOTES.md).
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t bar, uint32_t rank) {
  asm volatile(
      "{\n.reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(bar),
      "r"(rank)
      : "memory");
}

// TMA store of one box from shared memory (bulk-group completion), and the bulk-group bookkeeping.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(src)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read0() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read1() { asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait0() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
// Generic-proxy writes to shared memory made visible to the async proxy (the TMA engine).
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Named barriers: `count` threads take part; bar.arrive counts without waiting (ping-pong turns between the two
// consumer warpgroups: the 128 of the warpgroup whose turn it becomes arrive, the 128 that take the turn sync).
__device__ __forceinline__ void named_bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
// A barrier among the 128 threads of one consumer warpgroup (ids 1, 2; 0 is __syncthreads).
__device__ __forceinline__ void wg_barrier(int wg) { named_bar_sync(wg + 1, 128); }
// One fp32 scale global -> shared through the (non-bulk) async copy unit; the mbarrier arrive below fires once
// every earlier cp.async of the thread has landed.
__device__ __forceinline__ void cp_async_f32(uint32_t dst, const float* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_mbar_arrive(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ float ld_shared_f32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void st_shared_b32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_shared_v2f32(uint32_t addr, float a, float b) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(addr), "f"(a), "f"(b) : "memory");
}

__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// Shared-memory matrix descriptor for a K-major operand in the 128-byte swizzle: rows of 128 bytes, 8-row
// atoms of 1024 bytes (stride byte offset), leading byte offset unused (one atom spans the instruction's K),
// layout type 1 = SWIZZLE_128B in bits 62-63. Advancing K by 32 e4m3 elements adds 32 bytes (2 in >>4 units)
// to the start address; the hardware applies the swizzle on the final address bits, so tiles must be
// 1024-byte aligned.
__device__ __forceinline__ uint64_t make_smem_desc(uint32_t addr) {
  const uint64_t start = (addr >> 4) & 0x3FFFu;
  const uint64_t sbo = (1024u >> 4) & 0x3FFFu;
  return start | (sbo << 32) | (1ull << 62);
}

template <int N>
struct Wgmma;

// wgmma.mma_async m64nNk32, e4m3 x e4m3 -> f32, A and B from shared memory; kScaleD = 0 overwrites d.
template <> struct Wgmma<16> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7"
        "}, %8, %9, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<32> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
        "}, %16, %17, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<48> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23"
        "}, %24, %25, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<64> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<96> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n96k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"
        "}, %48, %49, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<112> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %58, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n112k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55"
        "}, %56, %57, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<128> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<144> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %74, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n144k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71"
        "}, %72, %73, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<160> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %82, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n160k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"
        "}, %80, %81, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};
template <> struct Wgmma<192> {
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
        "}, %96, %97, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleD));
  }
};

// ------------------------------------------------------------------------------------------------------------
// Tile scheduling
// ------------------------------------------------------------------------------------------------------------
template <int BM>
__device__ __forceinline__ TileCoord locate_tile(const Schedule& sch, int t, int bn) {
  const int band = sch.group_n * sch.num_m_tiles;
  const int g = t / band;
  const int local = t - g * band;
  const int n_first = g * sch.group_n;
  const int width = min(sch.group_n, sch.num_n_tiles - n_first);
  const int mt = local / width;
  const int nt = n_first + (local - mt * width);
  // The expert that owns global M-tile mt: the largest e with tile_prefix[e] <= mt (empty experts share
  // their successor's prefix and lose the tie).
  int lo = 0, hi = sch.num_experts - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (sch.tile_prefix[mid] <= mt) lo = mid;
    else hi = mid - 1;
  }
  TileCoord c;
  c.expert = lo;
  c.m0 = sch.offsets[lo] + (mt - sch.tile_prefix[lo]) * BM;
  c.m_end = sch.offsets[lo + 1];
  c.n0 = nt * bn;
  return c;
}

// kMC = 2 (dense only): the two CTAs of a cluster take M-tiles 2p and 2p+1 of the same N-tile, in lockstep over
// "units" u = cluster, cluster + clusters, ...; a CTA whose M-tile falls past the end recomputes the last M-tile
// and stores nothing (it must still load its half of B and release its slots for its peer).
template <int BM, int kMC>
__device__ __forceinline__ TileCoord locate_unit(const Schedule& sch, int u, int bn, uint32_t rank) {
  if constexpr (kMC == 1) {
    return locate_tile<BM>(sch, sch.splits > 1 ? u % (sch.num_tiles / sch.splits) : u, bn);
  } else {
    const int pairs_m = (sch.num_m_tiles + 1) >> 1;
    const int band = sch.group_n * pairs_m;
    const int g = u / band;
    const int local = u - g * band;
    const int n_first = g * sch.group_n;
    const int width = min(sch.group_n, sch.num_n_tiles - n_first);
    const int mp = local / width;
    const int nt = n_first + (local - mp * width);
    const int mt = 2 * mp + static_cast<int>(rank);
    TileCoord c;
    c.expert = 0;
    c.m0 = sch.offsets[0] + min(mt, sch.num_m_tiles - 1) * BM;
    c.m_end = mt < sch.num_m_tiles ? sch.offsets[1] : 0;  // nothing is stored for a tile past the end
    c.n0 = nt * bn;
    return c;
  }
}

// The k-blocks of work unit t: all of them, or its split's range with split-K.
__device__ __forceinline__ void unit_k_range(const Schedule& sch, int t, int* split, int* kb_begin, int* kb_end) {
  *split = sch.splits > 1 ? t / (sch.num_tiles / sch.splits) : 0;
  *kb_begin = *split * sch.kb_per_split;
  *kb_end = sch.splits > 1 ? min(sch.num_kb, *kb_begin + sch.kb_per_split) : sch.num_kb;
}

// ------------------------------------------------------------------------------------------------------------
// The kernel
// Shared memory per pipeline stage for the k-block's scales: sa of BM rows, sb of two 128-column blocks, padded
// to 16 bytes.
__host__ __device__ constexpr uint32_t scale_stage_bytes(int bm) { return static_cast<uint32_t>(bm + 4) * 4u; }
// Named barriers 1 and 2 are the consumer warpgroups' epilogue barriers; 3 and 4 their ping-pong turns.
constexpr int kTurnBarrier = 3;

// Calls f(std::integral_constant<int, J>) with J == j, for the J a tile of width BN can have: the tile's first
// column n0 is a multiple of BN, so the column where its 128-column scale block changes, 128 - n0 % 128 (or BN
// when the tile ends first), is a multiple of gcd(BN, 128); J counts it in groups of 8 columns.
template <int BN, int J = 0, typename F>
__device__ __forceinline__ void dispatch_jsplit(int j, F&& f) {
  constexpr int kStep = (BN & -BN) < 128 ? (BN & -BN) / 8 : 16;  // gcd(BN, 128) / 8
  constexpr int kJ = J == 0 ? kStep : J;
  if constexpr (kJ >= BN / 8) {
    f(std::integral_constant<int, BN / 8>{});
  } else {
    if (j == kJ) f(std::integral_constant<int, kJ>{});
    else dispatch_jsplit<BN, kJ + kStep>(j, f);
  }
}

// ------------------------------------------------------------------------------------------------------------
// kPromoteK: elements of K summed by the tensor cores before each promotion to FP32: 128 (the spec's interval,
// four wgmma k32 per promotion) or 32 (every wgmma promoted on its own: the "precise" variant, see GEMM-NOTES.md).
// kMC: CTAs per cluster sharing each B tile through TMA multicast (1 = no cluster; 2 = each CTA loads half of
// the B tile for both, dense GEMMs only).
// kHalves = 2 (BN = 256): each k-block is multiplied in two m64n128 halves through one accumulator set, each half
// promoted before the next is issued, so a 128 x 256 tile needs 64 accumulator + 128 result registers per thread
// (one m64n256 set would need 128 + 128) and each SM takes in 12 % fewer operand bytes per MMA than at 128 x 192.
template <int BM, int BN, int kPromoteK, int kMC, int kHalves = 1>
__global__ void __launch_bounds__(BM / 64 * 128 + 128, 1)
    fp8_gemm_sm90_kernel(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
                         const __grid_constant__ CUtensorMap tm_d, const float* __restrict__ sa,
                         const float* __restrict__ sb, void* __restrict__ d_out, const __grid_constant__ Schedule sch) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(BM == 64 || BM == 128, "BM is 64 (one consumer warpgroup) or 128 (two)");
  static_assert(kPromoteK == 128 || kPromoteK == 32, "promotion every 128 or every 32 of K");
  static_assert(kMC == 1 || (kMC == 2 && BN % 16 == 0), "multicast halves of B must stay 1024-byte aligned");
  static_assert(BN % 16 == 0 && BN >= 16 && (BN <= 192 || (BN == 256 && kHalves == 2)), "BN: a multiple of 16 up to 192, or 256 in halves");
  static_assert(kHalves == 1 || (kPromoteK == 128 && kMC == 1 && BM == 128), "halves: the plain two-consumer kernel");
  // A tile's columns [n0, n0 + BN) must touch at most two 128-column scale blocks of B.
  static_assert(BN <= 128 || (128 - (BN & -BN)) + BN <= 256, "a tile could span three sb blocks");
  constexpr int kMathWG = BM / 64;
  constexpr int kMathThreads = kMathWG * 128;
  constexpr uint32_t kABytes = BM * kBlockK;
  constexpr uint32_t kBBytes = BN * kBlockK;
  constexpr bool kOneScaleB = (128 % BN) == 0;  // tiles never straddle a 128-column block
  constexpr int kWN = BN / kHalves;              // N of one wgmma
  constexpr int kAcc = kWN / 2;                 // f32 accumulators per thread for m64 x kWN
  constexpr int kFin = BN / 2;                  // f32 results per thread for m64 x BN
  constexpr uint32_t kScaleStageBytes = scale_stage_bytes(BM);

  extern __shared__ __align__(1024) uint8_t smem_raw[];
  const uint32_t smem_base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const int stages = sch.stages;
  const uint32_t smem_a = smem_base;
  const uint32_t smem_b = smem_a + stages * kABytes;
  const uint32_t smem_d = smem_b + stages * kBBytes;  // TMA-store staging (sch.epi_bytes), 1024-aligned
  // Per stage the k-block's scales: sa of the tile's BM rows, then sb of the (at most two) 128-column blocks.
  const uint32_t smem_scale = smem_d + sch.epi_bytes;
  const uint32_t bar_full = smem_scale + stages * kScaleStageBytes;
  const uint32_t bar_empty = bar_full + stages * 8;
  const int tid = threadIdx.x;

  if (tid == kMathThreads) {
    prefetch_tensor_map(&tm_a);
    prefetch_tensor_map(&tm_b);
    if (sch.epi_bytes > 0) prefetch_tensor_map(&tm_d);
    for (int s = 0; s < stages; ++s) {
      mbar_init(bar_full + 8 * s, 1 + 32);  // the TMA thread's arrive.expect_tx + the scale warp's 32 lanes
      mbar_init(bar_empty + 8 * s, kMathWG * 4 * kMC);  // every consumer warp of every CTA sharing the slot
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }
  // The peer's multicast loads and remote arrivals must not reach barriers that are not initialized yet.
  if constexpr (kMC > 1) cluster_sync();
  else __syncthreads();

  const int num_kb = sch.num_kb;
  const uint32_t rank = kMC > 1 ? cluster_cta_rank() : 0u;
  const int unit0 = kMC > 1 ? static_cast<int>(blockIdx.x) / kMC : static_cast<int>(blockIdx.x);
  const int unit_step = kMC > 1 ? static_cast<int>(gridDim.x) / kMC : static_cast<int>(gridDim.x);

  if (tid >= kMathThreads) {
    // ---------------- producer warpgroup ----------------
    if constexpr (kMathWG > 1) asm volatile("setmaxnreg.dec.sync.aligned.u32 " OCTET_PRODUCER_REGS ";\n" ::: "memory");
    if (tid == kMathThreads) {
      int s = 0;
      uint32_t phase = 0;
      for (int t = unit0; t < sch.num_tiles; t += unit_step) {
        const TileCoord tile = locate_unit<BM, kMC>(sch, t, BN, rank);
        const int b_row = (sch.expert_base + tile.expert) * sch.N + tile.n0;
        int split, kb_begin, kb_end;
        unit_k_range(sch, t, &split, &kb_begin, &kb_end);
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          mbar_wait(bar_empty + 8 * s, phase ^ 1u, 0, s);
          const uint32_t full = bar_full + 8 * s;
          mbar_arrive_expect_tx(full, kABytes + kBBytes);  // with kMC = 2 half of B comes from the peer's load
          tma_load_2d(smem_a + s * kABytes, &tm_a, kb * kBlockK, tile.m0, full);
          if constexpr (kMC == 1) {
            tma_load_2d(smem_b + s * kBBytes, &tm_b, kb * kBlockK, b_row, full);
          } else {
            constexpr uint32_t kHalf = kBBytes / 2;
            tma_load_2d_multicast(smem_b + s * kBBytes + rank * kHalf, &tm_b, kb * kBlockK,
                                  b_row + static_cast<int>(rank) * (BN / 2), full, static_cast<uint16_t>(0x3));
          }
          if (++s == stages) {
            s = 0;
            phase ^= 1u;
          }
        }
      }
    }
    if (tid >= kMathThreads + 32 && tid < kMathThreads + 64) {
      // The scale warp: per k-block, sa of the tile's BM rows (strided in the row-major [M, K/128] layout, so
      // no TMA box fits them) and sb of the tile's one or two 128-column blocks go into the stage's scale area
      // by 4-byte cp.async; each lane's arrive fires when its copies have landed. The consumers read them from
      // shared memory after the full barrier, so no global-load latency sits in their k-block chain.
      const int lane = tid & 31;
      int s = 0;
      uint32_t phase = 0;
      for (int t = unit0; t < sch.num_tiles; t += unit_step) {
        const TileCoord tile = locate_unit<BM, kMC>(sch, t, BN, rank);
        const int ge = sch.expert_base + tile.expert;
        int split, kb_begin, kb_end;
        unit_k_range(sch, t, &split, &kb_begin, &kb_end);
        const int nb_lo = tile.n0 / 128;
        const int nb_hi = min(nb_lo + 1, sch.num_nb - 1);
        const float* sa_rows[BM / 32];
#pragma unroll
        for (int i = 0; i < BM / 32; ++i)
          sa_rows[i] = sa + static_cast<size_t>(min(tile.m0 + lane + 32 * i, sch.M_total - 1)) * num_kb;
        const float* sb_col = sb + (static_cast<size_t>(ge) * sch.num_nb + (lane == 0 ? nb_lo : nb_hi)) * num_kb;
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          mbar_wait(bar_empty + 8 * s, phase ^ 1u, 0, s);
          const uint32_t area = smem_scale + s * kScaleStageBytes;
#pragma unroll
          for (int i = 0; i < BM / 32; ++i) cp_async_f32(area + 4u * (lane + 32 * i), sa_rows[i] + kb);
          if (lane < 2) cp_async_f32(area + 4u * (BM + lane), sb_col + kb);
          cp_async_mbar_arrive(bar_full + 8 * s);
          if (++s == stages) {
            s = 0;
            phase ^= 1u;
          }
        }
      }
    }
  } else {
    // ---------------- consumer warpgroups ----------------
    if constexpr (kMathWG > 1) asm volatile("setmaxnreg.inc.sync.aligned.u32 " OCTET_CONSUMER_REGS ";\n" ::: "memory");
    const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);
    const int lane = tid & 31;
    const int warp_in_wg = (tid >> 5) & 3;
    const int row_in_tile = wg * 64 + warp_in_wg * 16 + (lane >> 2);  // and row_in_tile + 8
    const int col_in_tile = (lane & 3) * 2;                            // and + 1, + 8 j
    const uint64_t desc_a0 = make_smem_desc(smem_a + wg * 64 * kBlockK);
    const uint64_t desc_b0 = make_smem_desc(smem_b);

    float acc[kAcc];
    float fin[kFin];
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[i] = 0.f;

    int s = 0;
    uint32_t phase = 0;
    int epi_count = 0;  // boxes this warpgroup has stored through the chunked epilogue's ring
    // Turns: warpgroup 0 goes first; warpgroup 1 hands it the first turn. Both run the same k-blocks, so the
    // turns pair up: every arrive on a warpgroup's barrier meets exactly one sync of it.
    const bool pingpong = kMathWG == 2 && kPromoteK == 128 && sch.pingpong != 0 && unit0 < sch.num_tiles;
    if (pingpong && wg == 1) named_bar_arrive(kTurnBarrier + 0, 256);
    for (int t = unit0; t < sch.num_tiles; t += unit_step) {
      const TileCoord tile = locate_unit<BM, kMC>(sch, t, BN, rank);
      const bool last_tile = t + unit_step >= sch.num_tiles;
      const int nb_lo = tile.n0 / 128;
      const int split = (nb_lo + 1) * 128 - tile.n0;  // tile columns [0, split) belong to block nb_lo
      // Column groups of 8 [0, jsplit) take sb of block nb_lo, the rest nb_hi; a compile-time J below.
      const int jsplit = min(split, BN) / 8;
      int ksplit, kb_begin, kb_end;
      unit_k_range(sch, t, &ksplit, &kb_begin, &kb_end);

#pragma unroll
      for (int i = 0; i < kFin; ++i) fin[i] = 0.f;

      for (int kb = kb_begin; kb < kb_end; ++kb) {
        mbar_wait(bar_full + 8 * s, phase, 1, s);
        const uint64_t da = desc_a0 + ((s * kABytes) >> 4);
        const uint64_t db = desc_b0 + ((s * kBBytes) >> 4);
        // This k-block's scales, read before the slot is handed back (the scale warp refills it after that).
        const uint32_t area = smem_scale + s * kScaleStageBytes;
        const float a0 = ld_shared_f32(area + 4u * row_in_tile), a1 = ld_shared_f32(area + 4u * (row_in_tile + 8));
        const float b_lo = ld_shared_f32(area + 4u * BM);
        const float b_hi = kOneScaleB ? 0.f : ld_shared_f32(area + 4u * (BM + 1));
        const float s0_lo = a0 * b_lo, s1_lo = a1 * b_lo;
        const float s0_hi = a0 * b_hi, s1_hi = a1 * b_hi;
        // Promotion of half h: fin += partial * (sa[row] * sb[block]) in FP32. Column group g of the tile takes block
        // nb_lo's scale when g < J: J is a compile-time constant (dispatched once per k-block on the tile's
        // jsplit), so the loop is bare FFMAs, without a select and a predicate per column group.
        auto promote = [&](int h) {
          auto promote_j = [&](auto jc) {
            constexpr int J = decltype(jc)::value;
#pragma unroll
            for (int j = 0; j < kAcc / 4; ++j) {
              const bool lo = h * (kAcc / 4) + j < J;
              const float c0 = lo ? s0_lo : s0_hi;
              const float c1 = lo ? s1_lo : s1_hi;
              float* f = fin + h * kAcc + 4 * j;
              f[0] = fmaf(acc[4 * j + 0], c0, f[0]);
              f[1] = fmaf(acc[4 * j + 1], c0, f[1]);
              f[2] = fmaf(acc[4 * j + 2], c1, f[2]);
              f[3] = fmaf(acc[4 * j + 3], c1, f[3]);
            }
          };
          if constexpr (kOneScaleB) promote_j(std::integral_constant<int, kFin / 4>{});
          else dispatch_jsplit<BN>(jsplit, promote_j);
        };
        if constexpr (kPromoteK == 128) {
          // Per k-block kHalves rounds (2 for 128 x 256: each half of N is one 128-column scale block, since n0 is
          // a multiple of 256) of: issue 4 x wgmma k32, wait, promote into that part of fin.
          // Ping-pong (two consumer warpgroups): a warpgroup issues its MMAs only after the other has issued its
          // own, so the tensor cores run one warpgroup's MMAs while the other promotes, instead of both issuing
          // together, finishing together and promoting together with the tensor cores idle.
#pragma unroll
          for (int h = 0; h < kHalves; ++h) {
            if (pingpong) named_bar_sync(kTurnBarrier + wg, 256);
#pragma unroll
            for (int i = 0; i < kAcc; ++i) fence_operand(acc[i]);
            wgmma_fence();
            const uint64_t dbh = db + static_cast<uint64_t>(h) * ((kWN * kBlockK) >> 4);
            Wgmma<kWN>::template run<0>(acc, da, dbh);
            Wgmma<kWN>::template run<1>(acc, da + 2, dbh + 2);
            Wgmma<kWN>::template run<1>(acc, da + 4, dbh + 4);
            Wgmma<kWN>::template run<1>(acc, da + 6, dbh + 6);
            wgmma_commit();
            // The other warpgroup's turn, unless this was its last round (every turn handed over is taken).
            const bool last_round = last_tile && kb + 1 == kb_end && h == kHalves - 1;
            if (pingpong && !(wg == 1 && last_round)) named_bar_arrive(kTurnBarrier + (wg ^ 1), 256);
#pragma unroll
            for (int i = 0; i < kAcc; ++i) fence_operand(acc[i]);
            wgmma_wait_all();
            // The slot's shared memory has been read by the tensor cores: hand it back to the producer.
            if (h == kHalves - 1) {
              if (lane == 0) mbar_arrive(bar_empty + 8 * s);
              if (kMC > 1 && lane == 1) mbar_arrive_cluster(bar_empty + 8 * s, rank ^ 1u);
            }
            promote(h);
          }
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
#pragma unroll
            for (int i = 0; i < kAcc; ++i) fence_operand(acc[i]);
            wgmma_fence();
            Wgmma<BN>::template run<0>(acc, da + 2 * k, db + 2 * k);
            wgmma_commit();
#pragma unroll
            for (int i = 0; i < kAcc; ++i) fence_operand(acc[i]);
            wgmma_wait_all();
            if (k == 3 && lane == 0) mbar_arrive(bar_empty + 8 * s);
            if (kMC > 1 && k == 3 && lane == 1) mbar_arrive_cluster(bar_empty + 8 * s, rank ^ 1u);
            promote(0);
          }
        }
        if (++s == stages) {
          s = 0;
          phase ^= 1u;
        }
      }

      // Epilogue, TMA path: registers -> this warpgroup's staging buffer (64 rows x BN, in boxes of 64 rows x 128
      // bytes with the 128-byte swizzle, so a quad's 16-byte chunks of 8 rows land in 8 different bank groups)
      // -> one thread issues the TMA stores and the warpgroup goes on to the next tile while they drain. Used
      // when the warpgroup's 64 rows all belong to this tile's expert (or the tensor's end clips them).
      const int wg_row0 = tile.m0 + wg * 64;
      const bool tma_epi = sch.epi_bytes > 0 && wg_row0 < tile.m_end &&
                           (tile.m_end == sch.M_total || wg_row0 + 64 <= tile.m_end);
      if (tma_epi && sch.epi_slots > 0) {
        // Version 3, chunked: the tile goes out one [64 rows x 128 B] box at a time through a ring of
        // sch.epi_slots 8 KiB slots per warpgroup (16-32 KiB in all instead of BM x BN outputs, so 128 x 192
        // keeps its fifth pipeline stage). Box c of this warpgroup's running count uses slot c % slots; before
        // writing it, the store that last used that slot (committed `slots` groups ago) must have read it.
        const bool bf16 = sch.out_bf16 != 0;
        const int slots = sch.epi_slots;
        const uint32_t ring = smem_d + static_cast<uint32_t>(wg) * (static_cast<uint32_t>(slots) * 8192u);
        const int r_local = warp_in_wg * 16 + (lane >> 2);
        const uint32_t sw = static_cast<uint32_t>(lane >> 2);
        const int box_cols = bf16 ? 64 : 32;
        const int boxes = BN / box_cols;
        for (int b = 0; b < boxes; ++b) {
          const int c0 = tile.n0 + b * box_cols;
          if (c0 >= sch.N) break;  // the same for every thread of the warpgroup
          const uint32_t slot = ring + static_cast<uint32_t>(epi_count % slots) * 8192u;
          if ((tid & 127) == 0) {
            if (slots == 1) bulk_wait_read0();
            else bulk_wait_read1();
          }
          wg_barrier(wg);
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t row_addr = slot + static_cast<uint32_t>(r_local + 8 * h) * 128u;
#pragma unroll
            for (int j = 0; j < kFin / 4; ++j) {
              const float v0 = fin[4 * j + 2 * h], v1 = fin[4 * j + 2 * h + 1];
              const uint32_t byte = bf16 ? static_cast<uint32_t>(8 * j + col_in_tile) * 2u
                                         : static_cast<uint32_t>(8 * j + col_in_tile) * 4u;
              if (static_cast<int>(byte >> 7) != b) continue;
              const uint32_t inner = byte & 127u;
              const uint32_t addr = row_addr + ((((inner >> 4) ^ sw) << 4) | (inner & 15u));
              if (bf16) {
                const __nv_bfloat162 v = __floats2bfloat162_rn(v0, v1);
                st_shared_b32(addr, *reinterpret_cast<const uint32_t*>(&v));
              } else {
                st_shared_v2f32(addr, v0, v1);
              }
            }
          }
          fence_proxy_async_smem();
          wg_barrier(wg);
          if ((tid & 127) == 0) {
            tma_store_2d(&tm_d, slot, c0, wg_row0);
            bulk_commit();
          }
          ++epi_count;
        }
        continue;
      }
      if (tma_epi) {
        const bool bf16 = sch.out_bf16 != 0;
        const uint32_t stage_d = smem_d + static_cast<uint32_t>(wg) * (64u * BN * (bf16 ? 2u : 4u));
        // The previous tile's stores must have finished reading the staging buffer.
        if ((tid & 127) == 0) bulk_wait_read0();
        wg_barrier(wg);
        const int r_local = warp_in_wg * 16 + (lane >> 2);  // and + 8; r_local & 7 == lane >> 2
        const uint32_t sw = static_cast<uint32_t>(lane >> 2);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t row_addr = stage_d + static_cast<uint32_t>(r_local + 8 * h) * 128u;
#pragma unroll
          for (int j = 0; j < kFin / 4; ++j) {
            const float v0 = fin[4 * j + 2 * h], v1 = fin[4 * j + 2 * h + 1];
            const uint32_t byte = bf16 ? static_cast<uint32_t>(8 * j + col_in_tile) * 2u
                                       : static_cast<uint32_t>(8 * j + col_in_tile) * 4u;
            const uint32_t box = byte >> 7, inner = byte & 127u;
            const uint32_t addr = row_addr + box * 8192u + ((((inner >> 4) ^ sw) << 4) | (inner & 15u));
            if (bf16) {
              const __nv_bfloat162 v = __floats2bfloat162_rn(v0, v1);
              st_shared_b32(addr, *reinterpret_cast<const uint32_t*>(&v));
            } else {
              st_shared_v2f32(addr, v0, v1);
            }
          }
        }
        fence_proxy_async_smem();
        wg_barrier(wg);
        if ((tid & 127) == 0) {
          const int box_cols = bf16 ? 64 : 32;
          const int boxes = BN / box_cols;
          for (int b = 0; b < boxes; ++b) {
            const int c0 = tile.n0 + b * box_cols;
            if (c0 < sch.N) tma_store_2d(&tm_d, stage_d + static_cast<uint32_t>(b) * 8192u, c0, wg_row0);
          }
          bulk_commit();
        }
        continue;
      }
      // Epilogue, direct path: masked stores straight from registers (each quad of lanes writes 8 consecutive
      // columns). Split-K partial sums go to the fp32 workspace slice of this unit's split.
      const int n_rem = sch.N - tile.n0;
      const size_t ldd = static_cast<size_t>(sch.N);
      const bool vec = sch.vec_store != 0;
      const bool out_bf16 = sch.out_bf16 && sch.splits <= 1;
      void* const out_base =
          sch.splits > 1 ? static_cast<void*>(sch.ws + static_cast<size_t>(ksplit) * sch.M_total * ldd) : d_out;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = tile.m0 + row_in_tile + 8 * h;
        if (row < tile.m_end) {
          if (out_bf16) {
            __nv_bfloat16* out = static_cast<__nv_bfloat16*>(out_base) + static_cast<size_t>(row) * ldd + tile.n0;
#pragma unroll
            for (int j = 0; j < kFin / 4; ++j) {
              const int c = 8 * j + col_in_tile;
              const float v0 = fin[4 * j + 2 * h], v1 = fin[4 * j + 2 * h + 1];
              if (vec && c + 1 < n_rem) {
                *reinterpret_cast<__nv_bfloat162*>(out + c) = __floats2bfloat162_rn(v0, v1);
              } else if (c < n_rem) {
                out[c] = __float2bfloat16_rn(v0);
                if (c + 1 < n_rem) out[c + 1] = __float2bfloat16_rn(v1);
              }
            }
          } else {
            float* out = static_cast<float*>(out_base) + static_cast<size_t>(row) * ldd + tile.n0;
#pragma unroll
            for (int j = 0; j < kFin / 4; ++j) {
              const int c = 8 * j + col_in_tile;
              const float v0 = fin[4 * j + 2 * h], v1 = fin[4 * j + 2 * h + 1];
              if (vec && c + 1 < n_rem) {
                *reinterpret_cast<float2*>(out + c) = make_float2(v0, v1);
              } else if (c < n_rem) {
                out[c] = v0;
                if (c + 1 < n_rem) out[c + 1] = v1;
              }
            }
          }
        }
      }
    }
    // The last TMA stores must have read their staging buffer before the CTA's shared memory goes away.
    if (sch.epi_bytes > 0 && (tid & 127) == 0) bulk_wait0();
  }
  // A CTA must outlive its peer's last remote arrival on its barriers (and the peer's last multicast into its
  // shared memory, which its own consumers have already waited for).
  if constexpr (kMC > 1) cluster_sync();
#else
  // Built for a target without sm_90a features: refuse loudly.
  __trap();
#endif
}

// ------------------------------------------------------------------------------------------------------------
// The simple path: a plain SIMT kernel (fp32 FMA over decoded e4m3, same promotion), for shape classes where
// the WGMMA kernel is not trusted. 64 x 64 outputs per block of 256 threads, 4 x 4 per thread.
// ------------------------------------------------------------------------------------------------------------
__global__ void __launch_bounds__(256) fp8_gemm_simt_kernel(const uint8_t* __restrict__ A, const float* __restrict__ sa,
                                                            const uint8_t* __restrict__ B, const float* __restrict__ sb,
                                                            void* __restrict__ d_out, int out_bf16, int M, int N, int K) {
  __shared__ float As[32][64 + 1];
  __shared__ float Bs[32][64 + 1];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m_base = blockIdx.y * 64, n_base = blockIdx.x * 64;
  const int num_kb = K / kBlockK;
  float fin[4][4] = {};
  for (int kb = 0; kb < num_kb; ++kb) {
    float part[4][4] = {};
    for (int kc = 0; kc < kBlockK; kc += 32) {
      // 64 rows x 32 codes of each operand: thread i loads 8 codes of row i / 4.
      {
        const int r = threadIdx.x >> 2, k8 = (threadIdx.x & 3) * 8;
        const int kk = kb * kBlockK + kc + k8;
        uint2 va = make_uint2(0, 0), vb = make_uint2(0, 0);
        if (m_base + r < M) va = *reinterpret_cast<const uint2*>(A + static_cast<size_t>(m_base + r) * K + kk);
        if (n_base + r < N) vb = *reinterpret_cast<const uint2*>(B + static_cast<size_t>(n_base + r) * K + kk);
        const uint32_t wa[2] = {va.x, va.y}, wb[2] = {vb.x, vb.y};
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          __nv_fp8_e4m3 xa, xb;
          xa.__x = static_cast<__nv_fp8_storage_t>((wa[q >> 2] >> (8 * (q & 3))) & 0xFF);
          xb.__x = static_cast<__nv_fp8_storage_t>((wb[q >> 2] >> (8 * (q & 3))) & 0xFF);
          As[k8 + q][r] = static_cast<float>(xa);
          Bs[k8 + q][r] = static_cast<float>(xb);
        }
      }
      __syncthreads();
#pragma unroll 8
      for (int k = 0; k < 32; ++k) {
        float av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = As[k][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) part[i][j] = fmaf(av[i], bv[j], part[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = min(m_base + ty + 16 * i, M - 1);
      const float s_a = sa[static_cast<size_t>(m) * num_kb + kb];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = min(n_base + tx + 16 * j, N - 1);
        const float scale = s_a * sb[static_cast<size_t>(n / 128) * num_kb + kb];
        fin[i][j] = fmaf(part[i][j], scale, fin[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m_base + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n_base + tx + 16 * j;
      if (n >= N) continue;
      const size_t idx = static_cast<size_t>(m) * N + n;
      if (out_bf16) static_cast<__nv_bfloat16*>(d_out)[idx] = __float2bfloat16_rn(fin[i][j]);
      else static_cast<float*>(d_out)[idx] = fin[i][j];
    }
  }
}

// Split-K: D = sum over splits of the fp32 partial sums, in split order (each split's partial sum is the spec's
// promoted accumulation over its k-blocks; only this final sum across splits is an extra fp32 addition).
__global__ void __launch_bounds__(256) splitk_reduce_kernel(const float* __restrict__ ws, void* __restrict__ d_out,
                                                            size_t count, int splits, int out_bf16) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    float v = ws[i];
    for (int s = 1; s < splits; ++s) v += ws[static_cast<size_t>(s) * count + i];
    if (out_bf16) static_cast<__nv_bfloat16*>(d_out)[i] = __float2bfloat16_rn(v);
    else static_cast<float*>(d_out)[i] = v;
  }
}

// ------------------------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------------------------
using KernelFn = void (*)(CUtensorMap, CUtensorMap, CUtensorMap, const float*, const float*, void*, Schedule);

struct KernelEntry {
  int bm, bn, promote_k, mc;
  KernelFn fn;
};

#define OCTET_SM90_KERNEL(bm, bn) {bm, bn, 128, 1, &fp8_gemm_sm90_kernel<bm, bn, 128, 1>}
#define OCTET_SM90_PRECISE(bm, bn) {bm, bn, 32, 1, &fp8_gemm_sm90_kernel<bm, bn, 32, 1>}
#define OCTET_SM90_MULTICAST(bm, bn) {bm, bn, 128, 2, &fp8_gemm_sm90_kernel<bm, bn, 128, 2>}
const KernelEntry kKernels[] = {
    OCTET_SM90_KERNEL(64, 16),   OCTET_SM90_KERNEL(64, 32),   OCTET_SM90_KERNEL(64, 48),
    OCTET_SM90_KERNEL(64, 64),   OCTET_SM90_KERNEL(64, 96),   OCTET_SM90_KERNEL(64, 112),
    OCTET_SM90_KERNEL(64, 128),  OCTET_SM90_KERNEL(64, 144),  OCTET_SM90_KERNEL(64, 160),
    OCTET_SM90_KERNEL(64, 192),  OCTET_SM90_KERNEL(128, 16),  OCTET_SM90_KERNEL(128, 32),
    OCTET_SM90_KERNEL(128, 48),  OCTET_SM90_KERNEL(128, 64),  OCTET_SM90_KERNEL(128, 96),
    OCTET_SM90_KERNEL(128, 112), OCTET_SM90_KERNEL(128, 128), OCTET_SM90_KERNEL(128, 144),
    OCTET_SM90_KERNEL(128, 160), OCTET_SM90_KERNEL(128, 192),
    // 128 x 256 in two m64n128 halves per k-block (kHalves = 2)
    {128, 256, 128, 1, &fp8_gemm_sm90_kernel<128, 256, 128, 1, 2>},
    // promotion after every wgmma (K = 32): chosen only through octet_fp8_gemm_sm90_debug_force(3, ...)
    OCTET_SM90_PRECISE(64, 64),  OCTET_SM90_PRECISE(128, 128),
    // 2-CTA clusters sharing B by TMA multicast, dense only: chosen only through octet_fp8_gemm_sm90_debug_force(4, ...)
    OCTET_SM90_MULTICAST(128, 128), OCTET_SM90_MULTICAST(128, 144), OCTET_SM90_MULTICAST(128, 160),
    OCTET_SM90_MULTICAST(128, 192),
};
#undef OCTET_SM90_KERNEL
#undef OCTET_SM90_PRECISE
#undef OCTET_SM90_MULTICAST
constexpr int kNumKernels = static_cast<int>(sizeof(kKernels) / sizeof(kKernels[0]));

struct DeviceInfo {
  int status;  // OCTET_GEMM_OK or an error code
  int sms;
  int smem_optin;
  bool attr_set[kNumKernels];
  int max_clusters[kNumKernels];  // multicast kernels: clusters that fit on the device at once (0 = not asked yet)
};

constexpr int kMaxDevices = 64;
std::mutex g_mutex;
DeviceInfo g_devices[kMaxDevices];
bool g_device_probed[kMaxDevices];

// Debugging hooks (see octet_fp8_gemm_sm90_debug_force below): 0 = automatic choice.
struct Override {
  int path;  // 0 automatic, 1 WGMMA kernel bm x bn, 2 the simple SIMT kernel, 3 the precise (promote every 32)
             // WGMMA kernels, 4 the 2-CTA multicast WGMMA kernels (dense only; grouped calls keep path 0);
             // for 3 and 4, bm = 0 picks automatically among that family
  int bm, bn, stages, group_n;
  int epilogue;  // 0 automatic, 1 direct stores (version 1), 2 TMA store where possible (staging chosen by the
                 // planner), 3 TMA store with the whole tile staged (version 2), 4 TMA store through the ring
  int splitk;    // 0 automatic, 1 never, > 1 that many splits (dense, where K allows)
};
Override g_override = {0, 0, 0, 0, 0, 0, 0};
char g_last_config[160] = "none";

int current_device_info(DeviceInfo** out) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return OCTET_GEMM_ERR_CUDA;
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceInfo& info = g_devices[dev];
  if (!g_device_probed[dev]) {
    g_device_probed[dev] = true;
    int major = 0, minor = 0;
    info.status = OCTET_GEMM_OK;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&info.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
      info.status = OCTET_GEMM_ERR_CUDA;
    } else if (major != 9 || minor != 0) {
      info.status = OCTET_GEMM_ERR_UNSUPPORTED_DEVICE;  // sm_90a code runs on compute capability 9.0 only
    }
  }
  *out = &info;
  return info.status;
}

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess && p != nullptr) {
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }
  });
  return fn;
}

// A 2-D e4m3 tensor [rows, K] (row-major) read in boxes of [box_rows, 128] with the 128-byte swizzle.
int encode_operand_map(CUtensorMap* map, const void* base, uint64_t rows, uint64_t K, uint32_t box_rows) {
  PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return OCTET_GEMM_ERR_NO_TENSOR_MAP_ENCODER;
  const cuuint64_t dims[2] = {K, rows};
  const cuuint64_t strides[1] = {K};  // bytes between rows
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBlockK), box_rows};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims, strides, box,
                            elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? OCTET_GEMM_OK : OCTET_GEMM_ERR_TENSOR_MAP;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// D [rows, N] (bf16 or fp32, row-major) written in boxes of [64 rows, 128 bytes] with the 128-byte swizzle.
int encode_output_map(CUtensorMap* map, void* base, uint64_t rows, uint64_t N, int out_bytes) {
  PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return OCTET_GEMM_ERR_NO_TENSOR_MAP_ENCODER;
  const cuuint64_t dims[2] = {N, rows};
  const cuuint64_t strides[1] = {N * static_cast<uint64_t>(out_bytes)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(128 / out_bytes), 64};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode(map, out_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, base,
                            dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? OCTET_GEMM_OK : OCTET_GEMM_ERR_TENSOR_MAP;
}

struct Plan {
  int kernel = -1;  // index into kKernels
  int stages = 0, grid = 0, group_n = 4, tiles = 0;  // bands of 4 N-tiles: best of 4-32 at M = 4096 (GEMM-NOTES.md §7)
  int epi_bytes = 0;  // > 0: TMA-store epilogue with this much staging shared memory
  int epi_slots = 0;  // TMA epilogue: 0 the whole tile staged (version 2), 1/2 a ring of 8 KiB boxes per warpgroup
  int splits = 1;     // split-K factor (dense only)
  double est_us = 0.0;
};

// Per stage: the A and B tiles, the k-block's scales and two mbarriers.
int stage_bytes_for(int bm, int bn) { return (bm + bn) * kBlockK + static_cast<int>(scale_stage_bytes(bm)) + 16; }

int stages_for(int bm, int bn, int smem_optin, int epi_bytes = 0) {
  const int avail = smem_optin - 1024 /* alignment slack */ - epi_bytes;
  return std::min(kMaxStages, avail / stage_bytes_for(bm, bn));
}

size_t smem_bytes_for(int bm, int bn, int stages, int epi_bytes = 0) {
  return 1024 + static_cast<size_t>(epi_bytes) + static_cast<size_t>(stages) * stage_bytes_for(bm, bn);
}

// A coarse time model (H100 SXM): per-SM tensor rate 4096 e4m3 FMA/clk at ~1.755 GHz scaled by an efficiency
// that grows with BN (operand traffic per MMA) and with two consumer warpgroups (one promotes while the other
// multiplies); per-SM operand feed ~120 B/ns; L2 ~9 TB/s; DRAM ~2.8 TB/s. The choice minimizes
// max(waves * tile time, L2 time, DRAM time). Wave quantization dominates at M = 4096; operand traffic and
// CTA count dominate at M = 64/128. With mc = 2 each CTA loads half of its B tile and M-tiles go in pairs.
// Version 2 additions, fitted to the first H100 run: a k-block of one tile takes at least ~(400 + BN) ns (the
// consumer's wait -> 4 dependent wgmma -> wait -> promote chain; it is what bounds M = 64/128), the direct
// epilogue costs BM*BN*out_bytes / 8 B/ns per tile, not overlapped (short-K shapes), the TMA-store epilogue
// ~1/8 of that (registers -> shared memory; the store drains behind the next tile), fewer than 4 stages
// cost 10 % each, and split-K adds its workspace traffic and a second launch.
double estimate_us(int bm, int bn, int mc, const int* counts, int E, int N, int K, int out_bytes, int ctas,
                   int* tiles_out, bool tma_epi = false, int stages = 8, int splits = 1, int epi_slots = 0) {
  long long m_tiles = 0, rows = 0, experts = 0;
  for (int e = 0; e < E; ++e) {
    if (counts[e] <= 0) continue;
    m_tiles += ceil_div(counts[e], bm);
    rows += counts[e];
    ++experts;
  }
  if (mc > 1) m_tiles = (m_tiles + mc - 1) / mc * mc;
  const long long n_tiles = ceil_div(N, bn);
  const long long tiles = m_tiles * n_tiles;
  *tiles_out = static_cast<int>(std::min<long long>(tiles, 1ll << 30));
  if (tiles == 0) return 0.0;
  const long long units = tiles * splits;
  const int Ku = (K / kBlockK + splits - 1) / splits * kBlockK;  // K of one unit
  const long long grid = std::min<long long>(units, ctas);
  const long long waves = (units + grid - 1) / grid;
  // Run 2 (version 2) lost ~10 % going from 5 stages to 4 at 128 x 192; since version 4 (scales in shared
  // memory) 3, 4 and 5 stages measure the same (GEMM-NOTES.md §7), so the two-consumer kernels lose 10 % per stage
  // only below 3.
  const int full_stages = bm == 128 ? 3 : 4;
  const double eff = (bm == 128 ? 0.92 : 0.62) * bn / (bn + 24.0) *
                     (stages >= full_stages ? 1.0 : std::max(0.5, 1.0 - 0.1 * (full_stages - stages)));
  const double compute_ns = static_cast<double>(bm) * bn * Ku / (7188.0 * eff);
  const double load_ns = (bm + static_cast<double>(bn) / mc) * Ku / 120.0;
  const double chain_ns = (Ku / kBlockK) * (400.0 + bn);
  const int epi_bytes = splits > 1 ? 4 : out_bytes;
  double epi_ns = static_cast<double>(bm) * bn * epi_bytes / 8.0 / (tma_epi ? 8.0 : 1.0);
  // The ring serializes each box's shared-memory writes behind the previous store's read of its slot
  // (~250 ns a box with one slot, ~60 ns with two).
  if (tma_epi && epi_slots > 0) epi_ns += (bn * out_bytes / 128) * (epi_slots == 1 ? 250.0 : 60.0);
  const double tile_ns = std::max(std::max(compute_ns, load_ns), chain_ns) + epi_ns;
  const double l2_ns = static_cast<double>(tiles) * (bm + static_cast<double>(bn) / mc) * K / 9000.0;
  double dram_ns = (static_cast<double>(rows) * K + static_cast<double>(experts) * N * K +
                    static_cast<double>(rows) * N * out_bytes) / 2800.0;
  double extra_ns = 0.0;
  if (splits > 1) {
    const double ws_bytes = static_cast<double>(splits) * rows * N * 4.0;
    dram_ns += ws_bytes / 2800.0;
    extra_ns = 2000.0 + (ws_bytes + static_cast<double>(rows) * N * out_bytes) / 2000.0;  // the reduce launch
  }
  return (std::max(std::max(waves * tile_ns, l2_ns), dram_ns) + extra_ns + 2000.0) / 1000.0;
}

int find_kernel(int bm, int bn, int promote_k, int mc) {
  for (int i = 0; i < kNumKernels; ++i)
    if (kKernels[i].bm == bm && kKernels[i].bn == bn && kKernels[i].promote_k == promote_k && kKernels[i].mc == mc) return i;
  return -1;
}

// Clusters of kernel i that can be resident at once (multicast kernels), asked once per device.
int max_active_clusters(DeviceInfo& dev, int i, size_t smem) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (dev.max_clusters[i] == 0) {
    int n = 0;
    const KernelEntry& ker = kKernels[i];
    if (cudaFuncSetAttribute(reinterpret_cast<const void*>(ker.fn), cudaFuncAttributeMaxDynamicSharedMemorySize,
                             dev.smem_optin) == cudaSuccess) {
      dev.attr_set[i] = true;
      cudaLaunchConfig_t cfg = {};
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = ker.mc;
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
      cfg.gridDim = dim3(ker.mc * 64, 1, 1);
      cfg.blockDim = dim3(ker.bm / 64 * 128 + 128, 1, 1);
      cfg.dynamicSmemBytes = smem;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      if (cudaOccupancyMaxActiveClusters(&n, ker.fn, &cfg) != cudaSuccess) n = 0;
    }
    (void)cudaGetLastError();
    dev.max_clusters[i] = n > 0 ? n : -1;
  }
  return dev.max_clusters[i];
}

// tma_ok: D can take the TMA-store epilogue (row pitch a multiple of 16 bytes, D 16-byte aligned).
Plan make_plan(const int* counts, int E, int N, int K, int out_bytes, DeviceInfo& dev, const Override& ov,
               bool tma_ok = false) {
  Plan best;
  const int promote_k = ov.path == 3 ? 32 : 128;
  const int mc = (ov.path == 4 && E == 1) ? 2 : 1;
  const bool forced = (ov.path == 1 || ((ov.path == 3 || ov.path == 4) && ov.bm > 0)) && !(ov.path == 4 && mc == 1);
  if (forced) {
    best.kernel = find_kernel(ov.bm, ov.bn, promote_k, mc);
    if (best.kernel < 0) return best;
  }
  const int chosen = best.kernel;
  best.kernel = -1;
  for (int i = 0; i < kNumKernels; ++i) {
    if (kKernels[i].promote_k != promote_k || kKernels[i].mc != mc) continue;
    if (forced && i != chosen) continue;
    const int bm = kKernels[i].bm, bn = kKernels[i].bn;
    const int num_kb = K / kBlockK;
    // epi 3, 2, 1: the TMA-store epilogue (needs whole 128-byte boxes per row of the tile) staging the whole
    // tile (version 2), a ring of 2 or of 1 box slot per warpgroup (version 3: 16-32 KiB of shared memory, so
    // the big tiles keep their stages); epi 0: direct stores. TMA variants are tried first, so they win ties
    // (DRAM-bound shapes, where the model cannot tell the epilogues apart).
    // One TMA staging per kernel, not chosen by the model (its L2 and chain terms cannot see the stage count):
    // the whole tile, unless that leaves fewer than 2 stages; then the ring with the most stages (two slots
    // before one on a tie). Version 3 preferred the ring on long K to keep 128 x 192 at 5 stages; since version
    // 4 (scales in shared memory) the whole tile with 4 stages is faster there too (bf16: 1139 vs 1067-1081
    // TFLOP/s on 4096x7168x16384, 1038 vs 941-965 on 4096x2112x7168; fp32 output with 3 stages: 1128 vs 1054):
    // the ring's per-box wait for the previous store's read of its slot costs more than the fifth stage gains.
    int tma_variant = 3;
    {
      const int st_full = stages_for(bm, bn, dev.smem_optin, bm * bn * out_bytes);
      const int st_r2 = stages_for(bm, bn, dev.smem_optin, (bm / 64) * 2 * 8192);
      const int st_r1 = stages_for(bm, bn, dev.smem_optin, (bm / 64) * 1 * 8192);
      const int ring = st_r2 >= st_r1 ? 2 : 1;
      if (ov.epilogue == 4 || (ov.epilogue != 3 && st_full < 2)) tma_variant = ring;
    }
    for (int epi = 3; epi >= 0; --epi) {
      const bool box_ok = tma_ok && (bn * out_bytes) % 128 == 0;
      if (epi > 0 && (!box_ok || ov.epilogue == 1)) continue;
      if (epi == 0 && (ov.epilogue >= 2 && box_ok)) continue;
      if (epi == 3 && ov.epilogue == 4) continue;
      if (epi < 3 && epi > 0 && ov.epilogue == 3) continue;
      const int epi_slots = epi == 3 ? 0 : epi;  // epi 2: two slots, epi 1: one
      const int epi_bytes = epi == 0 ? 0 : epi == 3 ? bm * bn * out_bytes : (bm / 64) * epi_slots * 8192;
      const int stages = stages_for(bm, bn, dev.smem_optin, epi_bytes);
      if (stages < 2) continue;
      if (epi > 0 && epi != tma_variant) continue;
      int ctas = dev.sms;
      if (mc > 1) {
        const int clusters = max_active_clusters(dev, i, smem_bytes_for(bm, bn, stages, epi_bytes));
        if (clusters <= 0) continue;
        ctas = clusters * mc;
      }
      // Split-K only when forced (octet_fp8_gemm_sm90_debug_options). Run 2 (version 2's kernel) found sk2-sk4
      // ahead on three small-M shapes; with version 4's shorter k-block chain the unsplit plans win or tie on
      // all but one of the twelve M = 64/128 shapes (sk vs unsplit, TFLOP/s: 128x7168x16384 459 vs 549,
      // 128x4096x7168 248 vs 314, 64x4096x7168 141 vs 157, 64/128x2112x7168 ties; 64x7168x16384 250 vs 215),
      // and the model cannot tell that one apart (GEMM-NOTES.md, version 4).
      const int requested = ov.splitk > 1 ? ov.splitk : 1;
      if (requested > 1 && (E != 1 || mc != 1 || epi != 0 || num_kb < requested)) continue;
      const int kps = ceil_div(num_kb, requested);
      const int splits = ceil_div(num_kb, kps);  // every split non-empty
      if (requested > 1 && splits < 2) continue;
      int tiles = 0;
      const double t =
          estimate_us(bm, bn, mc, counts, E, N, K, out_bytes, ctas, &tiles, epi != 0, stages, splits, epi_slots);
      const bool better =
          best.kernel < 0 || t < best.est_us * 0.995 ||
          (t <= best.est_us * 1.005 && (bm > kKernels[best.kernel].bm ||
                                        (bm == kKernels[best.kernel].bm && bn > kKernels[best.kernel].bn)));
      if (better) {
        best.kernel = i;
        best.stages = stages;
        best.tiles = tiles;
        best.est_us = t;
        best.epi_bytes = epi_bytes;
        best.epi_slots = epi_slots;
        best.splits = splits;
        // with mc > 1: a multiple of mc (tiles and ctas both are)
        best.grid = static_cast<int>(std::min<long long>(static_cast<long long>(tiles) * splits, ctas));
      }
    }
  }
  if (best.kernel >= 0 && ov.path != 0 && ov.path != 2) {
    if (ov.stages > 0) best.stages = std::min(ov.stages, best.stages);
    if (ov.group_n > 0) best.group_n = ov.group_n;
  }
  return best;
}

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

// Dense plans are cached (the search covers ~260 candidates: kernels x epilogues x splits), so a call costs the
// host no more than version 1 did. Keyed on everything make_plan reads.
struct PlanKey {
  int dev, M, N, K, out_bytes, tma_ok, sms, smem;
  Override ov;
  bool operator==(const PlanKey& o) const { return std::memcmp(this, &o, sizeof(PlanKey)) == 0; }
};
constexpr int kPlanCache = 32;
PlanKey g_plan_keys[kPlanCache];
Plan g_plans[kPlanCache];
int g_plan_count = 0, g_plan_next = 0;

Plan cached_dense_plan(int M, int N, int K, int out_bytes, DeviceInfo& dev, const Override& ov, bool tma_ok) {
  PlanKey key;
  std::memset(&key, 0, sizeof(key));
  int d = 0;
  cudaGetDevice(&d);
  key.dev = d;
  key.M = M;
  key.N = N;
  key.K = K;
  key.out_bytes = out_bytes;
  key.tma_ok = tma_ok;
  key.sms = dev.sms;
  key.smem = dev.smem_optin;
  key.ov = ov;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (int i = 0; i < g_plan_count; ++i)
      if (g_plan_keys[i] == key) return g_plans[i];
  }
  const int counts[1] = {M};
  const Plan plan = make_plan(counts, 1, N, K, out_bytes, dev, ov, tma_ok);  // may take g_mutex (multicast)
  std::lock_guard<std::mutex> lock(g_mutex);
  const int slot = g_plan_count < kPlanCache ? g_plan_count++ : (g_plan_next++ % kPlanCache);
  g_plan_keys[slot] = key;
  g_plans[slot] = plan;
  return plan;
}

int check_common(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype, int N, int K) {
  if (out_dtype != 0 && out_dtype != 1) return OCTET_GEMM_ERR_BAD_DTYPE;
  if (K <= 0 || K % kBlockK != 0) return OCTET_GEMM_ERR_K_NOT_MULTIPLE_OF_128;
  if (N < 1) return OCTET_GEMM_ERR_BAD_SHAPE;
  if (A == nullptr || sa == nullptr || B == nullptr || sb == nullptr || D == nullptr) return OCTET_GEMM_ERR_NULL_POINTER;
  if (!aligned(A, 16) || !aligned(B, 16) || !aligned(sa, 4) || !aligned(sb, 4) || !aligned(D, out_dtype == 0 ? 4 : 2))
    return OCTET_GEMM_ERR_MISALIGNED;
  return OCTET_GEMM_OK;
}

// One launch of the simple kernel per expert with rows.
int run_simt(const uint8_t* A, const float* sa, const uint8_t* B, const float* sb, void* D, int out_dtype,
             const int* offsets, int E, int N, int K, cudaStream_t stream) {
  const int num_kb = K / kBlockK, num_nb = ceil_div(N, 128);
  const size_t out_bytes = out_dtype == 0 ? 4 : 2;
  for (int e = 0; e < E; ++e) {
    const int m0 = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows <= 0) continue;
    const dim3 grid(ceil_div(N, 64), ceil_div(rows, 64));
    fp8_gemm_simt_kernel<<<grid, 256, 0, stream>>>(
        A + static_cast<size_t>(m0) * K, sa + static_cast<size_t>(m0) * num_kb, B + static_cast<size_t>(e) * N * K,
        sb + static_cast<size_t>(e) * num_nb * num_kb, static_cast<uint8_t*>(D) + static_cast<size_t>(m0) * N * out_bytes,
        out_dtype, rows, N, K);
    if (cudaGetLastError() != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
  }
  std::snprintf(g_last_config, sizeof(g_last_config), "simt 64x64");
  return OCTET_GEMM_OK;
}

// The WGMMA path for experts [0, E) whose rows are offsets[e] .. offsets[e+1] (offsets absolute in A / D).
int run_wgmma(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype,
              const int* offsets, int E, int N, int K, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  DeviceInfo* dev = nullptr;
  int rc = current_device_info(&dev);
  if (rc != OCTET_GEMM_OK) return rc;
  Override ov;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ov = g_override;
  }
  if (ov.path == 2) return run_simt(static_cast<const uint8_t*>(A), sa, static_cast<const uint8_t*>(B), sb, D, out_dtype,
                                    offsets, E, N, K, stream);

  const int M_total = offsets[E];
  const int out_bytes = out_dtype == 0 ? 4 : 2;
  const bool vec = (N % 2 == 0) && aligned(D, 2 * static_cast<size_t>(out_bytes));
  const bool tma_ok = (static_cast<size_t>(N) * out_bytes) % 16 == 0 && aligned(D, 16) &&
                      static_cast<uint64_t>(M_total) * N * out_bytes < (1ull << 40);

  for (int e0 = 0; e0 < E; e0 += kMaxExpertsPerLaunch) {
    const int ne = std::min(kMaxExpertsPerLaunch, E - e0);
    int counts[kMaxExpertsPerLaunch];
    for (int e = 0; e < ne; ++e) counts[e] = offsets[e0 + e + 1] - offsets[e0 + e];
    bool any_rows = false;
    for (int e = 0; e < ne; ++e) any_rows = any_rows || counts[e] > 0;
    if (!any_rows) continue;
    const Plan plan = E == 1 ? cached_dense_plan(counts[0], N, K, out_bytes, *dev, ov, tma_ok)
                             : make_plan(counts, ne, N, K, out_bytes, *dev, ov, tma_ok);
    if (plan.kernel < 0 || plan.tiles == 0) return OCTET_GEMM_ERR_BAD_SHAPE;  // a forced configuration that does not exist
    if (plan.splits > 1 && (workspace == nullptr ||
                            workspace_bytes < static_cast<size_t>(plan.splits) * M_total * static_cast<size_t>(N) * 4))
      return OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL;
    const KernelEntry& ker = kKernels[plan.kernel];

    Schedule sch;
    std::memset(&sch, 0, sizeof(sch));
    sch.num_experts = ne;
    sch.expert_base = e0;
    sch.M_total = M_total;
    sch.N = N;
    sch.K = K;
    sch.num_kb = K / kBlockK;
    sch.num_nb = ceil_div(N, 128);
    sch.num_n_tiles = ceil_div(N, ker.bn);
    int prefix = 0;
    for (int e = 0; e < ne; ++e) {
      sch.offsets[e] = offsets[e0 + e];
      sch.tile_prefix[e] = prefix;
      prefix += counts[e] > 0 ? ceil_div(counts[e], ker.bm) : 0;
    }
    sch.offsets[ne] = offsets[e0 + ne];
    sch.tile_prefix[ne] = prefix;
    sch.num_m_tiles = prefix;
    // Work units: tiles, or with multicast pairs of M-tiles (the odd one out pairs with a store-nothing twin).
    sch.num_tiles = (ker.mc > 1 ? (prefix + 1) / 2 : prefix) * sch.num_n_tiles * plan.splits;
    sch.splits = plan.splits;
    sch.kb_per_split = ceil_div(K / kBlockK, plan.splits);
    sch.ws = plan.splits > 1 ? static_cast<float*>(workspace) : nullptr;
    sch.epi_bytes = plan.epi_bytes;
    sch.epi_slots = plan.epi_slots;
    sch.group_n = std::max(1, std::min(plan.group_n, sch.num_n_tiles));
    sch.stages = plan.stages;
    sch.out_bf16 = out_dtype == 1;
    sch.vec_store = (plan.splits > 1 ? (N % 2 == 0) : vec) ? 1 : 0;  // the workspace is cudaMalloc-aligned
    // Diagnostics only: OCTET_GEMM_SM90_PINGPONG=0 lets both consumer warpgroups issue MMAs at will (version 3).
    static const bool no_pingpong = [] {
      const char* v = std::getenv("OCTET_GEMM_SM90_PINGPONG");
      return v != nullptr && v[0] == '0';
    }();
    sch.pingpong = no_pingpong ? 0 : 1;

    CUtensorMap tm_a, tm_b;
    rc = encode_operand_map(&tm_a, A, static_cast<uint64_t>(M_total), static_cast<uint64_t>(K), ker.bm);
    if (rc != OCTET_GEMM_OK) return rc;
    // B of all experts as one [E_all * N, K] tensor; this launch's experts start at row e0 * N.
    const uint64_t b_rows = static_cast<uint64_t>(e0 + ne) * static_cast<uint64_t>(N);
    rc = encode_operand_map(&tm_b, B, b_rows, static_cast<uint64_t>(K), ker.bn / ker.mc);
    if (rc != OCTET_GEMM_OK) return rc;
    CUtensorMap tm_d;
    std::memset(&tm_d, 0, sizeof(tm_d));
    if (plan.epi_bytes > 0) {
      rc = encode_output_map(&tm_d, D, static_cast<uint64_t>(M_total), static_cast<uint64_t>(N), out_bytes);
      if (rc != OCTET_GEMM_OK) return rc;
    }

    const size_t smem = smem_bytes_for(ker.bm, ker.bn, plan.stages, plan.epi_bytes);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (!dev->attr_set[plan.kernel]) {
        if (cudaFuncSetAttribute(reinterpret_cast<const void*>(ker.fn), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 dev->smem_optin) != cudaSuccess)
          return OCTET_GEMM_ERR_CUDA;
        dev->attr_set[plan.kernel] = true;
      }
    }
    const int threads = ker.bm / 64 * 128 + 128;
    if (ker.mc == 1) {
      ker.fn<<<plan.grid, threads, smem, stream>>>(tm_a, tm_b, tm_d, sa, sb, D, sch);
    } else {
      cudaLaunchConfig_t cfg = {};
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = ker.mc;
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
      cfg.gridDim = dim3(plan.grid, 1, 1);
      cfg.blockDim = dim3(threads, 1, 1);
      cfg.dynamicSmemBytes = smem;
      cfg.stream = stream;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      if (cudaLaunchKernelEx(&cfg, ker.fn, tm_a, tm_b, tm_d, sa, sb, D, sch) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
    }
    if (cudaGetLastError() != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
    if (plan.splits > 1) {  // dense only (E == 1): D = sum of the splits' partial sums
      const size_t count = static_cast<size_t>(M_total) * N;
      const int blocks = static_cast<int>(std::min<size_t>((count + 255) / 256, static_cast<size_t>(dev->sms) * 8));
      splitk_reduce_kernel<<<blocks, 256, 0, stream>>>(static_cast<const float*>(workspace), D, count, plan.splits,
                                                       out_dtype == 1);
      if (cudaGetLastError() != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
    }
    std::snprintf(g_last_config, sizeof(g_last_config), "wgmma %dx%d%s%s st%d grid%d units%d band%d%s%s est%.0fus",
                  ker.bm, ker.bn, ker.promote_k == 32 ? "p32" : "", ker.mc > 1 ? "mc2" : "", plan.stages, plan.grid,
                  sch.num_tiles, sch.group_n, plan.epi_bytes <= 0 ? "" : plan.epi_slots == 0 ? " tma" : plan.epi_slots == 1 ? " tmaR1" : " tmaR2",
                  plan.splits > 1 ? (" sk" + std::to_string(plan.splits)).c_str() : "", plan.est_us);
  }
  return OCTET_GEMM_OK;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// C API
// ------------------------------------------------------------------------------------------------------------
// Split-K (small M, large K) keeps fp32 partial sums in the workspace: splits x M x N x 4 bytes for the plan
// this shape gets on the current device (bf16 and fp32 output may plan differently: the larger is returned).
// Everything else travels in the kernel parameters, so other shapes need none.
extern "C" size_t octet_fp8_gemm_sm90_workspace(int M, int N, int K) {
  if (M < 1 || N < 1 || K <= 0 || K % kBlockK != 0) return 0;
  DeviceInfo* dev = nullptr;
  if (current_device_info(&dev) != OCTET_GEMM_OK) return 0;
  Override ov;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ov = g_override;
  }
  if (ov.path == 2) return 0;
  size_t need = 0;
  for (int out_bytes = 2; out_bytes <= 4; out_bytes += 2) {
    for (int tma = 0; tma < 2; ++tma) {  // the plan with and without a TMA-eligible D
      const Plan plan = cached_dense_plan(M, N, K, out_bytes, *dev, ov, tma == 1);
      if (plan.kernel >= 0 && plan.splits > 1)
        need = std::max(need, static_cast<size_t>(plan.splits) * static_cast<size_t>(M) * static_cast<size_t>(N) * 4);
    }
  }
  return need;
}

extern "C" int octet_fp8_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype,
                                   int M, int N, int K, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  int rc = check_common(A, sa, B, sb, D, out_dtype, N, K);
  if (rc != OCTET_GEMM_OK) return rc;
  if (M < 1) return OCTET_GEMM_ERR_BAD_SHAPE;
  if (workspace_bytes < octet_fp8_gemm_sm90_workspace(M, N, K)) return OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL;
  if (workspace_bytes > 0 && (workspace == nullptr || !aligned(workspace, 16))) return OCTET_GEMM_ERR_MISALIGNED;
  const int offsets[2] = {0, M};
  return run_wgmma(A, sa, B, sb, D, out_dtype, offsets, 1, N, K, workspace, workspace_bytes, stream);
}

extern "C" size_t octet_fp8_grouped_gemm_sm90_workspace(int E, int M_total, int N, int K) {
  (void)E;
  (void)M_total;
  (void)N;
  (void)K;
  return 0;
}

extern "C" int octet_fp8_grouped_gemm_sm90(const void* A, const float* sa, const void* B, const float* sb, void* D,
                                           int out_dtype, const int* offsets_host, int E, int N, int K, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream) {
  if (out_dtype != 0 && out_dtype != 1) return OCTET_GEMM_ERR_BAD_DTYPE;
  if (K <= 0 || K % kBlockK != 0) return OCTET_GEMM_ERR_K_NOT_MULTIPLE_OF_128;
  if (E < 1 || N < 1) return OCTET_GEMM_ERR_BAD_SHAPE;
  if (offsets_host == nullptr || offsets_host[0] < 0) return OCTET_GEMM_ERR_BAD_OFFSETS;
  for (int e = 0; e < E; ++e)
    if (offsets_host[e + 1] < offsets_host[e]) return OCTET_GEMM_ERR_BAD_OFFSETS;
  if (static_cast<long long>(E) * N >= (1ll << 31)) return OCTET_GEMM_ERR_BAD_SHAPE;
  const int M_total = offsets_host[E];
  if (workspace_bytes < octet_fp8_grouped_gemm_sm90_workspace(E, M_total, N, K)) return OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL;
  (void)workspace;
  if (M_total == offsets_host[0]) return OCTET_GEMM_OK;  // no rows at all
  const int rc = check_common(A, sa, B, sb, D, out_dtype, N, K);
  if (rc != OCTET_GEMM_OK) return rc;
  return run_wgmma(A, sa, B, sb, D, out_dtype, offsets_host, E, N, K, nullptr, 0, stream);  // no split-K for groups
}

extern "C" const char* octet_gemm_sm90_error(int code) {
  switch (code) {
    case OCTET_GEMM_OK: return "success";
    case OCTET_GEMM_ERR_K_NOT_MULTIPLE_OF_128: return "K must be a positive multiple of 128";
    case OCTET_GEMM_ERR_BAD_SHAPE: return "bad shape: M, N and E must be >= 1 and E*N < 2^31 (or a forced tile configuration does not exist)";
    case OCTET_GEMM_ERR_NULL_POINTER: return "a required device pointer is null";
    case OCTET_GEMM_ERR_MISALIGNED: return "misaligned pointer: A and B need 16-byte alignment, sa and sb 4 bytes, D its element size";
    case OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL: return "workspace smaller than the _workspace function asked for";
    case OCTET_GEMM_ERR_BAD_DTYPE: return "out_dtype must be 0 (fp32) or 1 (bf16)";
    case OCTET_GEMM_ERR_BAD_OFFSETS: return "expert offsets must be given, start at >= 0 and never decrease";
    case OCTET_GEMM_ERR_NO_TENSOR_MAP_ENCODER: return "cuTensorMapEncodeTiled is not available from the driver";
    case OCTET_GEMM_ERR_TENSOR_MAP: return "cuTensorMapEncodeTiled rejected a tensor map";
    case OCTET_GEMM_ERR_CUDA: return "a CUDA runtime call or kernel launch failed";
    case OCTET_GEMM_ERR_UNSUPPORTED_DEVICE: return "the current device is not compute capability 9.0 (Hopper, sm_90a)";
    default: return "unknown error code";
  }
}

// ------------------------------------------------------------------------------------------------------------
// Debugging hooks for the harness (not part of the header's API).
// ------------------------------------------------------------------------------------------------------------
// path 0: automatic; 1: the WGMMA kernel bm x bn (stages / group_n <= 0 keep the automatic values);
// 2: the simple SIMT kernel; 3: the precise WGMMA kernels that promote after every wgmma (K = 32); 4: the 2-CTA
// multicast kernels (dense calls only; grouped calls use the automatic choice). For 3 and 4, bm x bn picks one,
// bm = 0 the automatic choice within the family. Returns 0, or OCTET_GEMM_ERR_BAD_SHAPE when no such kernel is
// compiled.
extern "C" int octet_fp8_gemm_sm90_debug_force(int path, int bm, int bn, int stages, int group_n) {
  if (path < 0 || path > 4) return OCTET_GEMM_ERR_BAD_SHAPE;
  if ((path == 1 || ((path == 3 || path == 4) && bm > 0)) &&
      find_kernel(bm, bn, path == 3 ? 32 : 128, path == 4 ? 2 : 1) < 0)
    return OCTET_GEMM_ERR_BAD_SHAPE;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_override = Override{path, bm, bn, stages, group_n, g_override.epilogue, g_override.splitk};
  return OCTET_GEMM_OK;
}

// epilogue: 0 automatic, 1 direct stores from registers (version 1), 2 the TMA-store epilogue wherever D allows
// it (staging chosen by the planner), 3 TMA with the whole tile staged (version 2), 4 TMA through the ring; splitk: 0 automatic, 1 never, S > 1 that many splits of K (dense calls). Kept across debug_force calls.
extern "C" int octet_fp8_gemm_sm90_debug_options(int epilogue, int splitk) {
  if (epilogue < 0 || epilogue > 4 || splitk < 0 || splitk > 64) return OCTET_GEMM_ERR_BAD_SHAPE;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_override.epilogue = epilogue;
  g_override.splitk = splitk;
  return OCTET_GEMM_OK;
}

// The configuration of the last launch, e.g. "wgmma 128x144 st6 grid132 tiles480 band15 est95us".
extern "C" const char* octet_fp8_gemm_sm90_debug_last_config(void) { return g_last_config; }

// Tile shapes compiled in, as "64x16 64x32 ...".
extern "C" const char* octet_fp8_gemm_sm90_debug_kernels(void) {
  static char buf[512];
  static std::once_flag once;
  std::call_once(once, [] {
    size_t used = 0;
    for (int i = 0; i < kNumKernels && used + 16 < sizeof(buf); ++i)
      used += std::snprintf(buf + used, sizeof(buf) - used, "%s%s%dx%d", i ? " " : "",
                            kKernels[i].promote_k == 32 ? "p" : (kKernels[i].mc > 1 ? "mc" : ""), kKernels[i].bm,
                            kKernels[i].bn);
  });
  return buf;
}

// Number of mbarrier waits that gave up (a deadlocked pipeline) since the last reset; *info gets the first
// record: block << 32 | role (1 consumer, 0 producer) << 31 | thread << 16 | slot << 1 | parity.
extern "C" int octet_fp8_gemm_sm90_debug_hangs(unsigned int* count, unsigned long long* info, int reset) {
  if (cudaMemcpyFromSymbol(count, g_hang_count, sizeof(unsigned int)) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
  if (cudaMemcpyFromSymbol(info, g_hang_info, sizeof(unsigned long long)) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
  if (reset) {
    const unsigned int zero = 0;
    const unsigned long long zero64 = 0;
    if (cudaMemcpyToSymbol(g_hang_count, &zero, sizeof(zero)) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
    if (cudaMemcpyToSymbol(g_hang_info, &zero64, sizeof(zero64)) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
  }
  return OCTET_GEMM_OK;
}
