// What the sm_90a GEMM planner (gemm_sm90_plan.h) picks for given shapes on a described device, without a GPU:
// one JSON object per shape on stdout. Built with g++ alone by src/sm90-plan.test.ts, which checks the plans the
// notes document; also handy to see what a shape would get before spending device time on it.
//
//   g++ -std=c++17 -O2 gemm_sm90_plan.cc gemm_sm90_plan_cli.cc -o gemm_sm90_plan
//   ./gemm_sm90_plan [--sms 132] [--smem 232448] [--clusters C] [--out bf16|fp32] [--no-tma]
//                    [--force PATH,BM,BN,STAGES,GROUP_N] [--epilogue E] [--splitk S]  SHAPE...
//
// SHAPE: M,N,K (dense) or N,K:c0,c1,... (grouped: rows per expert). The device defaults to an H100 SXM (132 SMs,
// 227 KiB of opt-in shared memory per block); --clusters C says C 2-CTA clusters fit at once (what the occupancy
// calculator answers on the GPU; without it no multicast kernel is planned). --no-tma: D cannot take the TMA-store
// epilogue. --force/--epilogue/--splitk set the PlanOverride fields as octet_fp8_gemm_sm90_debug_force(path, bm,
// bn, stages, group_n) and octet_fp8_gemm_sm90_debug_options(epilogue, splitk) do.
// Exit status 0, or 2 with a message naming the bad argument.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gemm_sm90_plan.h"

namespace {

using octet::sm90::kKernelShapes;
using octet::sm90::Plan;
using octet::sm90::PlanDevice;
using octet::sm90::PlanOverride;

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr, "gemm_sm90_plan: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: gemm_sm90_plan [--sms N] [--smem BYTES] [--clusters C] [--out bf16|fp32] [--no-tma]\n"
               "                      [--force PATH,BM,BN,STAGES,GROUP_N] [--epilogue E] [--splitk S] M,N,K | N,K:c0,c1,...\n");
  std::exit(2);
}

// A whole decimal integer, or usage() naming `what`.
int parse_int(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < -2147483647L || v > 2147483647L) usage(what + ": not an integer: '" + text + "'");
  return static_cast<int>(v);
}

std::vector<int> parse_ints(const std::string& text, const std::string& what) {
  std::vector<int> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    out.push_back(parse_int(text.substr(start, comma - start), what));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

const char* epilogue_name(const Plan& p) {
  if (p.epi_bytes <= 0) return "direct";
  return p.epi_slots == 0 ? "tma" : p.epi_slots == 1 ? "tmaR1" : "tmaR2";
}

}  // namespace

int main(int argc, char** argv) {
  PlanDevice device{132, 232448, {}};
  PlanOverride ov = {0, 0, 0, 0, 0, 0, 0};
  int clusters = 0, out_bytes = 2;
  bool tma_ok = true;
  std::vector<std::string> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--sms") device.sms = parse_int(value(), arg);
    else if (arg == "--smem") device.smem_optin = parse_int(value(), arg);
    else if (arg == "--clusters") clusters = parse_int(value(), arg);
    else if (arg == "--no-tma") tma_ok = false;
    else if (arg == "--epilogue") ov.epilogue = parse_int(value(), arg);
    else if (arg == "--splitk") ov.splitk = parse_int(value(), arg);
    else if (arg == "--out") {
      const std::string v = value();
      if (v != "bf16" && v != "fp32") usage("--out: bf16 or fp32, not '" + v + "'");
      out_bytes = v == "bf16" ? 2 : 4;
    } else if (arg == "--force") {
      const std::vector<int> f = parse_ints(value(), arg);
      if (f.size() != 5) usage("--force: PATH,BM,BN,STAGES,GROUP_N (five integers)");
      ov.path = f[0];
      ov.bm = f[1];
      ov.bn = f[2];
      ov.stages = f[3];
      ov.group_n = f[4];
    } else if (arg.rfind("--", 0) == 0) {
      usage("unknown option " + arg);
    } else {
      shapes.push_back(arg);
    }
  }
  if (device.sms < 1 || device.smem_optin < 1) usage("--sms and --smem must be positive");
  if (shapes.empty()) usage("no shape given");
  if (clusters > 0) device.max_active_clusters = [clusters](int, size_t) { return clusters; };

  for (const std::string& spec : shapes) {
    std::vector<int> counts;
    int N = 0, K = 0;
    const size_t colon = spec.find(':');
    if (colon == std::string::npos) {
      const std::vector<int> mnk = parse_ints(spec, "shape");
      if (mnk.size() != 3) usage("shape: M,N,K or N,K:c0,c1,..., not '" + spec + "'");
      counts = {mnk[0]};
      N = mnk[1];
      K = mnk[2];
    } else {
      const std::vector<int> nk = parse_ints(spec.substr(0, colon), "grouped shape");
      if (nk.size() != 2) usage("grouped shape: N,K:c0,c1,..., not '" + spec + "'");
      N = nk[0];
      K = nk[1];
      counts = parse_ints(spec.substr(colon + 1), "expert rows");
    }
    const Plan p = octet::sm90::make_plan(counts.data(), static_cast<int>(counts.size()), N, K, out_bytes, device, ov,
                                          tma_ok);
    if (p.kernel < 0) {
      std::printf("{\"shape\":\"%s\",\"refused\":true}\n", spec.c_str());
      continue;
    }
    const auto& k = kKernelShapes[p.kernel];
    std::printf(
        "{\"shape\":\"%s\",\"refused\":false,\"kernel\":%d,\"tile\":\"%dx%d\",\"promote_k\":%d,\"mc\":%d,\"halves\":%d,"
        "\"stages\":%d,\"grid\":%d,\"tiles\":%d,\"group_n\":%d,\"epilogue\":\"%s\",\"epi_bytes\":%d,\"splits\":%d,"
        "\"est_us\":%.3f}\n",
        spec.c_str(), p.kernel, k.bm, k.bn, k.promote_k, k.mc, k.halves, p.stages, p.grid, p.tiles, p.group_n,
        epilogue_name(p), p.epi_bytes, p.splits, p.est_us);
  }
  return 0;
}
