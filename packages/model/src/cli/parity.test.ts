// The parity command on a few micro steps: both recipes per seed, the verdict on the seeds' mean final
// validation losses, the SVG and JSON written; bad --seeds refused with the reason.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/parity.ts", ...args], { cwd: pkg, encoding: "utf8" });

test("npm run parity: per-seed pairs, relDiff of the seeds' means, SVG + JSON", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-parity-"));
  try {
    const r = run("--config", "micro", "--steps", "3", "--seeds", "1,2", "--eval-batches", "2", "--out", dir);
    assert.equal(r.status, 0, r.stderr);
    const last = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.deepEqual(last.seeds, [1, 2]);
    assert.equal(last.perSeed.length, 2);
    const mean = (k: "fp8" | "bf16") => (last.perSeed[0][k] + last.perSeed[1][k]) / 2;
    assert.ok(Math.abs(last.fp8 - mean("fp8")) < 1e-12 && Math.abs(last.bf16 - mean("bf16")) < 1e-12);
    assert.ok(Math.abs(last.relDiff - Math.abs(last.fp8 - last.bf16) / last.bf16) < 1e-12);
    assert.equal(last.pass, last.relDiff < 0.0025);
    assert.ok(existsSync(join(dir, "parity.svg")) && existsSync(join(dir, "seed2", "fp8", "state.safetensors")));
    const bad = run("--config", "micro", "--seeds", "1,x", "--out", dir);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--seeds must be a comma-separated list/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
