// Public surface of @octet/router: the gate, load balancing, dispatch and placement. The gRPC
// LoadBalancerService and its store are @octet/router/service, so importing the library (as the model's
// training thread does) does not load @grpc/grpc-js.
export {
  routeTokens,
  routeTokensBackward,
  validateRouteOptions,
  type RouteOptions,
  type RouteResult,
  type RouteBackwardOptions,
  type RouteShape,
  type ScoreFunction,
} from "./route.js";
export { routeTokensReference } from "./route-reference.js";
export { sigmoidF32 } from "./sigmoid.js";
export {
  AuxFreeBalancer,
  updatedBias,
  totalLoads,
  loadStats,
  summarizeLoads,
  sequenceBalanceLoss,
  DEEPSEEK_V3_ALPHA,
  type ExpertLoads,
  type LoadStats,
  type LoadSummary,
  type BalancerOptions,
  type BalancerState,
  type BalancerStepReport,
  type SequenceBalanceLossOptions,
  type SequenceBalanceLoss,
} from "./balance.js";
export { gammaAt, parseGammaSchedule, gammaScheduleSchema, DEEPSEEK_V3_GAMMA, type GammaSchedule } from "./schedule.js";
export {
  planDispatch,
  dispatchRows,
  combineRows,
  type DispatchOptions,
  type DispatchPlan,
  type DropPolicy,
} from "./dispatch.js";
export { planPlacement, balancedPacking, replicateExperts, type Placement, type PlacementOptions } from "./placement.js";
export { routerBackend, setRouterBackend, type RouterBackendInfo } from "./native.js";
