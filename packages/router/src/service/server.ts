// The gRPC LoadBalancerService (proto/router.proto) over a LoadBalancerStore, on the shared
// @octet/proto scaffolding. RangeError/TypeError thrown by the store become INVALID_ARGUMENT through
// the `unary` wrapper; the store validates before it mutates, so rejected requests change nothing.

import { OctetServer, notFound, octet, services, unary, type ServiceOptions } from "@octet/proto";
import { planPlacement } from "../placement.js";
import { LoadBalancerStore, type GammaPoint, type StoreState } from "./store.js";

type Handlers = services.router.v1.LoadBalancerServiceHandlers;
const { LoadBalancerServiceDefinition, LoadBalancerServiceName } = services.router.v1;

function points(wire: octet.router.v1.IGammaPoint[] | null | undefined): GammaPoint[] {
  return (wire ?? []).map((p) => ({ step: Number(p.step ?? 0), gamma: p.gamma ?? 0 }));
}

export function loadBalancerHandlers(store: LoadBalancerStore): Handlers {
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
    planPlacement: unary((req: octet.router.v1.PlanPlacementRequest) => {
      const placement = planPlacement({
        loads: req.loads,
        numGroups: req.numGroups,
        numNodes: req.numNodes,
        gpusPerNode: req.gpusPerNode,
        redundantExperts: req.redundantExperts,
      });
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
  port: number;
}

/** Starts an OctetServer with the LoadBalancerService (an in-memory store unless one is given). */
export async function startRouterServer(
  options: Omit<ServiceOptions, "name"> & { name?: string },
  store = new LoadBalancerStore(),
): Promise<RouterServer> {
  const server = new OctetServer({ name: "octet-router", ...options });
  server.addService(LoadBalancerServiceDefinition, loadBalancerHandlers(store), LoadBalancerServiceName);
  const { port } = await server.start();
  return { server, store, port };
}
