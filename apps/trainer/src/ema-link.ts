// The run's EMA on the EMA keeper, as one job attempt uses it.

import type { EmaStateMetadata, EmaState } from "@octet/ema-keeper";
import { EmaClient } from "@octet/ema-keeper/client";
import { ABORTED, NOT_FOUND, grpcCode } from "./helpers.js";
import type { Logger } from "./log.js";

/** The run's EMA on the keeper: registered (or restored from the checkpoint) at start, pushed every N steps. */
export class EmaLink {
  readonly client: EmaClient;
  /** The newest EMA step this attempt can ask the keeper for (pushed here, or imported at restore). */
  emaStep: number | null = null;
  private lost = false;
  private registering: Promise<void> | null = null;

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
      ...(authToken !== undefined ? { clientOptions: { authToken } } : {}),
      onError: (err, step) => {
        if (grpcCode(err) === NOT_FOUND) this.lost = true;
        this.log.warn("EMA push failed (the next push supersedes it)", { step, err });
      },
    });
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
    if (this.lost) {
      // The keeper forgot the run (restarted): register again; the EMA restarts from the next push.
      this.lost = false;
      this.registering = this.client
        .registerRun(this.spec())
        .then(() => this.log.warn("EMA keeper had lost the run: registered again, the EMA restarts", { step }))
        .catch((e: unknown) => {
          this.lost = true;
          this.log.warn("EMA re-registration failed", { err: e });
        })
        .finally(() => (this.registering = null));
      return;
    }
    if (this.registering) return;
    this.client.push(step, params);
    this.emaStep = step;
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
