// The launcher's JobsApi over the orchestrator's gRPC JobService, through JobClient (@octet/jobs/client).

import { FINAL_STATES, JobClient, status } from "@octet/jobs/client";
import type { JobOutcome, JobsApi, JobState } from "./jobs.js";

/** Connects to JobService at host:port (waits up to readyMs for the channel); submits and cancels with authToken. */
export async function connectJobs(address: string, readyMs = 10_000, authToken?: string): Promise<JobsApi> {
  const client = new JobClient(address, authToken !== undefined ? { authToken } : {});
  try {
    await client.waitForReady(readyMs);
  } catch (e) {
    client.close();
    throw new Error(`cannot reach the orchestrator's JobService at ${address}: ${(e as Error).message}`);
  }
  return {
    async submit(spec) {
      try {
        const { job } = await client.submit(spec);
        return job.id;
      } catch (e) {
        if ((e as { code?: number }).code === status.UNAUTHENTICATED) {
          throw new Error(
            `the orchestrator at ${address} refused the job: ${(e as { details?: string }).details ?? (e as Error).message}. ` +
              "Give octet-up its token with --auth-token-file or OCTET_AUTH_TOKEN.",
          );
        }
        throw e;
      }
    },

    async follow(id, onUpdate, signal): Promise<JobOutcome> {
      for await (const e of client.watch(id, { signal })) {
        onUpdate({ state: e.state as JobState, ...(e.progress ? { progress: e.progress } : {}) });
      }
      if (signal.aborted) throw signal.reason;
      // The stream ended with the job: read it once more, with its whole loss curve.
      const view = await client.get(id, { curve: true });
      if (!FINAL_STATES.has(view.state)) throw new Error(`the watch of job ${id} ended while the job is ${view.state}`);
      return {
        id,
        state: view.state as JobOutcome["state"],
        ...(view.result ? { result: view.result } : {}),
        ...(view.failedReason ? { error: view.failedReason } : {}),
        curve: view.curve ?? [],
      };
    },

    async cancel(id) {
      await client.cancel(id, { deadlineMs: 2000 });
    },

    close() {
      client.close();
    },
  };
}
