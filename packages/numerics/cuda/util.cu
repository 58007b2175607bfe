// Small device utilities of the CUDA addon: seeded random fills (benchmark inputs generated on the device),
// NaN counting (the "every output element written" check after a NaN poison fill), scale relayouts for
// cuBLASLt, and bf16 <-> f32 conversion.
#include "common.cuh"
#include "kernels.h"

namespace octet_cuda {
namespace {

int blocks_for(int64_t n, int threads) {
  static int sms = 0;
  if (sms == 0) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) sms = 132;
  }
  const int64_t need = (n + threads - 1) / threads;
  const int64_t cap = (int64_t)sms * 16;
  return (int)(need < 1 ? 1 : (need < cap ? need : cap));
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ float unit(uint32_t u) { return (float)(u >> 8) * 5.9604644775390625e-08f; }  // [0, 1)

__global__ void fill_random_kernel(void* p, int dtype, int64_t n, uint64_t seed, int dist, float scale) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t h1 = splitmix64(seed * 0x632be59bd9b4e019ull + (uint64_t)i);
    const uint64_t h2 = splitmix64(h1 ^ 0x5851f42d4c957f2dull);
    if (dtype == DT_E4M3 || dtype == DT_E5M2 || dtype == DT_U8) {
      uint32_t b = (uint32_t)(h1 & 0xffu);
      if (dtype == DT_E4M3 && (b & 0x7fu) == 0x7fu) b ^= 1u;        // no NaN codes
      if (dtype == DT_E5M2 && (b & 0x7cu) == 0x7cu) b &= ~0x40u;    // no inf / NaN codes
      static_cast<uint8_t*>(p)[i] = (uint8_t)b;
      continue;
    }
    float v;
    if (dist == 0) {
      v = (2.0f * unit((uint32_t)h1) - 1.0f) * scale;
    } else if (dist == 1) {  // Irwin-Hall of 4 uniforms, unit variance
      const float s = unit((uint32_t)h1) + unit((uint32_t)(h1 >> 32)) + unit((uint32_t)h2) + unit((uint32_t)(h2 >> 32));
      v = (s - 2.0f) * 1.7320508f * scale;
    } else {
      const float e = (2.0f * unit((uint32_t)h1) - 1.0f) * scale;
      v = exp10f(e) * ((h2 & 1u) ? -1.0f : 1.0f);
    }
    if (dtype == DT_BF16) static_cast<uint16_t*>(p)[i] = encode_bf16(v);
    else static_cast<float*>(p)[i] = v;
  }
}

__global__ void count_nan_kernel(const void* p, int dtype, int64_t n, unsigned long long* count) {
  unsigned long long c = 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t u = dtype == DT_BF16 ? ((uint32_t) static_cast<const uint16_t*>(p)[i]) << 16 : static_cast<const uint32_t*>(p)[i];
    c += (u & 0x7fffffffu) > F32_INF_BITS;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
  if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, c);
}

__global__ void transpose_kernel(const float* __restrict__ in, int64_t rows, int64_t cols, float* __restrict__ out) {
  __shared__ float t[32][33];
  const int64_t r0 = (int64_t)blockIdx.y * 32, c0 = (int64_t)blockIdx.x * 32;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) t[k][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[c * rows + r] = t[threadIdx.x][k];
  }
}

__global__ void transpose_grouped_kernel(const float* __restrict__ in, const int* __restrict__ offsets, int experts,
                                         int64_t cols, float* __restrict__ out) {
  const int64_t total = (int64_t)offsets[experts] * cols;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    int lo = 0, hi = experts;  // the expert e with offsets[e] <= r < offsets[e + 1]
    while (hi - lo > 1) {
      const int mid = (lo + hi) >> 1;
      if (offsets[mid] <= r) lo = mid; else hi = mid;
    }
    const int64_t start = offsets[lo], m = offsets[lo + 1] - start;
    out[start * cols + c * m + (r - start)] = in[i];
  }
}

__global__ void pad_rows_kernel(const float* __restrict__ in, int64_t rows, int64_t cols, int64_t ld, float* __restrict__ out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows * ld; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / ld, c = i - r * ld;
    out[i] = c < cols ? in[r * cols + c] : 0.0f;
  }
}

__global__ void convert_kernel(const void* in, int in_dtype, void* out, int out_dtype, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = in_dtype == DT_BF16 ? __uint_as_float(((uint32_t) static_cast<const uint16_t*>(in)[i]) << 16)
                                        : static_cast<const float*>(in)[i];
    if (out_dtype == DT_BF16) static_cast<uint16_t*>(out)[i] = encode_bf16(v);
    else static_cast<float*>(out)[i] = v;
  }
}

}  // namespace

cudaError_t fill_random(void* p, int dtype, int64_t n, uint64_t seed, int dist, float scale, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  auto k = fill_random_kernel;
  OCTET_LAUNCH(k, blocks_for(n, 256), 256, 0, stream)(p, dtype, n, seed, dist, scale);
  return cudaGetLastError();
}

cudaError_t count_nan(const void* p, int dtype, int64_t n, unsigned long long* count, cudaStream_t stream) {
  cudaError_t e = cudaMemsetAsync(count, 0, sizeof(unsigned long long), stream);
  if (e != cudaSuccess || n <= 0) return e;
  auto k = count_nan_kernel;
  OCTET_LAUNCH(k, blocks_for(n, 256), 256, 0, stream)(p, dtype, n, count);
  return cudaGetLastError();
}

cudaError_t transpose_f32(const float* in, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32));
  if (grid.y > 65535) return cudaErrorInvalidValue;
  auto k = transpose_kernel;
  OCTET_LAUNCH(k, grid, dim3(32, 8), 0, stream)(in, rows, cols, out);
  return cudaGetLastError();
}

cudaError_t transpose_f32_grouped(const float* in, const int* offsets, int experts, int64_t cols, float* out,
                                  cudaStream_t stream) {
  auto k = transpose_grouped_kernel;
  OCTET_LAUNCH(k, blocks_for(1 << 20, 256), 256, 0, stream)(in, offsets, experts, cols, out);
  return cudaGetLastError();
}

cudaError_t pad_rows_f32(const float* in, int64_t rows, int64_t cols, int64_t ld, float* out, cudaStream_t stream) {
  if (rows <= 0 || ld <= 0) return cudaSuccess;
  auto k = pad_rows_kernel;
  OCTET_LAUNCH(k, blocks_for(rows * ld, 256), 256, 0, stream)(in, rows, cols, ld, out);
  return cudaGetLastError();
}

cudaError_t convert(const void* in, int in_dtype, void* out, int out_dtype, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  auto k = convert_kernel;
  OCTET_LAUNCH(k, blocks_for(n, 256), 256, 0, stream)(in, in_dtype, out, out_dtype, n);
  return cudaGetLastError();
}

}  // namespace octet_cuda
