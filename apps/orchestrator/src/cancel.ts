// Cancelling a job that is not running: one Lua script moves it from wherever it waits (wait, paused,
// prioritized, delayed) to BullMQ's failed set with failedReason "cancelled", as BullMQ's own moveToFinished would
// record a failure (finishedOn, the failed zset scored by time, a "failed" event on the queue's event stream), so
// QueueEvents listeners, bull-board and every BullMQ client see an ordinary failed job. Being one script it is
// atomic with respect to workers: either a worker took the job first (the script finds it in no waiting state and
// changes nothing) or the job never reaches a worker.
import type { Redis } from "ioredis";
import type { Queue } from "bullmq";

const SCRIPT = `
local jobKey = KEYS[1]
local jobId = ARGV[1]
if redis.call("EXISTS", jobKey) == 0 then return "missing" end
if redis.call("EXISTS", jobKey .. ":lock") == 1 then return "locked" end
local prev
if redis.call("ZSCORE", KEYS[4], jobId) then
  redis.call("ZREM", KEYS[4], jobId); prev = "prioritized"
elseif redis.call("ZSCORE", KEYS[5], jobId) then
  redis.call("ZREM", KEYS[5], jobId); prev = "delayed"
elseif redis.call("LREM", KEYS[2], 1, jobId) == 1 then
  prev = "waiting"
elseif redis.call("LREM", KEYS[3], 1, jobId) == 1 then
  prev = "paused"
else
  return "not-waiting"
end
local ts = ARGV[2]
redis.call("ZADD", KEYS[6], ts, jobId)
redis.call("HSET", jobKey, "failedReason", ARGV[3], "finishedOn", ts)
local deid = redis.call("HGET", jobKey, "deid")
if deid then
  local dkey = ARGV[4] .. "de:" .. deid
  if redis.call("GET", dkey) == jobId then redis.call("DEL", dkey) end
end
local maxEvents = redis.call("HGET", KEYS[8], "opts.maxLenEvents") or 10000
redis.call("XTRIM", KEYS[7], "MAXLEN", "~", maxEvents)
redis.call("XADD", KEYS[7], "*", "event", "failed", "jobId", jobId, "failedReason", ARGV[3], "prev", prev)
return prev
`;

interface WithCancel {
  octetCancelWaiting(...args: (string | number)[]): Promise<string>;
}

/** The result: the state the job was taken from, or why nothing changed. */
export type CancelWaitingOutcome = "waiting" | "paused" | "prioritized" | "delayed" | "missing" | "locked" | "not-waiting";

export function defineCancelScript(redis: Redis): void {
  if (!(redis as unknown as Partial<WithCancel>).octetCancelWaiting) redis.defineCommand("octetCancelWaiting", { numberOfKeys: 8, lua: SCRIPT });
}

/** Moves a job that waits to the failed set with `reason`; see the module comment. */
export async function cancelWaiting(redis: Redis, queue: Queue, jobId: string, reason: string, now = Date.now()): Promise<CancelWaitingOutcome> {
  defineCancelScript(redis);
  const k = queue.keys;
  const out = await (redis as unknown as WithCancel).octetCancelWaiting(
    queue.toKey(jobId),
    k.wait,
    k.paused,
    k.prioritized,
    k.delayed,
    k.failed,
    k.events,
    k.meta,
    jobId,
    now,
    reason,
    k[""],
  );
  return out as CancelWaitingOutcome;
}
