// loadDataset: the one path from a config's `data` to tokens — synthetic, text and llm.c shards — and the
// config schema's data kinds (defaults, text needing a byte vocabulary).

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { presetConfig, validateConfig } from "../config.js";
import { Trainer } from "../trainer.js";
import { loadDataset } from "./dataset.js";
import { writeLlmcShard } from "./files.js";
import { syntheticCorpus } from "./synthetic.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "octet-dataset-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("loadDataset: the synthetic corpus of the seed, with its entropy floors", async () => {
  const d = await loadDataset({ kind: "synthetic", seed: 3 }, 64);
  const c = syntheticCorpus({ seed: 3, vocabSize: 64 });
  assert.equal(d.name, c.name);
  assert.equal(d.vocabSize, 64);
  assert.deepEqual(d.train, c.train);
  assert.deepEqual(d.val, c.val);
  assert.equal(d.entropyRate, c.entropyRate);
  assert.equal(d.order1Entropy, c.order1Entropy);
});

test("loadDataset: a text file as bytes, and llm.c shards checked against the model's vocabulary", () =>
  withDir(async (dir) => {
    const text = join(dir, "corpus.txt");
    await writeFile(text, "abcdefghij".repeat(10));
    const t = await loadDataset({ kind: "text", path: text, valFraction: 0.2 }, 256);
    assert.equal(t.vocabSize, 256);
    assert.equal(t.train.length, 80);
    assert.equal(t.val.length, 20);
    assert.equal(t.train[0], "a".charCodeAt(0));
    assert.equal(t.entropyRate, undefined);

    await writeLlmcShard(join(dir, "train.bin"), [1, 2, 3, 4, 5, 6]);
    await writeLlmcShard(join(dir, "val.bin"), [7, 8]);
    const l = await loadDataset({ kind: "llmc", train: join(dir, "train.bin"), val: join(dir, "val.bin") }, 64);
    assert.equal(l.vocabSize, 64);
    assert.deepEqual([...l.train], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...l.val], [7, 8]);
    await assert.rejects(loadDataset({ kind: "llmc", train: join(dir, "train.bin"), val: join(dir, "val.bin") }, 8), /token 8 is outside the vocabulary of 8/);
    await assert.rejects(loadDataset({ kind: "text", path: join(dir, "missing.txt"), valFraction: 0.1 }, 256), /ENOENT|missing\.txt/);
  }));

test("config data: defaults filled, text needs model.vocabSize 256, unknown kinds refused", () => {
  const tiny = presetConfig("tiny");
  assert.deepEqual(validateConfig({ ...tiny, data: { kind: "synthetic" } }).data, { kind: "synthetic", seed: 1 });
  assert.deepEqual(validateConfig({ ...tiny, data: { kind: "text", path: "a.txt" } }).data, { kind: "text", path: "a.txt", valFraction: 0.1 });
  const micro = presetConfig("micro"); // vocabulary 64
  assert.throws(() => validateConfig({ ...micro, data: { kind: "text", path: "a.txt" } }), { name: "RangeError", message: /model\.vocabSize: must be 256 for data of kind "text"/ });
  assert.throws(() => validateConfig({ ...tiny, data: { kind: "csv", path: "a.csv" } }), /data\.kind/);
  assert.throws(() => validateConfig({ ...tiny, data: { kind: "llmc", train: "t.bin", val: "" } }), /data\.val/);
});

test("a Trainer trains on text loaded by loadDataset; without data it says to load the files", () =>
  withDir(async (dir) => {
    const path = join(dir, "corpus.txt");
    await writeFile(path, "the quick brown fox jumps over the lazy dog. ".repeat(200));
    const config = presetConfig("micro");
    config.model.vocabSize = 256;
    config.data = { kind: "text", path, valFraction: 0.1 };
    assert.throws(() => new Trainer({ config, recipe: "fp32", seed: 1 }), { name: "TypeError", message: /data of kind "text" is read from files; pass data: await loadDataset/ });
    const data = await loadDataset(validateConfig(config).data, 256);
    const trainer = new Trainer({ config, recipe: "fp32", seed: 1, data });
    const losses = Array.from({ length: 12 }, () => trainer.trainStep().loss);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[11] < losses[0] - 0.5, `loss ${losses[0]} → ${losses[11]}`);
  }));
