import assert from "node:assert/strict";
import { chmod, mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CheckpointError, CorruptCheckpointError } from "./errors.js";
import { decodeManifest } from "./manifest.js";
import { deserialize, serialize } from "@octet/numerics";
import { CheckpointStore, planShards } from "./store.js";
import { byteTensor, f32Tensor, mountTmpfs, tempDir } from "./testing/util.js";

const runDir = (dir: string, run: string) => join(dir, "runs", run);

test("save → durable → load round trip with several shards and the manifest on disk", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir, shardMaxBytes: 1000 });
    const tensors = [f32Tensor("model.embed", [10, 20]), f32Tensor("model.layers.0.w", [100], 3), byteTensor("rng", 16)];
    const h = store.save("run-a", 7, tensors, { config: '{"d":20}', data_position: "1234" });
    await h.staged;
    const info = await h.durable;
    assert.equal(info.step, 7);
    assert.equal(info.shards, 2); // 800 bytes, then 400 + 16
    assert.equal(info.totalBytes, 800 + 400 + 16);
    assert.equal(store.status(h.id).state, "durable");

    const stepDir = join(runDir(dir, "run-a"), "step-000000000007");
    assert.deepEqual((await readdir(stepDir)).sort(), ["manifest.json", "shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors"]);
    const m = decodeManifest(await readFile(join(stepDir, "manifest.json")));
    assert.deepEqual(m.metadata, { config: '{"d":20}', data_position: "1234" });
    assert.deepEqual(m.shards[1].tensors.map((t) => t.name), ["model.layers.0.w", "rng"]);
    // Each shard is a plain safetensors file.
    const shard1 = deserialize(await readFile(join(stepDir, m.shards[1].file)));
    assert.deepEqual(shard1.metadata, { format: "pt" });
    assert.deepEqual(Buffer.from(shard1.tensors[1].data), Buffer.from(tensors[2].data));

    const loaded = await store.load("run-a", 7);
    assert.deepEqual(loaded.tensors.map((t) => t.name), tensors.map((t) => t.name));
    for (const [i, t] of loaded.tensors.entries()) assert.deepEqual(Buffer.from(t.data), Buffer.from(tensors[i].data));
    const some = await store.load("run-a", 7, { names: ["rng"] });
    assert.deepEqual(some.tensors.map((t) => t.name), ["rng"]);
    await assert.rejects(store.load("run-a", 7, { names: ["nope"] }), (e: CheckpointError) => e.code === "NOT_FOUND");
    await assert.rejects(store.load("run-a", 8), (e: CheckpointError) => e.code === "NOT_FOUND");

    // Streaming reader, in small chunks.
    const r = await store.open("run-a", 7, { names: ["model.embed"] });
    const parts: Buffer[] = [];
    for await (const c of r.readTensor(r.tensors[0], 100)) parts.push(c);
    await r.close();
    assert.equal(parts.length, 8);
    assert.deepEqual(Buffer.concat(parts), Buffer.from(tensors[0].data));
    await store.close();
  } finally {
    await cleanup();
  }
});

test("staged copies the data: the caller may overwrite its buffers at once", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    const t = byteTensor("w", 4096, 1);
    const original = Buffer.from(t.data);
    const h = store.save("r", 1, [t]);
    await h.staged;
    t.data.fill(0xee); // the trainer moves on and updates its parameters
    await h.durable;
    const { tensors } = await store.load("r", 1);
    assert.deepEqual(Buffer.from(tensors[0].data), original);
  } finally {
    await cleanup();
  }
});

test("saves of a run are serialized in step order; out-of-order and duplicate steps are refused", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    const order: number[] = [];
    const hs = [10, 20, 30].map((s) => store.save("r", s, [byteTensor("x", 1 << 16, s)]));
    hs.forEach((h) => void h.durable.then((i) => order.push(i.step)));
    assert.throws(() => store.save("r", 5, [byteTensor("x", 8)]), (e: CheckpointError) => e.code === "FAILED_PRECONDITION" && /step order/.test(e.message));
    assert.throws(() => store.save("r", 30, [byteTensor("x", 8)]), (e: CheckpointError) => e.code === "ALREADY_EXISTS");
    // Another run is independent.
    const other = store.save("other", 1, [byteTensor("x", 8)]);
    await Promise.all([...hs.map((h) => h.durable), other.durable]);
    assert.deepEqual(order, [10, 20, 30]);
    const dup = store.save("r", 20, [byteTensor("x", 8)]);
    await assert.rejects(dup.staged, (e: CheckpointError) => e.code === "ALREADY_EXISTS");
    await assert.rejects(dup.durable, (e: CheckpointError) => e.code === "ALREADY_EXISTS");
    assert.deepEqual((await store.list("r")).map((c) => c.step), [10, 20, 30]);
    assert.deepEqual((await store.list()).map((c) => `${c.run}@${c.step}`), ["other@1", "r@10", "r@20", "r@30"]);
  } finally {
    await cleanup();
  }
});

test("bad input: RangeError/TypeError naming the problem", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    for (const run of ["../x", "/abs", "a/b", "..", ".hidden", "", "a b", "x\0y", "a".repeat(129)]) {
      assert.throws(() => store.save(run, 1, []), RangeError, `run ${JSON.stringify(run)}`);
    }
    for (const name of ["../../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "sp ace", "nul\0"]) {
      assert.throws(() => store.save("r", 1, [byteTensor(name, 1)]), RangeError, `tensor ${JSON.stringify(name)}`);
    }
    assert.throws(() => store.save("r", -1, []), /invalid step/);
    assert.throws(() => store.save("r", 1.5, []), /invalid step/);
    assert.throws(() => store.save("r", 1, [{ ...byteTensor("a", 4), dtype: "F99" as "U8" }]), /unknown dtype "F99"/);
    assert.throws(() => store.save("r", 1, [{ ...byteTensor("a", 4), shape: [5] }]), /4 data bytes, but U8\[5\] needs 5/);
    assert.throws(() => store.save("r", 1, [], { k: 1 as unknown as string }), TypeError);
    await assert.rejects(store.load("../etc", 1), RangeError);
    assert.equal((await readdir(join(dir, "runs"))).length, 0);
  } finally {
    await cleanup();
  }
});

test("corruption: a flipped byte is reported by shard name; loadLatestValid falls back to the previous step", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir, shardMaxBytes: 4096 });
    await store.save("r", 1, [byteTensor("a", 4096, 1), byteTensor("b", 4096, 2)]).durable;
    await store.save("r", 2, [byteTensor("a", 4096, 3), byteTensor("b", 4096, 4)]).durable;
    const shard = join(runDir(dir, "r"), "step-000000000002", "shard-00001-of-00002.safetensors");
    const bytes = await readFile(shard);
    bytes[bytes.length - 100] ^= 0x01;
    await writeFile(shard, bytes);
    await assert.rejects(store.load("r", 2), (e: CorruptCheckpointError) => e instanceof CorruptCheckpointError && e.object === "shard-00001-of-00002.safetensors" && /SHA-256 mismatch/.test(e.message));
    await assert.rejects(store.verify("r", 2), CorruptCheckpointError);
    // The uncorrupted shard can still be read alone.
    assert.equal((await store.load("r", 2, { names: ["a"] })).tensors[0].data[0], 3);
    const latest = await store.loadLatestValid("r");
    assert.equal(latest.info.step, 1);
    assert.deepEqual(latest.skipped.map((s) => [s.step, s.object]), [[2, "shard-00001-of-00002.safetensors"]]);
    assert.deepEqual(Buffer.from(latest.tensors[1].data), Buffer.from(byteTensor("b", 4096, 2).data));
    assert.equal((await store.latestValidStep("r")).step, 1);

    // A manifest edit that keeps valid JSON is caught by its checksum.
    const mpath = join(runDir(dir, "r"), "step-000000000001", "manifest.json");
    await writeFile(mpath, (await readFile(mpath, "utf8")).replace('"step": 1', '"step": 1 '));
    const text = await readFile(mpath, "utf8");
    await writeFile(mpath, text.replace(/"totalBytes": 8192/, '"totalBytes": 8193'));
    await assert.rejects(store.load("r", 1), (e: CorruptCheckpointError) => e.object === "manifest.json" && /checksum mismatch/.test(e.reason));
    await assert.rejects(store.loadLatestValid("r"), (e: CheckpointError) => e.code === "NOT_FOUND" && /2 corrupted/.test(e.message));
    const listed = await store.list("r");
    assert.match(listed[0].corrupt ?? "", /manifest/);
    assert.equal(listed[1].corrupt, undefined); // list checks manifests only
    // A truncated shard.
    await writeFile(shard, bytes.subarray(0, 100));
    await assert.rejects(store.verify("r", 2), /size 100 bytes/);
  } finally {
    await cleanup();
  }
});

test("retention keeps the last N and every K-th step", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir, retention: { keepLast: 2, keepEvery: 10 } });
    for (const s of [5, 10, 15, 20, 25, 30, 35]) await store.save("r", s, [byteTensor("x", 8, s)]).durable;
    await store.flush("r");
    assert.deepEqual((await store.list("r")).map((c) => c.step), [10, 20, 30, 35]);
    await store.delete("r", 10);
    assert.deepEqual((await store.list("r")).map((c) => c.step), [20, 30, 35]);
    await assert.rejects(store.delete("r", 10), (e: CheckpointError) => e.code === "NOT_FOUND");
    assert.deepEqual((await readdir(runDir(dir, "r"))).filter((n) => n.startsWith(".")), []);
  } finally {
    await cleanup();
  }
});

test("stale staging and deletion directories are removed at startup and never listed", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    let store = await CheckpointStore.open({ dataDir: dir });
    await store.save("r", 1, [byteTensor("x", 8)]).durable;
    const stale = join(runDir(dir, "r"), ".staging-step-000000000002-abcdef");
    await mkdir(stale);
    await writeFile(join(stale, "shard-00000-of-00001.safetensors"), "partial");
    await mkdir(join(runDir(dir, "r"), ".deleting-step-000000000000-abcdef"));
    assert.deepEqual((await store.list("r")).map((c) => c.step), [1]);
    store = await CheckpointStore.open({ dataDir: dir });
    assert.deepEqual(await readdir(runDir(dir, "r")), ["step-000000000001"]);
  } finally {
    await cleanup();
  }
});

test("importSafetensors: from a path and from bytes; the file's metadata is kept", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    const tensors = [f32Tensor("a", [3, 2]), { name: "b", dtype: "I64" as const, shape: [2], data: new Uint8Array(new BigInt64Array([-1n, 5n]).buffer) }];
    const file = join(dir, "in.safetensors");
    await writeFile(file, serialize(tensors, { format: "pt", note: "hi" }));
    await (await store.importSafetensors("imp", 3, file, { source: "hf" })).durable;
    const l = await store.load("imp", 3);
    assert.deepEqual(l.metadata, { source: "hf", "safetensors.metadata": '{"format":"pt","note":"hi"}' });
    const b = l.tensors.find((t) => t.name === "b")!;
    assert.deepEqual(Buffer.from(b.data), Buffer.from(new BigInt64Array([-1n, 5n]).buffer));
    assert.equal(Buffer.from(b.data).readBigInt64LE(0), -1n);
    // Stored widest dtype first (aligned), so I64 "b" precedes F32 "a" in the shard.
    assert.deepEqual(l.tensors.map((t) => t.name), ["b", "a"]);
    await (await store.importSafetensors("imp", 4, serialize(tensors))).durable;
    assert.equal((await store.load("imp", 4)).tensors.length, 2);
    await assert.rejects(store.importSafetensors("imp", 5, Buffer.from("garbage!garbage!")), RangeError);
    await assert.rejects(store.importSafetensors("imp", 5, join(dir, "missing.safetensors")), (e: CheckpointError) => e.code === "NOT_FOUND");
  } finally {
    await cleanup();
  }
});

test("limits: checkpoint size and memory held by pending saves", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir, maxStagedBytes: 10_000, maxCheckpointBytes: 8_000 });
    assert.throws(() => store.save("r", 1, [byteTensor("x", 9_000)]), (e: CheckpointError) => e.code === "RESOURCE_EXHAUSTED" && /exceeds the 8000-byte limit/.test(e.message));
    const a = store.save("r", 1, [byteTensor("x", 6_000)]);
    assert.throws(() => store.save("q", 1, [byteTensor("x", 6_000)]), (e: CheckpointError) => e.code === "RESOURCE_EXHAUSTED" && /held/.test(e.message));
    await a.durable;
    assert.equal(store.pendingBytes, 0);
    await store.save("q", 1, [byteTensor("x", 6_000)]).durable;
  } finally {
    await cleanup();
  }
});

test("disk full: RESOURCE_EXHAUSTED, no staging left, previous checkpoints intact", async (t) => {
  const { dir, cleanup } = await tempDir();
  const unmount = mountTmpfs(dir, 1024 * 1024);
  if (!unmount) {
    await cleanup();
    t.skip("needs root and tmpfs mounts to make a small filesystem");
    return;
  }
  try {
    for (const checkFreeSpace of [true, false]) {
      const store = await CheckpointStore.open({ dataDir: dir, checkFreeSpace });
      const run = `r${checkFreeSpace}`;
      await store.save(run, 1, [byteTensor("x", 100_000, 1)]).durable;
      const h = store.save(run, 2, [byteTensor("x", 2_000_000, 2)]);
      await h.staged;
      await assert.rejects(h.durable, (e: CheckpointError) => e.code === "RESOURCE_EXHAUSTED" && (checkFreeSpace ? /not enough space/ : /disk full/).test(e.message));
      assert.equal(store.status(h.id).state, "failed");
      assert.deepEqual(await readdir(runDir(dir, run)), ["step-000000000001"]);
      const l = await store.load(run, 1);
      assert.deepEqual(Buffer.from(l.tensors[0].data), Buffer.from(byteTensor("x", 100_000, 1).data));
    }
  } finally {
    unmount();
    await cleanup();
  }
});

test("permission denied: PERMISSION_DENIED, previous checkpoints intact", async (t) => {
  const { dir, cleanup } = await tempDir();
  const unmount = process.getuid?.() === 0 ? mountTmpfs(dir, 4 * 1024 * 1024) : () => undefined;
  if (!unmount) {
    await cleanup();
    t.skip("as root, needs a tmpfs mount to make a read-only filesystem");
    return;
  }
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    await store.save("r", 1, [byteTensor("x", 1000, 1)]).durable;
    if (process.getuid?.() === 0) {
      const { execFileSync } = await import("node:child_process");
      execFileSync("mount", ["-o", "remount,ro", dir]); // root ignores file modes; a read-only mount it cannot
    } else {
      await chmod(runDir(dir, "r"), 0o555);
    }
    const h = store.save("r", 2, [byteTensor("x", 1000, 2)]);
    await assert.rejects(h.durable, (e: CheckpointError) => e.code === "PERMISSION_DENIED" && /permission denied while creating a staging directory for r@2/.test(e.message));
    assert.equal((await store.load("r", 1)).tensors[0].data[1], byteTensor("x", 2, 1).data[1]);
    assert.deepEqual((await store.list("r")).map((c) => c.step), [1]);
    await chmod(runDir(dir, "r"), 0o755).catch(() => undefined);
  } finally {
    unmount();
    await cleanup();
  }
  assert.ok(!(await stat(dir).catch(() => undefined)));
});

test("planShards packs whole tensors greedily", () => {
  const t = (n: number) => ({ data: new Uint8Array(n) });
  assert.deepEqual(planShards([t(4), t(4), t(4), t(10), t(1)], 8).map((s) => s.map((x) => x.data.length)), [[4, 4], [4], [10], [1]]);
  assert.deepEqual(planShards([], 8), [[]]);
});
