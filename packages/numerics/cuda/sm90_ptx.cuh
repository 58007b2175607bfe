// PTX wrappers of the sm_90a GEMM kernels (gemm_sm90_kernel.cuh): mbarriers, TMA loads and stores (with cluster
// multicast), bulk groups, proxy fences, named barriers, 4-byte cp.async, shared-memory loads and stores, and the
// WGMMA instructions with their shared-memory descriptors. Each is one or a few PTX instructions, forced inline,
// with the operand constraints and "memory" clobbers the kernel's ordering relies on. Device code only; sm_90a
// (wgmma, setmaxnreg and the cluster forms need the architecture-specific target).
#pragma once

#include <cuda.h>

#include <cstdint>

namespace octet::sm90 {

// ---- Shared-memory addresses and mbarriers -----------------------------------------------------------------
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

// ---- TMA (the tensor memory accelerator) and clusters ------------------------------------------------------
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
// ---- Named barriers, cp.async, shared memory ---------------------------------------------------------------
// Named barriers: `count` threads take part; bar.arrive counts without waiting (ping-pong turns between the two
// consumer warpgroups: the 128 of the warpgroup whose turn it becomes arrive, the 128 that take the turn sync).
__device__ __forceinline__ void named_bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
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

// ---- WGMMA -------------------------------------------------------------------------------------------------
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

// wgmma.mma_async m64nNk32, e4m3 x e4m3 -> f32, A and B from shared memory (descriptors), for every N that is a
// multiple of 16 up to 192. The instruction takes its N / 2 accumulators per thread as one brace list of
// operands, and inline asm can neither expand a parameter pack into its operands nor name them, so the list is
// built by the preprocessor: OCTET_WGMMA_REGS_<N> is the template text "%0, %1, ..., %(N/2 - 1)" and
// OCTET_WGMMA_ACC_<N> binds those operands to d[0 .. N/2 - 1], each width eight registers past the one before;
// the descriptors and the scale-d flag follow as operands N/2, N/2 + 1 and N/2 + 2.
#define OCTET_WGMMA_REGS_16 "%0, %1, %2, %3, %4, %5, %6, %7"
#define OCTET_WGMMA_REGS_32 OCTET_WGMMA_REGS_16 ", %8, %9, %10, %11, %12, %13, %14, %15"
#define OCTET_WGMMA_REGS_48 OCTET_WGMMA_REGS_32 ", %16, %17, %18, %19, %20, %21, %22, %23"
#define OCTET_WGMMA_REGS_64 OCTET_WGMMA_REGS_48 ", %24, %25, %26, %27, %28, %29, %30, %31"
#define OCTET_WGMMA_REGS_80 OCTET_WGMMA_REGS_64 ", %32, %33, %34, %35, %36, %37, %38, %39"
#define OCTET_WGMMA_REGS_96 OCTET_WGMMA_REGS_80 ", %40, %41, %42, %43, %44, %45, %46, %47"
#define OCTET_WGMMA_REGS_112 OCTET_WGMMA_REGS_96 ", %48, %49, %50, %51, %52, %53, %54, %55"
#define OCTET_WGMMA_REGS_128 OCTET_WGMMA_REGS_112 ", %56, %57, %58, %59, %60, %61, %62, %63"
#define OCTET_WGMMA_REGS_144 OCTET_WGMMA_REGS_128 ", %64, %65, %66, %67, %68, %69, %70, %71"
#define OCTET_WGMMA_REGS_160 OCTET_WGMMA_REGS_144 ", %72, %73, %74, %75, %76, %77, %78, %79"
#define OCTET_WGMMA_REGS_176 OCTET_WGMMA_REGS_160 ", %80, %81, %82, %83, %84, %85, %86, %87"
#define OCTET_WGMMA_REGS_192 OCTET_WGMMA_REGS_176 ", %88, %89, %90, %91, %92, %93, %94, %95"

#define OCTET_WGMMA_ACC8(i) \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define OCTET_WGMMA_ACC_16 OCTET_WGMMA_ACC8(0)
#define OCTET_WGMMA_ACC_32 OCTET_WGMMA_ACC_16, OCTET_WGMMA_ACC8(8)
#define OCTET_WGMMA_ACC_48 OCTET_WGMMA_ACC_32, OCTET_WGMMA_ACC8(16)
#define OCTET_WGMMA_ACC_64 OCTET_WGMMA_ACC_48, OCTET_WGMMA_ACC8(24)
#define OCTET_WGMMA_ACC_80 OCTET_WGMMA_ACC_64, OCTET_WGMMA_ACC8(32)
#define OCTET_WGMMA_ACC_96 OCTET_WGMMA_ACC_80, OCTET_WGMMA_ACC8(40)
#define OCTET_WGMMA_ACC_112 OCTET_WGMMA_ACC_96, OCTET_WGMMA_ACC8(48)
#define OCTET_WGMMA_ACC_128 OCTET_WGMMA_ACC_112, OCTET_WGMMA_ACC8(56)
#define OCTET_WGMMA_ACC_144 OCTET_WGMMA_ACC_128, OCTET_WGMMA_ACC8(64)
#define OCTET_WGMMA_ACC_160 OCTET_WGMMA_ACC_144, OCTET_WGMMA_ACC8(72)
#define OCTET_WGMMA_ACC_176 OCTET_WGMMA_ACC_160, OCTET_WGMMA_ACC8(80)
#define OCTET_WGMMA_ACC_192 OCTET_WGMMA_ACC_176, OCTET_WGMMA_ACC8(88)

// One m64nNk32 wgmma: p = (scale_d != 0); d = A·Bᵀ + (p ? d : 0). DESC_A, DESC_B and SCALE_D are the operand
// numbers after the N / 2 accumulators.
#define OCTET_WGMMA_M64K32(N, DESC_A, DESC_B, SCALE_D)                                                           \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #SCALE_D ", 0;\n"                                           \
               "wgmma.mma_async.sync.aligned.m64n" #N "k32.f32.e4m3.e4m3 {" OCTET_WGMMA_REGS_##N "}, %" #DESC_A \
               ", %" #DESC_B ", p, 1, 1;\n}\n"                                                                   \
               : OCTET_WGMMA_ACC_##N                                                                            \
               : "l"(desc_a), "l"(desc_b), "n"(kScaleD))

template <int N>
struct Wgmma {
  static_assert(N % 16 == 0 && N >= 16 && N <= 192, "wgmma width: a multiple of 16 up to 192");

  // kScaleD = 0 overwrites d, 1 accumulates into it.
  template <int kScaleD>
  static __device__ __forceinline__ void run(float* d, uint64_t desc_a, uint64_t desc_b) {
    if constexpr (N == 16) OCTET_WGMMA_M64K32(16, 8, 9, 10);
    else if constexpr (N == 32) OCTET_WGMMA_M64K32(32, 16, 17, 18);
    else if constexpr (N == 48) OCTET_WGMMA_M64K32(48, 24, 25, 26);
    else if constexpr (N == 64) OCTET_WGMMA_M64K32(64, 32, 33, 34);
    else if constexpr (N == 80) OCTET_WGMMA_M64K32(80, 40, 41, 42);
    else if constexpr (N == 96) OCTET_WGMMA_M64K32(96, 48, 49, 50);
    else if constexpr (N == 112) OCTET_WGMMA_M64K32(112, 56, 57, 58);
    else if constexpr (N == 128) OCTET_WGMMA_M64K32(128, 64, 65, 66);
    else if constexpr (N == 144) OCTET_WGMMA_M64K32(144, 72, 73, 74);
    else if constexpr (N == 160) OCTET_WGMMA_M64K32(160, 80, 81, 82);
    else if constexpr (N == 176) OCTET_WGMMA_M64K32(176, 88, 89, 90);
    else if constexpr (N == 192) OCTET_WGMMA_M64K32(192, 96, 97, 98);
  }
};

#undef OCTET_WGMMA_M64K32
#undef OCTET_WGMMA_REGS_16
#undef OCTET_WGMMA_REGS_32
#undef OCTET_WGMMA_REGS_48
#undef OCTET_WGMMA_REGS_64
#undef OCTET_WGMMA_REGS_80
#undef OCTET_WGMMA_REGS_96
#undef OCTET_WGMMA_REGS_112
#undef OCTET_WGMMA_REGS_128
#undef OCTET_WGMMA_REGS_144
#undef OCTET_WGMMA_REGS_160
#undef OCTET_WGMMA_REGS_176
#undef OCTET_WGMMA_REGS_192
#undef OCTET_WGMMA_ACC8
#undef OCTET_WGMMA_ACC_16
#undef OCTET_WGMMA_ACC_32
#undef OCTET_WGMMA_ACC_48
#undef OCTET_WGMMA_ACC_64
#undef OCTET_WGMMA_ACC_80
#undef OCTET_WGMMA_ACC_96
#undef OCTET_WGMMA_ACC_112
#undef OCTET_WGMMA_ACC_128
#undef OCTET_WGMMA_ACC_144
#undef OCTET_WGMMA_ACC_160
#undef OCTET_WGMMA_ACC_176
#undef OCTET_WGMMA_ACC_192

}  // namespace octet::sm90
