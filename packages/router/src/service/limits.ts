// What one request may ask of the LoadBalancerService. Every size a request carries is bounded here, before
// anything is allocated: a PlanPlacement for 65536 nodes × 32768 GPUs with 2^31 − 16 redundant experts is refused
// at once instead of allocating gigabytes and holding the event loop. The defaults are far above any real
// cluster (DeepSeek-V3: 256 routed experts, 32 redundant, 40 nodes × 8 GPUs) and far below what hurts a server.

import { availableParallelism } from "node:os";
import { resourceExhausted } from "@octet/proto";

export interface RouterLimits {
  /** Routed experts per layer: PlanPlacement's loads, ReportLoads' experts. */
  maxExperts: number;
  /** PlanPlacement's redundant_experts (replica slots beyond one per expert). */
  maxRedundantExperts: number;
  /** PlanPlacement's num_nodes. */
  maxNodes: number;
  /** PlanPlacement's gpus_per_node. */
  maxGpusPerNode: number;
  /** PlanPlacement's num_nodes × gpus_per_node. */
  maxGpus: number;
  /** (run, layer) entries the load balancer keeps; ReportLoads creating one more is refused. */
  maxLayers: number;
  /** Placements computed at once on worker threads; one more is refused (RESOURCE_EXHAUSTED) until one ends. */
  maxPlacementWorkers: number;
  /** The longest a placement may run, whatever the call's deadline (DEADLINE_EXCEEDED past it). */
  placementTimeoutMs: number;
}

export const DEFAULT_ROUTER_LIMITS: Readonly<RouterLimits> = Object.freeze({
  maxExperts: 65_536,
  maxRedundantExperts: 65_536,
  maxNodes: 4096,
  maxGpusPerNode: 64,
  maxGpus: 16_384,
  maxLayers: 100_000,
  maxPlacementWorkers: Math.max(1, availableParallelism() - 1),
  placementTimeoutMs: 60_000,
});

/** Flag (without "--") and environment suffix of each limit, as octet-router takes them. */
export const LIMIT_OPTIONS: Record<keyof RouterLimits, { flag: string; env: string }> = {
  maxExperts: { flag: "max-experts", env: "MAX_EXPERTS" },
  maxRedundantExperts: { flag: "max-redundant-experts", env: "MAX_REDUNDANT_EXPERTS" },
  maxNodes: { flag: "max-nodes", env: "MAX_NODES" },
  maxGpusPerNode: { flag: "max-gpus-per-node", env: "MAX_GPUS_PER_NODE" },
  maxGpus: { flag: "max-gpus", env: "MAX_GPUS" },
  maxLayers: { flag: "max-layers", env: "MAX_LAYERS" },
  maxPlacementWorkers: { flag: "max-placement-workers", env: "MAX_PLACEMENT_WORKERS" },
  placementTimeoutMs: { flag: "placement-timeout-ms", env: "PLACEMENT_TIMEOUT_MS" },
};

const ENV_PREFIX = "OCTET_ROUTER";

/** Where a limit is set, for messages: "--max-nodes / OCTET_ROUTER_MAX_NODES". */
export function limitSource(key: keyof RouterLimits): string {
  return `--${LIMIT_OPTIONS[key].flag} / ${ENV_PREFIX}_${LIMIT_OPTIONS[key].env}`;
}

/** Fills in defaults and checks every limit is a positive integer (RangeError naming it otherwise). */
export function resolveLimits(given: Partial<RouterLimits> = {}): RouterLimits {
  const out = { ...DEFAULT_ROUTER_LIMITS, ...given };
  for (const key of Object.keys(LIMIT_OPTIONS) as (keyof RouterLimits)[]) {
    const v = out[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${key} must be a positive integer, got ${v}`);
  }
  return out;
}

/**
 * Limits from OCTET_ROUTER_MAX_EXPERTS, _MAX_REDUNDANT_EXPERTS, _MAX_NODES, _MAX_GPUS_PER_NODE, _MAX_GPUS,
 * _MAX_LAYERS, _MAX_PLACEMENT_WORKERS, _PLACEMENT_TIMEOUT_MS; `flags` (commander's values keyed by field) win.
 * Throws RangeError naming the flag or variable of a bad value.
 */
export function routerLimitsFromEnv(env: NodeJS.ProcessEnv = process.env, flags: Partial<Record<keyof RouterLimits, string>> = {}): RouterLimits {
  const given: Partial<RouterLimits> = {};
  for (const [key, o] of Object.entries(LIMIT_OPTIONS) as [keyof RouterLimits, { flag: string; env: string }][]) {
    const fromFlag = flags[key];
    const raw = fromFlag ?? env[`${ENV_PREFIX}_${o.env}`];
    if (raw === undefined || raw === "") continue;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new RangeError(`${fromFlag !== undefined ? `--${o.flag}` : `${ENV_PREFIX}_${o.env}`} must be a positive integer, got "${raw}"`);
    }
    given[key] = n;
  }
  return resolveLimits(given);
}

/** A PlanPlacement request, checked against the limits; `loads` copied into a Float64Array. */
export interface CheckedPlacement {
  loads: Float64Array;
  numGroups: number;
  numNodes: number;
  gpusPerNode: number;
  redundantExperts: number;
  /** Inner-loop iterations the plan needs, roughly: what decides whether it runs on a worker thread. */
  work: number;
}

function wireCount(field: string, value: unknown, min: number): number {
  if (typeof value !== "number") throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${field} must be an integer >= ${min}, got ${value}`);
  return value;
}

function bounded(field: string, value: number, limits: RouterLimits, key: keyof RouterLimits): number {
  if (value > limits[key]) {
    throw resourceExhausted(`${field} is ${value}, above this server's limit of ${limits[key]} (${limitSource(key)})`);
  }
  return value;
}

/**
 * Checks a PlanPlacement request before anything is allocated: every size against its limit (RESOURCE_EXHAUSTED
 * naming the field and the limit), then the values and their divisibility (RangeError/TypeError, i.e.
 * INVALID_ARGUMENT). Field names are the proto's, as a client in any language sees them.
 */
export function checkPlacementRequest(
  req: { loads?: ArrayLike<number> | null; numGroups?: number | null; numNodes?: number | null; gpusPerNode?: number | null; redundantExperts?: number | null },
  limits: RouterLimits,
): CheckedPlacement {
  const wire = req.loads;
  if (wire === null || wire === undefined || typeof wire !== "object" || typeof wire.length !== "number") throw new TypeError("loads must be an array of numbers");
  const experts = bounded("loads (the number of experts)", wire.length, limits, "maxExperts");
  if (experts === 0) throw new RangeError("loads must not be empty");
  const numNodes = bounded("num_nodes", wireCount("num_nodes", req.numNodes ?? 0, 1), limits, "maxNodes");
  const gpusPerNode = bounded("gpus_per_node", wireCount("gpus_per_node", req.gpusPerNode ?? 0, 1), limits, "maxGpusPerNode");
  const redundantExperts = bounded("redundant_experts", wireCount("redundant_experts", req.redundantExperts ?? 0, 0), limits, "maxRedundantExperts");
  const gpus = bounded("num_nodes × gpus_per_node", numNodes * gpusPerNode, limits, "maxGpus");
  const numGroups = wireCount("num_groups", req.numGroups ?? 0, 1);
  if (experts % numGroups !== 0) throw new RangeError(`the number of experts (${experts}) must be divisible by num_groups (${numGroups})`);
  const physical = experts + redundantExperts;
  if (physical % gpus !== 0) {
    throw new RangeError(`experts + redundant_experts (${physical}) must be divisible by the number of GPUs (${numNodes} nodes × ${gpusPerNode} = ${gpus})`);
  }
  const loads = new Float64Array(experts);
  for (let e = 0; e < experts; e++) {
    const load = wire[e];
    if (typeof load !== "number" || !Number.isFinite(load) || load < 0) throw new RangeError(`loads[${e}] must be a finite non-negative number, got ${load}`);
    loads[e] = load;
  }
  // placement.ts: replicas are handed out one at a time over a node's experts, and a node's physical experts are
  // packed greedily over its GPUs; groups do not divide among the nodes ("global" mode) means one node of all GPUs.
  const hierarchical = numGroups % numNodes === 0;
  const nodes = hierarchical ? numNodes : 1;
  const work = (redundantExperts * experts) / nodes + physical * (gpus / nodes) + numGroups * nodes + physical + experts;
  return { loads, numGroups, numNodes, gpusPerNode, redundantExperts, work };
}
