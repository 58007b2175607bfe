// @octet/orchestrator: gRPC JobService over Octet's BullMQ GPU queue, metrics and the web view, and a typed client.
export { startOrchestrator, DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, type Orchestrator, type OrchestratorOptions } from "./orchestrator.js";
export { JobClient, type SubmitOptions } from "./client.js";
export { JobStore, JobStoreError, CANCEL_KEY_TTL_S, type CancelOutcome, type ListOptions, type ListPage, type QueueCounts } from "./store.js";
export { EventHub } from "./events.js";
export { watchJob, type WatchEvent, type WatchOptions } from "./watch.js";
export { OrchestratorMetrics } from "./metrics.js";
export { createJobService } from "./service.js";
export { createHttpApp } from "./http.js";
export { renderCurveSvg } from "./pages.js";
export { probeRedis, RedisUnreachableError, DEFAULT_REDIS_URL, redactUrl } from "./redis.js";
export { jobView, parseProgress, parseResult, tidyCurve, stateName, JOB_STATES, FINAL_STATES, type JobView, type JobStateName, type CheckpointRef } from "./view.js";
export { specInputFromRequest, specToProto, jobToProto, jobFromProto } from "./convert.js";
