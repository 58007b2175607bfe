// Checkpoint write/read throughput next to plain sequential file I/O of the same size, measured in the same run,
// and the trainer-visible time of an asynchronous save (until staged) vs until durable.
//   npm run bench -w @octet/checkpointer            (OCTET_BENCH_BYTES=1073741824 OCTET_BENCH_SHARDS=4 OCTET_BENCH_REPS=3)
import { createHash } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { execSync } from "node:child_process";
import { CheckpointClient } from "../src/client.js";
import { IO_CHUNK_BYTES } from "../src/io.js";
import type { Tensor } from "@octet/numerics";
import { startChild } from "../src/testing/child.js";
import { CheckpointStore } from "../src/store.js";

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.OCTET_BENCH_BYTES ?? 1024 * MiB);
const SHARDS = Number(process.env.OCTET_BENCH_SHARDS ?? 4);
const REPS = Number(process.env.OCTET_BENCH_REPS ?? 3);
const TENSOR = 64 * MiB;
const base = process.env.OCTET_BENCH_DIR ?? tmpdir();

async function dropCaches(): Promise<boolean> {
  try {
    await writeFile("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const gbps = (bytes: number, ms: number) => bytes / 1e9 / (ms / 1000);

/** Plain sequential write: the same shard files, the same piece size, fsync per file; no hashing. */
async function plainWrite(dir: string, data: Buffer[], perShard: number): Promise<number> {
  const t0 = performance.now();
  for (let s = 0; s < SHARDS; s++) {
    const fh = await open(join(dir, `plain-${s}.bin`), "w");
    let pos = 0;
    for (const t of data.slice(s * perShard, (s + 1) * perShard)) {
      for (let off = 0; off < t.length; off += IO_CHUNK_BYTES) {
        const piece = t.subarray(off, Math.min(t.length, off + IO_CHUNK_BYTES));
        await fh.write(piece, 0, piece.length, pos);
        pos += piece.length;
      }
    }
    await fh.sync();
    await fh.close();
  }
  return performance.now() - t0;
}

/** Plain sequential read of those files into memory; no hashing. */
async function plainRead(dir: string): Promise<number> {
  const t0 = performance.now();
  for (let s = 0; s < SHARDS; s++) {
    const fh = await open(join(dir, `plain-${s}.bin`), "r");
    const { size } = await fh.stat();
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; off += IO_CHUNK_BYTES) await fh.read(buf, off, Math.min(IO_CHUNK_BYTES, size - off), off);
    await fh.close();
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(base, "octet-ckpt-bench-"));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function run(dir: string): Promise<void> {
  const nTensors = Math.max(SHARDS, Math.round(TOTAL / TENSOR));
  const perShard = Math.ceil(nTensors / SHARDS);
  const tensorBytes = Math.floor(TOTAL / nTensors);
  const data = Array.from({ length: nTensors }, (_, i) => {
    const b = Buffer.allocUnsafe(tensorBytes);
    for (let j = 0; j < b.length; j += 4096) b[j] = (i + j) & 0xff;
    return b;
  });
  const tensors: Tensor[] = data.map((d, i) => ({ name: `model.layers.${i}.w`, dtype: "U8", shape: [d.length], data: d }));
  const total = tensorBytes * nTensors;
  const store = await CheckpointStore.open({ dataDir: join(dir, "store"), shardMaxBytes: perShard * tensorBytes, logger: { info() {}, warn() {}, error() {} } });
  const cold = await dropCaches();
  // SHA-256 speed on its own, for the record (after a warm-up).
  createHash("sha256").update(data[0]).digest();
  const h0 = performance.now();
  createHash("sha256").update(data[0]).digest();
  const shaGBps = gbps(data[0].length, performance.now() - h0);
  // Flush dirty pages before each timed write, so that one measurement does not pay for the previous one's writeback.
  const settle = () => execSync("sync");

  const rows: Record<string, number[]> = { plainW: [], ckptW: [], plainR: [], ckptR: [], staged: [], durable: [] };
  let step = 0;
  for (let r = 0; r < REPS; r++) {
    // Alternate which goes first, so that neither always gets the warmer disk.
    const order = r % 2 === 0 ? ["plain", "ckpt"] : ["ckpt", "plain"];
    for (const which of order) {
      // Fresh files for both (the checkpoint writes new files too; truncating old ones would cost the baseline).
      settle();
      if (which === "plain") rows.plainW.push(await plainWrite(dir, data, perShard));
      else {
        const t0 = performance.now();
        await store.save("bench", ++step, tensors, {}, { copy: false }).durable;
        rows.ckptW.push(performance.now() - t0);
      }
    }
    for (const which of order) {
      await dropCaches();
      if (which === "plain") rows.plainR.push(await plainRead(dir));
      else {
        const t0 = performance.now();
        const l = await store.load("bench", step);
        rows.ckptR.push(performance.now() - t0);
        if (l.tensors.length !== nTensors) throw new Error("bad load");
      }
    }
    await store.delete("bench", step);
    // Fresh files for the next plain write too, deleted at the same point as the checkpoint (truncating old files
    // inside the timed write, or deleting them just before it, would charge the baseline for the deletion).
    await Promise.all(Array.from({ length: SHARDS }, (_, s) => rm(join(dir, `plain-${s}.bin`), { force: true })));
    // Trainer-visible: save with copy (the trainer may reuse its buffers once staged) → staged, → durable.
    settle();
    const t0 = performance.now();
    const h = store.save("bench", ++step, tensors);
    await h.staged;
    rows.staged.push(performance.now() - t0);
    await h.durable;
    rows.durable.push(performance.now() - t0);
    await store.delete("bench", step);
  }

  // Over gRPC on loopback (one run), the octet-checkpointer binary in its own process as in production:
  // CheckpointClient.save → staged (all bytes received by the server) → durable; then a verified load.
  const srv = await startChild(["--data-dir", join(dir, "grpc"), "--shard-max-bytes", String(perShard * tensorBytes)], { OCTET_LOG_LEVEL: "info" });
  const client = new CheckpointClient(srv.address);
  settle();
  const g0 = performance.now();
  const rs = client.save("bench", 1, tensors);
  await rs.staged;
  const gStaged = performance.now() - g0;
  await rs.durable;
  const gDurable = performance.now() - g0;
  const l0 = performance.now();
  const loaded = await client.load("bench", 1);
  const gLoad = performance.now() - l0;
  if (loaded.tensors.length !== nTensors) throw new Error("bad gRPC load");
  client.close();
  await srv.stop("SIGTERM");
  await rm(dir, { recursive: true, force: true });

  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
  const GB = (total / 1e9).toFixed(2);
  const lines = [
    `checkpoint bench: ${GB} GB in ${SHARDS} shards (${nTensors} tensors of ${(tensorBytes / MiB).toFixed(0)} MiB), median of ${REPS}, dir ${base}, reads ${cold ? "cold (page cache dropped before each read)" : "warm (could not drop the page cache)"}; sha256 alone ${shaGBps.toFixed(2)} GB/s`,
    "",
    "| measurement | time (ms) | GB/s | ratio vs plain |",
    "| --- | ---: | ---: | ---: |",
    `| plain sequential write + fsync (baseline) | ${m.plainW.toFixed(0)} | ${gbps(total, m.plainW).toFixed(2)} | 1.00 |`,
    `| checkpoint write: CheckpointStore.save(copy:false) → durable (SHA-256 in the same pass, fsync, manifest, rename) | ${m.ckptW.toFixed(0)} | ${gbps(total, m.ckptW).toFixed(2)} | ${(m.plainW / m.ckptW).toFixed(2)} |`,
    `| plain sequential read (baseline) | ${m.plainR.toFixed(0)} | ${gbps(total, m.plainR).toFixed(2)} | 1.00 |`,
    `| checkpoint read: CheckpointStore.load (read + SHA-256 verify in one pass) | ${m.ckptR.toFixed(0)} | ${gbps(total, m.ckptR).toFixed(2)} | ${(m.plainR / m.ckptR).toFixed(2)} |`,
    `| trainer-visible: CheckpointStore.save (copy) → staged | ${m.staged.toFixed(0)} | ${gbps(total, m.staged).toFixed(2)} | |`,
    `| same save → durable | ${m.durable.toFixed(0)} | ${gbps(total, m.durable).toFixed(2)} | staged/durable ${(m.staged / m.durable).toFixed(2)} |`,
    `| gRPC loopback: CheckpointClient.save → staged (1 run) | ${gStaged.toFixed(0)} | ${gbps(total, gStaged).toFixed(2)} | |`,
    `| gRPC loopback: same save → durable | ${gDurable.toFixed(0)} | ${gbps(total, gDurable).toFixed(2)} | staged/durable ${(gStaged / gDurable).toFixed(2)} |`,
    `| gRPC loopback: CheckpointClient.load (verify first, then stream) | ${gLoad.toFixed(0)} | ${gbps(total, gLoad).toFixed(2)} | ${(m.plainR / gLoad).toFixed(2)} vs plain read |`,
  ];
  console.log(lines.join("\n"));
}

await main();
