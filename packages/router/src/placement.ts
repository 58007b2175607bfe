// Expert placement in the manner of DeepSeek's EPLB (github.com/deepseek-ai/EPLB, eplb.py): our own
// TypeScript, following its semantics for one MoE layer.
//
// Hierarchical mode (when the expert groups divide evenly among the nodes):
//   1. pack expert groups onto nodes so that node loads are balanced (each node gets the same number
//      of groups) — keeps a group's experts, and so node-limited routing's traffic, on one node;
//   2. within each node, give the redundant slots to the experts with the heaviest load per replica;
//   3. pack the node's physical experts onto its GPUs, each GPU the same number, loads balanced.
// Global mode (groups do not divide among nodes): the same with one group and one node, i.e.
// replicate over the whole cluster and pack onto all GPUs.
//
// Greedy choices follow EPLB: items are taken heaviest first and go to the lightest pack that still
// has room; replicas go to the expert with the largest load per replica. Ties go to the lowest index
// (EPLB leaves them to torch.sort / torch.max), so results are deterministic.

import { requireNonNegativeInteger, requirePositiveInteger } from "./validate.js";

export interface PlacementOptions {
  /** Load (e.g. tokens routed) per logical expert. */
  loads: ArrayLike<number>;
  /** Expert groups (nGroup of the router). Must divide the number of experts. */
  numGroups: number;
  numNodes: number;
  gpusPerNode: number;
  /** Extra physical expert slots for replicas of heavy experts. experts + redundantExperts must be
   *  divisible by the number of GPUs. */
  redundantExperts: number;
}

export interface Placement {
  mode: "hierarchical" | "global";
  logicalExperts: number;
  physicalExperts: number;
  gpus: number;
  expertsPerGpu: number;
  /** [physicalExperts] the logical expert each physical slot holds; GPU g owns slots
   *  [g · expertsPerGpu, (g + 1) · expertsPerGpu). */
  physicalToLogical: Int32Array;
  /** [physicalExperts] which replica of its logical expert each slot is (0-based). */
  replicaRank: Int32Array;
  /** [logicalExperts] how many physical replicas each logical expert has. */
  replicaCounts: Int32Array;
  /** [logicalExperts × maxReplicas] physical slots of each logical expert, padded with -1. */
  logicalToPhysical: Int32Array;
  maxReplicas: number;
  /** Per-GPU load of the default contiguous placement without replicas, and of this placement
   *  (a replicated expert's load split evenly among its replicas). */
  gpuLoadBefore: Float64Array;
  gpuLoadAfter: Float64Array;
  /** Heaviest GPU / mean GPU load, before and after (1 is perfect; 1 when there is no load). */
  balanceBefore: number;
  balanceAfter: number;
}

interface Packing {
  packOf: Int32Array;
  rankInPack: Int32Array;
}

/** Packs items into `packs` packs of equal item count, heaviest item first into the lightest pack
 *  that still has room (ties: lowest pack). */
export function balancedPacking(weights: ArrayLike<number>, packs: number): Packing {
  const items = weights.length;
  if (items % packs !== 0) throw new RangeError(`${items} items cannot be split evenly into ${packs} packs`);
  const perPack = items / packs;
  const packOf = new Int32Array(items);
  const rankInPack = new Int32Array(items);
  if (perPack === 1) {
    for (let i = 0; i < items; i++) packOf[i] = i;
    return { packOf, rankInPack };
  }
  const order = Array.from({ length: items }, (_, i) => i).sort((a, b) => weights[b] - weights[a] || a - b);
  const packLoad = new Float64Array(packs);
  const packCount = new Int32Array(packs);
  for (const item of order) {
    let best = -1;
    for (let p = 0; p < packs; p++) {
      if (packCount[p] < perPack && (best < 0 || packLoad[p] < packLoad[best])) best = p;
    }
    packOf[item] = best;
    rankInPack[item] = packCount[best]++;
    packLoad[best] += weights[item];
  }
  return { packOf, rankInPack };
}

interface Replication {
  physicalToLogical: Int32Array;
  replicaRank: Int32Array;
  replicaCounts: Int32Array;
}

/** Gives `physical − logical` extra replicas, one at a time, to the expert whose load per replica is
 *  largest (minimizing the heaviest replica). */
export function replicateExperts(weights: ArrayLike<number>, physical: number): Replication {
  const logical = weights.length;
  if (physical < logical) throw new RangeError(`physical experts (${physical}) fewer than logical (${logical})`);
  const physicalToLogical = new Int32Array(physical);
  const replicaRank = new Int32Array(physical);
  const replicaCounts = new Int32Array(logical).fill(1);
  for (let i = 0; i < logical; i++) physicalToLogical[i] = i;
  for (let slot = logical; slot < physical; slot++) {
    let best = 0;
    for (let e = 1; e < logical; e++) {
      if (weights[e] / replicaCounts[e] > weights[best] / replicaCounts[best]) best = e;
    }
    physicalToLogical[slot] = best;
    replicaRank[slot] = replicaCounts[best]++;
  }
  return { physicalToLogical, replicaRank, replicaCounts };
}

function inversePermutation(permutation: Int32Array): Int32Array {
  const inverse = new Int32Array(permutation.length);
  for (let i = 0; i < permutation.length; i++) inverse[permutation[i]] = i;
  return inverse;
}

function hierarchicalPlacement(
  weights: Float64Array,
  physicalExperts: number,
  numGroups: number,
  numNodes: number,
  gpus: number,
): Replication {
  const logical = weights.length;
  const groupSize = logical / numGroups;
  const groupsPerNode = numGroups / numNodes;
  const logicalPerNode = logical / numNodes;
  const physicalPerNode = physicalExperts / numNodes;
  const gpusPerNode = gpus / numNodes;
  const expertsPerGpu = physicalExperts / gpus;

  // Step 1: groups → nodes. "Node-major" logical order (mlog): node n owns mlog ids
  // [n · logicalPerNode, (n + 1) · logicalPerNode).
  const groupLoad = new Float64Array(numGroups);
  for (let e = 0; e < logical; e++) groupLoad[(e / groupSize) | 0] += weights[e];
  const groupPacking = balancedPacking(groupLoad, numNodes);
  const logicalToNodeMajor = new Int32Array(logical);
  for (let e = 0; e < logical; e++) {
    const g = (e / groupSize) | 0;
    logicalToNodeMajor[e] = (groupPacking.packOf[g] * groupsPerNode + groupPacking.rankInPack[g]) * groupSize + (e % groupSize);
  }
  const nodeMajorToLogical = inversePermutation(logicalToNodeMajor);

  const physicalToLogical = new Int32Array(physicalExperts);
  const replicaRank = new Int32Array(physicalExperts);
  const replicaCounts = new Int32Array(logical);
  for (let node = 0; node < numNodes; node++) {
    // Step 2: replicas within the node.
    const nodeWeights = new Float64Array(logicalPerNode);
    for (let i = 0; i < logicalPerNode; i++) nodeWeights[i] = weights[nodeMajorToLogical[node * logicalPerNode + i]];
    const replication = replicateExperts(nodeWeights, physicalPerNode);
    // Step 3: the node's physical experts → its GPUs.
    const perReplicaLoad = new Float64Array(physicalPerNode);
    for (let p = 0; p < physicalPerNode; p++) {
      const local = replication.physicalToLogical[p];
      perReplicaLoad[p] = nodeWeights[local] / replication.replicaCounts[local];
    }
    const gpuPacking = balancedPacking(perReplicaLoad, gpusPerNode);
    for (let p = 0; p < physicalPerNode; p++) {
      const slot = node * physicalPerNode + gpuPacking.packOf[p] * expertsPerGpu + gpuPacking.rankInPack[p];
      physicalToLogical[slot] = nodeMajorToLogical[node * logicalPerNode + replication.physicalToLogical[p]];
      replicaRank[slot] = replication.replicaRank[p];
    }
    for (let i = 0; i < logicalPerNode; i++) {
      replicaCounts[nodeMajorToLogical[node * logicalPerNode + i]] = replication.replicaCounts[i];
    }
  }
  return { physicalToLogical, replicaRank, replicaCounts };
}

function balanceRatio(gpuLoad: Float64Array): number {
  let sum = 0;
  let max = 0;
  for (const load of gpuLoad) {
    sum += load;
    if (load > max) max = load;
  }
  const mean = sum / gpuLoad.length;
  return mean > 0 ? max / mean : 1;
}

/** Plans where experts (and replicas of the heavy ones) live across nodes and GPUs. */
export function planPlacement(opts: PlacementOptions): Placement {
  if (opts === null || typeof opts !== "object") throw new TypeError("options must be an object");
  const { loads } = opts;
  if (loads === null || typeof loads !== "object" || typeof loads.length !== "number") {
    throw new TypeError("loads must be an array of numbers");
  }
  const logical = loads.length;
  if (logical === 0) throw new RangeError("loads must not be empty");
  const weights = new Float64Array(logical);
  for (let e = 0; e < logical; e++) {
    const load = loads[e];
    if (typeof load !== "number") throw new TypeError(`loads[${e}] must be a number`);
    if (!Number.isFinite(load) || load < 0) throw new RangeError(`loads[${e}] must be a finite non-negative number, got ${load}`);
    weights[e] = load;
  }
  const numGroups = requirePositiveInteger("numGroups", opts.numGroups);
  const numNodes = requirePositiveInteger("numNodes", opts.numNodes);
  const gpusPerNode = requirePositiveInteger("gpusPerNode", opts.gpusPerNode);
  const redundant = requireNonNegativeInteger("redundantExperts", opts.redundantExperts);
  if (logical % numGroups !== 0) throw new RangeError(`experts (${logical}) must be divisible by numGroups (${numGroups})`);
  const gpus = numNodes * gpusPerNode;
  const physicalExperts = logical + redundant;
  if (physicalExperts % gpus !== 0) {
    throw new RangeError(
      `experts + redundantExperts (${physicalExperts}) must be divisible by the number of GPUs (${numNodes} nodes × ${gpusPerNode} = ${gpus})`,
    );
  }
  const hierarchical = numGroups % numNodes === 0;
  const replication = hierarchical
    ? hierarchicalPlacement(weights, physicalExperts, numGroups, numNodes, gpus)
    : hierarchicalPlacement(weights, physicalExperts, 1, 1, gpus);

  const expertsPerGpu = physicalExperts / gpus;
  const gpuLoadAfter = new Float64Array(gpus);
  for (let slot = 0; slot < physicalExperts; slot++) {
    const e = replication.physicalToLogical[slot];
    gpuLoadAfter[(slot / expertsPerGpu) | 0] += weights[e] / replication.replicaCounts[e];
  }
  // Before: the default layout, logical experts in order, split contiguously over the GPUs.
  const gpuLoadBefore = new Float64Array(gpus);
  for (let e = 0; e < logical; e++) gpuLoadBefore[Math.floor((e * gpus) / logical)] += weights[e];

  let maxReplicas = 0;
  for (const count of replication.replicaCounts) maxReplicas = Math.max(maxReplicas, count);
  const logicalToPhysical = new Int32Array(logical * maxReplicas).fill(-1);
  for (let slot = 0; slot < physicalExperts; slot++) {
    logicalToPhysical[replication.physicalToLogical[slot] * maxReplicas + replication.replicaRank[slot]] = slot;
  }
  return {
    mode: hierarchical ? "hierarchical" : "global",
    logicalExperts: logical,
    physicalExperts,
    gpus,
    expertsPerGpu,
    physicalToLogical: replication.physicalToLogical,
    replicaRank: replication.replicaRank,
    replicaCounts: replication.replicaCounts,
    logicalToPhysical,
    maxReplicas,
    gpuLoadBefore,
    gpuLoadAfter,
    balanceBefore: balanceRatio(gpuLoadBefore),
    balanceAfter: balanceRatio(gpuLoadAfter),
  };
}
