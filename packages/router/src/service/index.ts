// @octet/router/service — the gRPC LoadBalancerService (bin octet-router) and its state, the LoadBalancerStore.
// A subpath of its own so that the library at the package root does not load @grpc/grpc-js.
export {
  LoadBalancerStore,
  REMEMBERED_REPORT_IDS,
  MAX_REPORT_ID_LENGTH,
  type LoadBalancerStoreOptions,
  type LoadReport,
  type ReportResult,
  type StoreState,
  type LayerStateRecord,
  type GammaPoint,
} from "./store.js";
export {
  loadBalancerHandlers,
  startRouterServer,
  stateToWire,
  stateFromWire,
  ROUTER_READ_ONLY_METHODS,
  type RouterServer,
  type LoadBalancerHandlerOptions,
} from "./server.js";
export {
  DEFAULT_ROUTER_LIMITS,
  LIMIT_OPTIONS,
  checkPlacementRequest,
  resolveLimits,
  routerLimitsFromEnv,
  type RouterLimits,
  type CheckedPlacement,
} from "./limits.js";
export { PlacementRunner, DEFAULT_INLINE_WORK } from "./placement-runner.js";
