// The sm_90a GEMM planner (gemm_sm90_plan.h): the time model and the search over compiled kernels, epilogues and
// split-K. Host code only, no CUDA: built by nvcc into the addon and the harness, and by g++ alone for its test.
#include "gemm_sm90_plan.h"

#include <algorithm>

namespace octet::sm90 {

// Per stage: the A and B tiles, the k-block's scales and two mbarriers.
int stage_bytes_for(int bm, int bn) { return (bm + bn) * kBlockK + static_cast<int>(scale_stage_bytes(bm)) + 16; }

int stages_for(int bm, int bn, int smem_optin, int epi_bytes) {
  const int avail = smem_optin - 1024 /* alignment slack */ - epi_bytes;
  return std::min(kMaxStages, avail / stage_bytes_for(bm, bn));
}

size_t smem_bytes_for(int bm, int bn, int stages, int epi_bytes) {
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
                   int* tiles_out, bool tma_epi, int stages, int splits, int epi_slots) {
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
    if (kKernelShapes[i].bm == bm && kKernelShapes[i].bn == bn && kKernelShapes[i].promote_k == promote_k &&
        kKernelShapes[i].mc == mc)
      return i;
  return -1;
}

// The search: every compiled kernel of the requested family x epilogue (x split-K when forced), the fastest by
// estimate_us; within 0.5 % the larger tile wins.
Plan make_plan(const int* counts, int E, int N, int K, int out_bytes, const PlanDevice& dev, const PlanOverride& ov,
               bool tma_ok) {
  Plan best;
  if (counts == nullptr || E < 1 || N < 1 || K <= 0 || K % kBlockK != 0 || (out_bytes != 2 && out_bytes != 4)) return best;
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
    if (kKernelShapes[i].promote_k != promote_k || kKernelShapes[i].mc != mc) continue;
    if (forced && i != chosen) continue;
    const int bm = kKernelShapes[i].bm, bn = kKernelShapes[i].bn;
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
        const int clusters =
            dev.max_active_clusters ? dev.max_active_clusters(i, smem_bytes_for(bm, bn, stages, epi_bytes)) : 0;
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
          (t <= best.est_us * 1.005 && (bm > kKernelShapes[best.kernel].bm ||
                                        (bm == kKernelShapes[best.kernel].bm && bn > kKernelShapes[best.kernel].bn)));
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

}  // namespace octet::sm90
