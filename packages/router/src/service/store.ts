// The LoadBalancer service's state, independent of the gRPC handlers: one AuxFreeBalancer per (run, layer), with
// idempotent reports and a checkpointable export/import. Every method validates its whole input before
// changing anything, so a bad request leaves the state as it was. Node runs each call to completion
// on one thread, so the updates of one key are serialized without locks. What a request can make the store hold
// is bounded: experts per layer (maxExperts), (run, layer) entries (maxLayers), report id length; run names
// follow the rule every Octet service shares (@octet/proto/names).

import { resourceExhausted } from "@octet/proto";
import { checkRunName } from "@octet/proto/names";
import { AuxFreeBalancer, totalLoads, summarizeLoads } from "../balance.js";
import { gammaAt, parseGammaSchedule, DEEPSEEK_V3_GAMMA, type GammaSchedule } from "../schedule.js";
import { requireNonNegativeInteger, requirePositiveInteger } from "../validate.js";

/** How many report ids per (run, layer) are remembered for deduplication. */
export const REMEMBERED_REPORT_IDS = 4096;
/** The longest report id (characters): 4096 of them are kept per (run, layer). */
export const MAX_REPORT_ID_LENGTH = 256;

export interface LoadBalancerStoreOptions {
  /** Experts per layer (default 65536). */
  maxExperts?: number;
  /** (run, layer) entries kept (default 100000); creating one more is refused with RESOURCE_EXHAUSTED. */
  maxLayers?: number;
}

export interface GammaPoint {
  step: number;
  gamma: number;
}

export interface LoadReport {
  run: string;
  layer: number;
  /** Required to create an entry; 0 or the entry's E afterwards. */
  experts: number;
  /** E summed loads, or ranks × E rank-major. */
  loads: ArrayLike<number>;
  ranks?: number;
  reportId?: string;
  gamma?: GammaPoint[];
}

export interface ReportResult {
  bias: Float32Array;
  step: number;
  maxOverMean: number;
  gamma: number;
  duplicate: boolean;
}

export interface LayerStateRecord {
  run: string;
  layer: number;
  experts: number;
  step: number;
  bias: ArrayLike<number>;
  gamma: GammaPoint[];
  recentReportIds: string[];
}

export interface StoreState {
  version: number;
  layers: LayerStateRecord[];
}

interface Entry {
  run: string;
  layer: number;
  balancer: AuxFreeBalancer;
  gammaPoints: GammaPoint[];
  recentIds: Set<string>; // insertion-ordered: the oldest id is evicted first
}

function keyOf(run: string, layer: number): string {
  return `${layer}\u0000${run}`;
}

function requireRun(run: unknown): string {
  if (typeof run !== "string") throw new TypeError("run must be a string");
  if (run.length === 0) throw new RangeError("run must not be empty");
  return checkRunName(run);
}

function requireReportId(id: unknown): string {
  if (typeof id !== "string") throw new TypeError("report_id must be a string");
  if (id.length > MAX_REPORT_ID_LENGTH) throw new RangeError(`report_id has ${id.length} characters, more than ${MAX_REPORT_ID_LENGTH}`);
  return id;
}

/** Wire points → GammaSchedule (validated); no points means DeepSeek-V3's constant 0.001. */
function scheduleFromPoints(points: GammaPoint[] | undefined, name: string): { schedule: GammaSchedule; points: GammaPoint[] } {
  if (!points || points.length === 0) {
    return { schedule: DEEPSEEK_V3_GAMMA, points: [{ step: 0, gamma: DEEPSEEK_V3_GAMMA }] };
  }
  const schedule = parseGammaSchedule({ kind: "piecewise", points: points.map((p) => [Number(p.step), p.gamma]) }, name);
  return { schedule, points: points.map((p) => ({ step: Number(p.step), gamma: p.gamma })) };
}

function samePoints(a: GammaPoint[], b: GammaPoint[]): boolean {
  return a.length === b.length && a.every((p, i) => p.step === b[i].step && p.gamma === b[i].gamma);
}

export class LoadBalancerStore {
  private entries = new Map<string, Entry>();
  readonly maxExperts: number;
  readonly maxLayers: number;

  constructor(options: LoadBalancerStoreOptions = {}) {
    this.maxExperts = requirePositiveInteger("maxExperts", options.maxExperts ?? 65_536);
    this.maxLayers = requirePositiveInteger("maxLayers", options.maxLayers ?? 100_000);
  }

  private requireExperts(name: string, value: unknown): number {
    const experts = requirePositiveInteger(name, value);
    if (experts > this.maxExperts) throw resourceExhausted(`${name} is ${experts}, above this server's limit of ${this.maxExperts} (--max-experts / OCTET_ROUTER_MAX_EXPERTS)`);
    return experts;
  }

  private requireRoomFor(layers: number): void {
    if (layers > this.maxLayers) {
      throw resourceExhausted(`${layers} (run, layer) entries would be kept, above this server's limit of ${this.maxLayers} (--max-layers / OCTET_ROUTER_MAX_LAYERS)`);
    }
  }

  report(request: LoadReport): ReportResult {
    const run = requireRun(request.run);
    const layer = requireNonNegativeInteger("layer", request.layer);
    const ranks = request.ranks === undefined || request.ranks === 0 ? 1 : requirePositiveInteger("ranks", request.ranks);
    const reportId = requireReportId(request.reportId ?? "");
    const existing = this.entries.get(keyOf(run, layer));
    let experts: number;
    if (existing) {
      experts = existing.balancer.experts;
      if (request.experts !== 0 && request.experts !== undefined && request.experts !== experts) {
        throw new RangeError(`experts is ${request.experts} but (${run}, layer ${layer}) has ${experts}`);
      }
      if (request.gamma && request.gamma.length > 0) {
        const { points } = scheduleFromPoints(request.gamma, "gamma");
        if (!samePoints(points, existing.gammaPoints)) throw new RangeError(`gamma differs from the schedule stored for (${run}, layer ${layer})`);
      }
    } else {
      experts = this.requireExperts("experts", request.experts);
      this.requireRoomFor(this.entries.size + 1);
    }
    if (request.loads === null || typeof request.loads !== "object") throw new TypeError("loads must be an array of numbers");
    if (request.loads.length !== experts * ranks) {
      throw new RangeError(`loads has length ${request.loads.length} but ranks (${ranks}) × experts (${experts}) = ${experts * ranks}`);
    }
    const perRank = Array.from({ length: ranks }, (_, r) => Array.prototype.slice.call(request.loads, r * experts, (r + 1) * experts) as number[]);
    const total = totalLoads(ranks === 1 ? perRank[0] : perRank, experts); // validates every load
    // Everything is valid from here on; only now is state created or changed.
    let entry = existing;
    if (!entry) {
      const { schedule, points } = scheduleFromPoints(request.gamma, "gamma");
      entry = { run, layer, balancer: new AuxFreeBalancer({ experts, gamma: schedule }), gammaPoints: points, recentIds: new Set() };
      this.entries.set(keyOf(run, layer), entry);
    }
    if (reportId !== "" && entry.recentIds.has(reportId)) {
      return {
        bias: Float32Array.from(entry.balancer.bias),
        step: entry.balancer.step,
        maxOverMean: summarizeLoads(total).maxOverMean,
        gamma: gammaAt(entry.balancer.gamma, Math.max(0, entry.balancer.step - 1)),
        duplicate: true,
      };
    }
    const stepReport = entry.balancer.update(total);
    if (reportId !== "") {
      entry.recentIds.add(reportId);
      if (entry.recentIds.size > REMEMBERED_REPORT_IDS) entry.recentIds.delete(entry.recentIds.values().next().value!);
    }
    return {
      bias: Float32Array.from(entry.balancer.bias),
      step: entry.balancer.step,
      maxOverMean: stepReport.maxOverMean,
      gamma: stepReport.gamma,
      duplicate: false,
    };
  }

  /** The bias and step of (run, layer), or undefined when there is none. */
  get(run: string, layer: number): { bias: Float32Array; step: number } | undefined {
    requireRun(run);
    requireNonNegativeInteger("layer", layer);
    const entry = this.entries.get(keyOf(run, layer));
    return entry && { bias: Float32Array.from(entry.balancer.bias), step: entry.balancer.step };
  }

  get size(): number {
    return this.entries.size;
  }

  exportState(): StoreState {
    const layers = [...this.entries.values()]
      .sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : a.layer - b.layer))
      .map((entry) => ({
        run: entry.run,
        layer: entry.layer,
        experts: entry.balancer.experts,
        step: entry.balancer.step,
        bias: Array.from(entry.balancer.bias),
        gamma: entry.gammaPoints.map((p) => ({ ...p })),
        recentReportIds: [...entry.recentIds],
      }));
    return { version: 1, layers };
  }

  /** Validates every layer first; then replaces everything (replace) or the same keys only. */
  importState(state: StoreState, replace: boolean): number {
    if (state === null || typeof state !== "object") throw new TypeError("state must be an object");
    if (state.version !== 1) throw new RangeError(`state.version must be 1, got ${state.version}`);
    if (!Array.isArray(state.layers)) throw new TypeError("state.layers must be an array");
    this.requireRoomFor(state.layers.length);
    const imported = new Map<string, Entry>();
    state.layers.forEach((layerState, i) => {
      const where = `state.layers[${i}]`;
      const run = requireRun(layerState.run);
      const layer = requireNonNegativeInteger(`${where}.layer`, layerState.layer);
      const experts = this.requireExperts(`${where}.experts`, layerState.experts);
      const step = requireNonNegativeInteger(`${where}.step`, Number(layerState.step));
      if (!layerState.bias || layerState.bias.length !== experts) {
        throw new RangeError(`${where}.bias has length ${layerState.bias?.length ?? 0} but experts is ${experts}`);
      }
      const { schedule, points } = scheduleFromPoints(layerState.gamma, `${where}.gamma`);
      const balancer = new AuxFreeBalancer({ experts, step, gamma: schedule, bias: Float32Array.from(layerState.bias) });
      const ids = layerState.recentReportIds ?? [];
      if (!Array.isArray(ids)) throw new TypeError(`${where}.recentReportIds must be strings`);
      ids.forEach((id) => requireReportId(id));
      const key = keyOf(run, layer);
      if (imported.has(key)) throw new RangeError(`${where} repeats (${run}, layer ${layer})`);
      imported.set(key, { run, layer, balancer, gammaPoints: points, recentIds: new Set(ids.slice(-REMEMBERED_REPORT_IDS)) });
    });
    let kept = imported.size;
    if (!replace) for (const key of this.entries.keys()) if (!imported.has(key)) kept++;
    this.requireRoomFor(kept);
    if (replace) this.entries = imported;
    else for (const [key, entry] of imported) this.entries.set(key, entry);
    return imported.size;
  }
}
