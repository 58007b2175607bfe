// @octet/launcher — octet-up, the main command, as a library: launch(options) and its parts.
export { launch, Interrupted, jsonReady, emaReady, type Summary } from "./launch.js";
export { buildCommand, parseOptions, checkOptions, type LaunchOptions } from "./options.js";
export { Supervisor, ServiceError, groupAlive, groupMembers, type ServiceSpec, type Running } from "./children.js";
export { startPrivateRedis, pingRedis, freePort, findExecutable, REDIS_INSTALL_HINT, type PrivateRedis } from "./redis.js";
export { curveSvg, checkpointPath, relDiff, reportLines, type FinishedJob, type ReportInput } from "./report.js";
export type { JobsApi, JobUpdate, JobOutcome, JobState } from "./jobs.js";
export { createUi, formatDuration, eta, type Ui } from "./ui.js";
