// Declarations of the router's native CPU kernel. The thread pool and FP guard come from @octet/native-common
// (include/octet/native/pool.h), shared with @octet/numerics' kernels (the router does not depend on that addon).
#pragma once
#include <cstdint>
#include <octet/native/pool.h>

namespace octet_router {

// ---- thread pool, FP environment (@octet/native-common) ---------------------------------------------
using octet_native::ExactFpGuard;
using octet_native::Pool;
using octet_native::pool;

// ---- kernel ----------------------------------------------------------------------------------------
struct RouteShape {
  int64_t tokens;
  int64_t experts;
  int64_t top_k;
  int64_t n_group;
  int64_t topk_group;
  bool norm_topk_prob;
  double routed_scaling_factor;
};

// 2^(j/32), j = 0..31: the table of src/sigmoid.ts. The loader installs the values V8 computed (Math.pow),
// so that both paths use the very same doubles; until then std::pow's are used.
void set_fraction_powers(const double* table32);

// DeepSeek-V3's gate with the sigmoid score function, bit for bit the TypeScript routeTokens (src/route.ts).
// scores may be null (not written). Returns the flat index of the first NaN logit, or -1 (outputs are then
// unspecified).
int64_t route_sigmoid(const float* logits, const RouteShape& shape, const float* bias, int32_t* indices,
                      float* weights, float* scores);

// float32(1 / (1 + exp(-z))) exactly as sigmoidF32 of src/sigmoid.ts (scalar path; for the tests).
float sigmoid_f32(float z);

}  // namespace octet_router
