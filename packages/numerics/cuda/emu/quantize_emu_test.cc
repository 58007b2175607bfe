// Runs the quantization kernels of quantize.cu on the CPU (emu.h) and compares them, bit for bit, with a direct
// transcription of quantizeReference (src/quantize.ts): every kernel (1x128, both layouts, 128x128, generic blocks,
// dequantize), fp32 and bf16 input, e4m3 and e5m2, fp32 and pow2 scales, vector and scalar paths (misaligned input),
// edge shapes, non-finite inputs (codes, count and first index). Outputs are poisoned (0xFF) first.
//   g++ -std=c++20 -O2 -ffp-contract=off -DOCTET_EMU -I<cuda dir> quantize_emu_test.cc && ./a.out [seed] [quick]
// Exit code 0 when every comparison holds; the first differences are printed otherwise.
#include "../quantize.cu"

#include <cstdio>
#include <random>
#include <string>

using namespace octet_cuda;

namespace {

int failures = 0, checks = 0;
std::mt19937_64 rng;

float f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// The specification, scalar: quantizeReference with nonFinite "report" semantics (equal to "throw" on finite input).
struct Ref {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  unsigned long long count = 0, first = ULLONG_MAX;
};
Ref reference(const std::vector<float>& x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int fmt, bool pow2) {
  Ref r;
  const int64_t gr = (rows + br - 1) / br, gc = (cols + bc - 1) / bc;
  r.data.assign(rows * cols, 0);
  r.scales.assign(gr * gc, 0);
  const float fmax = fmt == 0 ? 448.0f : 57344.0f;
  for (int64_t a = 0; a < gr; a++)
    for (int64_t b = 0; b < gc; b++) {
      float amax = 0;
      for (int64_t i = a * br; i < std::min(rows, (a + 1) * br); i++)
        for (int64_t j = b * bc; j < std::min(cols, (b + 1) * bc); j++) {
          const float v = std::fabs(x[i * cols + j]);
          if (v > amax && !std::isinf(v)) amax = v;
        }
      const float clamped = amax > 1e-4f ? amax : 1e-4f;
      float s = clamped / fmax;
      if (pow2 && (bits(s) & 0x7fffff)) s = f32((bits(s) & 0x7f800000u) + 0x800000u);
      const float inv = 1.0f / s;
      r.scales[a * gc + b] = s;
      for (int64_t i = a * br; i < std::min(rows, (a + 1) * br); i++)
        for (int64_t j = b * bc; j < std::min(cols, (b + 1) * bc); j++) {
          const float v = x[i * cols + j];
          if (!std::isfinite(v)) {
            r.count++;
            r.first = std::min<unsigned long long>(r.first, (unsigned long long)(i * cols + j));
          }
          r.data[i * cols + j] = fmt == 0 ? soft_e4m3(v * inv) : soft_e5m2(v * inv);
        }
    }
  return r;
}

std::vector<float> make_input(int64_t rows, int64_t cols, float fmax, bool nonfinite) {
  std::uniform_real_distribution<double> u(0, 1);
  const double lo = -8 + u(rng) * 10, span = u(rng) * 14;
  const float special[] = {0.f, -0.f, 1.f, 1.0625f, 1.1875f, 0.015625f, 0.001953125f, 0.0009765625f, 447.99f, 448.f, 416.f, 440.f,
                           49152.f, 53248.f, 57344.f, 1e-40f, 1.4e-45f, 1e-30f, 1e30f, 3e38f, 1e-4f, 9.99e-5f};
  std::vector<float> x(rows * cols);
  for (auto& v : x) {
    const double p = u(rng);
    const float sgn = u(rng) < 0.5 ? -1.f : 1.f;
    v = p < 0.15 ? sgn * special[rng() % (sizeof(special) / sizeof(float))] : sgn * (float)std::pow(10.0, lo + u(rng) * span);
  }
  for (int64_t r = 0; r < rows; r += 128)
    for (int64_t c = 0; c < cols; c += 5) x[r * cols + c] = u(rng) < 0.5 ? fmax : -fmax;
  if (rows > 2) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.f);
  if (nonfinite) {
    const uint32_t sp[] = {0x7fc00000u, 0xffc00000u, 0x7f800000u, 0xff800000u, 0x7f800001u};
    for (int k = 0; k < 9; k++) x[rng() % x.size()] = f32(sp[k % 5]);
  }
  return x;
}

float emu_decode(uint8_t code, int fmt) {  // formats.ts buildDecodeTable, independently of decode_fp8
  const int mb = fmt == 0 ? 3 : 2, eb = fmt == 0 ? 4 : 5, bias = fmt == 0 ? 7 : 15;
  const int e = (code >> mb) & ((1 << eb) - 1), m = code & ((1 << mb) - 1);
  double v;
  if (fmt == 0 && e == 15 && m == 7) v = NAN;
  else if (fmt == 1 && e == 31) v = m == 0 ? INFINITY : NAN;
  else if (e == 0) v = std::ldexp((double)m / (1 << mb), 1 - bias);
  else v = std::ldexp(1.0 + (double)m / (1 << mb), e - bias);
  return (float)((code & 0x80) ? -v : v);
}

uint16_t to_bf16(float v) {  // formats.ts encodeBf16Scalar
  if (std::isnan(v)) return 0xffff;
  const uint32_t b = bits(v);
  return (uint16_t)((b + (((b >> 16) & 1u) + 0x7fffu)) >> 16);
}

void fail(const std::string& what) {
  if (failures < 25) std::printf("MISMATCH %s\n", what.c_str());
  failures++;
}

void compare(const std::string& what, const uint8_t* data, const float* scales, const Ref& want, int64_t cols,
             const QuantStatus* st) {
  checks++;
  for (size_t i = 0; i < want.scales.size(); i++)
    if (bits(scales[i]) != bits(want.scales[i])) {
      fail(what + ": scale " + std::to_string(i) + " got " + std::to_string(scales[i]) + " want " + std::to_string(want.scales[i]));
      return;
    }
  for (size_t i = 0; i < want.data.size(); i++)
    if (data[i] != want.data[i]) {
      char buf[160];
      std::snprintf(buf, sizeof buf, ": code at (%lld, %lld) got 0x%02x want 0x%02x", (long long)(i / cols), (long long)(i % cols), data[i], want.data[i]);
      fail(what + buf);
      return;
    }
  if (st && (st->count != want.count || (want.count && st->first != want.first)))
    fail(what + ": status count " + std::to_string(st->count) + " first " + std::to_string(st->first) + ", want " +
         std::to_string(want.count) + " / " + std::to_string(want.first));
}

void run_shape(int64_t rows, int64_t cols, bool nonfinite) {
  for (int fmt = 0; fmt < 2; fmt++) {
    const std::vector<float> x32 = make_input(rows, cols, fmt == 0 ? 448.f : 57344.f, nonfinite);
    std::vector<uint16_t> xb(x32.size() + 8);
    std::vector<float> xbv(x32.size());
    for (size_t i = 0; i < x32.size(); i++) {
      xb[i + 1] = to_bf16(x32[i]);  // stored at offset 1 as well: a misaligned copy takes the scalar path
      xbv[i] = f32((uint32_t)xb[i + 1] << 16);
    }
    std::vector<uint16_t> xb0(xb.begin() + 1, xb.begin() + 1 + (ptrdiff_t)x32.size());
    for (int dt = 0; dt < 3; dt++) {  // fp32, bf16 aligned, bf16 misaligned
      const std::vector<float>& vals = dt == 0 ? x32 : xbv;
      const void* in = dt == 0 ? (const void*)x32.data() : dt == 1 ? (const void*)xb0.data() : (const void*)(xb.data() + 1);
      const int in_dtype = dt == 0 ? DT_F32 : DT_BF16;
      for (int p2 = 0; p2 < 2; p2++) {
        const std::string tag = std::to_string(rows) + "x" + std::to_string(cols) + (dt == 0 ? " fp32" : dt == 1 ? " bf16" : " bf16-misaligned") +
                                (fmt == 0 ? " e4m3" : " e5m2") + (p2 ? " pow2" : " fp32-scales") + (nonfinite ? " non-finite" : "");
        const int64_t blocks[][3] = {{1, 128, 0}, {128, 128, 2}, {128, 128, 1}, {128, 1, 0}, {32, 64, 0}, {3, 200, 0}};
        for (auto& bl : blocks) {
          if (bl[2]) set_knob("blocks_variant", (int)bl[2]);  // both kernels of the 128x128 blocks
          const Ref want = reference(vals, rows, cols, bl[0], bl[1], fmt, p2);
          std::vector<uint8_t> data(rows * cols, 0xff);
          std::vector<float> scales(want.scales.size(), f32(0xffffffffu));
          QuantStatus st{0, ULLONG_MAX};
          cudaError_t e;
          if (bl[0] == 1 && bl[1] == 128) e = quantize_rows(in, in_dtype, rows, cols, fmt, p2, data.data(), scales.data(), &st, nullptr);
          else if (bl[0] == 128 && bl[1] == 128) e = quantize_blocks128(in, in_dtype, rows, cols, fmt, p2, data.data(), scales.data(), &st, nullptr);
          else e = quantize_generic(in, in_dtype, rows, cols, bl[0], bl[1], fmt, p2, data.data(), scales.data(), &st, nullptr);
          if (e != cudaSuccess) fail(tag + ": launch error");
          compare(tag + " block " + std::to_string(bl[0]) + "x" + std::to_string(bl[1]) + (bl[2] ? " v" + std::to_string(bl[2]) : ""), data.data(),
                  scales.data(), want, cols, &st);
          // dequantize: f32(decode(code) * scale), and its bf16 rounding
          std::vector<float> deq(rows * cols, f32(0xffffffffu));
          std::vector<uint16_t> deqb(rows * cols, 0x1234);
          dequantize(data.data(), scales.data(), rows, cols, bl[0], bl[1], fmt, deq.data(), DT_F32, nullptr);
          dequantize(data.data(), scales.data(), rows, cols, bl[0], bl[1], fmt, deqb.data(), DT_BF16, nullptr);
          checks++;
          const int64_t gc = (cols + bl[1] - 1) / bl[1];
          for (int64_t i = 0; i < rows * cols; i++) {
            const float code = emu_decode(want.data[i], fmt);
            const float w = code * want.scales[(i / cols / bl[0]) * gc + (i % cols) / bl[1]];
            if (!(bits(deq[i]) == bits(w) || (std::isnan(deq[i]) && std::isnan(w))) || deqb[i] != to_bf16(w)) {
              fail(tag + ": dequantize element " + std::to_string(i));
              break;
            }
          }
        }
        // both layouts from one read
        const Ref wr = reference(vals, rows, cols, 1, 128, fmt, p2);
        std::vector<float> xt(rows * cols);
        for (int64_t r = 0; r < rows; r++)
          for (int64_t c = 0; c < cols; c++) xt[c * rows + r] = vals[r * cols + c];
        const Ref wt = reference(xt, cols, rows, 1, 128, fmt, p2);
        for (int variant = 1; variant <= 3; variant++) {  // v2/v3 where the shape is aligned, v1 otherwise and as the knob says
          set_knob("both_variant", variant);
          std::vector<uint8_t> rd(rows * cols, 0xff), td(rows * cols, 0xff);
          std::vector<float> rs(wr.scales.size(), f32(0xffffffffu)), ts(wt.scales.size(), f32(0xffffffffu));
          QuantStatus st{0, ULLONG_MAX};
          if (quantize_both(in, in_dtype, rows, cols, fmt, p2, rd.data(), rs.data(), td.data(), ts.data(), &st, nullptr) != cudaSuccess)
            fail(tag + ": both launch error");
          const std::string v = " both v" + std::to_string(variant);
          compare(tag + v + "/rowwise", rd.data(), rs.data(), wr, cols, &st);
          compare(tag + v + "/transposed", td.data(), ts.data(), wt, rows, nullptr);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned long long seed = argc > 1 ? std::stoull(argv[1]) : std::random_device{}();
  rng.seed(seed);
  std::printf("quantize.cu under emulation, seed %llu\n", seed);
  // FastDiv: exact for the divisors and numerators the kernels use
  for (uint32_t d = 1; d < 3000; d++) {
    FastDiv f(d);
    for (uint32_t n : {0u, 1u, d - 1, d, d + 1, 2 * d + 7, 12345u, 0x7ffffffeu, (uint32_t)(rng() & 0x7fffffffu)})
      if (f.div(n) != n / d) fail("FastDiv " + std::to_string(n) + " / " + std::to_string(d));
  }
  // cvt model + fix-up == PyTorch's algorithm on a sample of bit patterns (the device checks all 2^32)
  for (int i = 0; i < 2000000; i++) {
    const uint32_t b = i < 65536 ? ((uint32_t)i << 16) | (uint32_t)(rng() & 0xffff) : (uint32_t)rng();
    const float v = f32(b);
    if (fix_overflow<0>(emu::cvt_satfinite(v, 0), v, b) != soft_e4m3(v)) { fail("e4m3 cast of 0x" + std::to_string(b)); break; }
    if (fix_overflow<1>(emu::cvt_satfinite(v, 1), v, b) != soft_e5m2(v)) { fail("e5m2 cast of 0x" + std::to_string(b)); break; }
  }
  const bool quick = argc > 2 && std::string(argv[2]) == "quick";
  const std::vector<std::pair<int64_t, int64_t>> shapes = quick
      ? std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 300}, {129, 136}, {208, 1032}, {256, 256}}
      : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 300}, {130, 300}, {129, 136}, {256, 256}, {208, 1032}, {16, 7168}, {144, 392}};
  for (auto& s : shapes) {
    run_shape(s.first, s.second, false);
    std::printf("  %lldx%lld done (%d comparisons, %d failures)\n", (long long)s.first, (long long)s.second, checks, failures);
  }
  run_shape(130, 300, true);
  run_shape(256, 256, true);  // aligned: the v2 kernels' non-finite paths
  std::printf("%s: %d comparisons, %d failures (seed %llu)\n", failures ? "FAIL" : "OK", checks, failures, seed);
  return failures ? 1 : 0;
}
