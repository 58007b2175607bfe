// A GPU job's training process (see host.ts): the worker forks it with CUDA_VISIBLE_DEVICES set to the job's
// GPUs; it runs the training thread and relays messages both ways, keeping the thread's shared control words.
// It exits with the thread, and at once when the worker goes away (its IPC channel closes).

import { Worker } from "node:worker_threads";
import { threadUrl, type ToProcess } from "./host.js";
import { CTRL_WORDS, type ThreadInit, type ThreadMessage } from "./protocol.js";

const control = new SharedArrayBuffer(4 * CTRL_WORDS);
const words = new Int32Array(control);
let thread: Worker | null = null;
/** The relayed messages not yet written to the channel (the process exits only after they are). */
let sent: Promise<void> = Promise.resolve();

function send(m: ThreadMessage): Promise<void> {
  const p = new Promise<void>((resolve) => {
    if (!process.connected) return resolve();
    process.send!(m, undefined, {}, () => resolve());
  });
  sent = sent.then(() => p);
  return sent;
}

process.on("disconnect", () => process.exit(0));
process.on("message", (m: ToProcess) => {
  if (m.type === "control") Atomics.store(words, m.word, m.value);
  else if (m.type === "go") thread?.postMessage("go");
  else if (m.type === "init" && !thread) {
    const init: ThreadInit = { ...m.init, control };
    const t = new Worker(threadUrl(), { workerData: init, transferList: init.restore ? init.restore.tensors.map((x) => x.data.buffer as ArrayBuffer) : [] });
    thread = t;
    t.on("message", (msg: ThreadMessage) => void send(msg));
    t.on("error", (e) => void send({ type: "error", message: e.message, kind: "error" }).then(() => process.exit(1)));
    t.on("exit", (code) => void sent.then(() => process.exit(code === 0 ? 0 : 1)));
  }
});
