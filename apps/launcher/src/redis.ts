// Redis for the launcher: a private redis-server on a free port with a temporary directory when REDIS_URL is
// not set, or a check that the given one answers.

import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { ServiceError, type Running, type Supervisor } from "./children.js";

export const REDIS_INSTALL_HINT =
  "Install Redis — Debian/Ubuntu: `sudo apt-get install -y redis-server`; Fedora: `sudo dnf install redis`; macOS: `brew install redis` — " +
  "or point the launcher at a running one with REDIS_URL=redis://host:6379.";

/** Finds an executable on PATH (or returns an explicit path as is when it is executable). */
export function findExecutable(name: string, path = process.env.PATH ?? ""): string | undefined {
  const candidates = name.includes("/") ? [name] : path.split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends PING over RESP and resolves true on +PONG (or a NOAUTH error: something is there), false otherwise. */
export function pingRedis(url: string, timeoutMs = 3000): Promise<{ ok: boolean; detail: string }> {
  let host = "127.0.0.1";
  let port = 6379;
  let password: string | undefined;
  let username: string | undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== "redis:" && u.protocol !== "rediss:") return Promise.resolve({ ok: false, detail: `unsupported scheme ${u.protocol}` });
    if (u.protocol === "rediss:") return Promise.resolve({ ok: true, detail: "TLS (not probed)" });
    host = u.hostname.replace(/^\[|\]$/g, "") || host;
    port = u.port ? Number(u.port) : 6379;
    password = u.password ? decodeURIComponent(u.password) : undefined;
    username = u.username ? decodeURIComponent(u.username) : undefined;
  } catch {
    return Promise.resolve({ ok: false, detail: `not a URL: ${url}` });
  }
  return new Promise((resolve) => {
    const sock = new Socket();
    let buf = "";
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => done(false, `no answer from ${host}:${port} within ${timeoutMs} ms`), timeoutMs);
    sock.once("error", (e) => done(false, `${host}:${port}: ${e.message}`));
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (buf.includes("+PONG")) return done(true, "PONG");
      const err = /(?:^|\r\n)-([^\r]*)\r\n/.exec(buf);
      if (err) done(false, `${host}:${port}: ${err[1]}`);
    });
    sock.connect(port, host, () => {
      const cmds: string[][] = [];
      if (password !== undefined) cmds.push(username ? ["AUTH", username, password] : ["AUTH", password]);
      cmds.push(["PING"]);
      for (const c of cmds) sock.write(`*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
    });
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  proc: Running;
  /** Removes the temporary directory (after the process has been stopped). */
  cleanup(): void;
}

/**
 * Starts `redis-server` on a free 127.0.0.1 port in a fresh temporary directory, without persistence (the
 * queue lives as long as the launcher), with the eviction policy BullMQ needs. Retries on a port race.
 */
export async function startPrivateRedis(sup: Supervisor, opts: { logFile?: string; readyTimeoutMs?: number; binary?: string } = {}): Promise<PrivateRedis> {
  const bin = findExecutable(opts.binary ?? process.env.OCTET_REDIS_SERVER ?? "redis-server");
  if (!bin) {
    throw new ServiceError("redis", `redis-server was not found on PATH, and REDIS_URL is not set.\n${REDIS_INSTALL_HINT}`, "");
  }
  const dir = mkdtempSync(join(tmpdir(), "octet-redis-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  let lastErr: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    try {
      const { proc } = await sup.start({
        name: "redis",
        command: bin,
        args: [
          "--port", String(port),
          "--bind", "127.0.0.1",
          "--dir", dir,
          "--save", "",
          "--appendonly", "no",
          "--daemonize", "no",
          "--maxmemory-policy", "noeviction",
          "--protected-mode", "yes",
        ],
        cwd: dir,
        ready: (line) => (/Ready to accept connections/i.test(line) ? true : undefined),
        readyTimeoutMs: opts.readyTimeoutMs ?? 20_000,
        logFile: opts.logFile,
        stopGraceMs: 5000,
      });
      return { url: `redis://127.0.0.1:${port}`, port, dir, proc, cleanup };
    } catch (e) {
      lastErr = e;
      if (!(e instanceof ServiceError && /Address already in use|bind/i.test(e.outputTail))) break;
    }
  }
  cleanup();
  throw lastErr;
}
