// Jobs train on every kind of data a config names — a UTF-8 text file and llm.c token shards — through the one
// data path (the spec's data merged into the config, @octet/model's loadDataset in the training thread), end to
// end with the built trainer, a real checkpointer and EMA keeper, and Redis; a missing file fails the job naming it.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type CurvePoint, type JobResult, keysFor } from "@octet/jobs";
import { presetConfig, writeLlmcShard } from "@octet/model";
import { Redis } from "ioredis";
import {
  SHARED_REDIS,
  type Services,
  type TrainerProc,
  cleanupPrefix,
  microSpec,
  openQueue,
  startServices,
  startTrainer,
  submit,
  tempDir,
  uniquePrefix,
  waitFinished,
} from "./testing/harness.js";

process.env.OCTET_LOG_LEVEL ??= "error";
const prefix = uniquePrefix("data");
const keys = keysFor(prefix);
let services: Services;
let redis: Redis;
let trainer: TrainerProc;
let dir: string;

before(async () => {
  dir = tempDir("data");
  services = await startServices("data");
  redis = new Redis(SHARED_REDIS);
  trainer = await startTrainer({ redis: SHARED_REDIS, prefix, services, workerId: `${prefix}-w`, cpuSlots: 2 });
});

after(async () => {
  await trainer.kill("SIGKILL");
  redis.disconnect();
  await cleanupPrefix(SHARED_REDIS, prefix);
  await services.close();
  rmSync(dir, { recursive: true, force: true });
});

async function curveOf(jobId: string): Promise<CurvePoint[]> {
  return (await redis.lrange(keys.curve(jobId), 0, -1)).map((s) => JSON.parse(s) as CurvePoint);
}

/** The job completed all its steps with finite losses that came down by `drop` nats from the first steps' to the last steps'. */
async function assertLearned(jobId: string, state: string, failedReason: string | undefined, result: JobResult, steps: number, drop: number): Promise<void> {
  assert.equal(state, "completed", failedReason);
  assert.equal(result.step, steps);
  assert.ok(Number.isFinite(result.loss) && Number.isFinite(result.valLoss), `loss ${result.loss}, val ${result.valLoss}`);
  const curve = await curveOf(jobId);
  assert.equal(curve.length, steps);
  assert.ok(curve.every((p) => Number.isFinite(p.loss)));
  const mean = (ps: CurvePoint[]) => ps.reduce((s, p) => s + p.loss, 0) / ps.length;
  const first = mean(curve.slice(0, 3));
  const last = mean(curve.slice(-3));
  assert.ok(last < first - drop, `loss ${first} → ${last}`);
  assert.equal(result.entropyRate, null, "files have no known entropy floor");
}

test("jobs train on a text file and on llm.c shards; a missing file fails the job naming it", async () => {
  const textPath = join(dir, "corpus.txt");
  writeFileSync(textPath, "the quick brown fox jumps over the lazy dog; ".repeat(400));
  // Tokens with a short period and a little drift: learnable in a few dozen steps.
  const tokens = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ((i + offset) % 12) * 5 + (Math.floor((i + offset) / 12) % 4));
  await writeLlmcShard(join(dir, "train.bin"), tokens(20_000, 0));
  await writeLlmcShard(join(dir, "val.bin"), tokens(2_000, 7));

  // Byte-level text needs a 256-token vocabulary: the micro model with that vocabulary, given as a config object.
  const bytesConfig = presetConfig("micro");
  bytesConfig.name = "micro-bytes";
  bytesConfig.model.vocabSize = 256;
  const queue = openQueue(SHARED_REDIS, prefix);
  try {
    await submit(queue, microSpec("text", { config: bytesConfig, steps: 30, evalEvery: 15, checkpoint: { every: 10, keep: 2 }, data: { kind: "text", path: textPath, valFraction: 0.1 } }), "text-1");
    await submit(queue, microSpec("llmc", { steps: 30, evalEvery: 15, checkpoint: { every: 10, keep: 2 }, data: { kind: "llmc", train: join(dir, "train.bin"), val: join(dir, "val.bin") } }), "llmc-1");
    const text = await waitFinished(queue, "text-1", 120_000);
    const llmc = await waitFinished(queue, "llmc-1", 120_000);
    await assertLearned("text-1", text.state, text.job.failedReason, text.job.returnvalue as JobResult, 30, 1);
    await assertLearned("llmc-1", llmc.state, llmc.job.failedReason, llmc.job.returnvalue as JobResult, 30, 1);
    // Both ended with a checkpoint of the last step.
    for (const run of ["text", "llmc"]) assert.equal(Math.max(...(await services.checkpointer.store.list(run)).map((c) => c.step)), 30, run);

    await submit(queue, microSpec("absent", { config: bytesConfig, retries: 0, data: { kind: "text", path: join(dir, "absent.txt") } }), "absent-1");
    const absent = await waitFinished(queue, "absent-1", 60_000);
    assert.equal(absent.state, "failed");
    assert.match(absent.job.failedReason ?? "", /absent\.txt/);
  } finally {
    await queue.close();
  }
});
