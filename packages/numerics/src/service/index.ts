// @octet/numerics/service — the gRPC NumericsService (bin octet-numerics). A subpath of its own so that the
// library at the package root does not load @grpc/grpc-js.
export { numericsHandlers, startNumericsServer, type NumericsServiceOptions } from "./server.js";
