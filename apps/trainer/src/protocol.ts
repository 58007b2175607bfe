// Messages between a job's training thread (train-thread.ts) and the worker's main thread (job.ts).
// Training runs in its own thread so the main event loop stays free for what must never wait on a step:
// BullMQ lock renewal, the cancel subscription, heartbeats, and the gRPC streams of checkpoints and EMA pushes
// (HTTP/2 flow control needs event-loop turns; on the training thread a checkpoint would take one step per window).

import type { JobSpec } from "@octet/jobs";
import type { Config } from "@octet/model";

/** A tensor crossing threads: its bytes in their own (transferred) ArrayBuffer. */
export interface WireTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Index of the shared Int32 control words. */
export const CTRL_STOP = 0;
/** Non-zero while the main thread still stages the previous checkpoint (the thread skips a periodic one). */
export const CTRL_SAVE_BUSY = 1;
export const CTRL_WORDS = 2;

export interface ThreadInit {
  spec: JobSpec;
  /** The resolved config (resolveConfig(spec)): the model, training and data the thread uses. */
  config: Config;
  /** The restored state (tensors + the model's metadata), or null for a fresh start. */
  restore: { tensors: WireTensor[]; meta: Record<string, unknown> } | null;
  /** Shared control words (Int32Array over a SharedArrayBuffer of CTRL_WORDS). */
  control: SharedArrayBuffer;
  /** Push the parameters every this many steps (0: no EMA). */
  emaEvery: number;
  /**
   * The backend: "cpu" (CpuBackend) or "cuda" (@octet/model's backendFor("cuda"): the GPU the process sees first;
   * the worker runs such a job in its own process with CUDA_VISIBLE_DEVICES set to the job's GPUs).
   */
  backend: "cpu" | "cuda";
}

/** Device memory as the backend's pool reports it (CUDA only). */
export interface MemoryNow {
  usedBytes: number;
  peakBytes: number;
}

export type ThreadMessage =
  | {
      type: "ready";
      step: number;
      params: { name: string; shape: number[] }[];
      entropyRate: number | null;
      unigramEntropy: number | null;
      /** The backend's name ("cpu", "cuda") and, on a GPU, CUDA_VISIBLE_DEVICES as the process saw it. */
      backend: string;
      visibleDevices: string | null;
    }
  | {
      type: "step";
      step: number;
      loss: number;
      tokens: number;
      ms: number;
      valLoss?: number;
      /** Time the loop spent on the EMA hand-off and on checkpoint exports since the previous step message (ms). */
      emaStallMs: number;
      checkpointStallMs: number;
      /** Device memory (CUDA; sampled at most once a second, absent otherwise). */
      memory?: MemoryNow;
    }
  | { type: "ema"; step: number; names: string[]; arrays: Float32Array[] }
  | { type: "checkpoint"; step: number; tensors: WireTensor[]; meta: string; loss: number | null; valLoss: number | null }
  | { type: "end"; reason: "done" | "stopped"; step: number; loss: number | null; valLoss: number | null; final: { tensors: WireTensor[]; meta: string } | null }
  | { type: "error"; message: string; kind: "unrecoverable" | "device-lost" | "error" };
