// @octet/orchestrator: gRPC JobService over Octet's BullMQ GPU queue, metrics and the web view. The typed client
// (JobClient), the job views and JobService's codec live in @octet/jobs (subpaths client, view, wire); they are
// re-exported here, where they were first documented.
export { startOrchestrator, DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, type Orchestrator, type OrchestratorOptions } from "./orchestrator.js";
export { JobClient, type SubmitOptions } from "@octet/jobs/client";
export { JobStore, JobStoreError, CANCEL_KEY_TTL_S, type ListOptions } from "./store.js";
export { EventHub } from "./events.js";
export { watchJob, type WatchOptions } from "./watch.js";
export { OrchestratorMetrics } from "./metrics.js";
export { createJobService } from "./service.js";
export { createHttpApp } from "./http.js";
export { renderCurveSvg } from "./pages.js";
export { probeRedis, RedisUnreachableError, DEFAULT_REDIS_URL, redactUrl } from "./redis.js";
export { jobView, parseProgress, parseResult, tidyCurve, stateName } from "./view.js";
export { JOB_STATES, FINAL_STATES, type JobView, type JobStateName, type CheckpointRef, type CancelOutcome, type ListPage, type QueueCounts, type WatchEvent } from "@octet/jobs/view";
export { specInputFromRequest, specToProto, jobToProto, jobFromProto } from "@octet/jobs/wire";
