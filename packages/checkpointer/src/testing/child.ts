// Runs the octet-checkpointer CLI (from source, through tsx) as a child process for reliability tests.
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ChildServer {
  proc: ChildProcess;
  address: string;
  stderr: () => string;
  /** Sends a signal and waits for the process to exit; returns its exit code / signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startChild(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  const proc = spawn(process.execPath, ["--import", "tsx", join(pkgDir, "src", "cli.ts"), "--host", "127.0.0.1", "--port", "0", ...args], {
    cwd: pkgDir,
    env: { ...process.env, OCTET_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 20_000);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (d: string) => {
      err += d;
      const m = /"address":"([^"]+)"[^\n]*"msg":"listening"/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((r) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${JSON.stringify(r)}): ${err}`));
    });
  });
  return {
    proc,
    address,
    stderr: () => err,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
