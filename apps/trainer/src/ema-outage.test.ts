// The EMA keeper going down mid-job does not stop training: a real octet-ema-keeper process is SIGKILLed while a
// real trainer process trains, then started again on the same port; the trainer reconnects, resends the
// parameters in full, and the job completes with its EMA at the last step; the outage and the steps it cost the
// EMA are in the job's progress and result (what the orchestrator's /metrics exports).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import type { JobResult } from "@octet/jobs";
import { SHARED_REDIS, type Services, type TrainerProc, cleanupPrefix, freePort, jobState, microSpec, openQueue, progressOf, sleep, startServices, startTrainer, submit, uniquePrefix, waitFinished, waitFor } from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
const prefix = uniquePrefix("emaout");
let services: Services;
let trainer: TrainerProc | undefined;
let keeper: ChildProcess | undefined;

const keeperBin = join(dirname(createRequire(import.meta.url).resolve("@octet/ema-keeper/package.json")), "dist", "cli.js");

async function startKeeper(port: number): Promise<ChildProcess> {
  const p = spawn(process.execPath, [keeperBin, "--host", "127.0.0.1", "--port", String(port)], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  p.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  await waitFor(() => out.includes("listening"), `octet-ema-keeper on port ${port}`, 15_000);
  return p;
}

before(async () => {
  services = await startServices("emaout");
});

after(async () => {
  await trainer?.kill("SIGKILL");
  keeper?.kill("SIGKILL");
  await cleanupPrefix(SHARED_REDIS, prefix);
  await services.close();
});

test("the EMA keeper killed and restarted mid-job: training goes on, the trainer resends, the gap is counted", async () => {
  const port = await freePort();
  keeper = await startKeeper(port);
  trainer = await startTrainer({ redis: SHARED_REDIS, prefix, services: { ...services, emaAddress: `127.0.0.1:${port}` }, workerId: "ema-out" });
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    await submit(queue, microSpec("ema-out", { steps: 400, evalEvery: 100, checkpoint: { every: 100, keep: 2 }, ema: { enabled: true, every: 2, decay: 0.9 } }), "e-1");
    const stepOf = async () => progressOf((await jobState(queue, "e-1")).job)?.step ?? 0;
    await waitFor(async () => (await stepOf()) >= 20, "a few steps with the keeper up", 60_000);
    keeper.kill("SIGKILL");
    await new Promise((r) => keeper!.once("exit", r));
    const downAt = await stepOf();
    await sleep(1500);
    const stillTraining = await stepOf();
    assert.ok(stillTraining > downAt, `training went on while the keeper was down (step ${downAt} → ${stillTraining})`);
    const down = progressOf((await jobState(queue, "e-1")).job)!;
    assert.ok((down.ema?.outages ?? 0) >= 1, `the outage shows in progress: ${JSON.stringify(down.ema)}`);
    keeper = await startKeeper(port);
    const f = await waitFinished(queue, "e-1", 120_000);
    assert.equal(f.state, "completed", String(f.job.failedReason));
    const r = f.job.returnvalue as JobResult;
    assert.equal(r.ema?.outages, 1);
    assert.ok((r.ema?.gapSteps ?? 0) > 0, `steps missing from the EMA are counted: ${JSON.stringify(r.ema)}`);
    assert.ok((r.ema?.failedPushes ?? 0) >= 1);
    // The resent snapshot and the pushes after it reached the new keeper: the EMA is at the last step.
    assert.equal(r.ema?.step, 400);
    assert.equal(r.emaStep, 400);
    assert.ok(trainer.logs.some((l) => l.msg === "EMA keeper had lost the run: registered again; the EMA restarts from the parameters sent now"));
  } finally {
    await queue.close();
  }
});
