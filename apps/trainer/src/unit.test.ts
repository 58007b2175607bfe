// Unit tests of the pieces without Redis: nvidia-smi parsing, the offer, slot reservation, state conversion.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Tensor } from "@octet/checkpointer";
import { Trainer, presetConfig } from "@octet/model";
import { classifyFailure, memoryEstimateText } from "./failures.js";
import { decideOffer, detectGpus, parseNvidiaSmi, planJob } from "./gpus.js";
import { SlotPool } from "./slots.js";
import { EMA_PREFIX, META_EMA, META_MODEL, emaFromTensors, emaToTensors, stateToTensors, tensorsToState } from "./state.js";

test("parseNvidiaSmi reads index, name (commas included) and memory", () => {
  // The first line is verbatim what nvidia-smi printed on an H100 host for these arguments.
  const out = "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n\n";
  assert.deepEqual(parseNvidiaSmi(out), [
    { index: 0, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 },
    { index: 1, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 },
  ]);
  assert.deepEqual(parseNvidiaSmi("3, Some, Odd, Name, 1024\n"), [{ index: 3, name: "Some, Odd, Name", memoryMiB: 1024 }]);
  assert.deepEqual(parseNvidiaSmi(""), []);
  assert.throws(() => parseNvidiaSmi("garbage\n"), /cannot parse/);
  assert.throws(() => parseNvidiaSmi("x, A100, 40000\n"), /bad GPU index/);
});

test("detectGpus without nvidia-smi offers nothing and says why", async () => {
  const d = await detectGpus({ command: "/nonexistent/nvidia-smi" });
  assert.deepEqual(d.gpus, []);
  assert.match(d.note!, /not found/);
});

test("decideOffer: detected GPUs, --gpus override, --gpus 0 and CPU slots", () => {
  const g = [{ index: 0, name: "H100", memoryMiB: 80000 }];
  assert.deepEqual(decideOffer(g, { cpuSlots: 3 }), { kind: "gpu", slots: 1, gpus: g });
  assert.deepEqual(decideOffer([], { cpuSlots: 3 }), { kind: "cpu", slots: 3, gpus: [] });
  assert.deepEqual(decideOffer(g, { cpuSlots: 3, gpus: 0 }), { kind: "cpu", slots: 3, gpus: [] });
  const o = decideOffer(g, { cpuSlots: 1, gpus: 2 });
  assert.equal(o.kind, "gpu");
  assert.equal(o.slots, 2);
  assert.deepEqual(o.gpus[0], g[0]);
  assert.equal(o.gpus[1].name, "unknown");
});

test("SlotPool reserves all n slots together or none, never more than it has", async () => {
  const p = new SlotPool(3);
  assert.deepEqual(p.reserve(2), [0, 1]);
  assert.equal(p.reserve(2), null);
  assert.equal(p.free, 1);
  assert.deepEqual(p.reserve(1), [2]);
  assert.equal(p.reserve(1), null);
  assert.equal(p.reserve(4), null);
  const changed = p.changed();
  p.release([0, 1]);
  await changed;
  assert.equal(p.free, 2);
  assert.throws(() => p.release([0]), /released twice/);
  assert.throws(() => p.release([7]), /not one of/);
  assert.throws(() => new SlotPool(0), RangeError);
});

test("model state → checkpoint tensors → state restores a trainer that continues identically", () => {
  const cfg = presetConfig("micro");
  cfg.train.steps = 6;
  const a = new Trainer({ config: cfg, recipe: "fp8", seed: 3 });
  for (let i = 0; i < 3; i++) a.trainStep();
  const exported = a.exportState();
  const tensors = stateToTensors(exported, true);
  // copies: changing the trainer after the export leaves the tensors as they were
  const first = tensors.find((t) => t.name.startsWith("param/"))!;
  const before = Buffer.from(first.data);
  const a4 = a.trainStep().loss;
  assert.ok(Buffer.from(first.data).equals(before));
  const emaMeta = { format: "octet.ema.v1" as const, run: "r", step: 2, updates: 1, decay: { kind: "fixed" as const, decay: 0.9 }, updateInterval: 2, nonFinite: "reject" as const, tensors: [{ name: "w", shape: [2], dtype: "F32" as const }] };
  const e = emaToTensors({ metadata: emaMeta, tensors: new Map([["w", Float32Array.from([1.5, -2])]]) });
  // As the checkpointer client returns them: Buffers, small ones views into Node's shared allocation pool.
  const all: Tensor[] = [...tensors, ...e.tensors].map((t) => {
    const b = Buffer.allocUnsafe(t.data.byteLength);
    b.set(t.data);
    return { ...t, data: b };
  });
  assert.ok(all.some((t) => t.data.byteLength !== t.data.buffer.byteLength), "some tensors are views into a larger buffer");
  const meta = { [META_MODEL]: JSON.stringify(exported.meta), [META_EMA]: e.meta };
  const state = tensorsToState(all, meta);
  assert.equal([...state.tensors.keys()].some((n) => n.startsWith(EMA_PREFIX)), false);
  const b = new Trainer({ config: cfg, recipe: "fp8", seed: 3 });
  b.importState(state);
  assert.equal(b.step, 3);
  assert.equal(b.trainStep().loss, a4);
  assert.equal(b.trainStep().loss, a.trainStep().loss);
  const ema = emaFromTensors(all, meta)!;
  assert.equal(ema.metadata.step, 2);
  assert.deepEqual([...new Float32Array(ema.tensors.get("w")!.data.slice().buffer)], [1.5, -2]);
  assert.equal(emaFromTensors(all, { [META_MODEL]: "{}" }), null);
  assert.throws(() => tensorsToState(all, {}), /no octet.model metadata/);
});

test("planJob: cuda jobs only on GPU workers; auto on the GPUs of a GPU worker; cpu anywhere; never more slots than usable", () => {
  assert.deepEqual(planJob({ gpus: 1, device: "cuda" }, { kind: "cpu" }, 4), { take: false, why: "the job asks for 1 GPU (device cuda) and this worker has none" });
  assert.deepEqual(planJob({ gpus: 1, device: "auto" }, { kind: "cpu" }, 4), { take: true, backend: "cpu" });
  assert.deepEqual(planJob({ gpus: 1, device: "auto" }, { kind: "gpu" }, 1), { take: true, backend: "cuda" });
  assert.deepEqual(planJob({ gpus: 1, device: "cpu" }, { kind: "gpu" }, 1), { take: true, backend: "cpu" });
  assert.deepEqual(planJob({ gpus: 2, device: "cuda" }, { kind: "gpu" }, 1), { take: false, why: "the job needs 2 slots and this worker has 1 GPUs" });
  assert.equal(planJob({ gpus: 1, device: "cuda" }, { kind: "gpu" }, 0).take, false, "a worker whose only GPU was lost");
});

test("SlotPool.lose: a lost slot is never reserved again, also when it was reserved while lost", () => {
  const p = new SlotPool(3);
  const a = p.reserve(1)!;
  p.lose(a);
  p.release(a);
  p.lose([2]);
  assert.equal(p.usable, 1);
  assert.deepEqual(p.lost, [0, 2]);
  assert.deepEqual(p.reserve(1), [1]);
  assert.equal(p.reserve(1), null);
  assert.throws(() => p.lose([3]), RangeError);
});

test("classifyFailure: config too large and CUDA out of memory are final; a GPU without a context fails over; the rest retries", () => {
  const tooLarge = new RangeError("config tiny (fp8, 8 × 64 tokens a step) needs about 99.0 GiB of device memory (…), and the GPU has 1.0 GiB free of 80.0: lower train.batchSize or model.seqLen");
  assert.equal(classifyFailure(tooLarge, "cuda"), "unrecoverable");
  assert.equal(classifyFailure(new Error("CUDA error in matmul(F32[2, 2]): cudaMalloc(4 bytes) failed: cudaErrorMemoryAllocation: out of memory"), "cuda"), "unrecoverable");
  assert.equal(classifyFailure(new Error("--device cuda: no usable GPU: no CUDA device (cudaGetDeviceCount returned 0)"), "cuda"), "device-lost");
  assert.equal(classifyFailure(new Error("cannot restore run x"), "cuda"), "error");
  // On the CPU, a message that mentions memory is an ordinary failure.
  assert.equal(classifyFailure(new Error("out of memory"), "cpu"), "error");
  assert.match(memoryEstimateText(presetConfig("micro"), "fp8", { freeBytes: 2 ** 30, totalBytes: 2 ** 31 }), /^config micro \(fp8, \d+ × 32 tokens a step\) needs about [\d.]+ GiB .*; the GPU had 1\.0 GiB free of 2\.0 at the start$/);
});
