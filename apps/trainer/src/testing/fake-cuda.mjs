// Stands in for @octet/model's CUDA backend in the trainer's tests on machines without a GPU (the training thread
// loads it when OCTET_TRAINER_TEST_CUDA_BACKEND names this file). It is the CPU backend plus what the trainer asks
// of a device backend — memoryStats() — and, by OCTET_TEST_FAKE_CUDA, the faults a GPU can have:
//   "ok" (default)  80 GiB free; usedBytes = 1000 × (the first visible device + 1), so a test sees CUDA_VISIBLE_DEVICES
//   "small"         1 MiB free: @octet/model's checkFitsDevice refuses the config before training
//   "oom"           the 60th matmul fails as a CUDA out-of-memory error does (CudaOpError's message)
//   "no-context"    creating the backend fails as a GPU that cannot create a context does
import { CpuBackend } from "@octet/model";

export function createBackend() {
  const mode = process.env.OCTET_TEST_FAKE_CUDA ?? "ok";
  const visible = process.env.CUDA_VISIBLE_DEVICES ?? "";
  if (mode === "no-context") {
    throw new Error("CudaBackend: no usable GPU here: CUDA device 0 could not be set up: cudaErrorDevicesUnavailable: CUDA-capable device(s) is/are busy or unavailable");
  }
  const be = new CpuBackend();
  const total = mode === "small" ? 2 ** 20 : 80 * 2 ** 30;
  const used = 1000 * (Number(visible.split(",")[0] || 0) + 1);
  be.memoryStats = () => ({ usedBytes: used, peakBytes: 2 * used, reservedBytes: 0, freeBytes: total, totalBytes: total });
  if (mode === "oom") {
    const matmul = be.matmul.bind(be);
    let calls = 0;
    be.matmul = (a, b) => {
      if (++calls >= 60) throw new Error("CUDA error in matmul(F32[64, 64], F32[64, 64]): cudaMallocAsync(1048576 bytes) failed: cudaErrorMemoryAllocation: out of memory");
      return matmul(a, b);
    };
  }
  return be;
}
