import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { JobProgress, JobResult } from "@octet/jobs";
import { lineChartSvg, smooth, ticks } from "@octet/plot";
import { childEnvironment, emaReady, jsonReady } from "./launch.js";
import { parseOptions } from "./options.js";
import { checkpointPath, curveSvg, relDiff, reportLines } from "./report.js";
import { eta, formatDuration } from "./ui.js";

const result = (over: Partial<JobResult> = {}): JobResult => ({
  run: "r1",
  step: 300,
  loss: 1.21,
  valLoss: 1.2265,
  tokensPerSec: 1650,
  recipe: "fp8",
  entropyRate: 1.0631,
  unigramEntropy: 3.94,
  checkpoints: [{ step: 300, path: "runs/r1/step-000000000300" }],
  emaStep: 300,
  resumedFrom: null,
  seconds: 180,
  ...over,
});

test("ready lines: JSON {event: ready} and the EMA keeper's 'listening' line", () => {
  assert.deepEqual(jsonReady('{"event":"ready","grpc":"127.0.0.1:5"}'), { event: "ready", grpc: "127.0.0.1:5" });
  assert.equal(jsonReady('{"event":"other"}'), undefined);
  assert.equal(jsonReady('{"level":30,"msg":"listening"}'), undefined);
  assert.equal(jsonReady("{not json"), undefined);
  assert.equal(emaReady("listening 127.0.0.1:40001 port 40001"), "127.0.0.1:40001");
  assert.equal(emaReady('{"event":"ready","grpc":"h:1"}'), "h:1");
  assert.equal(emaReady("something else"), undefined);
});

test("options: defaults, validation naming the flag, and the recipe/config checked against the job contract", () => {
  const o = parseOptions([]);
  assert.equal(o.config, "tiny");
  assert.equal(o.recipe, "fp8");
  assert.equal(o.out, "./octet-run");
  assert.equal(o.trainers, 1);
  assert.equal(o.compareBf16, false);
  assert.equal(o.keepOpen, false);
  assert.equal(parseOptions(["--config", "micro", "--steps", "20", "--compare-bf16", "--keep-open"]).steps, 20);
  assert.throws(() => parseOptions(["--recipe", "fp4"]), /--recipe: recipe: /);
  assert.throws(() => parseOptions(["--config", "nope"]), /--config: config: unknown config "nope"/);
  assert.throws(() => parseOptions(["--redis", "http://x"]), /must start with redis:\/\//);
  assert.throws(() => parseOptions(["--orchestrator", "nohostport"]), /--orchestrator must be host:port/);
  assert.throws(() => parseOptions(["--orchestrator", "h:1"]), /needs the orchestrator's Redis/);
  assert.equal(parseOptions(["--orchestrator", "h:1", "--trainers", "0"]).orchestrator, "h:1");
});

test("the bearer token: --auth-token-file (checked like the services check it), else none and the launcher makes one", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-up-token-"));
  try {
    const file = join(dir, "token");
    writeFileSync(file, "launcher-test-token-0123456789\n");
    assert.equal(parseOptions(["--auth-token-file", file]).authToken, "launcher-test-token-0123456789");
    writeFileSync(file, "short\n");
    assert.throws(() => parseOptions(["--auth-token-file", file]), /--auth-token-file \(.*\) must be 16 to 4096 characters long/);
    if (process.env.OCTET_AUTH_TOKEN === undefined && process.env.OCTET_AUTH_TOKEN_FILE === undefined) assert.equal(parseOptions([]).authToken, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The children get the run's token as OCTET_AUTH_TOKEN and no other token variable, which would win over it.
  const env = childEnvironment({ PATH: "/bin", OCTET_AUTH_TOKEN: "old", OCTET_AUTH_TOKEN_FILE: "/t", OCTET_EMA_AUTH_TOKEN: "x", OCTET_CHECKPOINTER_AUTH_TOKEN_FILE: "/y", OCTET_EMA_PORT: "1" }, "run-token");
  assert.deepEqual(env, { PATH: "/bin", OCTET_EMA_PORT: "1", OCTET_LOG_LEVEL: "info", OCTET_AUTH_TOKEN: "run-token" });
});

test("checkpointPath: the trainer's relative path under the checkpointer's data dir", () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-ckpt-"));
  try {
    mkdirSync(join(dir, "runs", "r1", "step-000000000300"), { recursive: true });
    assert.equal(checkpointPath(result(), dir), join(dir, "runs", "r1", "step-000000000300"));
    // Unknown layout: the reported path as is; none: null.
    assert.equal(checkpointPath(result({ checkpoints: [{ step: 5, path: "elsewhere/x" }] }), dir), "elsewhere/x");
    assert.equal(checkpointPath(result({ checkpoints: [] }), dir), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("report: loss beside the entropy floor, the FP8-vs-BF16 difference, paths, web view", () => {
  const main = { id: "1", recipe: "fp8", result: result({ device: { kind: "cuda", gpus: [{ index: 0, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 }] } }), curve: [] };
  const bf16 = { id: "2", recipe: "bf16", result: result({ valLoss: 1.2249, recipe: "bf16", device: { kind: "cpu", gpus: [] } }), curve: [] };
  assert.ok(Math.abs(relDiff(main.result, bf16.result) - 0.0016 / 1.2249) < 1e-12);
  const lines = reportLines({ config: "tiny", main, bf16, checkpoint: "/x/ckpt", plot: "/x/loss.svg", web: "http://h:1/jobs/1", keepOpen: false, logs: "/x/logs", seconds: 200 }).join("\n");
  assert.match(lines, /fp8 +final loss 1\.2100 +validation 1\.2265 .* on GPU 0 \(NVIDIA H100 80GB HBM3\)/);
  assert.match(lines, /bf16 +final loss .* on CPU$/m);
  assert.match(lines, /entropy floor of the data: 1\.0631 nats\/token — validation is 0\.1634 above it/);
  assert.match(lines, /fp8 vs bf16: validation loss 1\.2265 vs 1\.2249, \+0\.0016 \(relative difference 0\.131%\)/);
  assert.match(lines, /checkpoint: \/x\/ckpt/);
  assert.match(lines, /web view: +http:\/\/h:1\/jobs\/1 was served while the job ran/);
  const open = reportLines({ config: "tiny", main, checkpoint: null, plot: "/p", web: "http://h:1/jobs/1", keepOpen: true, logs: "/l", seconds: 1 }).join("\n");
  assert.match(open, /queue: http:\/\/h:1\/queues\) — the services stay up until Ctrl-C/);
  assert.match(open, /checkpoint: none reported/);
  const noFloor = reportLines({ config: "x", main: { ...main, result: result({ entropyRate: null }) }, checkpoint: null, plot: "/p", web: null, keepOpen: false, logs: "/l", seconds: 1 }).join("\n");
  assert.match(noFloor, /unknown for this data set/);
});

test("plot: an SVG with both recipes, validation dots and the entropy floor; non-finite points skipped", () => {
  const curve = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, loss: 4 - i * 0.05, ...(i % 10 === 9 ? { valLoss: 4 - i * 0.05 + 0.1 } : {}) }));
  curve[3].loss = NaN;
  const svg = curveSvg("tiny", [
    { id: "1", recipe: "fp8", result: result(), curve },
    { id: "2", recipe: "bf16", result: result(), curve },
  ]);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /fp8 train/);
  assert.match(svg, /bf16 val/);
  assert.match(svg, /entropy floor 1\.063/);
  assert.doesNotMatch(svg, /NaN/);
  assert.equal((svg.match(/<circle /g) ?? []).length, 5 * 2 + 2, "five validation dots per recipe plus two legend dots");
  // Degenerate inputs still give a valid picture.
  assert.match(lineChartSvg({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", color: "#000", points: [{ x: 1, y: 2 }] }] }), /<\/svg>\n$/);
  assert.match(lineChartSvg({ title: "<&>", xLabel: "x", yLabel: "y", series: [] }), /&lt;&amp;&gt;/);
  assert.deepEqual(ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.equal(smooth(Array.from({ length: 1000 }, (_, i) => ({ x: i, y: i })), 100).length, 100);
});

test("ETA from the step rate seen, and durations", () => {
  const p = (step: number): JobProgress => ({ phase: "running", step, totalSteps: 100, loss: 1, valLoss: null, tokensPerSec: 1000, lastCheckpoint: null, resumedFrom: null, attempt: 1, workerId: "w" });
  assert.ok(Number.isNaN(eta("j", p(10), 0)));
  assert.equal(eta("j", p(20), 10_000), 80);
  assert.equal(eta("j", p(100), 20_000), 0);
  assert.equal(formatDuration(5), "5s");
  assert.equal(formatDuration(72), "1m12s");
  assert.equal(formatDuration(3700), "1h01m");
  assert.equal(formatDuration(NaN), "-");
});
