// Writes interop/octet_numpy.safetensors and interop/octet_torch.safetensors through Octet's real write path
// (a CheckpointStore save; the one shard is copied out), for interop/check.py to load with Hugging Face's library.
//   node --import tsx interop/write-octet.ts [DIR]
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckpointStore } from "../src/store.js";
import { NUMPY_METADATA, numpyTensors, torchTensors } from "../src/testing/interop-values.js";

const outDir = process.argv[2] ?? dirname(fileURLToPath(import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), "octet-interop-"));
try {
  const store = await CheckpointStore.open({ dataDir: tmp });
  for (const [name, tensors, step] of [["octet_numpy", numpyTensors(), 1], ["octet_torch", torchTensors(), 2]] as const) {
    await store.save("interop", step, tensors, NUMPY_METADATA).durable;
    const m = await store.readManifest("interop", step);
    await copyFile(join(tmp, "runs", "interop", `step-${String(step).padStart(12, "0")}`, m.shards[0].file), join(outDir, `${name}.safetensors`));
    console.log(`wrote ${join(outDir, `${name}.safetensors`)}`);
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
