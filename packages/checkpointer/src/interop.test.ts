// Files written by Hugging Face's safetensors library (interop/check.py writes them) load in Octet with the
// values check.py defines. Skipped when the fixtures are absent (they need Python with safetensors/torch).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { deserialize, parseHeader, type Tensor } from "@octet/numerics";
import { CheckpointStore } from "./store.js";
import { NUMPY_METADATA, numpyTensors, torchTensors } from "./testing/interop-values.js";
import { tempDir } from "./testing/util.js";

const interopDir = join(dirname(fileURLToPath(import.meta.url)), "..", "interop");

function checkAgainst(loaded: Tensor[], expected: Tensor[]): void {
  const byName = new Map(loaded.map((t) => [t.name, t]));
  assert.deepEqual([...byName.keys()].sort(), expected.map((t) => t.name).sort());
  for (const want of expected) {
    const got = byName.get(want.name)!;
    assert.equal(got.dtype, want.dtype, want.name);
    assert.deepEqual(got.shape, want.shape, want.name);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(want.data)), `${want.name}: bytes differ`);
  }
}

for (const [file, expected] of [["hf_numpy.safetensors", numpyTensors], ["hf_torch.safetensors", torchTensors]] as const) {
  const path = join(interopDir, file);
  test(`interop: ${file} written by Hugging Face safetensors loads with the expected values`, async (t) => {
    if (!existsSync(path)) {
      t.skip(`${path} absent: run \`python interop/check.py\` (needs safetensors${file.includes("torch") ? " and torch" : ""})`);
      return;
    }
    const bytes = await readFile(path);
    const h = parseHeader(bytes);
    assert.equal(h.dataStart % 8, 0, "HF pads the header to a multiple of 8");
    const { tensors, metadata } = deserialize(bytes);
    assert.deepEqual(metadata, NUMPY_METADATA);
    checkAgainst(tensors, expected());
    // And through the store: import, then load verified.
    const { dir, cleanup } = await tempDir();
    try {
      const store = await CheckpointStore.open({ dataDir: dir });
      await (await store.importSafetensors("hf", 1, path)).durable;
      checkAgainst((await store.load("hf", 1)).tensors, expected());
    } finally {
      await cleanup();
    }
  });
}

test("interop values: the store writes them aligned (each tensor at a multiple of its element size)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await CheckpointStore.open({ dataDir: dir });
    await store.save("v", 1, [...numpyTensors(), ...torchTensors().map((t) => ({ ...t, name: `t.${t.name}` }))]).durable;
    const m = await store.readManifest("v", 1);
    for (const t of m.shards[0].tensors) {
      const size = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 }[t.dtype as string] ?? 1;
      assert.equal(t.offset % size, 0, `${t.name} at ${t.offset}`);
    }
    checkAgainst((await store.load("v", 1)).tensors.filter((t) => !t.name.startsWith("t.")), numpyTensors());
  } finally {
    await cleanup();
  }
});
