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
