// watchJob: a job's state changes and progress as a stream of events, from QueueEvents (pushed) with a periodic
// re-read of the job as a safety net (an event read before the subscription, or lost while Redis restarted).
import type { EventHub } from "./events.js";
import { JobStoreError, type JobStore } from "./store.js";
import { FINAL_STATES, type WatchEvent } from "@octet/jobs/view";
import { parseProgress } from "./view.js";

export interface WatchOptions {
  signal?: AbortSignal;
  /** Re-read the job this often even without events (default 1000 ms). */
  pollMs?: number;
}

/**
 * Yields a snapshot, then state and progress events, and returns after the event showing the job completed, failed
 * or cancelled. Throws JobStoreError("not-found") for an unknown job or one removed while watched. Ends quietly
 * when the signal aborts.
 */
export async function* watchJob(store: JobStore, hub: EventHub, id: string, opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
  const pollMs = opts.pollMs ?? 1000;
  const inbox: { event: string; args: Record<string, unknown> }[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = hub.subscribe(id, (event, args) => {
    inbox.push({ event, args });
    wake?.();
  });
  const onAbort = () => wake?.();
  opts.signal?.addEventListener("abort", onAbort);
  try {
    let view = await store.get(id);
    if (!view) throw new JobStoreError("not-found", `no job ${JSON.stringify(id)} in queue ${store.queue.name}`);
    yield { kind: "snapshot", state: view.state, job: view, progress: view.progress, time: Date.now() };
    if (FINAL_STATES.has(view.state)) return;
    // The last progress sent as a progress event (the snapshot's counts as sent).
    let lastProgress = JSON.stringify(view.progress);
    let batch: { event: string; args: Record<string, unknown> }[] = [];
    let at = 0;
    const pendingProgress = () => batch.slice(at).some((e) => e.event === "progress") || inbox.some((e) => e.event === "progress");
    // The job's terminal event (completed/failed) has arrived: every report before it has been seen, since the
    // queue's event stream is ordered.
    let terminalSeen = false;
    // A re-read found the job ended before its terminal event arrived; the end is held back one poll period for
    // the reports still on their way (a lost event then costs that period, not the end).
    let heldEnd = false;

    // Re-reads the job; yields a state event when the state or the cancel request changed, or a progress event
    // when only the progress did and no report is queued (its event was missed). An ended job is reported only
    // when allowEnd; otherwise "held".
    const reread = async function* (allowEnd: boolean): AsyncGenerator<WatchEvent, "ended" | "held" | "running"> {
      const next = await store.get(id);
      if (!next) throw new JobStoreError("not-found", `job ${JSON.stringify(id)} was removed`);
      const ended = FINAL_STATES.has(next.state);
      if (ended && !allowEnd) return "held";
      if (!ended) terminalSeen = false; // a failed attempt that is retried
      const progressJson = JSON.stringify(next.progress);
      if (next.state !== view!.state || next.cancelRequested !== view!.cancelRequested) {
        // (progress events still to come from the inbox are sent after this one, in order)
        yield { kind: "state", state: next.state, job: next, progress: next.progress, time: Date.now() };
      } else if (progressJson !== lastProgress && next.progress && !pendingProgress()) {
        // a report whose event was missed
        lastProgress = progressJson;
        yield { kind: "progress", state: next.state, progress: next.progress, time: Date.now() };
      }
      view = next;
      return ended ? "ended" : "running";
    };

    while (!opts.signal?.aborted) {
      if (inbox.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        if (opts.signal?.aborted) return;
      }
      batch = inbox.splice(0);
      const tick = batch.length === 0; // a poll period without events
      let dirty = tick;
      for (at = 0; at < batch.length; ) {
        const e = batch[at++];
        if (e.event !== "progress") {
          if (e.event === "completed" || e.event === "failed") terminalSeen = true;
          dirty = true;
          continue;
        }
        if (dirty) {
          // the state changed before this report (e.g. "active" then "progress"): say so first, but not the end
          dirty = (yield* reread(false)) === "held";
        }
        const p = parseProgress(e.args.data);
        const json = JSON.stringify(p);
        if (p && json !== lastProgress) {
          lastProgress = json;
          view = { ...view, progress: p };
          // a report comes from a running attempt, whatever the last re-read said (the end may be held back)
          const state = view.state === "waiting" || view.state === "delayed" ? "active" : view.state;
          yield { kind: "progress", state, progress: p, time: Date.now() };
        }
      }
      if (dirty) {
        const r: "ended" | "held" | "running" = yield* reread(terminalSeen || (tick && heldEnd));
        if (r === "ended") return;
        heldEnd = r === "held";
      }
    }
  } finally {
    unsubscribe();
    opts.signal?.removeEventListener("abort", onAbort);
  }
}
