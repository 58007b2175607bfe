// npm run train with a config file whose data is a text file: the same loop and data path as a job —
// metrics lines, evaluations at evalEvery and the end, the state saved, the loss coming down.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../config.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("npm run train: --config file.json with data of kind text", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-train-text-"));
  try {
    const textPath = join(dir, "corpus.txt");
    writeFileSync(textPath, "the quick brown fox jumps over the lazy dog. ".repeat(300));
    const config = presetConfig("micro");
    config.name = "micro-text";
    config.model.vocabSize = 256;
    config.train.steps = 12;
    config.train.evalEvery = 6;
    config.data = { kind: "text", path: textPath, valFraction: 0.1 };
    const configPath = join(dir, "config.json");
    writeFileSync(configPath, JSON.stringify(config));
    const out = join(dir, "run");
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/train.ts", "--config", configPath, "--recipe", "fp32", "--out", out], { cwd: pkg, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(summary.step, 12);
    assert.equal(summary.config, "micro-text");
    assert.ok(Number.isFinite(summary.loss) && Number.isFinite(summary.valLoss));
    assert.equal(summary.entropyRate, undefined, "text has no known entropy floor");
    const lines = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const steps = lines.filter((l) => l.type === "step");
    assert.deepEqual(steps.map((l) => l.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(lines.filter((l) => l.type === "eval").map((l) => l.step), [6, 12]);
    assert.ok(steps[11].loss < steps[0].loss - 0.5, `loss ${steps[0].loss} → ${steps[11].loss}`);
    assert.ok(existsSync(join(out, "state.safetensors")));

    const missing = spawnSync(process.execPath, ["--import", "tsx", "src/cli/train.ts", "--config", configPath.replace("config.json", "nope.json")], { cwd: pkg, encoding: "utf8" });
    assert.notEqual(missing.status, 0);
    writeFileSync(configPath, JSON.stringify({ ...config, data: { kind: "text", path: join(dir, "absent.txt") } }));
    const absent = spawnSync(process.execPath, ["--import", "tsx", "src/cli/train.ts", "--config", configPath, "--recipe", "fp32", "--out", out], { cwd: pkg, encoding: "utf8" });
    assert.notEqual(absent.status, 0);
    assert.match(absent.stderr, /absent\.txt/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
