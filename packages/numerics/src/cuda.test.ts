// The CUDA backend's contract where it cannot run (CI, development machines without a GPU): cudaStatus() says why,
// every device call throws an Error that says so (no silent CPU fallback), and bad arguments are TypeErrors or
// RangeErrors naming the problem before any device work. Where a Hopper GPU and the addon are present, a small
// bit-exactness check runs too (the full check is gpu/check.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DeviceQuantized,
  DeviceTensor,
  cudaStatus,
  devicePointer,
  deviceMemoryStats,
  deviceStream,
  resetPeakDeviceMemory,
  emptyDevice,
  matmulBf16Device,
  quantizeBothDevice,
  quantizeDevice,
  scaledMatmulDevice,
  toDevice,
  toDeviceQuantized,
} from "./cuda.js";
import { quantizeReference } from "./quantize.js";

const status = cudaStatus();

test("cudaStatus reports availability, and the reason when unavailable", (t) => {
  t.diagnostic(`cudaStatus: ${JSON.stringify(status)}`);
  assert.equal(typeof status.available, "boolean");
  assert.equal(typeof status.addonPath, "string");
  if (!status.available) {
    assert.ok(status.reason && status.reason.length > 10, "a reason is given");
    assert.equal(status.sm90.available, false);
    assert.equal(status.cublasLt.available, false);
  } else {
    assert.equal(status.reason, null);
    assert.ok(status.device);
  }
  assert.equal(cudaStatus(), status, "the status is computed once");
});

test("device calls throw an Error naming the reason when the backend is unavailable", { skip: status.available && "a GPU is available" }, () => {
  const x = new Float32Array(256).fill(1);
  for (const call of [
    () => toDevice(x, [2, 128]),
    () => emptyDevice([4, 4], "fp32"),
    () => quantizeDevice(x, [2, 128], { block: [1, 128] }),
    () => toDeviceQuantized(quantizeReference(x, [2, 128], { block: [1, 128] })),
    () => deviceStream(),
    () => deviceMemoryStats(),
    () => resetPeakDeviceMemory(),
  ]) {
    assert.throws(call, (err: Error) => err.constructor === Error && /CUDA backend unavailable/.test(err.message) && err.message.includes(status.reason!));
  }
});

test("argument errors come before device work, as TypeError / RangeError", () => {
  const x = new Float32Array(256);
  assert.throws(() => quantizeDevice(x, [2, 128], { block: [1, 0] as unknown as [number, number] }), RangeError);
  assert.throws(() => quantizeDevice(x, [2, 128], { block: [1, 128], format: "e3m4" as never }), RangeError);
  assert.throws(() => quantizeDevice(x, [2, 128], { block: [1, 128], scale: "log" as never }), RangeError);
  assert.throws(() => quantizeDevice(x, [2, 128], { block: [1, 128], nonFinite: "ignore" as never }), /nonFinite/);
  assert.throws(() => quantizeDevice(x, [2, 128], null as never), TypeError);
  assert.throws(() => quantizeDevice([1, 2] as never, [1, 2], { block: [1, 128] }), TypeError);
  assert.throws(() => toDevice(x, [3, 128]), (e: Error) => e instanceof RangeError && /256 elements/.test(e.message));
  assert.throws(() => toDevice([1, 2] as never, [2]), TypeError);
  assert.throws(() => toDevice(new Float32Array(4), [4], "bf16"), TypeError);
  assert.throws(() => toDevice(new Uint8Array(4), [4], "fp32"), TypeError);
  assert.throws(() => scaledMatmulDevice({} as DeviceQuantized, {} as DeviceQuantized), TypeError);
  assert.throws(() => matmulBf16Device({} as DeviceTensor, {} as DeviceTensor), TypeError);
  assert.throws(() => quantizeBothDevice(x as never), TypeError);
});

test("GEMM shape checks name the problem (fake operands, no device work)", () => {
  const fake = (shape: [number, number], block: [number, number]) =>
    new DeviceQuantized({} as DeviceTensor, {} as DeviceTensor, shape, block, "e4m3");
  const a = fake([64, 7168], [1, 128]);
  assert.throws(() => scaledMatmulDevice(a, fake([2112, 7168], [1, 128])), /b must be in \[128, 128\] blocks/);
  assert.throws(() => scaledMatmulDevice(fake([64, 7168], [128, 128]), fake([2112, 7168], [128, 128])), /a must be in \[1, 128\] tiles/);
  assert.throws(() => scaledMatmulDevice(a, fake([2112, 4096], [128, 128])), (e: Error) => e instanceof RangeError && /same K/.test(e.message));
  assert.throws(() => scaledMatmulDevice(fake([64, 200], [1, 128]), fake([256, 200], [128, 128])), (e: Error) => e instanceof RangeError && /multiple of 128/.test(e.message));
  assert.throws(() => scaledMatmulDevice(a, fake([2112, 7168], [128, 128]), { out: "fp16" as never }), RangeError);
  assert.throws(() => scaledMatmulDevice(a, fake([2112, 7168], [128, 128]), { impl: "cutlass" as never }), RangeError);
});

test("on a GPU: quantizeDevice equals quantizeReference bit for bit (small)", { skip: !status.available && "no usable GPU" }, () => {
  const rows = 130, cols = 300;
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 10 ** ((i % 13) - 6);
  for (const block of [[1, 128], [128, 128], [128, 1]] as const) {
    const want = quantizeReference(x, [rows, cols], { block });
    const got = quantizeDevice(x, [rows, cols], { block }).toHost();
    assert.deepEqual(got.data, want.data, `codes, block ${block}`);
    assert.deepEqual(new Uint32Array(got.scales.buffer), new Uint32Array(want.scales.buffer), `scales, block ${block}`);
  }
});

test("on a GPU: tensors come from one stream-ordered pool that counts their bytes, and give their address to other addons", { skip: !status.available && "no usable GPU" }, () => {
  resetPeakDeviceMemory();
  const before = deviceMemoryStats();
  const t = emptyDevice([1024, 1024], "fp32");
  const during = deviceMemoryStats();
  assert.ok(during.usedBytes >= before.usedBytes + t.byteLength, `used ${before.usedBytes} -> ${during.usedBytes}`);
  assert.ok(during.peakBytes >= during.usedBytes && during.totalBytes > 0);
  const p = devicePointer(t);
  assert.equal(typeof p, "bigint");
  assert.equal(devicePointer(t, 4096), p + 4096n);
  assert.throws(() => devicePointer(t, t.byteLength + 1), RangeError);
  assert.equal(typeof deviceStream(), "bigint");
  t.free();
  assert.throws(() => devicePointer(t), /was freed/);
});
