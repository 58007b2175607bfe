// Block-scaled FP8 GEMM for Hopper (sm_90a), C = A · Bᵀ with FP32 promotion every 128 of K: the C API of
// gemm_sm90.h. Argument checks, the device's properties, the plan (gemm_sm90_plan.h, cached for dense shapes),
// the TMA descriptors and the launch of the kernels of gemm_sm90_kernel.cuh (the WGMMA kernel, the SIMT fallback,
// the split-K reduction), and the debugging hooks the harness (gemm_sm90_test.cu) forces configurations with.
// Specification: packages/numerics/src/gemm.ts (scaledMatmulReference, accumulation "promoted").
// Design notes and predictions: packages/numerics/bench/history/GEMM-NOTES.md.
#include "gemm_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "gemm_sm90_kernel.cuh"
#include "gemm_sm90_plan.h"

using namespace octet::sm90;

namespace {

using KernelFn = void (*)(CUtensorMap, CUtensorMap, CUtensorMap, const float*, const float*, void*, Schedule);

// The WGMMA kernel of every row of the planner's kKernelShapes, in its order (a plan's kernel index is an index here).
template <size_t... I>
std::array<KernelFn, sizeof...(I)> instantiate_kernels(std::index_sequence<I...>) {
  return {{&fp8_gemm_sm90_kernel<kKernelShapes[I].bm, kKernelShapes[I].bn, kKernelShapes[I].promote_k,
                                 kKernelShapes[I].mc, kKernelShapes[I].halves>...}};
}
const std::array<KernelFn, kNumKernels> kKernelFns = instantiate_kernels(std::make_index_sequence<kNumKernels>{});

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

// Debugging hooks (see octet_fp8_gemm_sm90_debug_force below): all 0 = automatic choice.
PlanOverride g_override = {0, 0, 0, 0, 0, 0, 0};
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

// Clusters of kernel i that can be resident at once (multicast kernels), asked once per device.
int max_active_clusters(DeviceInfo& dev, int i, size_t smem) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (dev.max_clusters[i] == 0) {
    int n = 0;
    const KernelShape& ker = kKernelShapes[i];
    if (cudaFuncSetAttribute(reinterpret_cast<const void*>(kKernelFns[i]), cudaFuncAttributeMaxDynamicSharedMemorySize,
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
      if (cudaOccupancyMaxActiveClusters(&n, kKernelFns[i], &cfg) != cudaSuccess) n = 0;
    }
    (void)cudaGetLastError();
    dev.max_clusters[i] = n > 0 ? n : -1;
  }
  return dev.max_clusters[i];
}

// The planner's view of the device; multicast kernels ask the occupancy calculator (once per device and kernel).
PlanDevice plan_device(DeviceInfo& dev) {
  return PlanDevice{dev.sms, dev.smem_optin, [&dev](int kernel, size_t smem_bytes) {
                      return max_active_clusters(dev, kernel, smem_bytes);
                    }};
}

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

// Dense plans are cached (the search covers ~260 candidates: kernels x epilogues x splits), so a call costs the
// host no more than version 1 did. Keyed on everything make_plan reads.
struct PlanKey {
  int dev, M, N, K, out_bytes, tma_ok, sms, smem;
  PlanOverride ov;
  bool operator==(const PlanKey& o) const { return std::memcmp(this, &o, sizeof(PlanKey)) == 0; }
};
constexpr int kPlanCache = 32;
PlanKey g_plan_keys[kPlanCache];
Plan g_plans[kPlanCache];
int g_plan_count = 0, g_plan_next = 0;

Plan cached_dense_plan(int M, int N, int K, int out_bytes, DeviceInfo& dev, const PlanOverride& ov, bool tma_ok) {
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
  const Plan plan = make_plan(counts, 1, N, K, out_bytes, plan_device(dev), ov, tma_ok);  // may take g_mutex (multicast)
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
// dev_offsets: the grouped call's offsets on the device (E <= kMaxExpertsPerLaunch); `offsets` is then a host
// stand-in (rows spread evenly) that only the planner sees, and the kernel builds its tile table from dev_offsets.
int run_wgmma(const void* A, const float* sa, const void* B, const float* sb, void* D, int out_dtype,
              const int* offsets, int E, int N, int K, void* workspace, size_t workspace_bytes, cudaStream_t stream,
              const int* dev_offsets = nullptr) {
  DeviceInfo* dev = nullptr;
  int rc = current_device_info(&dev);
  if (rc != OCTET_GEMM_OK) return rc;
  PlanOverride ov;
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
    PlanDevice pdev = plan_device(*dev);
    if (dev_offsets != nullptr) pdev.smem_optin -= static_cast<int>(kDeviceTableBytes);  // the schedule's copy
    const Plan plan = E == 1 && dev_offsets == nullptr ? cached_dense_plan(counts[0], N, K, out_bytes, *dev, ov, tma_ok)
                                                       : make_plan(counts, ne, N, K, out_bytes, pdev, ov, tma_ok);
    if (plan.kernel < 0 || plan.tiles == 0) return OCTET_GEMM_ERR_BAD_SHAPE;  // a forced configuration that does not exist
    if (plan.splits > 1 && (workspace == nullptr ||
                            workspace_bytes < static_cast<size_t>(plan.splits) * M_total * static_cast<size_t>(N) * 4))
      return OCTET_GEMM_ERR_WORKSPACE_TOO_SMALL;
    const KernelShape& ker = kKernelShapes[plan.kernel];
    const KernelFn kernel_fn = kKernelFns[plan.kernel];

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
    sch.dev_offsets = dev_offsets;
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

    const size_t smem = smem_bytes_for(ker.bm, ker.bn, plan.stages, plan.epi_bytes) + (dev_offsets ? kDeviceTableBytes : 0);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (!dev->attr_set[plan.kernel]) {
        if (cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel_fn), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 dev->smem_optin) != cudaSuccess)
          return OCTET_GEMM_ERR_CUDA;
        dev->attr_set[plan.kernel] = true;
      }
    }
    const int threads = ker.bm / 64 * 128 + 128;
    if (ker.mc == 1) {
      kernel_fn<<<plan.grid, threads, smem, stream>>>(tm_a, tm_b, tm_d, sa, sb, D, sch);
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
      if (cudaLaunchKernelEx(&cfg, kernel_fn, tm_a, tm_b, tm_d, sa, sb, D, sch) != cudaSuccess) return OCTET_GEMM_ERR_CUDA;
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
  PlanOverride ov;
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

extern "C" int octet_fp8_grouped_gemm_sm90_device_offsets(const void* A, const float* sa, const void* B, const float* sb,
                                                          void* D, int out_dtype, const int* offsets, int E, int M_total,
                                                          int N, int K, cudaStream_t stream) {
  if (out_dtype != 0 && out_dtype != 1) return OCTET_GEMM_ERR_BAD_DTYPE;
  if (K <= 0 || K % kBlockK != 0) return OCTET_GEMM_ERR_K_NOT_MULTIPLE_OF_128;
  if (E < 1 || E > kMaxExpertsPerLaunch || N < 1 || M_total < 0) return OCTET_GEMM_ERR_BAD_SHAPE;
  if (offsets == nullptr) return OCTET_GEMM_ERR_BAD_OFFSETS;
  if (static_cast<long long>(E) * N >= (1ll << 31)) return OCTET_GEMM_ERR_BAD_SHAPE;
  if (M_total == 0) return OCTET_GEMM_OK;
  const int rc = check_common(A, sa, B, sb, D, out_dtype, N, K);
  if (rc != OCTET_GEMM_OK) return rc;
  if (!aligned(offsets, 4)) return OCTET_GEMM_ERR_MISALIGNED;
  // The planner sees the rows spread evenly (the real split is known only on the device).
  int even[kMaxExpertsPerLaunch + 1];
  for (int e = 0; e <= E; ++e) even[e] = static_cast<int>(static_cast<long long>(M_total) * e / E);
  return run_wgmma(A, sa, B, sb, D, out_dtype, even, E, N, K, nullptr, 0, stream, offsets);
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
  g_override = PlanOverride{path, bm, bn, stages, group_n, g_override.epilogue, g_override.splitk};
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
                            kKernelShapes[i].promote_k == 32 ? "p" : (kKernelShapes[i].mc > 1 ? "mc" : ""),
                            kKernelShapes[i].bm, kKernelShapes[i].bn);
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
