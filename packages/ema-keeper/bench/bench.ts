// npm run bench -w @octet/ema-keeper
// 1. EMA update throughput (GB/s of fp32 parameters) vs a memcpy-like baseline (Float32Array.prototype.set of
//    the same bytes) measured in the same run; plain loop, unrolled loop, bf16 parameters, two worker threads.
// 2. A 100M-parameter push over loopback gRPC: time until EmaClient.push() returns (trainer-visible) vs time
//    until the keeper has applied it.
import { Worker } from "node:worker_threads";
import { cpus } from "node:os";
import { emaUpdateBf16, emaUpdateF32, emaUpdateF32Plain } from "../src/kernel.js";
import { startEmaServer } from "../src/service.js";
import { EmaClient } from "../src/client.js";

const N = Number(process.env.BENCH_ELEMENTS ?? 25_000_000);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const GB = (N * 4) / 1e9;

function best(fn: () => void): number {
  fn(); // warm-up
  let b = Number.POSITIVE_INFINITY;
  for (let r = 0; r < REPS; r++) {
    const t = performance.now();
    fn();
    b = Math.min(b, performance.now() - t);
  }
  return GB / (b / 1e3);
}

const workerSource = `
const { parentPort } = require("node:worker_threads");
parentPort.on("message", ({ ema, param, d, start, end }) => {
  const e = new Float32Array(ema), p = new Float32Array(param);
  const c = 1 - d;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    e[i] = d * e[i] + c * p[i]; e[i + 1] = d * e[i + 1] + c * p[i + 1];
    e[i + 2] = d * e[i + 2] + c * p[i + 2]; e[i + 3] = d * e[i + 3] + c * p[i + 3];
  }
  for (; i < end; i++) e[i] = d * e[i] + c * p[i];
  parentPort.postMessage(0);
});`;

async function bestAsync(fn: () => Promise<void>): Promise<number> {
  await fn();
  let b = Number.POSITIVE_INFINITY;
  for (let r = 0; r < REPS; r++) {
    const t = performance.now();
    await fn();
    b = Math.min(b, performance.now() - t);
  }
  return GB / (b / 1e3);
}

async function kernels(): Promise<void> {
  const ema = new Float32Array(N);
  const p = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    ema[i] = Math.sin(i);
    p[i] = Math.cos(i);
  }
  const dst = new Float32Array(N);
  const bits = new Uint16Array(N);
  for (let i = 0; i < N; i++) bits[i] = (new Uint32Array(p.buffer, i * 4, 1)[0] >>> 16) & 0xffff;
  const copy = best(() => dst.set(p));
  const plain = best(() => emaUpdateF32Plain(ema, p, 0.999));
  const unrolled = best(() => emaUpdateF32(ema, p, 0.999));
  const bf16 = best(() => emaUpdateBf16(ema, bits, 0.999));
  // Two workers over SharedArrayBuffers, each taking half.
  const sEma = new SharedArrayBuffer(N * 4);
  const sP = new SharedArrayBuffer(N * 4);
  new Float32Array(sEma).set(ema);
  new Float32Array(sP).set(p);
  const workers = [0, 1].map(() => new Worker(workerSource, { eval: true }));
  const half = Math.floor(N / 2);
  const two = await bestAsync(() =>
    Promise.all(
      workers.map(
        (w, k) =>
          new Promise<void>((resolve) => {
            w.once("message", () => resolve());
            w.postMessage({ ema: sEma, param: sP, d: 0.999, start: k === 0 ? 0 : half, end: k === 0 ? half : N });
          }),
      ),
    ).then(() => undefined),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  const rows: [string, number][] = [
    ["baseline: Float32Array.prototype.set (copy)", copy],
    ["EMA, plain loop", plain],
    ["EMA, loop unrolled ×4 (used by the keeper)", unrolled],
    ["EMA, bf16 parameters (block decode + unrolled)", bf16],
    ["EMA, 2 worker threads on SharedArrayBuffer", two],
  ];
  console.log(`\n## EMA update throughput: ${N.toLocaleString()} fp32 elements (${(GB * 1e3).toFixed(0)} MB of parameters), best of ${REPS}, ${cpus().length} CPUs, node ${process.version}\n`);
  console.log("| loop | GB/s of fp32 params | ratio vs copy |");
  console.log("|---|---:|---:|");
  for (const [name, v] of rows) console.log(`| ${name} | ${v.toFixed(2)} | ${(v / copy).toFixed(2)} |`);
}

async function push100M(): Promise<void> {
  const P = Number(process.env.BENCH_PUSH_PARAMS ?? 100_000_000);
  const T = 25;
  const per = Math.floor(P / T);
  const { server, keeper, port } = await startEmaServer({ host: "127.0.0.1", port: 0, logger: undefined });
  const tensors = Array.from({ length: T }, (_, i) => ({ name: `layer${i}.w`, shape: [per] }));
  const params = new Map(tensors.map((t, i) => [t.name, new Float32Array(per).fill(i * 0.01)]));
  console.log(`\n## Push of a ${(per * T / 1e6).toFixed(0)}M-parameter model (${T} fp32 tensors, ${((per * T * 4) / 1e6).toFixed(0)} MB) over loopback gRPC, keeper in the same process\n`);
  console.log("| step | copy | push() returns (ms) | applied (ms after push) | ratio applied / push() |");
  console.log("|---:|---|---:|---:|---:|");
  for (const copy of [true, false]) {
    const run = `bench-${copy}`;
    const c = new EmaClient({ address: `127.0.0.1:${port}`, run, copy, chunkBytes: 1 << 20 });
    await c.registerRun({ tensors, decay: { kind: "fixed", decay: 0.999 } });
    for (let step = 0; step < 3; step++) {
      const t0 = performance.now();
      c.push(step, params);
      const t1 = performance.now();
      await keeper.whenApplied(run, step);
      const t2 = performance.now();
      console.log(`| ${step} | ${copy} | ${(t1 - t0).toFixed(1)} | ${(t2 - t0).toFixed(0)} | ${((t2 - t0) / (t1 - t0)).toFixed(0)} |`);
    }
    await c.flush();
    c.close();
    keeper.dropRun(run);
  }
  await server.shutdown();
}

await kernels();
await push100M();
