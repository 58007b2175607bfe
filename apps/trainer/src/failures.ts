// How a training attempt's failure is treated: a config that cannot fit the GPU or a CUDA out-of-memory error
// fails the job for good (a retry would fail the same way); a GPU the process cannot use (no context, device
// gone) fails over like a worker crash — the job goes back to the queue and this worker stops offering that GPU;
// anything else is an ordinary failure, retried while the job has retries left.

import { type Config, type RecipeName, trainingMemoryEstimate } from "@octet/model/config";

export type FailureKind = "unrecoverable" | "device-lost" | "error";

const GiB = 2 ** 30;

/** A CUDA out-of-memory error (the runtime's, the driver's, or the pool's), by its message. */
export function isOutOfMemory(message: string): boolean {
  return /out of memory|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY/i.test(message);
}

/** @octet/model's refusal of a config that cannot fit the GPU (checkFitsDevice's RangeError). */
export function isTooLargeForDevice(e: unknown): boolean {
  return e instanceof RangeError && /^config .* needs about .* GiB/.test(e.message);
}

/** The process cannot use its GPU: no CUDA context, no device, the device fell off the bus. */
export function isDeviceLost(message: string): boolean {
  return /no usable GPU|no usable CUDA device|no CUDA device|could not be set up|cudaErrorNoDevice|cudaErrorDevicesUnavailable|cudaErrorInitializationError|cudaErrorDeviceUninitialized|cudaErrorInsufficientDriver|cudaErrorDevicesUnavailable|CUDA_ERROR_NOT_INITIALIZED|CUDA_ERROR_NO_DEVICE|cudaErrorLaunchFailure|cudaErrorECCUncorrectable|cudaErrorHardwareStackError|GPU has fallen off the bus/.test(message);
}

/** How a failure of the training thread is treated (see the file's header). */
export function classifyFailure(e: unknown, device: "cpu" | "cuda"): FailureKind {
  const message = e instanceof Error ? e.message : String(e);
  if (isTooLargeForDevice(e)) return "unrecoverable";
  if (device === "cuda" && isOutOfMemory(message)) return "unrecoverable";
  if (device === "cuda" && isDeviceLost(message)) return "device-lost";
  return "error";
}

/** "config tiny (fp8, 8 × 64 tokens a step) needs about 1.2 GiB of device memory (GiB: …)": the model's estimate. */
export function memoryEstimateText(config: Config, recipe: RecipeName, device?: { freeBytes: number; totalBytes: number } | null): string {
  const e = trainingMemoryEstimate(config, recipe);
  const parts = Object.entries(e.parts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${(v / GiB).toFixed(2)}`)
    .join(", ");
  const gpu = device ? `; the GPU had ${(device.freeBytes / GiB).toFixed(1)} GiB free of ${(device.totalBytes / GiB).toFixed(1)} at the start` : "";
  return `config ${config.name} (${recipe}, ${config.train.batchSize} × ${config.model.seqLen} tokens a step) needs about ${(e.bytes / GiB).toFixed(1)} GiB of device memory (GiB: ${parts}; +10% margin)${gpu}`;
}
