// Where checkpoints live. The store talks to this interface only; LocalStorage (the default) keeps them on a local
// filesystem. An object store can implement the same contract: objects of a checkpoint are written into a staging
// area, and commit() makes all of them visible at once (on an object store: by writing the manifest last and
// treating it as the commit marker).

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat, statfs, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, fsError } from "./errors.js";
import { checkRunName, checkStep, parseStepDirName, stepDirName } from "./names.js";

/** A new object being written sequentially. */
export interface ObjectSink {
  /** Appends bytes. The caller must not modify `data` until the promise settles. */
  write(data: Uint8Array): Promise<void>;
  /** Flushes the object to stable storage and closes it. */
  close(): Promise<void>;
}

/** The objects of one checkpoint before they become visible. */
export interface StagingArea {
  create(object: string): Promise<ObjectSink>;
  /** Publishes every closed object under (run, step) atomically and durably. ALREADY_EXISTS if the step exists. */
  commit(): Promise<void>;
  /** Discards the staged objects; safe to call after a failure or twice. */
  abort(): Promise<void>;
}

/** Random-access reads of one stored object. */
export interface ObjectReader {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `into` (from its start); returns the count read. */
  read(into: Uint8Array, position: number, length: number): Promise<number>;
  close(): Promise<void>;
}

export interface CheckpointStorage {
  /** Human-readable location, e.g. "file:///data/checkpoints". */
  readonly location: string;
  /** Prepares the storage and removes what crashed writers left behind (staging areas, half-done deletions). */
  init(): Promise<{ removedStaging: string[] }>;
  listRuns(): Promise<string[]>;
  /** Steps of the run's visible checkpoints, ascending. */
  listSteps(run: string): Promise<number[]>;
  exists(run: string, step: number): Promise<boolean>;
  stage(run: string, step: number): Promise<StagingArea>;
  openObject(run: string, step: number, object: string): Promise<ObjectReader>;
  /** Removes a visible checkpoint; it disappears atomically (NOT_FOUND if absent). */
  remove(run: string, step: number): Promise<void>;
  /** Bytes free for new checkpoints, if the backend knows. */
  freeBytes(): Promise<number | undefined>;
}

const OBJECT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
function checkObjectName(object: string): string {
  if (!OBJECT_RE.test(object) || object.includes("..")) throw new RangeError(`invalid object name ${JSON.stringify(object)}`);
  return object;
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function isEnoent(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/**
 * Checkpoints on a local filesystem:
 *   <root>/runs/<run>/step-<12-digit step>/{manifest.json, shard-NNNNN-of-MMMMM.safetensors}
 *   <root>/runs/<run>/.staging-<step>-<random>/   (being written; removed at startup)
 *   <root>/runs/<run>/.deleting-<step>-<random>/  (being deleted; removed at startup)
 */
export class LocalStorage implements CheckpointStorage {
  readonly location: string;
  private readonly runsDir: string;

  constructor(readonly root: string) {
    this.location = `file://${root}`;
    this.runsDir = join(root, "runs");
  }

  private runDir(run: string): string {
    return join(this.runsDir, checkRunName(run));
  }

  private stepDir(run: string, step: number): string {
    return join(this.runDir(run), stepDirName(checkStep(step)));
  }

  async init(): Promise<{ removedStaging: string[] }> {
    try {
      await mkdir(this.runsDir, { recursive: true });
    } catch (e) {
      throw fsError(e, `creating the data directory ${this.runsDir}`);
    }
    const removed: string[] = [];
    for (const run of await this.listRuns()) {
      const dir = this.runDir(run);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (e) {
        if (isEnoent(e)) continue;
        throw fsError(e, `listing ${dir}`);
      }
      for (const name of names) {
        if (name.startsWith(".staging-") || name.startsWith(".deleting-")) {
          await rm(join(dir, name), { recursive: true, force: true });
          removed.push(`${run}/${name}`);
        }
      }
    }
    return { removedStaging: removed };
  }

  async listRuns(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.runsDir);
    } catch (e) {
      if (isEnoent(e)) return [];
      throw fsError(e, "listing runs");
    }
    return names.filter((n) => {
      try {
        checkRunName(n);
        return true;
      } catch {
        return false;
      }
    }).sort();
  }

  async listSteps(run: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.runDir(run));
    } catch (e) {
      if (isEnoent(e)) return [];
      throw fsError(e, `listing run ${run}`);
    }
    const steps: number[] = [];
    for (const n of names) {
      const s = parseStepDirName(n);
      if (s !== undefined) steps.push(s);
    }
    return steps.sort((a, b) => a - b);
  }

  async exists(run: string, step: number): Promise<boolean> {
    try {
      await stat(this.stepDir(run, step));
      return true;
    } catch (e) {
      if (isEnoent(e)) return false;
      throw fsError(e, `checking ${run}@${step}`);
    }
  }

  async stage(run: string, step: number): Promise<StagingArea> {
    const runDir = this.runDir(run);
    const finalDir = this.stepDir(run, step);
    const stagingDir = join(runDir, `.staging-${stepDirName(step)}-${randomBytes(6).toString("hex")}`);
    try {
      let created = false;
      try {
        await stat(runDir);
      } catch (e) {
        if (!isEnoent(e)) throw e;
        await mkdir(runDir, { recursive: true });
        created = true;
      }
      if (created) await fsyncDir(this.runsDir); // the run directory's entry must be durable too
      await mkdir(stagingDir);
    } catch (e) {
      throw fsError(e, `creating a staging directory for ${run}@${step}`);
    }
    const open_: FileHandle[] = [];
    let done = false;
    const abort = async () => {
      done = true;
      await Promise.allSettled(open_.map((fh) => fh.close()));
      await rm(stagingDir, { recursive: true, force: true }).catch(() => undefined);
    };
    return {
      create: async (object: string): Promise<ObjectSink> => {
        if (done) throw new CheckpointError("FAILED_PRECONDITION", "staging area already committed or aborted");
        const path = join(stagingDir, checkObjectName(object));
        let fh: FileHandle;
        try {
          fh = await open(path, "wx");
        } catch (e) {
          throw fsError(e, `creating ${object} for ${run}@${step}`);
        }
        open_.push(fh);
        let position = 0;
        return {
          write: async (data: Uint8Array) => {
            let off = 0;
            try {
              while (off < data.byteLength) {
                const { bytesWritten } = await fh.write(data, off, data.byteLength - off, position);
                off += bytesWritten;
                position += bytesWritten;
              }
            } catch (e) {
              throw fsError(e, `writing ${object} for ${run}@${step}`);
            }
          },
          close: async () => {
            try {
              await fh.sync();
              await fh.close();
              open_.splice(open_.indexOf(fh), 1);
            } catch (e) {
              throw fsError(e, `syncing ${object} for ${run}@${step}`);
            }
          },
        };
      },
      commit: async () => {
        if (done) throw new CheckpointError("FAILED_PRECONDITION", "staging area already committed or aborted");
        if (open_.length > 0) throw new CheckpointError("INTERNAL", "commit with objects still open");
        try {
          await fsyncDir(stagingDir);
          try {
            await rename(stagingDir, finalDir);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === "ENOTEMPTY" || code === "EEXIST") {
              throw new CheckpointError("ALREADY_EXISTS", `checkpoint ${run}@${step} already exists`);
            }
            throw e;
          }
          done = true;
          await fsyncDir(runDir);
        } catch (e) {
          if (!done) await abort();
          throw fsError(e, `committing ${run}@${step}`);
        }
      },
      abort,
    };
  }

  async openObject(run: string, step: number, object: string): Promise<ObjectReader> {
    const path = join(this.stepDir(run, step), checkObjectName(object));
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      if (isEnoent(e)) throw new CheckpointError("NOT_FOUND", `${run}@${step}: ${object} not found`);
      throw fsError(e, `opening ${object} of ${run}@${step}`);
    }
    const { size } = await fh.stat();
    return {
      size,
      read: async (into, position, length) => {
        const { bytesRead } = await fh.read(into, 0, length, position);
        return bytesRead;
      },
      close: () => fh.close(),
    };
  }

  async remove(run: string, step: number): Promise<void> {
    const dir = this.stepDir(run, step);
    const trash = join(this.runDir(run), `.deleting-${stepDirName(step)}-${randomBytes(6).toString("hex")}`);
    try {
      await rename(dir, trash);
    } catch (e) {
      if (isEnoent(e)) throw new CheckpointError("NOT_FOUND", `checkpoint ${run}@${step} not found`);
      throw fsError(e, `deleting ${run}@${step}`);
    }
    await fsyncDir(this.runDir(run)).catch(() => undefined);
    await rm(trash, { recursive: true, force: true });
  }

  async freeBytes(): Promise<number | undefined> {
    try {
      const s = await statfs(this.root);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      return undefined;
    }
  }
}
