// The model's CUDA op kernels (packages/model/cuda: attention, elementwise ops, loss, MoE gate), loaded from their
// Node-API addon cuda/build/octet_model_cuda.node (built by cuda/build.sh on a machine with nvcc). Each function
// takes raw device addresses (bigint, from @octet/numerics/cuda's devicePointer), sizes, and the process's one
// stream (deviceStream()); it queues work and returns: no allocation, no copy, no synchronization, so a step built
// from them is capturable as a CUDA graph. Argument order and meaning are those of the C declarations in
// packages/model/cuda/*.h (the addon's bindings are generated from them, in camelCase: octet_route_sigmoid →
// routeSigmoid). Optional at run time: modelKernels() returns null and modelKernelsUnavailable() says why.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A kernel launch: device addresses (or null), integers, floats, and the stream last. Throws on a CUDA error. */
export type KernelLaunch = (...args: (bigint | number | null)[]) => void;
/** A workspace-size query: integers in, bytes out. */
export type WorkspaceQuery = (...args: number[]) => number;

/** The kernels every CUDA training step needs; the loader refuses an addon that lacks one (a stale build). */
export const MODEL_KERNELS = [
  "embeddingForward", "embeddingBackward", "rmsnormForward", "rmsnormBackward", "rope", "swigluForward", "swigluBackward",
  "permuteRows", "unpermuteAdd", "rowDot", "scaleRows", "adamwUpdateF32", "adamwUpdateBf16", "sumSquares",
  "clipCoefficient", "scale", "scaleDevice", "addInplace", "f32ToBf16", "bf16ToF32", "auxFreeBiasUpdate",
  "attentionForward", "attentionBackward", "crossEntropy", "countValidTargets", "meanLoss",
  "routeSigmoid", "routeBackward", "routeStatusReset", "planDispatch",
  "groupedGemmRows", "groupedGemmWgrad", "groupedFakeQuantTokenTiles",
] as const;
export const MODEL_WORKSPACE_QUERIES = [
  "embeddingBackwardWorkspaceBytes", "rmsnormBackwardWorkspaceBytes", "sumSquaresWorkspaceBytes",
  "attentionBackwardWorkspaceBytes", "planDispatchWorkspaceBytes",
] as const;

export type ModelKernels = Record<(typeof MODEL_KERNELS)[number], KernelLaunch> &
  Record<(typeof MODEL_WORKSPACE_QUERIES)[number], WorkspaceQuery>;

/** Where the addon is loaded from: $OCTET_MODEL_CUDA_ADDON, else cuda/build/ of this package (from src/ and dist/). */
export function modelKernelsPath(): string {
  return process.env.OCTET_MODEL_CUDA_ADDON || join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cuda", "build", "octet_model_cuda.node");
}

let loaded: ModelKernels | null | undefined;
let reason: string | null = null;

/** The kernels, or null (modelKernelsUnavailable() says why). Loading touches no CUDA API. */
export function modelKernels(): ModelKernels | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  const path = modelKernelsPath();
  if (!existsSync(path)) {
    reason = `the model's CUDA kernels are not built (${path} is missing; run bash packages/model/cuda/build.sh on a machine with nvcc)`;
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
    const missing = [...MODEL_KERNELS, ...MODEL_WORKSPACE_QUERIES].filter((name) => typeof addon[name] !== "function");
    if (missing.length) throw new Error(`the addon lacks ${missing.join(", ")} (stale build? rerun cuda/build.sh)`);
    loaded = addon as ModelKernels;
  } catch (err) {
    reason = `failed to load ${path}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return loaded;
}

/** Why modelKernels() is null (null when it loaded). */
export function modelKernelsUnavailable(): string | null {
  modelKernels();
  return reason;
}
