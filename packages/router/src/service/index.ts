// @octet/router/service — the gRPC LoadBalancerService (bin octet-router) and its state, the LoadBalancerStore.
// A subpath of its own so that the library at the package root does not load @grpc/grpc-js.
export {
  LoadBalancerStore,
  REMEMBERED_REPORT_IDS,
  type LoadReport,
  type ReportResult,
  type StoreState,
  type LayerStateRecord,
  type GammaPoint,
} from "./store.js";
export { loadBalancerHandlers, startRouterServer, stateToWire, stateFromWire, type RouterServer } from "./server.js";
