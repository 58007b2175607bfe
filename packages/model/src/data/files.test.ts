import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  loadTextFile,
  loadLlmcShard,
  writeLlmcShard,
  loadLlmcDataset,
  encodeLlmcShard,
  decodeBytes,
  encodeBytes,
  splitTrainVal,
  LLMC_HEADER_BYTES,
} from "./files.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "octet-data-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("loadTextFile: UTF-8 bytes as tokens, split into train/val, round-trips through decodeBytes", () =>
  withDir(async (dir) => {
    const text = "héllo wörld — ∑ 🙂\n".repeat(10);
    const path = join(dir, "a.txt");
    await writeFile(path, text, "utf8");
    const ds = await loadTextFile(path, { valFraction: 0.25 });
    const bytes = Buffer.from(text, "utf8");
    assert.equal(ds.vocabSize, 256);
    assert.equal(ds.train.length + ds.val.length, bytes.length);
    assert.equal(ds.val.length, Math.floor(bytes.length * 0.25));
    assert.equal(ds.train[1], 0xc3); // é = C3 A9
    assert.equal(decodeBytes([...ds.train, ...ds.val]), text);
    const all = await loadTextFile(path, { valFraction: 0 });
    assert.equal(all.val.length, 0);
    assert.deepEqual(all.train, encodeBytes(text));
  }));

test("loadTextFile: invalid UTF-8, empty and missing files are refused naming the file", () =>
  withDir(async (dir) => {
    const bad = join(dir, "bad.txt");
    await writeFile(bad, Buffer.from([0x61, 0x62, 0xff, 0x63]));
    await assert.rejects(loadTextFile(bad), (e: Error) => e instanceof RangeError && e.message.includes("bad.txt") && /offset 2/.test(e.message));
    const empty = join(dir, "empty.txt");
    await writeFile(empty, "");
    await assert.rejects(loadTextFile(empty), /empty/);
    await assert.rejects(loadTextFile(join(dir, "missing.txt")), /ENOENT/);
    await writeFile(join(dir, "ok.txt"), "abc");
    await assert.rejects(loadTextFile(join(dir, "ok.txt"), { valFraction: 1 }), /valFraction/);
  }));

test("llm.c shards: write then load round-trips, and the header is llm.c's", () =>
  withDir(async (dir) => {
    const tokens = Uint16Array.from({ length: 1000 }, (_, i) => (i * 7919) % 65536);
    tokens[3] = 65535;
    const path = join(dir, "x_train_000.bin");
    await writeLlmcShard(path, tokens);
    const raw = await readFile(path);
    assert.equal(raw.length, LLMC_HEADER_BYTES + 2000);
    assert.equal(raw.readInt32LE(0), 20240520);
    assert.equal(raw.readInt32LE(4), 1);
    assert.equal(raw.readInt32LE(8), 1000);
    for (let i = 3; i < 256; i++) assert.equal(raw.readInt32LE(4 * i), 0);
    assert.equal(raw.readUInt16LE(LLMC_HEADER_BYTES + 2), 7919); // little-endian uint16 tokens
    assert.deepEqual(await loadLlmcShard(path), tokens);
    // Empty shard is valid.
    await writeLlmcShard(join(dir, "e.bin"), []);
    assert.equal((await loadLlmcShard(join(dir, "e.bin"))).length, 0);
  }));

test("llm.c shards: a length not matching the header, bad magic, bad version, short file → RangeError naming file and problem", () =>
  withDir(async (dir) => {
    const good = encodeLlmcShard([1, 2, 3, 4]);
    const truncated = join(dir, "trunc.bin");
    await writeFile(truncated, good.subarray(0, good.length - 2));
    await assert.rejects(loadLlmcShard(truncated), (e: Error) => e instanceof RangeError && e.message.includes("trunc.bin") && /says 4 tokens/.test(e.message) && /truncated/.test(e.message));
    const trailing = join(dir, "trail.bin");
    await writeFile(trailing, Buffer.concat([good, Buffer.from([0, 0])]));
    await assert.rejects(loadLlmcShard(trailing), /trail\.bin.*trailing data/);
    const magic = Buffer.from(good);
    magic.writeInt32LE(12345, 0);
    await writeFile(join(dir, "magic.bin"), magic);
    await assert.rejects(loadLlmcShard(join(dir, "magic.bin")), /magic\.bin: bad magic 12345 \(want 20240520\)/);
    const v2 = Buffer.from(good);
    v2.writeInt32LE(2, 4);
    await writeFile(join(dir, "v2.bin"), v2);
    await assert.rejects(loadLlmcShard(join(dir, "v2.bin")), /version 2 \(uint32 tokens\) is not supported/);
    const v7 = Buffer.from(good);
    v7.writeInt32LE(7, 4);
    await writeFile(join(dir, "v7.bin"), v7);
    await assert.rejects(loadLlmcShard(join(dir, "v7.bin")), /unsupported version 7/);
    await writeFile(join(dir, "short.bin"), Buffer.alloc(100));
    await assert.rejects(loadLlmcShard(join(dir, "short.bin")), /short\.bin: 100 bytes is shorter than the 1024-byte header/);
    await assert.rejects(writeLlmcShard(join(dir, "big.bin"), [70000]), /does not fit uint16/);
    await assert.rejects(stat(join(dir, "big.bin")), /ENOENT/);
  }));

test("loadLlmcDataset: concatenates shards in order, infers or checks the vocabulary", () =>
  withDir(async (dir) => {
    const p = (n: string) => join(dir, n);
    await writeLlmcShard(p("t0.bin"), [1, 2, 3]);
    await writeLlmcShard(p("t1.bin"), [4, 5]);
    await writeLlmcShard(p("v0.bin"), [9]);
    const ds = await loadLlmcDataset({ train: [p("t0.bin"), p("t1.bin")], val: [p("v0.bin")] });
    assert.deepEqual([...ds.train], [1, 2, 3, 4, 5]);
    assert.deepEqual([...ds.val], [9]);
    assert.equal(ds.vocabSize, 10);
    assert.equal((await loadLlmcDataset({ train: [p("t0.bin")], val: [], vocabSize: 50257 })).vocabSize, 50257);
    await assert.rejects(loadLlmcDataset({ train: [p("t0.bin")], val: [p("v0.bin")], vocabSize: 5 }), /token 9 is outside the vocabulary of 5/);
    await assert.rejects(loadLlmcDataset({ train: [], val: [] }), TypeError);
  }));

test("splitTrainVal: views of the tail", () => {
  const t = Uint16Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const { train, val } = splitTrainVal(t, 0.3);
  assert.deepEqual([...train], [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...val], [7, 8, 9]);
  assert.throws(() => splitTrainVal(t, -0.1), RangeError);
  assert.throws(() => decodeBytes([300]), /not a byte/);
});
