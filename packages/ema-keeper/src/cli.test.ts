import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { EmaClient } from "./client.js";

const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawn(process.execPath, ["--import", "tsx", cli, ...args], { env: { ...process.env, OCTET_LOG_LEVEL: "warn", ...env }, stdio: ["ignore", "pipe", "pipe"] });
}

test("octet-ema-keeper serves on the port it prints, honours env limits, and exits 0 on SIGTERM", async () => {
  const child = run(["--host", "127.0.0.1", "--port", "0"], { OCTET_EMA_MAX_EMA_BYTES: "1000" });
  let out = "";
  child.stdout.setEncoding("utf8");
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on("data", (d: string) => {
      out += d;
      const m = out.match(/listening \S+ port (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`exited ${code}`)));
  });
  const c = new EmaClient({ address: `127.0.0.1:${port}`, run: "cli" });
  await c.registerRun({ tensors: [{ name: "w", shape: [10] }], decay: { kind: "fixed", decay: 0.9 } });
  assert.equal((await c.status()).tensors, 1);
  // 1000-byte limit from OCTET_EMA_MAX_EMA_BYTES: 40 bytes used, 1000 more do not fit
  await assert.rejects(
    c.registerRun({ run: "big", tensors: [{ name: "w", shape: [250] }], decay: { kind: "fixed", decay: 0.9 } }),
    (e: unknown) => (e as { code?: number }).code === 8 && /needs 1000 bytes of fp32 EMA for 1 tensor, but 40 bytes of the keeper's 1000 bytes/.test((e as Error).message),
  );
  c.close();
  child.kill("SIGTERM");
  const [code] = await once(child, "exit");
  assert.equal(code, 0);
});

test("octet-ema-keeper refuses a bad limit with the variable's name and exit code 2", async () => {
  const child = run(["--port", "0"], { OCTET_EMA_MAX_QUEUED_STEPS: "zero" });
  let err = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (err += d));
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.match(err, /OCTET_EMA_MAX_QUEUED_STEPS must be a non-negative integer, got "zero"/);
});
