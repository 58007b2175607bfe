// Public surface of @octet/router.
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
export {
  LoadBalancerStore,
  REMEMBERED_REPORT_IDS,
  type LoadReport,
  type ReportResult,
  type StoreState,
  type LayerStateRecord,
  type GammaPoint,
} from "./service/store.js";
export { loadBalancerHandlers, startRouterServer, stateToWire, stateFromWire, type RouterServer } from "./service/server.js";
