// The run's checkpoints, saved through the checkpointer in order, with retention.

import { stepDirName, type Tensor } from "@octet/checkpointer";
import type { CheckpointClient } from "@octet/checkpointer/client";
import { NOT_FOUND, grpcCode } from "./helpers.js";
import type { Logger } from "./log.js";

export interface CheckpointRef {
  step: number;
  path: string;
}

/** Saves through the checkpointer, one after another (each once the previous is staged); retention per run. */
export class CheckpointWriter {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<CheckpointRef | null>>();
  private unstaged = 0;
  /** Step of the newest save issued (or of the checkpoint restored). */
  lastIssued = 0;
  lastDurable: CheckpointRef | null = null;
  kept: CheckpointRef[] = [];

  constructor(
    private readonly client: CheckpointClient,
    readonly run: string,
    private readonly keep: number,
    private readonly log: Logger,
    private readonly onDurable: (ref: CheckpointRef) => void,
  ) {}

  path(step: number): string {
    return `runs/${this.run}/${stepDirName(step)}`;
  }

  get busy(): boolean {
    return this.unstaged > 0;
  }

  /**
   * Queues a save of `tensors` at `step`; `extra` (the EMA) is fetched when the save's turn comes. Resolves with
   * the checkpoint once durable (retention applied), or null if it failed (logged).
   */
  save(step: number, tensors: Tensor[], metadata: Record<string, string>, extra: () => Promise<{ tensors: Tensor[]; metadata: Record<string, string> } | null>): Promise<CheckpointRef | null> {
    this.lastIssued = step;
    this.unstaged++;
    const task = this.chain.then(async () => {
      let all = tensors;
      let meta = metadata;
      try {
        const e = await extra();
        if (e) {
          all = [...tensors, ...e.tensors];
          meta = { ...metadata, ...e.metadata };
        }
      } catch (err) {
        this.log.warn("checkpoint extra state skipped", { step, err });
      }
      const s = this.client.save(this.run, step, all, meta);
      try {
        await s.staged;
      } finally {
        this.unstaged--;
      }
      // Wrapped so that the chain moves on once staged, not once durable.
      return { durable: s.durable };
    });
    task.catch(() => (this.unstaged = Math.max(0, this.unstaged)));
    // The next save starts once this one is staged (the checkpointer writes a run's saves in order).
    this.chain = task.then(
      () => undefined,
      () => undefined,
    );
    const done = task
      .then((t) => t.durable)
      .then(
        async (info) => {
          const ref = { step: Number(info.step ?? step), path: this.path(step) };
          if (!this.lastDurable || ref.step > this.lastDurable.step) this.lastDurable = ref;
          this.log.info("checkpoint durable", { run: this.run, step, bytes: info.totalBytes });
          this.onDurable(this.lastDurable);
          await this.retain();
          return ref;
        },
        (err: unknown) => {
          this.log.warn("checkpoint failed", { run: this.run, step, err });
          return null;
        },
      );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
    return done;
  }

  /** Keeps the newest `keep` valid checkpoints of the run, deletes older ones. */
  async retain(): Promise<void> {
    try {
      const listed = await this.client.list(this.run);
      const valid = listed.filter((c) => !c.corrupt && c.run === this.run).sort((a, b) => b.step - a.step);
      for (const c of valid.slice(this.keep)) {
        try {
          await this.client.delete(this.run, c.step);
        } catch (e) {
          if (grpcCode(e) !== NOT_FOUND) this.log.warn("retention: delete failed", { run: this.run, step: c.step, err: e });
        }
      }
      this.kept = valid
        .slice(0, this.keep)
        .map((c) => ({ step: c.step, path: this.path(c.step) }))
        .sort((a, b) => a.step - b.step);
    } catch (e) {
      this.log.warn("retention failed", { run: this.run, err: e });
    }
  }

  /** Resolves when every save issued so far is staged (or failed). */
  stagedAll(): Promise<unknown> {
    return this.chain;
  }

  /** Resolves when every save issued so far is durable (or failed) and retention ran. */
  idle(): Promise<unknown> {
    return Promise.allSettled([...this.pending]);
  }
}
