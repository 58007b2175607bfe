// GPU discovery through nvidia-smi, and what a worker offers (GPUs, or CPU slots on a machine without any).

import { execFile } from "node:child_process";

export interface GpuInfo {
  index: number;
  name: string;
  memoryMiB: number;
}

export const NVIDIA_SMI_ARGS = ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"];

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` output. */
export function parseNvidiaSmi(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") continue;
    const parts = line.split(",").map((p) => p.trim());
    if (parts.length < 3) throw new RangeError(`nvidia-smi: cannot parse line ${JSON.stringify(line)}`);
    // The name may itself contain commas: index first, memory last, the name in between.
    const index = Number(parts[0]);
    const memoryMiB = Number(parts[parts.length - 1]);
    const name = parts.slice(1, -1).join(", ");
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`nvidia-smi: bad GPU index in ${JSON.stringify(line)}`);
    gpus.push({ index, name, memoryMiB: Number.isFinite(memoryMiB) ? memoryMiB : 0 });
  }
  return gpus.sort((a, b) => a.index - b.index);
}

/**
 * The GPUs nvidia-smi lists, or [] when it is absent, fails or lists none (the reason is in `note`).
 * Bounded: nvidia-smi gets `timeoutMs` to answer.
 */
export function detectGpus(opts: { command?: string; timeoutMs?: number } = {}): Promise<{ gpus: GpuInfo[]; note?: string }> {
  const command = opts.command ?? "nvidia-smi";
  return new Promise((resolve) => {
    execFile(command, NVIDIA_SMI_ARGS, { timeout: opts.timeoutMs ?? 10_000, encoding: "utf8" }, (err, stdout) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        resolve({ gpus: [], note: code === "ENOENT" ? `${command} not found` : `${command} failed: ${err.message.split("\n")[0]}` });
        return;
      }
      try {
        const gpus = parseNvidiaSmi(stdout);
        resolve(gpus.length ? { gpus } : { gpus, note: `${command} lists no GPU` });
      } catch (e) {
        resolve({ gpus: [], note: (e as Error).message });
      }
    });
  });
}

export interface Offer {
  kind: "gpu" | "cpu";
  slots: number;
  gpus: GpuInfo[];
}

/**
 * What a worker offers: with `gpus` given (>= 1), that many GPU slots (the detected GPUs' descriptions where
 * known); `gpus: 0` forces CPU slots; otherwise every detected GPU, or `cpuSlots` CPU slots when none.
 */
export function decideOffer(detected: GpuInfo[], opts: { gpus?: number; cpuSlots: number }): Offer {
  if (opts.gpus !== undefined && opts.gpus > 0) {
    const gpus: GpuInfo[] = [];
    for (let i = 0; i < opts.gpus; i++) gpus.push(detected[i] ?? { index: i, name: "unknown", memoryMiB: 0 });
    return { kind: "gpu", slots: opts.gpus, gpus };
  }
  if (opts.gpus === undefined && detected.length > 0) return { kind: "gpu", slots: detected.length, gpus: detected };
  return { kind: "cpu", slots: opts.cpuSlots, gpus: [] };
}

/** What a worker does with a job: run it on `backend` with `slots` of its slots, or leave it (never fits here). */
export type JobPlan = { take: true; backend: "cpu" | "cuda" } | { take: false; why: string };

/**
 * Whether this worker can ever run a job asking for `gpus` slots on `device`, and on which backend: a GPU
 * worker trains "auto" and "cuda" jobs on its GPUs (CUDA backend, one GPU per slot) and "cpu" jobs on the CPU
 * backend in those slots; a CPU worker trains "auto" and "cpu" jobs and never takes a "cuda" one. `usable`:
 * the slots the worker still has (GPUs that became unusable are not counted).
 */
export function planJob(spec: { gpus: number; device: "auto" | "cpu" | "cuda" }, offer: Pick<Offer, "kind">, usable: number): JobPlan {
  if (spec.device === "cuda" && offer.kind !== "gpu") return { take: false, why: `the job asks for ${spec.gpus} GPU${spec.gpus === 1 ? "" : "s"} (device cuda) and this worker has none` };
  if (spec.gpus > usable) {
    const unit = offer.kind === "gpu" ? "GPUs" : "CPU slots";
    return { take: false, why: `the job needs ${spec.gpus} slots and this worker has ${usable} ${unit}` };
  }
  return { take: true, backend: offer.kind === "gpu" && spec.device !== "cpu" ? "cuda" : "cpu" };
}
