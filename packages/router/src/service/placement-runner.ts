// Where PlanPlacement's work runs. A small plan (most real ones: a few hundred experts) is computed at once on the
// event loop; a large one on a worker thread of its own, so that health checks and every other call keep being
// answered while it runs. The call's deadline, its cancellation and the server's own time limit terminate the
// worker (the CPU is given back, not just the answer dropped), and only a bounded number run at once.

import { Worker } from "node:worker_threads";
import { deadlineExceeded, resourceExhausted, unavailable } from "@octet/proto";
import { planPlacement, type Placement, type PlacementOptions } from "../placement.js";
import { limitSource, type CheckedPlacement, type RouterLimits } from "./limits.js";
import type { PlacementWorkerReply } from "./placement-worker.js";

/** Plans estimated below this many inner-loop iterations (about a millisecond) run on the event loop. */
export const DEFAULT_INLINE_WORK = 1 << 20;

/** Heap of one placement worker: its arrays are typed arrays (outside the heap); this bounds the rest. */
const WORKER_HEAP_MB = 256;

/** Starts the worker thread of one placement: dist/service/placement-worker.js, or the .ts beside this file under tsx. */
function startWorker(options: ConstructorParameters<typeof Worker>[1]): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./placement-worker.js", import.meta.url), options);
  // From source (this repository's tests run through tsx): Node 20 does not run --import hooks in worker threads,
  // so the worker registers tsx itself before importing its entry.
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./placement-worker.ts", import.meta.url).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`, { ...options, eval: true });
}

/** The error a worker reported, as the same kind of error here (RangeError/TypeError become INVALID_ARGUMENT). */
function rebuilt(reply: Extract<PlacementWorkerReply, { ok: false }>): Error {
  if (reply.name === "RangeError") return new RangeError(reply.message);
  if (reply.name === "TypeError") return new TypeError(reply.message);
  return new Error(`placement failed: ${reply.message}`);
}

export class PlacementRunner {
  private readonly workers = new Set<Worker>();
  private readonly inlineWork: number;
  private closed = false;

  constructor(
    private readonly limits: Pick<RouterLimits, "maxPlacementWorkers" | "placementTimeoutMs">,
    options: { inlineWork?: number } = {},
  ) {
    this.inlineWork = options.inlineWork ?? DEFAULT_INLINE_WORK;
  }

  /** Placements running on worker threads now. */
  get running(): number {
    return this.workers.size;
  }

  /**
   * Plans a checked request. Rejects with `signal.reason` when the signal aborts (the call's deadline or
   * cancellation), DEADLINE_EXCEEDED past placementTimeoutMs, RESOURCE_EXHAUSTED when maxPlacementWorkers
   * placements are already running.
   */
  plan(checked: CheckedPlacement, signal?: AbortSignal): Promise<Placement> {
    const options: PlacementOptions = {
      loads: checked.loads,
      numGroups: checked.numGroups,
      numNodes: checked.numNodes,
      gpusPerNode: checked.gpusPerNode,
      redundantExperts: checked.redundantExperts,
    };
    if (checked.work <= this.inlineWork) return Promise.resolve(planPlacement(options));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.closed) return Promise.reject(unavailable("the router is shutting down"));
    if (this.workers.size >= this.limits.maxPlacementWorkers) {
      return Promise.reject(
        resourceExhausted(`${this.workers.size} large placements are already being computed, this server's limit (${limitSource("maxPlacementWorkers")}); retry later`),
      );
    }
    const worker = startWorker({
      workerData: options,
      transferList: [checked.loads.buffer as ArrayBuffer],
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    this.workers.add(worker);
    return new Promise<Placement>((resolve, reject) => {
      let settled = false;
      const finish = (settle: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.workers.delete(worker);
        void worker.terminate();
        settle();
      };
      const onAbort = () => finish(() => reject(signal!.reason));
      const timer = setTimeout(
        () => finish(() => reject(deadlineExceeded(`the placement ran past this server's limit of ${this.limits.placementTimeoutMs} ms (${limitSource("placementTimeoutMs")})`))),
        this.limits.placementTimeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      worker.once("message", (reply: PlacementWorkerReply) => finish(() => (reply.ok ? resolve(reply.placement) : reject(rebuilt(reply)))));
      worker.once("error", (err: Error & { code?: string }) =>
        finish(() => reject(err.code === "ERR_WORKER_OUT_OF_MEMORY" ? resourceExhausted(`the placement needed more than ${WORKER_HEAP_MB} MiB of heap`) : err)),
      );
      worker.once("exit", (code) =>
        finish(() => reject(this.closed ? unavailable("the router is shutting down") : new Error(`the placement worker exited (code ${code}) before answering`))),
      );
    });
  }

  /** Terminates every placement still running (their calls fail); for shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.workers];
    await Promise.all(running.map((w) => w.terminate()));
  }
}
