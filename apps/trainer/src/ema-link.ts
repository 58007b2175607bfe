// The run's EMA on the EMA keeper, as one job attempt uses it: registered (or restored from the checkpoint) at
// start, pushed every N steps. The keeper going away never stops training: pushes fail in the background, the
// next push after a failure first registers the run again (idempotent when the keeper kept it; a restarted keeper
// gets it anew) and then sends the latest parameters in full, so the EMA goes on from there. Each outage and the
// training steps it cost the EMA are counted (health(): the job's progress and metrics show them).

import type { EmaHealth } from "@octet/jobs";
import type { EmaStateMetadata, EmaState } from "@octet/ema-keeper";
import { EmaClient } from "@octet/ema-keeper/client";
import { ABORTED, NOT_FOUND, grpcCode } from "./helpers.js";
import type { Logger } from "./log.js";

export class EmaLink {
  readonly client: EmaClient;
  /** The newest EMA step this attempt can ask the keeper for (pushed here, or imported at restore). */
  emaStep: number | null = null;
  /** The keeper failed a push (down, or it lost the run): the next push reconnects and resends in full. */
  private broken = false;
  private reconnecting: Promise<void> | null = null;
  /** The latest parameters handed to push() (owned: transferred from the training thread). */
  private latest: { step: number; params: Map<string, Float32Array> } | null = null;
  /** The newest step the keeper accepted before the current outage. */
  private beforeOutage: number | null = null;
  private readonly counts = { outages: 0, gapSteps: 0 };
  private confirmed: number | null = null;

  constructor(
    address: string,
    private readonly run: string,
    private readonly every: number,
    private readonly decay: number,
    private readonly tensors: { name: string; shape: number[] }[],
    private readonly log: Logger,
    /** Bearer token for RegisterRun, PushParameters, ImportEma and DropRun when the keeper requires one. */
    authToken?: string,
  ) {
    this.client = new EmaClient({
      address,
      run,
      // The arrays are this link's own (transferred from the training thread): no copy at push.
      copy: false,
      clientOptions: {
        ...(authToken !== undefined ? { authToken } : {}),
        // Reconnect soon after a keeper comes back, not after grpc-js' default backoff of up to two minutes.
        channelOptions: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 2000 },
      },
      pushDeadlineMs: 60_000,
      onError: (err, step) => this.failed(err, step),
      onSent: (step) => this.sent(step),
    });
  }

  private failed(err: Error, step: number): void {
    if (!this.broken) {
      this.broken = true;
      this.counts.outages++;
      this.beforeOutage = this.confirmed;
      this.log.warn(grpcCode(err) === NOT_FOUND ? "EMA keeper lost the run: reconnecting with the next push" : "EMA push failed: the keeper is unreachable; training goes on", { step, err });
    } else {
      this.log.debug("EMA push failed", { step, err });
    }
  }

  private sent(step: number): void {
    if (this.beforeOutage !== null && !this.broken) {
      // The first push after an outage: the pushes in between never reached the EMA.
      this.counts.gapSteps += Math.max(0, step - this.beforeOutage - this.every);
      this.beforeOutage = null;
    }
    this.confirmed = Math.max(this.confirmed ?? step, step);
  }

  private spec() {
    return { tensors: this.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "F32" as const })), decay: { kind: "fixed" as const, decay: this.decay }, updateInterval: this.every };
  }

  metadata(step: number, updates: number): EmaStateMetadata {
    return {
      format: "octet.ema.v1",
      run: this.run,
      step,
      updates,
      decay: { kind: "fixed", decay: this.decay },
      updateInterval: this.every,
      nonFinite: "reject",
      tensors: this.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "F32" })),
    };
  }

  /** Fresh run or restored: drop what the keeper holds for the run, then import the checkpoint's EMA or register anew. */
  async start(restored: EmaState | null): Promise<void> {
    try {
      await this.client.dropRun();
    } catch (e) {
      if (grpcCode(e) !== NOT_FOUND) throw e;
    }
    if (restored) {
      await this.client.importState(restored);
      this.emaStep = restored.metadata.step;
    } else {
      await this.client.registerRun(this.spec());
    }
  }

  push(step: number, params: Map<string, Float32Array>): void {
    this.latest = { step, params };
    if (this.reconnecting) return; // the reconnection sends the latest parameters when it is done
    if (this.broken) {
      this.reconnect();
      return;
    }
    this.client.push(step, params);
    this.emaStep = step;
  }

  /** Registers the run again (the keeper keeps an identical run as it is), then sends the latest parameters. */
  private reconnect(): void {
    this.reconnecting = this.client
      .registerRun(this.spec())
      .then(({ created }) => {
        this.broken = false;
        if (created) this.log.warn("EMA keeper had lost the run: registered again; the EMA restarts from the parameters sent now", { step: this.latest?.step });
        else this.log.info("EMA keeper reachable again", { step: this.latest?.step });
        const l = this.latest;
        if (l) {
          this.client.push(l.step, l.params);
          this.emaStep = l.step;
        }
      })
      .catch((e: unknown) => this.log.debug("EMA keeper still unreachable", { err: e }))
      .finally(() => (this.reconnecting = null));
  }

  /** What reached the keeper, and what the outages cost (the job's progress and result carry it). */
  health(): EmaHealth {
    const s = this.client.stats();
    return { step: this.confirmed, failedPushes: s.failed, coalescedPushes: s.coalesced, outages: this.counts.outages, gapSteps: this.counts.gapSteps };
  }

  /** The EMA at `step` (every tensor at that step), or null when the keeper cannot give it in time. */
  async snapshot(step: number | null, deadlineMs: number): Promise<{ metadata: EmaStateMetadata; tensors: Map<string, Float32Array> } | null> {
    if (step === null) return null;
    try {
      // No flush(): while training goes on it would wait for every later push too. The keeper waits for
      // `step` itself (ABORTED if a newer step replaced it first).
      const snap = await this.client.getEma({ step, deadlineMs });
      return { metadata: this.metadata(snap.step, snap.updates), tensors: snap.tensors };
    } catch (e) {
      this.log[grpcCode(e) === ABORTED ? "debug" : "warn"]("EMA not included in the checkpoint", { emaStep: step, err: e });
      return null;
    }
  }

  close(): void {
    this.client.close();
  }
}
