// The gRPC LoadBalancerService (proto/router.proto) over a LoadBalancerStore, on the shared
// @octet/proto scaffolding. RangeError/TypeError thrown by the store become INVALID_ARGUMENT through
// the `unary` wrapper; the store validates before it mutates, so rejected requests change nothing.
// Every size a request carries is bounded (limits.ts) before anything is allocated, and large placements run on
// worker threads (placement-runner.ts), so one request can neither exhaust memory nor stall health checks.

import { OctetServer, notFound, octet, services, unary, type ServiceOptions } from "@octet/proto";
import { checkPlacementRequest, resolveLimits, type RouterLimits } from "./limits.js";
import { PlacementRunner } from "./placement-runner.js";
import { LoadBalancerStore, type GammaPoint, type StoreState } from "./store.js";

type Handlers = services.router.v1.LoadBalancerServiceHandlers;
const { LoadBalancerServiceDefinition, LoadBalancerServiceName } = services.router.v1;

function points(wire: octet.router.v1.IGammaPoint[] | null | undefined): GammaPoint[] {
  return (wire ?? []).map((p) => ({ step: Number(p.step ?? 0), gamma: p.gamma ?? 0 }));
}

/**
 * LoadBalancerService's methods that change nothing: open without the bearer token when the server has one.
 * ReportLoads and ImportState need it. (PlanPlacement computes without touching the state.)
 */
export const ROUTER_READ_ONLY_METHODS = ["GetBias", "PlanPlacement", "ExportState"] as const;

export interface LoadBalancerHandlerOptions {
  /** Bounds on the requests (defaults: DEFAULT_ROUTER_LIMITS). */
  limits?: Partial<RouterLimits>;
  /** Where placements run; default a PlacementRunner over the limits. */
  runner?: PlacementRunner;
}

export function loadBalancerHandlers(store: LoadBalancerStore, options: LoadBalancerHandlerOptions = {}): Handlers {
  const limits = resolveLimits(options.limits);
  const runner = options.runner ?? new PlacementRunner(limits);
  return {
    reportLoads: unary((req: octet.router.v1.ReportLoadsRequest) => {
      const result = store.report({
        run: req.run,
        layer: req.layer,
        experts: req.experts,
        loads: req.loads,
        ranks: req.ranks,
        reportId: req.reportId,
        gamma: points(req.gamma),
      });
      return {
        bias: Array.from(result.bias),
        step: result.step,
        maxOverMean: result.maxOverMean,
        gamma: result.gamma,
        duplicate: result.duplicate,
      };
    }),
    getBias: unary((req: octet.router.v1.GetBiasRequest) => {
      const found = store.get(req.run, req.layer);
      if (!found) throw notFound(`no bias for run "${req.run}", layer ${req.layer}`);
      return { bias: Array.from(found.bias), step: found.step };
    }),
    planPlacement: unary(async (req: octet.router.v1.PlanPlacementRequest, ctx) => {
      const placement = await runner.plan(checkPlacementRequest(req, limits), ctx.signal);
      return {
        mode: placement.mode,
        physicalToLogical: Array.from(placement.physicalToLogical),
        replicaRank: Array.from(placement.replicaRank),
        replicaCounts: Array.from(placement.replicaCounts),
        gpuLoadBefore: Array.from(placement.gpuLoadBefore),
        gpuLoadAfter: Array.from(placement.gpuLoadAfter),
        balanceBefore: placement.balanceBefore,
        balanceAfter: placement.balanceAfter,
      };
    }),
    exportState: unary(() => stateToWire(store.exportState())),
    importState: unary((req: octet.router.v1.ImportStateRequest) => {
      if (!req.state) throw new RangeError("state is required");
      const layers = store.importState(stateFromWire(req.state), req.replace);
      return { layers };
    }),
  };
}

export function stateToWire(state: StoreState): octet.router.v1.IRouterState {
  return {
    version: state.version,
    layers: state.layers.map((l) => ({
      run: l.run,
      layer: l.layer,
      experts: l.experts,
      step: l.step,
      bias: Array.from(l.bias),
      gamma: l.gamma,
      recentReportIds: l.recentReportIds,
    })),
  };
}

export function stateFromWire(wire: octet.router.v1.IRouterState): StoreState {
  return {
    version: wire.version ?? 0,
    layers: (wire.layers ?? []).map((l) => ({
      run: l.run ?? "",
      layer: l.layer ?? 0,
      experts: l.experts ?? 0,
      step: Number(l.step ?? 0),
      bias: l.bias ?? [],
      gamma: points(l.gamma),
      recentReportIds: l.recentReportIds ?? [],
    })),
  };
}

export interface RouterServer {
  server: OctetServer;
  store: LoadBalancerStore;
  /** Where PlanPlacement's large plans run (its `running` count, for monitoring and tests). */
  placements: PlacementRunner;
  limits: RouterLimits;
  port: number;
  address: string;
}

/**
 * Starts an OctetServer with the LoadBalancerService (an in-memory store over the limits unless one is given).
 * Listens on 127.0.0.1 unless `host` says otherwise.
 */
export async function startRouterServer(
  options: Omit<ServiceOptions, "name"> & { name?: string; limits?: Partial<RouterLimits> },
  store?: LoadBalancerStore,
): Promise<RouterServer> {
  const { limits: given, ...serverOptions } = options;
  const limits = resolveLimits(given);
  const theStore = store ?? new LoadBalancerStore({ maxExperts: limits.maxExperts, maxLayers: limits.maxLayers });
  const placements = new PlacementRunner(limits);
  const server = new OctetServer({ name: "octet-router", ...serverOptions });
  server.addService(LoadBalancerServiceDefinition, loadBalancerHandlers(theStore, { limits, runner: placements }), LoadBalancerServiceName, {
    readOnly: ROUTER_READ_ONLY_METHODS,
  });
  server.onShutdown(() => placements.close());
  const { port, address } = await server.start();
  server.logger.info({ limits }, "router limits");
  return { server, store: theStore, placements, limits, port, address };
}
