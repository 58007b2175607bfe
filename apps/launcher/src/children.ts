// Child processes the launcher starts: each in its own process group, its output teed to a log file and kept
// in a short ring buffer, ready when a line it prints matches, stopped in reverse start order (SIGTERM to the
// group, then SIGKILL after a grace period) so that nothing outlives the launcher.

import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";

export type Stream = "stdout" | "stderr";

export interface ServiceSpec<T> {
  /** Short name used in messages ("orchestrator"). */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Returns a value once a line shows the service is ready, undefined otherwise. */
  ready: (line: string, stream: Stream) => T | undefined;
  readyTimeoutMs: number;
  /** Every line the service prints goes here too. */
  logFile?: string;
  /** Time between SIGTERM and SIGKILL when stopping; default 15 s. */
  stopGraceMs?: number;
  /** A hint appended to the error when the service fails to start (e.g. an install command). */
  hint?: (tail: string) => string | undefined;
}

export interface Running {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The last lines the service printed, stderr and stdout interleaved, newest last. */
  tail(lines?: number): string;
  /** Resolves when the process has exited (code or signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** Time between SIGTERM and SIGKILL when stopping. */
  stopGraceMs: number;
}

/** A service that could not start, or died: the message names it and carries the end of its output. */
export class ServiceError extends Error {
  constructor(
    readonly service: string,
    message: string,
    readonly outputTail: string,
  ) {
    super(outputTail ? `${message}\n--- last lines of ${service}'s output ---\n${outputTail}\n---` : message);
    this.name = "ServiceError";
  }
}

const TAIL_LINES = 40;

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

/**
 * Live (not zombie) processes of a process group. On Linux from /proc, so that a dead process waiting for a
 * slow init to reap it does not count; elsewhere, signal 0 to the group.
 */
export function groupMembers(pgid: number): number[] {
  if (process.platform === "linux" && existsSync("/proc/self/stat")) {
    const out: number[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${name}/stat`, "utf8");
      } catch {
        continue;
      }
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses, so split after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[2]) === pgid && rest[0] !== "Z" && rest[0] !== "X") out.push(Number(name));
    }
    return out;
  }
  try {
    process.kill(-pgid, 0);
    return [pgid];
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? [pgid] : [];
  }
}

/** True while a process group has live members. */
export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

export class Supervisor {
  private readonly running: Running[] = [];
  private readonly expectedExit = new Set<number>();
  private readonly logs: WriteStream[] = [];
  private stopping = false;
  private exitListeners: ((r: Running, code: number | null, signal: NodeJS.Signals | null) => void)[] = [];
  private readonly onProcessExit = () => this.killAllNow();

  constructor() {
    // Last resort (an uncaught error, process.exit elsewhere): no child outlives us.
    process.on("exit", this.onProcessExit);
  }

  /** Every process started so far (process-group leaders). */
  get pids(): number[] {
    return this.running.map((r) => r.pid);
  }

  /** Called when a service exits while it was not being stopped. */
  onUnexpectedExit(fn: (r: Running, code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.exitListeners.push(fn);
  }

  /** Starts a service and waits for its ready line; on timeout or exit, stops it and throws a ServiceError. */
  async start<T>(spec: ServiceSpec<T>): Promise<{ proc: Running; ready: T }> {
    if (this.stopping) throw new Error(`not starting ${spec.name}: shutting down`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group: Ctrl-C reaches only us, and we stop the services in order
    });
    const ring: string[] = [];
    const log = spec.logFile ? createWriteStream(spec.logFile, { flags: "a" }) : undefined;
    if (log) this.logs.push(log);
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));

    const proc: Running = {
      name: spec.name,
      pid: child.pid ?? -1,
      child,
      tail: (n = 20) => ring.slice(-n).join("\n"),
      exited,
      hasExited: () => exitInfo !== undefined,
      stopGraceMs: spec.stopGraceMs ?? 15_000,
    };

    let onReady: ((v: T) => void) | undefined;
    const readyP = new Promise<T>((resolve) => (onReady = resolve));
    let isReady = false;
    const watch = (stream: NodeJS.ReadableStream, name: Stream) => {
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      rl.on("line", (line) => {
        ring.push(line);
        if (ring.length > TAIL_LINES) ring.shift();
        log?.write(`${line}\n`);
        if (!isReady) {
          const v = spec.ready(line, name);
          if (v !== undefined) {
            isReady = true;
            onReady!(v);
          }
        }
      });
    };
    watch(child.stdout!, "stdout");
    watch(child.stderr!, "stderr");

    if (child.pid === undefined) {
      const err = await spawnError;
      throw new ServiceError(spec.name, `could not start ${spec.name} (${spec.command}): ${err.message}`, "");
    }
    this.running.push(proc);

    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      readyP.then((v) => ({ kind: "ready" as const, v })),
      exited.then((e) => ({ kind: "exit" as const, e })),
      spawnError.then((err) => ({ kind: "error" as const, err })),
      new Promise<{ kind: "timeout" }>((resolve) => (timer = setTimeout(() => resolve({ kind: "timeout" }), spec.readyTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome.kind === "ready") {
      void exited.then(({ code, signal }) => {
        if (!this.stopping && !this.expectedExit.has(proc.pid)) for (const fn of this.exitListeners) fn(proc, code, signal);
      });
      return { proc, ready: outcome.v };
    }
    let message: string;
    if (outcome.kind === "timeout") {
      message = `${spec.name} did not become ready within ${Math.round(spec.readyTimeoutMs / 1000)} s`;
      await this.stopOne(proc, 2000);
    } else if (outcome.kind === "exit") {
      // Let the last lines of output arrive before quoting them.
      await new Promise((r) => setTimeout(r, 50));
      message = `${spec.name} ${describeExit(outcome.e.code, outcome.e.signal)} before it was ready`;
    } else {
      message = `could not start ${spec.name}: ${outcome.err.message}`;
    }
    const tail = proc.tail();
    const hint = spec.hint?.(tail);
    throw new ServiceError(spec.name, `${message} (command: ${[spec.command, ...spec.args].join(" ")})${hint ? `\n${hint}` : ""}`, tail);
  }

  /** SIGTERM to the process group; SIGKILL after graceMs; then sweep whatever is left of the group. */
  async stopOne(proc: Running, graceMs: number): Promise<void> {
    this.expectedExit.add(proc.pid);
    if (!proc.hasExited()) {
      killGroup(proc.pid, "SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        proc.exited.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!done) {
        killGroup(proc.pid, "SIGKILL");
        await proc.exited;
      }
    }
    // Grandchildren that outlived their parent.
    if (groupAlive(proc.pid)) {
      killGroup(proc.pid, "SIGKILL");
      for (let i = 0; i < 50 && groupAlive(proc.pid); i++) await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops every service, the last started first. Safe to call more than once. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const r of [...this.running].reverse()) await this.stopOne(r, r.stopGraceMs);
    for (const log of this.logs) log.end();
    process.off("exit", this.onProcessExit);
  }

  /** Synchronous SIGKILL of every group still alive (for process 'exit' and a second Ctrl-C). */
  killAllNow(): void {
    this.stopping = true;
    for (const r of this.running) if (groupAlive(r.pid)) killGroup(r.pid, "SIGKILL");
  }

  /** Services that have not exited. */
  alive(): Running[] {
    return this.running.filter((r) => !r.hasExited() || groupAlive(r.pid));
  }
}

export { describeExit };
