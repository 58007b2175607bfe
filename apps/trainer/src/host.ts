// Where a job's training thread runs. A CPU job: a worker_thread of the worker (shared control words). A GPU
// job: a child process (train-process.ts) started with CUDA_VISIBLE_DEVICES set to the job's GPUs — CUDA picks
// its device per process, and @octet/model's CUDA backend trains on the first GPU it sees — which runs the same
// training thread and relays its messages; the control words cross as messages. A worker that dies takes its
// training processes with it (they exit when their IPC channel closes).

import { type ChildProcess, fork } from "node:child_process";
import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import { CTRL_WORDS, type ThreadInit, type ThreadMessage } from "./protocol.js";

export interface TrainingHost {
  on(event: "message", fn: (m: ThreadMessage) => void): void;
  on(event: "error", fn: (e: Error) => void): void;
  on(event: "exit", fn: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** "go" to the training thread. */
  post(m: "go"): void;
  /** Sets a shared control word (CTRL_STOP, CTRL_SAVE_BUSY). */
  setControl(word: number, value: number): void;
  terminate(): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...a: any[]) => void;

const built = !import.meta.url.endsWith(".ts");

function sibling(name: string): URL {
  // Built: dist/<name>.js. From source (tsx): src/<name>.ts (threads and children inherit --import tsx).
  return new URL(`./${name}${built ? ".js" : ".ts"}`, import.meta.url);
}

export function threadUrl(): URL {
  return sibling("train-thread");
}

/** The training thread in this process. `init` without `control`: the host makes it. */
export function startThreadHost(init: Omit<ThreadInit, "control">): TrainingHost {
  const control = new SharedArrayBuffer(4 * CTRL_WORDS);
  const words = new Int32Array(control);
  const transfer = init.restore ? init.restore.tensors.map((t) => t.data.buffer as ArrayBuffer) : [];
  const thread = new Worker(threadUrl(), { workerData: { ...init, control } satisfies ThreadInit, transferList: transfer });
  return {
    on: (event: string, fn: Listener) => {
      if (event === "exit") thread.on("exit", (code) => (fn as (c: number | null, s: null) => void)(code, null));
      else thread.on(event, fn);
    },
    post: (m) => thread.postMessage(m),
    setControl: (word, value) => Atomics.store(words, word, value),
    terminate: () => void thread.terminate(),
  } as TrainingHost;
}

/** Messages from the worker to a training process. */
export type ToProcess = { type: "init"; init: Omit<ThreadInit, "control"> } | { type: "go" } | { type: "control"; word: number; value: number };

/** The training thread in a child process pinned to `gpus` (CUDA_VISIBLE_DEVICES). */
export function startProcessHost(init: Omit<ThreadInit, "control">, gpus: number[], env: NodeJS.ProcessEnv = process.env): TrainingHost {
  const child: ChildProcess = fork(sibling("train-process"), [], {
    env: { ...env, CUDA_VISIBLE_DEVICES: gpus.join(",") },
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const events = new EventEmitter();
  let exited = false;
  const send = (m: ToProcess) => {
    if (!exited && child.connected) child.send(m, (e) => e && events.emit("error", e));
  };
  child.on("message", (m) => events.emit("message", m as ThreadMessage));
  child.on("error", (e) => events.emit("error", e));
  child.on("exit", (code, signal) => {
    exited = true;
    events.emit("exit", code, signal);
  });
  send({ type: "init", init });
  return {
    on: (event: string, fn: Listener) => void events.on(event, fn),
    post: () => send({ type: "go" }),
    setControl: (word, value) => send({ type: "control", word, value }),
    terminate: () => {
      if (!exited) child.kill("SIGKILL");
    },
  } as TrainingHost;
}
