import { test, after } from "node:test";
import assert from "node:assert/strict";
import { status as grpcStatus } from "@grpc/grpc-js";
import { encodeBf16 } from "@octet/numerics";
import { startEmaServer } from "./service.js";
import { EmaClient, ShardedEmaClient, createEmaServiceClient, pushParameters } from "./client.js";
import { params, sequentialEma } from "./testing/params.js";
import type { DecayPolicy } from "./decay.js";
import type { EmaKeeper } from "./keeper.js";
import type { OctetServer } from "@octet/proto";

const servers: OctetServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown()));
});

async function start(options: Parameters<typeof startEmaServer>[0] = {}) {
  const s = await startEmaServer({ host: "127.0.0.1", port: 0, logger: undefined, shutdownGraceMs: 100, ...options });
  servers.push(s.server);
  return { ...s, address: `127.0.0.1:${s.port}` };
}

const decay: DecayPolicy = { kind: "warmup", decay: 0.995 };
const shapes: Record<string, number[]> = { emb: [50, 16], w1: [16, 33], b1: [33], w2: [33, 16], ln: [16] };
const names = Object.keys(shapes);
const tensors = names.map((name) => ({ name, shape: shapes[name] }));
const size = (name: string) => shapes[name].reduce((a, b) => a * b, 1);
const param = (name: string, step: number) => params(size(name), step * 101 + names.indexOf(name) + 1);
const all = (step: number) => new Map(names.map((n) => [n, param(n, step)]));

function grpcCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

function recordApplied(keeper: EmaKeeper, run: string): number[] {
  const steps: number[] = [];
  keeper.on("applied", (r: string, s: number) => {
    if (r === run) steps.push(s);
  });
  return steps;
}

test("push in chunks over gRPC, GetEma returns the sequential EMA at the header's step", async () => {
  const { address, keeper } = await start();
  const c = new EmaClient({ address, run: "basic", chunkBytes: 64 });
  assert.deepEqual(await c.registerRun({ tensors, decay }), { created: true });
  assert.deepEqual(await c.registerRun({ tensors, decay }), { created: false });
  const raw = c.raw;
  for (const s of [0, 1, 2, 3]) {
    const out = await pushParameters(raw, "basic", s, all(s), { chunkBytes: 100 });
    assert.equal(out.status, "complete");
  }
  await keeper.idle("basic");
  const snap = await c.getEma();
  assert.equal(snap.step, 3);
  assert.equal(snap.updates, 4);
  for (const n of names) assert.deepEqual(snap.tensors.get(n), sequentialEma(decay, [0, 1, 2, 3], (s) => param(n, s)), n);
  const st = await c.status();
  assert.equal(st.appliedStep, 3);
  assert.equal(st.tensors, names.length);
  assert.equal(st.emaBytes, names.reduce((a, n) => a + size(n) * 4, 0));
  c.close();
});

test("bad pushes get INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION with the reason; the EMA stays as it was", async () => {
  const { address, keeper } = await start();
  const c = new EmaClient({ address, run: "bad" });
  await c.registerRun({ tensors: [...tensors, { name: "h", shape: [8], dtype: "BF16" }], decay });
  const good = (s: number) => new Map<string, Float32Array | Uint16Array>([...all(s), ["h", encodeBf16(params(8, s))]]);
  await pushParameters(c.raw, "bad", 5, good(5));
  await keeper.idle("bad");
  const before = await c.getEma();
  const nan = param("w1", 6);
  nan[100] = Number.NaN;
  const cases: [string, () => Promise<unknown>, number, RegExp][] = [
    ["unknown run", () => pushParameters(c.raw, "nope", 6, good(6)), grpcStatus.NOT_FOUND, /unknown run "nope"/],
    ["unknown tensor", () => pushParameters(c.raw, "bad", 6, new Map([...good(6), ["zz", params(3, 1)]])), grpcStatus.INVALID_ARGUMENT, /unknown tensor "zz"/],
    ["wrong dtype", () => pushParameters(c.raw, "bad", 6, new Map([...good(6), ["ln", encodeBf16(param("ln", 6))]])), grpcStatus.INVALID_ARGUMENT, /dtype BF16 does not match the registered F32/],
    ["too few bytes", () => pushParameters(c.raw, "bad", 6, new Map([...good(6), ["b1", params(32, 1)]])), grpcStatus.INVALID_ARGUMENT, /128 bytes received, shape \[33\] × F32 needs 132/],
    ["too many bytes", () => pushParameters(c.raw, "bad", 6, new Map([...good(6), ["b1", params(40, 1)]])), grpcStatus.INVALID_ARGUMENT, /more bytes than its shape/],
    ["NaN", () => pushParameters(c.raw, "bad", 6, new Map([...good(6), ["w1", nan]])), grpcStatus.INVALID_ARGUMENT, /non-finite value .* at element 100/],
    ["stale", () => pushParameters(c.raw, "bad", 4, good(4)), grpcStatus.FAILED_PRECONDITION, /step 4 is older than step 5/],
  ];
  for (const [what, fn, code, re] of cases) {
    await assert.rejects(fn(), (e: unknown) => grpcCode(e) === code && re.test((e as Error).message), what);
  }
  // A push whose first message is not a header.
  await assert.rejects(
    new Promise((resolve, reject) => {
      const s = c.raw.pushParameters((err, res) => (err ? reject(err) : resolve(res)));
      s.write({ chunk: { name: "ln", data: new Uint8Array(4) } });
      s.end();
    }),
    (e: unknown) => grpcCode(e) === grpcStatus.INVALID_ARGUMENT && /first message of a push must be its header/.test((e as Error).message),
  );
  // The same step again: accepted as a duplicate, nothing changes.
  assert.equal((await pushParameters(c.raw, "bad", 5, good(9))).status, "duplicate");
  await keeper.idle("bad");
  const afterSnap = await c.getEma();
  assert.equal(afterSnap.step, 5);
  assert.deepEqual(afterSnap.tensors, before.tensors);
  const st = await c.status();
  assert.equal(st.pendingSteps, 0);
  assert.equal(st.stalePushes, 1);
  assert.equal(st.duplicatePushes, 1);
  assert.equal(st.rejectedPushes, 5); // the unknown-run and header-less pushes name no registered run
  // GetEma / export of an unknown run
  const other = new EmaClient({ address, run: "nope", client: c.raw });
  await assert.rejects(other.status(), (e: unknown) => grpcCode(e) === grpcStatus.NOT_FOUND && /unknown run "nope"/.test((e as Error).message));
  await assert.rejects(other.getEma(), (e: unknown) => grpcCode(e) === grpcStatus.NOT_FOUND);
  c.close();
});

test("ExportEma → ImportEma into another keeper restores the same EMA and step; a truncated import changes nothing", async () => {
  const a = await start();
  const b = await start();
  const ca = new EmaClient({ address: a.address, run: "exp", chunkBytes: 256 });
  const cb = new EmaClient({ address: b.address, run: "exp", chunkBytes: 256 });
  await ca.registerRun({ tensors, decay, updateInterval: 2 });
  for (const s of [0, 2, 4]) await pushParameters(ca.raw, "exp", s, all(s));
  await a.keeper.idle("exp");
  const state = await ca.exportState();
  assert.equal(state.metadata.step, 4);
  assert.equal(state.metadata.updateInterval, 2);
  assert.deepEqual(state.metadata.decay, { kind: "warmup", decay: 0.995, a: 1, b: 10 });
  assert.equal(state.tensors.get("emb")!.data.byteLength, 50 * 16 * 4);
  assert.deepEqual(await cb.importState(state), { run: "exp", step: 4 });
  const sa = await ca.getEma();
  const sb = await cb.getEma();
  assert.deepEqual(sb, sa);
  // truncated: last tensor short by 4 bytes
  const broken = { metadata: state.metadata, tensors: new Map(state.tensors) };
  const ln = state.tensors.get("ln")!;
  broken.tensors.set("ln", { ...ln, data: ln.data.subarray(0, ln.data.byteLength - 4) });
  const cb2 = new EmaClient({ address: b.address, run: "exp" });
  await assert.rejects(cb2.importState(broken), (e: unknown) => grpcCode(e) === grpcStatus.INVALID_ARGUMENT && /"ln": 60 bytes received, needs 64/.test((e as Error).message));
  assert.deepEqual(await cb.getEma(), sa);
  // the restored keeper continues like the original
  await pushParameters(ca.raw, "exp", 6, all(6));
  await pushParameters(cb.raw, "exp", 6, all(6));
  await a.keeper.idle("exp");
  await b.keeper.idle("exp");
  assert.deepEqual((await cb.getEma()).tensors, (await ca.getEma()).tensors);
  assert.equal(await cb.dropRun(), true);
  await assert.rejects(cb.status(), (e: unknown) => grpcCode(e) === grpcStatus.NOT_FOUND);
  ca.close();
  cb.close();
  cb2.close();
});

test("EmaClient: push returns at once, coalesces while a send is in flight, and the EMA equals the sequential one over the applied steps", async () => {
  const { address, keeper } = await start();
  const applied = recordApplied(keeper, "co");
  const sentSteps: number[] = [];
  const c = new EmaClient({ address, run: "co", chunkBytes: 512, onSent: (s) => sentSteps.push(s) });
  await c.registerRun({ tensors, decay });
  assert.equal(c.stats().lastSentStep, null);
  const steps = 20;
  for (let s = 0; s < steps; s++) c.push(s, all(s)); // synchronous: no awaits between pushes
  const mid = c.stats();
  assert.equal(mid.pushed, steps);
  assert.equal(mid.busy, true);
  await c.flush();
  await keeper.idle("co");
  const st = c.stats();
  // The first push goes out at once; the next 18 are replaced by the last before the first send finishes.
  assert.deepEqual({ pushed: st.pushed, sent: st.sent, coalesced: st.coalesced, failed: st.failed }, { pushed: 20, sent: 2, coalesced: 18, failed: 0 });
  assert.equal(st.coalescedTensors, 18 * names.length);
  assert.deepEqual(applied, [0, 19]);
  // onSent names each accepted send's step; lastSentStep the newest.
  assert.deepEqual(sentSteps, [0, 19]);
  assert.equal(st.lastSentStep, 19);
  const snap = await c.getEma();
  for (const n of names) assert.deepEqual(snap.tensors.get(n), sequentialEma(decay, applied, (s) => param(n, s)));
  // push validation is synchronous
  assert.throws(() => c.push(3, all(3)), /older than the last pushed step 19/);
  assert.throws(() => c.push(30, { emb: [1, 2] as unknown as Float32Array }), TypeError);
  // a keeper-side rejection is counted as failed, not thrown
  const errors: string[] = [];
  const c2 = new EmaClient({ address, run: "co", onError: (e) => errors.push(e.message) });
  c2.push(40, { emb: params(7, 1) });
  await c2.flush();
  assert.equal(c2.stats().failed, 1);
  assert.match(errors[0], /7 elements|28 bytes received/);
  c.close();
  c2.close();
});

test("concurrency (1): several clients push different tensors of the same run, steps interleaved across clients → every step applied, EMA equals the sequential one bit for bit", async () => {
  const { address, keeper } = await start();
  const applied = recordApplied(keeper, "cc");
  const admin = new EmaClient({ address, run: "cc" });
  await admin.registerRun({ tensors, decay });
  const steps = 25;
  // 3 clients with 2 + 2 + 1 tensors; each sends its own steps in order (awaiting its previous push), all
  // three concurrently, so arrivals interleave arbitrarily across clients.
  const groups = [["emb", "w1"], ["b1", "w2"], ["ln"]];
  const raws = groups.map(() => createEmaServiceClient(address));
  const outcomes = await Promise.all(
    groups.map(async (g, i) => {
      const seen: string[] = [];
      for (let s = 0; s < steps; s++) {
        const out = await pushParameters(raws[i], "cc", s, g.map((n) => [n, param(n, s)] as [string, Float32Array]), { chunkBytes: 300 });
        seen.push(out.status);
        if (i === 2 && s % 5 === 0) await new Promise((r) => setTimeout(r, 1)); // vary the interleaving
      }
      return seen;
    }),
  );
  await keeper.idle("cc");
  assert.deepEqual(applied, Array.from({ length: steps }, (_, s) => s));
  // every step was completed by exactly one of the clients' pushes
  const completes = outcomes.flat().filter((x) => x === "complete").length;
  assert.equal(completes, steps);
  const snap = await admin.getEma();
  assert.equal(snap.step, steps - 1);
  for (const n of names) assert.deepEqual(snap.tensors.get(n), sequentialEma(decay, applied, (s) => param(n, s)), n);
  assert.equal((await admin.status()).supersededSteps, 0);
  raws.forEach((r) => r.close());
  admin.close();
});

test("concurrency (2): several clients push whole steps, interleaved (client i pushes steps ≡ i mod 3) → applied steps increase, the rest are stale or duplicate, EMA equals the sequential one over the applied steps", async () => {
  const { address, keeper } = await start();
  const applied = recordApplied(keeper, "il");
  const admin = new EmaClient({ address, run: "il" });
  await admin.registerRun({ tensors, decay });
  const steps = 30;
  const raws = [0, 1, 2].map(() => createEmaServiceClient(address));
  const results = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const r = { complete: 0, stale: 0, duplicate: 0, other: 0 };
      for (let s = i; s < steps; s += 3) {
        try {
          const out = await pushParameters(raws[i], "il", s, all(s));
          if (out.status === "complete") r.complete++;
          else r.duplicate++;
        } catch (e) {
          if (grpcCode(e) === grpcStatus.FAILED_PRECONDITION) r.stale++;
          else r.other++;
        }
      }
      return r;
    }),
  );
  await keeper.idle("il");
  const total = results.reduce((a, r) => ({ complete: a.complete + r.complete, stale: a.stale + r.stale, duplicate: a.duplicate + r.duplicate, other: a.other + r.other }));
  assert.equal(total.other, 0);
  assert.equal(total.complete + total.stale + total.duplicate, steps);
  assert.equal(applied.length, total.complete);
  for (let i = 1; i < applied.length; i++) assert.ok(applied[i] > applied[i - 1], `applied steps increase: ${applied}`);
  const snap = await admin.getEma();
  assert.equal(snap.step, applied[applied.length - 1]);
  assert.equal(snap.updates, applied.length);
  for (const n of names) assert.deepEqual(snap.tensors.get(n), sequentialEma(decay, applied, (s) => param(n, s)), n);
  const st = await admin.status();
  assert.equal(st.stalePushes, total.stale);
  raws.forEach((r) => r.close());
  admin.close();
});

test("ShardedEmaClient: tensors spread over two keepers by assignTensors; a consistent read across them equals the sequential EMA", async () => {
  const a = await start();
  const b = await start();
  const sc = new ShardedEmaClient({ addresses: [a.address, b.address], run: "sh", tensors });
  await sc.registerRun({ decay });
  const owned = sc.assignment.byKeeper.map((l) => l.map((t) => t.name));
  assert.ok(owned[0].length > 0 && owned[1].length > 0);
  assert.deepEqual(a.keeper.spec("sh").tensors.map((t) => t.name), owned[0]);
  assert.deepEqual(b.keeper.spec("sh").tensors.map((t) => t.name), owned[1]);
  for (let s = 0; s < 6; s++) {
    sc.push(s, all(s));
    await sc.flush();
  }
  const snap = await sc.getEma();
  assert.equal(snap.step, 5);
  for (const n of names) assert.deepEqual(snap.tensors.get(n), sequentialEma(decay, [0, 1, 2, 3, 4, 5], (s) => param(n, s)), n);
  assert.throws(() => sc.push(7, { nope: params(2, 1) }), /unknown tensor "nope"/);
  assert.equal(sc.stats().sent, 12);
  assert.equal(sc.stats().lastSentStep, 5);
  sc.close();
});
