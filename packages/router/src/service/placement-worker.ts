// The worker thread a PlacementRunner starts for one placement: plans it and posts the result back (its typed
// arrays transferred, not copied), or the error's name and message. It never touches the service's state.

import { parentPort, workerData } from "node:worker_threads";
import { planPlacement, type PlacementOptions } from "../placement.js";

export type PlacementWorkerReply =
  | { ok: true; placement: ReturnType<typeof planPlacement> }
  | { ok: false; name: string; message: string };

const port = parentPort;
if (!port) throw new Error("placement-worker.ts runs as a worker thread (PlacementRunner starts it)");
let reply: PlacementWorkerReply;
try {
  reply = { ok: true, placement: planPlacement(workerData as PlacementOptions) };
} catch (err) {
  const e = err as Error;
  reply = { ok: false, name: e?.name ?? "Error", message: e?.message ?? String(err) };
}
const transfer = reply.ok
  ? [reply.placement.physicalToLogical, reply.placement.replicaRank, reply.placement.replicaCounts, reply.placement.logicalToPhysical, reply.placement.gpuLoadBefore, reply.placement.gpuLoadAfter].map((a) => a.buffer as ArrayBuffer)
  : [];
port.postMessage(reply, transfer);
