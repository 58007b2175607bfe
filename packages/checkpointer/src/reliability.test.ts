// Reliability against real servers: the octet-checkpointer binary (from source) as a child process on loopback,
// killed with SIGKILL in the middle of a multi-shard save, then restarted.
import assert from "node:assert/strict";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { CheckpointClient } from "./client.js";
import { decodeManifest } from "./manifest.js";
import { startChild } from "./testing/child.js";
import { byteTensor, tempDir } from "./testing/util.js";
import { createHash } from "node:crypto";

const MiB = 1024 * 1024;

async function stagingDirs(runDir: string): Promise<string[]> {
  return (await readdir(runDir).catch(() => [] as string[])).filter((n) => n.startsWith(".staging-"));
}

test("SIGKILL during a multi-shard save: after restart the previous checkpoint is the latest and verifies", async () => {
  const { dir, cleanup } = await tempDir();
  const args = ["--data-dir", dir, "--shard-max-bytes", String(8 * MiB), "--max-message-bytes", String(4 * MiB)];
  let child = await startChild(args);
  try {
    let client = new CheckpointClient(child.address, { maxMessageBytes: 4 * MiB });
    const step1 = [0, 1, 2].map((i) => byteTensor(`layer.${i}.w`, 8 * MiB, i));
    await client.save("r", 1, step1, { data_position: "100" }).durable;

    // Step 2: 12 shards of 8 MiB. Kill the server once shards are being written into the staging directory.
    const step2 = Array.from({ length: 12 }, (_, i) => byteTensor(`layer.${i}.w`, 8 * MiB, 100 + i));
    const runDir = join(dir, "runs", "r");
    const save = client.save("r", 2, step2, { data_position: "200" });
    await save.staged; // the server holds all of it; now it writes in the background
    let seen: string[] = [];
    for (let i = 0; i < 5000 && seen.length < 2; i++) {
      const st = await stagingDirs(runDir);
      if (st.length > 0) seen = await readdir(join(runDir, st[0])).catch(() => []);
    }
    const killed = await child.stop("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");
    assert.ok(seen.length >= 2, `killed while the staging directory held ${seen.length} shard file(s)`);
    assert.ok(!seen.includes("manifest.json"), "killed before the manifest was written");
    await assert.rejects(save.durable, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.CANCELLED || e.code === grpc.status.INTERNAL);
    client.close();
    // What the crash left: the complete step 1, and a staging directory, but no visible step 2.
    assert.deepEqual((await readdir(runDir)).filter((n) => n.startsWith("step-")), ["step-000000000001"]);
    assert.equal((await stagingDirs(runDir)).length, 1);

    child = await startChild(args);
    client = new CheckpointClient(child.address, { maxMessageBytes: 4 * MiB });
    assert.deepEqual(await stagingDirs(runDir), [], "stale staging removed at startup");
    assert.deepEqual((await client.list("r")).map((c) => c.step), [1]);
    const latest = await client.loadLatestValid("r");
    assert.equal(latest.info.step, 1);
    assert.deepEqual(latest.skipped, []);
    assert.equal(latest.metadata.data_position, "100");
    // Checksums: recompute SHA-256 of each shard file against the manifest, and compare the tensors.
    const stepDir = join(runDir, "step-000000000001");
    const m = decodeManifest(await readFile(join(stepDir, "manifest.json")));
    for (const s of m.shards) assert.equal(createHash("sha256").update(await readFile(join(stepDir, s.file))).digest("hex"), s.sha256);
    for (const [i, t] of latest.tensors.entries()) assert.ok(Buffer.from(t.data).equals(Buffer.from(step1[i].data)), t.name);
    // The run goes on: step 2 can be saved again.
    const again = await client.save("r", 2, step2.slice(0, 2)).durable;
    assert.equal(again.step, 2);
    client.close();
  } finally {
    await child.stop("SIGKILL");
    await cleanup();
  }
});

test("SIGKILL while a save is still streaming in: nothing of it is visible after restart", async () => {
  const { dir, cleanup } = await tempDir();
  const args = ["--data-dir", dir];
  let child = await startChild(args);
  try {
    let client = new CheckpointClient(child.address);
    await client.save("r", 5, [byteTensor("w", 1000, 5)]).durable;
    const save = client.save("r", 6, [byteTensor("w", 64 * MiB, 6)]);
    await new Promise((r) => setTimeout(r, 50));
    await child.stop("SIGKILL");
    await assert.rejects(save.staged);
    client.close();
    child = await startChild(args);
    client = new CheckpointClient(child.address);
    assert.deepEqual((await client.list("r")).map((c) => c.step), [5]);
    assert.equal((await client.load("r", 5)).tensors[0].data[3], byteTensor("w", 4, 5).data[3]);
    client.close();
  } finally {
    await child.stop("SIGKILL");
    await cleanup();
  }
});

test("flipped bytes in a stored shard: the server reports the shard by name and returns no tensors", async () => {
  const { dir, cleanup } = await tempDir();
  const child = await startChild(["--data-dir", dir, "--shard-max-bytes", "65536"]);
  try {
    const client = new CheckpointClient(child.address);
    const t = [byteTensor("a", 65536, 1), byteTensor("b", 65536, 2)];
    await client.save("r", 1, t).durable;
    await client.save("r", 2, t).durable;
    const shard = join(dir, "runs", "r", "step-000000000002", "shard-00001-of-00002.safetensors");
    const b = await readFile(shard);
    for (const i of [200, 30_000, 65_000]) b[i] ^= 0x5a;
    await writeFile(shard, b);
    await assert.rejects(client.load("r", 2), (e: grpc.ServiceError) => e.code === grpc.status.DATA_LOSS && /shard-00001-of-00002\.safetensors: SHA-256 mismatch/.test(e.details));
    const latest = await client.loadLatestValid("r");
    assert.equal(latest.info.step, 1);
    assert.equal(latest.skipped[0].object, "shard-00001-of-00002.safetensors");
    assert.ok(Buffer.from(latest.tensors[1].data).equals(Buffer.from(t[1].data)));
    client.close();
    const stopped = await child.stop("SIGTERM");
    assert.equal(stopped.code, 0, "graceful exit on SIGTERM");
  } finally {
    await child.stop("SIGKILL");
    await cleanup();
  }
});

test("CLI: a bad flag or environment value exits with status 2 and names it", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await assert.rejects(startChild(["--data-dir", dir, "--keep-last", "-3"]), /--keep-last must be an integer >= 0/);
    await assert.rejects(startChild(["--data-dir", dir], { OCTET_CHECKPOINTER_MAX_STAGED_BYTES: "lots" }), /OCTET_CHECKPOINTER_MAX_STAGED_BYTES must be an integer/);
  } finally {
    await cleanup();
  }
});
