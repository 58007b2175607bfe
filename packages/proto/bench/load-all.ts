// npm run bench:load [-- --only router,numerics] [-- <load flags: --duration 60 --clients 64 --seed 1 --skip …>]
// Runs the load test of every gRPC service (packages/<service>/bench/load.ts, see load-harness.ts) one after
// another, each against its own bin, and writes each package's bench/LOAD.md. Exits non-zero if any failed.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGES = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SERVICES = ["numerics", "router", "ema-keeper", "checkpointer"];

const args = process.argv.slice(2);
const at = args.indexOf("--only");
let only = SERVICES;
if (at >= 0) {
  only = (args[at + 1] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  args.splice(at, 2);
  const unknown = only.filter((s) => !SERVICES.includes(s));
  if (only.length === 0 || unknown.length > 0) throw new RangeError(`--only takes a comma-separated list of ${SERVICES.join(", ")}; got "${unknown.join(",") || "nothing"}"`);
}

const results: { service: string; ok: boolean }[] = [];
for (const service of only) {
  const dir = join(PACKAGES, service);
  const script = join(dir, "bench", "load.ts");
  if (!existsSync(script)) throw new Error(`${script} is missing`);
  process.stderr.write(`\n=== load test: ${service}\n`);
  const r = spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: dir, stdio: "inherit" });
  results.push({ service, ok: r.status === 0 });
}
process.stderr.write(`\n=== load tests: ${results.map((r) => `${r.service} ${r.ok ? "PASS" : "FAIL"}`).join(", ")}\n`);
if (results.some((r) => !r.ok)) process.exitCode = 1;
