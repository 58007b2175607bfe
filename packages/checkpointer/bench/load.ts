// npm run bench:load -- --only checkpointer [--duration 60 --clients 64]   (from the repository root)
// Load test of octet-checkpointer's CheckpointService (issue 17): 64 clients on loopback for 60 s against the bin,
// saves to four shared runs (steps race: some arrive after a later pending save and are refused), saves waited on
// and deleted, repeated saves, imports, lists and verified loads, mixed with oversized and malformed requests. Then
// what the service holds must equal a CheckpointStore in this process that replayed, one after another, exactly the
// saves and imports it accepted and the deletes it did: the same checkpoints, metadata and tensor bytes over gRPC,
// and — after the service has shut down — the same manifests and shard checksums on disk, every shard verified.
// Results: bench/LOAD.md.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckpointStore, serialize, type Manifest, type Tensor } from "@octet/checkpointer";
import { octet, services } from "@octet/proto";
import {
  AUTH_TOKEN, Rng, WrongAnswer, clientStreamCall, closeClients, connectClients, garbageMessage, rawClientStreamCall, runLoadTest, serverStreamCall, unaryCall,
  type RequestKind,
} from "../../proto/bench/load-harness.js";

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
type Client = services.checkpoint.v1.CheckpointServiceClient;
const SERVICE = "/octet.checkpoint.v1.CheckpointService/";
const DEADLINE_MS = 60_000;
/** Data bytes per SaveCheckpoint message: below the tensors' sizes, so that tensors travel in several chunks. */
const CHUNK_BYTES = 192 << 10;

const RUNS = ["ckpt-0", "ckpt-1", "ckpt-2", "ckpt-3"];
/** Every 4th step (step % 4 == 3) may be deleted once durable and is never saved twice; others may be. */
const deletable = (step: number) => step % 4 === 3;

/** The tensors of a checkpoint: 0.5 MiB in four dtypes. */
const LAYOUT: { name: string; dtype: Tensor["dtype"]; shape: number[] }[] = [
  { name: "model.embed", dtype: "BF16", shape: [256, 512] },
  { name: "model.layers.0.mlp.w", dtype: "F32", shape: [128, 512] },
  { name: "optimizer.step", dtype: "I64", shape: [1] },
  { name: "rng/state", dtype: "U8", shape: [64] },
];
const BYTES: Record<string, number> = { BF16: 2, F32: 4, I64: 8, U8: 1 };
const BASE = LAYOUT.map((t, k) => new Rng(77 + k).bytes(t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype]));

/** The tensors of (run, step): a pure function of both, different for every pair. */
function contentOf(run: string, step: number): Tensor[] {
  const tag = Buffer.from(`${run}@${step}`.padEnd(32, "."));
  return LAYOUT.map((t, k) => {
    const data = Buffer.from(BASE[k]);
    tag.copy(data, 0, 0, Math.min(tag.length, data.length));
    for (let i = 4096; i < data.length; i += 4096) data[i] ^= (step * 31 + k) & 0xff;
    return { name: t.name, dtype: t.dtype, shape: t.shape, data };
  });
}

const metadataOf = (run: string, step: number) => ({ run, step: String(step), "data.position": String(step * 4096) });

function saveMessages(run: string, step: number, tensors: Tensor[], metadata: Record<string, string>, shardMaxBytes: number): octet.checkpoint.v1.ISaveRequest[] {
  const out: octet.checkpoint.v1.ISaveRequest[] = [{ header: { run, step, metadata, shardMaxBytes } }];
  for (const t of tensors) {
    for (let o = 0; o < t.data.byteLength || o === 0; o += CHUNK_BYTES) {
      const data = t.data.subarray(o, Math.min(t.data.byteLength, o + CHUNK_BYTES));
      out.push({ chunk: o === 0 ? { name: t.name, dtype: t.dtype, shape: t.shape, data } : { name: t.name, data } });
      if (t.data.byteLength === 0) break;
    }
  }
  return out;
}

interface Accepted {
  run: string;
  step: number;
  saveId: string;
  shardMaxBytes: number;
  /** An ImportSafetensors of these bytes, rather than a save of contentOf(run, step). */
  imported?: Uint8Array;
}

interface Ctx {
  clients: Client[];
  anonymous: Client[];
  next: Map<string, number>;
  accepted: Map<string, Accepted>;
  deleted: Set<string>;
  sequence: number[];
}

const keyOf = (run: string, step: number) => `${run}@${step}`;

async function save(ctx: Ctx, client: number, run: string, step: number, shardMaxBytes: number): Promise<octet.checkpoint.v1.SaveReply> {
  const messages = saveMessages(run, step, contentOf(run, step), metadataOf(run, step), shardMaxBytes);
  const reply = await clientStreamCall<octet.checkpoint.v1.ISaveRequest, octet.checkpoint.v1.SaveReply>((o, cb) => ctx.clients[client].saveCheckpoint(o, cb), messages, DEADLINE_MS);
  if (reply.run !== run || Number(reply.step) !== step || reply.tensors !== LAYOUT.length) throw new WrongAnswer(`save of ${run}@${step} answered ${reply.run}@${reply.step} with ${reply.tensors} tensors`);
  const key = keyOf(run, step);
  if (ctx.accepted.has(key)) throw new WrongAnswer(`${key} was accepted twice`);
  ctx.accepted.set(key, { run, step, saveId: reply.saveId, shardMaxBytes });
  return reply;
}

function nextStep(ctx: Ctx, run: string): number {
  const step = ctx.next.get(run)!;
  ctx.next.set(run, step + 1);
  return step;
}

/** Reads a LoadCheckpoint stream into its header and tensors. */
async function load(client: Client, request: octet.checkpoint.v1.ILoadCheckpointRequest): Promise<{ info: octet.checkpoint.v1.ICheckpointInfo; tensors: Tensor[] }> {
  const messages = await serverStreamCall<octet.checkpoint.v1.LoadReply>((o) => client.loadCheckpoint(request, o), DEADLINE_MS);
  const header = messages[0]?.header;
  if (!header?.checkpoint) throw new WrongAnswer("LoadCheckpoint: the first message is not the header");
  const tensors: Tensor[] = [];
  const parts = new Map<string, Buffer[]>();
  for (const spec of header.tensors ?? []) {
    const name = spec.name ?? "";
    tensors.push({ name, dtype: spec.dtype as Tensor["dtype"], shape: (spec.shape ?? []).map(Number), data: new Uint8Array(0) });
    parts.set(name, []);
  }
  for (const m of messages.slice(1)) {
    const list = parts.get(m.chunk?.name ?? "");
    if (!list) throw new WrongAnswer(`LoadCheckpoint: a chunk of ${m.chunk?.name} that the header did not announce`);
    list.push(Buffer.from(m.chunk?.data ?? new Uint8Array(0)));
  }
  for (const t of tensors) t.data = Buffer.concat(parts.get(t.name)!);
  return { info: header.checkpoint, tensors };
}

function sameTensors(a: readonly Tensor[], b: readonly Tensor[]): string | undefined {
  const byName = new Map(b.map((t) => [t.name, t]));
  if (a.length !== b.length) return `${a.length} tensors, expected ${b.length}`;
  for (const t of a) {
    const e = byName.get(t.name);
    if (!e) return `unexpected tensor ${t.name}`;
    if (t.dtype !== e.dtype || t.shape.join() !== e.shape.join()) return `${t.name}: ${t.dtype}[${t.shape}] vs ${e.dtype}[${e.shape}]`;
    if (Buffer.compare(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength)) !== 0) return `${t.name}: bytes differ`;
  }
  return undefined;
}

const kinds: RequestKind<Ctx>[] = [
  {
    name: "save",
    class: "valid",
    weight: 25,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "SaveCheckpoint of the next step of a shared run (0.5 MiB, four tensors in 192 KiB chunks, one shard or 256 KiB shards); FAILED_PRECONDITION when a later step of the run is still being saved",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      await save(ctx, client, run, nextStep(ctx, run), rng.next() < 0.5 ? 0 : 256 << 10);
    },
  },
  {
    name: "save-wait-delete",
    class: "valid",
    weight: 10,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "SaveCheckpoint, then WaitDurable by save_id; a step ≡ 3 (mod 4) is then deleted with DeleteCheckpoint",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      const step = nextStep(ctx, run);
      const reply = await save(ctx, client, run, step, 0);
      const status = await unaryCall<octet.checkpoint.v1.SaveStatus>((o, cb) => ctx.clients[client].waitDurable({ saveId: reply.saveId }, o, cb), DEADLINE_MS);
      if (status.state !== octet.checkpoint.v1.SaveState.SAVE_STATE_DURABLE || Number(status.checkpoint?.step) !== step) throw new WrongAnswer(`WaitDurable of ${run}@${step}: state ${status.state}, step ${status.checkpoint?.step}`);
      if (deletable(step)) {
        await unaryCall((o, cb) => ctx.clients[client].deleteCheckpoint({ run, step }, o, cb), DEADLINE_MS);
        ctx.deleted.add(keyOf(run, step));
      }
    },
  },
  {
    name: "save-again",
    class: "valid",
    weight: 5,
    expect: ["ALREADY_EXISTS", "FAILED_PRECONDITION"],
    what: "SaveCheckpoint of a step of a shared run that was accepted before (never a deletable one): ALREADY_EXISTS, or FAILED_PRECONDITION when a later step is still being saved",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      // Never empty: setup saved step 1 of every run.
      const earlier = [...ctx.accepted.values()].filter((a) => a.run === run && !deletable(a.step) && !a.imported);
      const pick = earlier[earlier.length - 1 - rng.int(Math.min(earlier.length, 16))];
      await save(ctx, client, run, pick.step, 0);
    },
  },
  {
    name: "import",
    class: "valid",
    weight: 3,
    expect: ["OK"],
    what: "ImportSafetensors of a 0.5 MiB safetensors file (with __metadata__) into the client's own run, in 192 KiB messages",
    async send(ctx, client) {
      const run = `import-c${client}`;
      const step = ++ctx.sequence[client];
      const file = serialize(contentOf(run, step), { source: "load test" });
      const messages: octet.checkpoint.v1.IImportRequest[] = [{ header: { run, step, metadata: { imported: "yes" } } }];
      for (let o = 0; o < file.length; o += CHUNK_BYTES) messages.push({ data: file.subarray(o, Math.min(file.length, o + CHUNK_BYTES)) });
      const reply = await clientStreamCall<octet.checkpoint.v1.IImportRequest, octet.checkpoint.v1.SaveReply>((o, cb) => ctx.clients[client].importSafetensors(o, cb), messages, DEADLINE_MS);
      ctx.accepted.set(keyOf(run, step), { run, step, saveId: reply.saveId, shardMaxBytes: 0, imported: file });
    },
  },
  {
    name: "list",
    class: "valid",
    weight: 5,
    expect: ["OK"],
    what: "ListCheckpoints of a shared run: no checkpoint may be reported corrupt",
    async send(ctx, client, rng) {
      const reply = await unaryCall<octet.checkpoint.v1.ListCheckpointsReply>((o, cb) => ctx.clients[client].listCheckpoints({ run: rng.pick(RUNS) }, o, cb), DEADLINE_MS);
      const corrupt = reply.checkpoints.find((c) => c.corrupt);
      if (corrupt) throw new WrongAnswer(`${corrupt.run}@${corrupt.step} listed as corrupt: ${corrupt.corrupt}`);
    },
  },
  {
    name: "load-latest",
    class: "valid",
    weight: 8,
    expect: ["OK", "NOT_FOUND"],
    what: "LoadCheckpoint (latest) of a shared run: the tensors must be those of the step the header names",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      const got = await load(ctx.clients[client], { run, latest: true });
      const step = Number(got.info.step);
      const wrong = sameTensors(got.tensors, contentOf(run, step));
      if (wrong) throw new WrongAnswer(`latest of ${run} (step ${step}): ${wrong}`);
      if (JSON.stringify(got.info.metadata) !== JSON.stringify(metadataOf(run, step))) throw new WrongAnswer(`latest of ${run} (step ${step}): metadata ${JSON.stringify(got.info.metadata)}`);
    },
  },
  {
    name: "malformed-save",
    class: "malformed",
    weight: 8,
    expect: ["INVALID_ARGUMENT"],
    what: "SaveCheckpoint with run \"../../etc\", tensor \"../x\", dtype \"F33\", a tensor 1 byte short, a chunk before the header, two headers, a tensor sent twice, or no header",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      const step = ctx.next.get(run)! + 100_000; // far ahead: a bad save must not even be staged
      const good = saveMessages(run, step, contentOf(run, step), {}, 0);
      const first = good[1].chunk!;
      const last = good[good.length - 1].chunk!;
      const variants: octet.checkpoint.v1.ISaveRequest[][] = [
        [{ header: { run: "../../etc", step } }, ...good.slice(1)],
        [good[0], { chunk: { ...first, name: "../x" } }, ...good.slice(2)],
        [good[0], { chunk: { ...first, dtype: "F33" } }, ...good.slice(2)],
        [...good.slice(0, -1), { chunk: { ...last, data: last.data!.subarray(1) } }],
        [...good.slice(1, 2), good[0], ...good.slice(2)],
        [good[0], good[0], ...good.slice(1)],
        [...good, ...good.slice(1, 2)],
        good.slice(1),
      ];
      await clientStreamCall((o, cb) => ctx.clients[client].saveCheckpoint(o, cb), rng.pick(variants), DEADLINE_MS);
    },
  },
  {
    name: "malformed-other",
    class: "malformed",
    weight: 4,
    expect: ["INVALID_ARGUMENT", "NOT_FOUND"],
    what: "ImportSafetensors of a truncated file (INVALID_ARGUMENT); DeleteCheckpoint, LoadCheckpoint or WaitDurable of what does not exist (NOT_FOUND)",
    async send(ctx, client, rng) {
      const c = ctx.clients[client];
      const variant = rng.int(4);
      if (variant === 0) {
        const file = serialize(contentOf("x", 1));
        const messages: octet.checkpoint.v1.IImportRequest[] = [{ header: { run: `import-bad-c${client}`, step: 1 } }, { data: file.subarray(0, file.length - 100) }];
        await clientStreamCall((o, cb) => c.importSafetensors(o, cb), messages, DEADLINE_MS);
      } else if (variant === 1) {
        await unaryCall((o, cb) => c.deleteCheckpoint({ run: rng.pick(RUNS), step: 10_000_000 + rng.int(1000) }, o, cb), DEADLINE_MS);
      } else if (variant === 2) {
        await load(c, { run: rng.pick(RUNS), step: 10_000_000 });
      } else {
        await unaryCall((o, cb) => c.waitDurable({ saveId: "00000000-0000-4000-8000-000000000000" }, o, cb), DEADLINE_MS);
      }
    },
  },
  {
    name: "garbage",
    class: "malformed",
    weight: 3,
    expect: ["INTERNAL", "INVALID_ARGUMENT"],
    what: "a SaveCheckpoint stream whose second message is not a protobuf message (grpc-js answers INTERNAL)",
    async send(ctx, client, rng) {
      const header = octet.checkpoint.v1.SaveRequest.encode({ header: { run: RUNS[0], step: ctx.next.get(RUNS[0])! + 100_000 } }).finish();
      await rawClientStreamCall(ctx.clients[client], `${SERVICE}SaveCheckpoint`, [header, garbageMessage(rng)], DEADLINE_MS);
    },
  },
  {
    name: "oversized-message",
    class: "oversized",
    weight: 2,
    expect: ["RESOURCE_EXHAUSTED"],
    what: "a SaveCheckpoint whose one chunk carries a 5 MiB tensor (above the 4 MiB message limit)",
    async send(ctx, client) {
      const run = RUNS[0];
      const messages: octet.checkpoint.v1.ISaveRequest[] = [
        { header: { run, step: ctx.next.get(run)! + 100_000 } },
        { chunk: { name: "big", dtype: "U8", shape: [5 << 20], data: new Uint8Array(5 << 20) } },
      ];
      await clientStreamCall((o, cb) => ctx.clients[client].saveCheckpoint(o, cb), messages, DEADLINE_MS);
    },
  },
  {
    name: "oversized-shape",
    class: "oversized",
    weight: 2,
    expect: ["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"],
    what: "a SaveCheckpoint whose first chunk announces a 2^20 × 2^20 F32 tensor (4 TiB, above the checkpoint limit) with 1 KiB of data",
    async send(ctx, client) {
      const run = RUNS[1];
      const messages: octet.checkpoint.v1.ISaveRequest[] = [
        { header: { run, step: ctx.next.get(run)! + 100_000 } },
        { chunk: { name: "huge", dtype: "F32", shape: [2 ** 20, 2 ** 20], data: new Uint8Array(1024) } },
      ];
      await clientStreamCall((o, cb) => ctx.clients[client].saveCheckpoint(o, cb), messages, DEADLINE_MS);
    },
  },
  {
    name: "stream-cut-short",
    class: "malformed",
    weight: 2,
    expect: ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"],
    what: "a SaveCheckpoint whose first chunk announces a 512 MiB tensor (within the limits) and whose stream ends after 1 MiB",
    async send(ctx, client) {
      const run = RUNS[2];
      const messages: octet.checkpoint.v1.ISaveRequest[] = [
        { header: { run, step: ctx.next.get(run)! + 100_000 } },
        { chunk: { name: "cut", dtype: "U8", shape: [512 << 20], data: new Uint8Array(1 << 20) } },
      ];
      await clientStreamCall((o, cb) => ctx.clients[client].saveCheckpoint(o, cb), messages, DEADLINE_MS);
    },
  },
];

if (AUTH_TOKEN) {
  kinds.push({
    name: "unauthenticated",
    class: "unauthenticated",
    weight: 2,
    expect: ["UNAUTHENTICATED"],
    what: "a valid SaveCheckpoint or DeleteCheckpoint without the bearer token",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      const step = ctx.next.get(run)! + 100_000;
      if (rng.next() < 0.5) {
        await unaryCall((o, cb) => ctx.anonymous[client].deleteCheckpoint({ run, step: 1 }, o, cb), DEADLINE_MS);
      } else {
        await clientStreamCall((o, cb) => ctx.anonymous[client].saveCheckpoint(o, cb), saveMessages(run, step, contentOf(run, step), {}, 0), DEADLINE_MS);
      }
    },
  });
}

const serverDir = mkdtempSync(join(tmpdir(), "octet-load-checkpointer-"));
const replayDir = mkdtempSync(join(tmpdir(), "octet-load-replay-"));
let replay: CheckpointStore | undefined;

/** The replay: every accepted save and import into a fresh store, one after another, durable each; then the deletes. */
async function buildReplay(ctx: Ctx): Promise<CheckpointStore> {
  const store = await CheckpointStore.open({ dataDir: replayDir, retention: { keepLast: 0, keepEvery: 0 } });
  const ordered = [...ctx.accepted.values()].sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : a.step - b.step));
  for (const a of ordered) {
    const h = a.imported
      ? await store.importSafetensors(a.run, a.step, a.imported, { imported: "yes" })
      : store.save(a.run, a.step, contentOf(a.run, a.step), metadataOf(a.run, a.step), a.shardMaxBytes > 0 ? { shardMaxBytes: a.shardMaxBytes } : {});
    await h.durable;
  }
  for (const key of ctx.deleted) {
    const a = ctx.accepted.get(key)!;
    await store.delete(a.run, a.step);
  }
  return store;
}

const comparable = (m: Manifest) => JSON.stringify({ ...m, createdAt: undefined, checksum: undefined });

await runLoadTest<Ctx>({
  title: "octet-checkpointer (CheckpointService)",
  packageDir: PACKAGE_DIR,
  serviceName: "octet.checkpoint.v1.CheckpointService",
  binArgs: ["--data-dir", serverDir],
  kinds,
  notes: [
    "The service keeps checkpoints on disk: per (run, step) a manifest (metadata, tensors, shards with their SHA-256) and",
    "safetensors shards. Every checkpoint's content is a pure function of its run and step. The replay is a CheckpointStore",
    "(the library the service runs) on an empty directory in this process that saves, one after another and each until",
    "durable, exactly the saves the service answered OK (with the same shard size) and the imports it accepted, then does",
    "the deletes the service answered OK. While the service still runs, ListCheckpoints and a full LoadCheckpoint of every",
    "checkpoint must match the replay's list and loads; once it has shut down (SIGTERM: pending saves become durable), its",
    "data directory must hold the same checkpoints with the same manifests (all but the creation time, shard checksums",
    "included) and every shard must verify.",
  ],
  async setup(address, clients) {
    const ctx: Ctx = {
      ...(await connectClients<Client>(services.checkpoint.v1.CheckpointServiceClient, address, clients)),
      next: new Map(RUNS.map((r) => [r, 1])),
      accepted: new Map(),
      deleted: new Set(),
      sequence: new Array<number>(clients).fill(0),
    };
    // Step 1 of every run, durable before the load: what save-again repeats and load-latest finds from the start.
    for (const run of RUNS) {
      const reply = await save(ctx, 0, run, nextStep(ctx, run), 0);
      await unaryCall((o, cb) => ctx.clients[0].waitDurable({ saveId: reply.saveId }, o, cb), DEADLINE_MS);
    }
    return ctx;
  },
  async settle(ctx) {
    for (const a of ctx.accepted.values()) {
      await unaryCall((o, cb) => ctx.clients[0].waitDurable({ saveId: a.saveId }, o, cb), DEADLINE_MS);
    }
  },
  async verify(ctx) {
    replay = await buildReplay(ctx);
    const problems: string[] = [];
    const listed = await unaryCall<octet.checkpoint.v1.ListCheckpointsReply>((o, cb) => ctx.clients[0].listCheckpoints({}, o, cb), DEADLINE_MS);
    const served = new Map(listed.checkpoints.map((c) => [keyOf(c.run ?? "", Number(c.step)), c]));
    const expected = new Map((await replay.list()).map((c) => [keyOf(c.run, c.step), c]));
    for (const key of new Set([...served.keys(), ...expected.keys()])) {
      const s = served.get(key);
      const e = expected.get(key);
      if (!s || !e) {
        problems.push(`${key} is ${s ? "only in the service" : "only in the replay"}`);
        continue;
      }
      if (s.corrupt) problems.push(`${key} is listed as corrupt: ${s.corrupt}`);
      if (Number(s.totalBytes) !== e.totalBytes || s.shards !== e.shards || s.tensors !== e.tensors) problems.push(`${key}: ${s.totalBytes} bytes, ${s.shards} shards, ${s.tensors} tensors; replay ${e.totalBytes}, ${e.shards}, ${e.tensors}`);
      if (JSON.stringify(Object.entries(s.metadata ?? {}).sort()) !== JSON.stringify(Object.entries(e.metadata ?? {}).sort())) problems.push(`${key}: metadata differs`);
      const [run, step] = [s.run ?? "", Number(s.step)];
      const got = await load(ctx.clients[0], { run, step });
      const wrong = sameTensors(got.tensors, (await replay.load(run, step)).tensors);
      if (wrong) problems.push(`${key}: ${wrong}`);
    }
    return {
      compared: [
        `${ctx.accepted.size} accepted saves and imports replayed, ${ctx.deleted.size} deletes; ${served.size} checkpoints listed by the service, ${expected.size} in the replay`,
        "per checkpoint over gRPC: listed size, shard and tensor counts, metadata; every tensor's dtype, shape and bytes from a full LoadCheckpoint",
      ],
      problems,
    };
  },
  async afterStop() {
    const problems: string[] = [];
    const onDisk = await CheckpointStore.open({ dataDir: serverDir, retention: { keepLast: 0, keepEvery: 0 } });
    const mine = replay!;
    let verified = 0;
    const listed = await onDisk.list();
    const expected = new Set((await mine.list()).map((c) => keyOf(c.run, c.step)));
    for (const c of listed) {
      const key = keyOf(c.run, c.step);
      if (!expected.delete(key)) {
        problems.push(`on disk after shutdown: ${key}, which the replay does not have`);
        continue;
      }
      try {
        const manifest = await onDisk.verify(c.run, c.step);
        verified++;
        if (comparable(manifest) !== comparable(await mine.readManifest(c.run, c.step))) problems.push(`${key}: the manifest on disk differs from the replay's`);
      } catch (e) {
        problems.push(`${key} fails verification after shutdown: ${(e as Error).message}`);
      }
    }
    for (const key of expected) problems.push(`${key} is missing from the disk after shutdown`);
    await onDisk.close();
    await mine.close();
    rmSync(serverDir, { recursive: true, force: true });
    rmSync(replayDir, { recursive: true, force: true });
    return {
      compared: [`after shutdown: ${listed.length} checkpoints in the service's data directory, ${verified} verified (every shard's SHA-256) with manifests equal to the replay's but for the creation time`],
      problems,
    };
  },
  close(ctx) {
    closeClients(ctx);
  },
});
