// What of the CUDA backend needs no GPU: the view arithmetic of CudaTensor, argument validation, and the refusal
// to start (naming why) where no GPU or addon is usable — in-process and through `npm run train -- --device cuda`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CudaTensor, elementCount, rowRange } from "./cuda-tensor.js";
import { CudaBackend, CudaOpError, cudaBackendUnavailable } from "./cuda.js";
import { backendFor } from "../run.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const gpu = cudaBackendUnavailable() === null;

test("rowRange: a row range is the same buffer further on, sized by the row's bytes", () => {
  // [6, 4] F32 at byte 32: rows 2..4 start 2 rows (32 bytes) later, 3 rows of 16 bytes.
  assert.deepEqual(rowRange([6, 4], "F32", 32, 2, 3), { shape: [3, 4], byteOffset: 64, byteLength: 48 });
  // Rows of a 3-D tensor are its trailing extents: [5, 2, 3] BF16 rows are 12 bytes.
  assert.deepEqual(rowRange([5, 2, 3], "BF16", 0, 4, 1), { shape: [1, 2, 3], byteOffset: 48, byteLength: 12 });
  // A view of a view adds up.
  const inner = rowRange([6, 4], "F32", 0, 1, 4);
  assert.deepEqual(rowRange(inner.shape, "F32", inner.byteOffset, 1, 2), { shape: [2, 4], byteOffset: 32, byteLength: 32 });
  assert.deepEqual(rowRange([6, 4], "I32", 0, 6, 0), { shape: [0, 4], byteOffset: 96, byteLength: 0 });
  assert.throws(() => rowRange([6, 4], "F32", 0, 5, 2), /rows 5 \.\. 7 are outside \[6, 4\]/);
  assert.throws(() => rowRange([6, 4], "F32", 0, -1, 1), RangeError);
  assert.throws(() => rowRange([6, 4], "F32", 0, 0.5, 1), RangeError);
  assert.throws(() => rowRange([6, 4], "F16", 0, 0, 1), /holds no F16/);
});

test("CudaTensor: sizes, empty tensors without a buffer, and bad shapes", () => {
  const empty = new CudaTensor("F32", [0, 8], null);
  assert.equal(empty.size, 0);
  assert.equal(empty.byteLength, 0);
  assert.equal(empty.device, "cuda");
  assert.throws(() => new CudaTensor("F32", [2, 8], null), /needs a buffer/);
  assert.throws(() => new CudaTensor("F32", [2, -1], null), RangeError);
  assert.equal(elementCount([3, 4, 5], "x"), 60);
  assert.throws(() => CudaTensor.of({ shape: [1], dtype: "F32", device: "cpu" }, "matmul: a"), /matmul: a: F32 \[1\] on cpu is not a CUDA tensor/);
});

test("CudaBackend: without a usable GPU it refuses to start, naming why", { skip: gpu && "a GPU is usable here" }, () => {
  const why = cudaBackendUnavailable();
  assert.ok(why && why.length > 10, String(why));
  assert.throws(() => new CudaBackend(), (err: Error) => err.message.includes("no usable GPU") && err.message.includes(why!));
  assert.throws(() => backendFor("cuda", "fp8"), (err: Error) => err.message.includes(why!));
  assert.equal(backendFor("cpu", "fp8"), undefined);
  assert.throws(() => backendFor("tpu" as never, "fp8"), /unknown device "tpu"/);
});

test("CudaBackend: bad options are a RangeError before any device work", () => {
  assert.throws(() => new CudaBackend({ attention: "fp16" as never }), /attention must be "fp32" or "bf16"/);
});

test("npm run train -- --device cuda: exits non-zero naming why without a GPU; --device bogus is refused", { skip: gpu && "a GPU is usable here" }, () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/train.ts", "--config", "micro", "--recipe", "fp32", "--steps", "1", "--device", "cuda", "--out", ""], { cwd: pkg, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--device cuda: no usable GPU: /);
  const bad = spawnSync(process.execPath, ["--import", "tsx", "src/cli/train.ts", "--device", "bogus"], { cwd: pkg, encoding: "utf8" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown device "bogus"/);
});

test("CudaBackend: a CUDA failure names the op and its tensors' shapes; argument errors keep their class", () => {
  // A backend object without a device: its kernel table fails as the addon does (a plain Error naming the
  // kernel and the CUDA error); the op wrapper, the real one, does the rest.
  const be = Object.create(CudaBackend.prototype) as CudaBackend;
  const fail = () => { throw new Error("scale failed: cudaErrorIllegalAddress: an illegal memory access was encountered"); };
  Object.assign(be, { k: { scale: fail }, p: () => 1n, stream: 0n });
  const x = new CudaTensor("F32", [4, 8], {} as never);
  assert.throws(() => be.scale(x, 2), (err: Error) => {
    assert.ok(err instanceof CudaOpError, String(err));
    assert.equal(err.op, "scale");
    assert.match(err.message, /^CUDA error in scale\(F32\[4, 8\], 2\): scale failed: cudaErrorIllegalAddress/);
    assert.match(err.message, /CUDA_LAUNCH_BLOCKING=1/);
    assert.match(String((err.cause as Error).message), /cudaErrorIllegalAddress/);
    return true;
  });
  // A plain Error that names no CUDA error passes through as it was.
  Object.assign(be, { k: { scale: () => { throw new Error("the workspace went away"); } } });
  assert.throws(() => be.scale(x, 2), (err: Error) => !(err instanceof CudaOpError) && err.message === "the workspace went away");
  // A validation error inside the op stays what it was.
  assert.throws(() => be.scale(new CudaTensor("I32", [4], {} as never), 2), (err: Error) => !(err instanceof CudaOpError) && /scale/.test(err.message));
});

test("npm run bench:gpu: exits non-zero naming why without a GPU; a bad recipe is refused", { skip: gpu && "a GPU is usable here" }, () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/bench-gpu.ts", "--steps", "1"], { cwd: pkg, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bench:gpu needs a GPU: /);
  const bad = spawnSync(process.execPath, ["--import", "tsx", "src/cli/bench-gpu.ts", "--recipes", "bf16,fp4"], { cwd: pkg, encoding: "utf8" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /fp4/);
});
