import { test } from "node:test";
import assert from "node:assert/strict";
import { EmaKeeper } from "./keeper.js";
import { EmaNotFoundError, EmaRangeError, StaleStepError } from "./errors.js";
import { params, sequentialEma } from "./testing/params.js";
import { encodeBf16 } from "@octet/numerics";
import type { RunSpec } from "./types.js";

const spec: RunSpec = {
  run: "r1",
  tensors: [
    { name: "a", shape: [3, 5] },
    { name: "b", shape: [7] },
  ],
  decay: { kind: "warmup", decay: 0.99 },
};

function pa(step: number) {
  return params(15, step * 2 + 1);
}
function pb(step: number) {
  return params(7, step * 2 + 2);
}

test("library mode: EMA over several steps equals the sequential reference, bit for bit", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  for (const s of [0, 1, 2, 5, 9]) {
    const out = k.push("r1", s, { a: pa(s), b: pb(s) });
    assert.equal(out.status, "complete");
  }
  await k.idle("r1");
  const snap = await k.snapshot("r1");
  assert.equal(snap.step, 9);
  assert.equal(snap.updates, 5);
  assert.deepEqual(snap.tensors.get("a"), sequentialEma(spec.decay, [0, 1, 2, 5, 9], pa));
  assert.deepEqual(snap.tensors.get("b"), sequentialEma(spec.decay, [0, 1, 2, 5, 9], pb));
});

test("a step completes only when every tensor has arrived; partial pushes from several sources combine", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  assert.deepEqual(k.push("r1", 1, { a: pa(1) }), { run: "r1", step: 1, status: "staged", missingTensors: 1 });
  assert.equal(k.status("r1").pendingSteps, 1);
  assert.equal(k.push("r1", 1, { b: pb(1) }).status, "complete");
  await k.whenApplied("r1", 1);
  assert.equal(k.status("r1").appliedStep, 1);
  // step 2 partial, then step 3 completes: 2 is superseded
  k.push("r1", 2, { a: pa(2) });
  k.push("r1", 3, { a: pa(3), b: pb(3) });
  await k.idle("r1");
  const st = k.status("r1");
  assert.equal(st.appliedStep, 3);
  assert.equal(st.supersededSteps, 1);
  assert.equal(st.pendingSteps, 0);
  // a late push for step 2 is stale
  assert.throws(() => k.push("r1", 2, { b: pb(2) }), StaleStepError);
  const snap = await k.snapshot("r1");
  assert.deepEqual(snap.tensors.get("a"), sequentialEma(spec.decay, [1, 3], pa));
});

test("repeated pushes for an applied or queued step are idempotent; older steps are stale", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  k.push("r1", 4, { a: pa(4), b: pb(4) });
  assert.equal(k.push("r1", 4, { a: pa(4), b: pb(4) }).status, "duplicate"); // queued
  await k.idle("r1");
  const before = await k.snapshot("r1");
  assert.equal(k.push("r1", 4, { a: pa(5), b: pb(5) }).status, "duplicate"); // applied: ignored
  await k.idle("r1");
  assert.deepEqual((await k.snapshot("r1")).tensors, before.tensors);
  assert.throws(() => k.push("r1", 3, { a: pa(3), b: pb(3) }), (e: unknown) => e instanceof StaleStepError && e.code === "FAILED_PRECONDITION" && /older than step 4/.test(e.message));
  assert.equal(k.status("r1").duplicatePushes, 2);
  assert.equal(k.status("r1").stalePushes, 1);
});

test("bad pushes are refused with the reason and leave the EMA unchanged", async () => {
  const k = new EmaKeeper();
  k.registerRun({ ...spec, run: "r2", tensors: [...spec.tensors, { name: "h", shape: [4], dtype: "BF16" }] });
  const good = (s: number) => ({ a: pa(s), b: pb(s), h: encodeBf16(params(4, s)) });
  k.push("r2", 1, good(1));
  await k.idle("r2");
  const before = await k.snapshot("r2");
  const nan = pa(2);
  nan[7] = Number.NaN;
  const inf = encodeBf16(new Float32Array([1, Infinity, 0, 0]));
  const cases: [string, () => unknown, RegExp, new (...a: never[]) => Error][] = [
    ["unknown run", () => k.push("nope", 2, good(2)), /unknown run "nope"/, EmaNotFoundError],
    ["unknown tensor", () => k.push("r2", 2, { ...good(2), zz: pa(2) }), /unknown tensor "zz"/, EmaRangeError],
    ["wrong element count", () => k.push("r2", 2, { ...good(2), b: params(8, 1) }), /8 elements, shape \[7\] has 7/, EmaRangeError],
    ["wrong dtype", () => k.push("r2", 2, { ...good(2), h: params(4, 1) }), /expected a Uint16Array for dtype BF16/, TypeError],
    ["NaN", () => k.push("r2", 2, { ...good(2), a: nan }), /non-finite value .* at element 7/, EmaRangeError],
    ["bf16 Inf", () => k.push("r2", 2, { ...good(2), h: inf }), /non-finite value .* at element 1/, EmaRangeError],
    ["negative step", () => k.push("r2", -1, good(1)), /step must be an integer >= 0/, EmaRangeError],
    ["empty push", () => k.push("r2", 2, {}), /no tensors/, EmaRangeError],
  ];
  for (const [what, fn, re, cls] of cases) {
    assert.throws(fn, (e: unknown) => e instanceof cls && re.test((e as Error).message), what);
  }
  // chunk-level checks
  const b = k.beginPush("r2", 2);
  assert.throws(() => b.addChunk({ name: "a", dtype: "BF16", data: new Uint8Array(4) }), /dtype BF16 does not match the registered F32/);
  assert.throws(() => b.addChunk({ name: "a", shape: [5, 3], data: new Uint8Array(4) }), /shape \[5, 3\] does not match/);
  b.addChunk({ name: "a", offset: 0, data: new Uint8Array(8) });
  assert.throws(() => b.addChunk({ name: "a", offset: 0, data: new Uint8Array(8) }), /offset 0 but 8 bytes received/);
  assert.throws(() => b.addChunk({ name: "a", data: new Uint8Array(60) }), /more bytes than its shape/);
  assert.throws(() => b.finish(), /8 bytes received, shape \[3, 5\] × F32 needs 60/);
  await k.idle("r2");
  const after = await k.snapshot("r2");
  assert.equal(after.step, 1);
  assert.deepEqual(after.tensors, before.tensors);
  assert.equal(k.status("r2").pendingSteps, 0);
  assert.ok(k.status("r2").rejectedPushes >= 6);
});

test("nonFinite: allow applies NaN as is", async () => {
  const k = new EmaKeeper();
  k.registerRun({ ...spec, nonFinite: "allow" });
  const a = pa(0);
  a[0] = Number.NaN;
  k.push("r1", 0, { a, b: pb(0) });
  await k.idle("r1");
  assert.ok(Number.isNaN((await k.snapshot("r1")).tensors.get("a")![0]));
});

test("update interval: only multiples are accepted", () => {
  const k = new EmaKeeper();
  k.registerRun({ ...spec, updateInterval: 10 });
  assert.throws(() => k.push("r1", 15, { a: pa(1), b: pb(1) }), /not a multiple of .* update interval 10/);
  assert.equal(k.push("r1", 20, { a: pa(1), b: pb(1) }).status, "complete");
});

test("registration: idempotent for the same spec, ALREADY_EXISTS for another, limits", () => {
  const k = new EmaKeeper({ maxEmaBytes: 200 });
  assert.equal(k.registerRun(spec).created, true);
  assert.equal(k.registerRun(spec).created, false);
  assert.throws(() => k.registerRun({ ...spec, decay: { kind: "fixed", decay: 0.5 } }), (e: unknown) => e instanceof EmaRangeError && e.code === "ALREADY_EXISTS");
  assert.throws(() => k.registerRun({ ...spec, run: "big", tensors: [{ name: "x", shape: [100] }] }), (e: unknown) => e instanceof EmaRangeError && e.code === "RESOURCE_EXHAUSTED");
  assert.throws(() => k.registerRun({ ...spec, run: "x", tensors: [{ name: "x", shape: [-1] }] }), RangeError);
  assert.throws(() => k.registerRun({ ...spec, run: "x", tensors: [] }), RangeError);
  assert.throws(() => k.registerRun({ ...spec, run: "" }), RangeError);
  assert.equal(k.dropRun("r1"), true);
  assert.equal(k.dropRun("r1"), false);
  assert.throws(() => k.status("r1"), EmaNotFoundError);
});

test("reads are consistent: a snapshot taken while updates are applied has every tensor at one step", async () => {
  // Tensors whose parameters at step s are all equal to s: the EMA of each tensor is then a function of the
  // applied step alone, so a mixed read would show tensors disagreeing.
  const k = new EmaKeeper({ sliceElements: 1 << 12, maxQueuedSteps: 1000 });
  const n = 1 << 16;
  const names = ["t0", "t1", "t2", "t3"];
  k.registerRun({ run: "c", tensors: names.map((name) => ({ name, shape: [n] })), decay: { kind: "fixed", decay: 0.5 } });
  const steps = 30;
  for (let s = 0; s < steps; s++) {
    const v = new Float32Array(n).fill(s);
    k.push("c", s, Object.fromEntries(names.map((nm) => [nm, v])));
  }
  let reads = 0;
  const seen = new Set<number>();
  while (k.status("c").appliedStep < steps - 1 || reads === 0) {
    const snap = await k.snapshot("c").catch(() => undefined);
    if (snap) {
      reads++;
      seen.add(snap.step);
      const first = snap.tensors.get("t0")![0];
      for (const nm of names) {
        const t: Float32Array = snap.tensors.get(nm)!;
        assert.equal(t[0], first);
        assert.equal(t[n - 1], first);
      }
    }
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(seen.size >= 2, `snapshots saw steps ${[...seen]}`);
});

test("exportState / importState round-trip; import validates completely", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  for (const s of [0, 1, 2]) k.push("r1", s, { a: pa(s), b: pb(s) });
  await k.idle("r1");
  const st = await k.exportState("r1");
  assert.equal(st.metadata.step, 2);
  assert.equal(st.metadata.updates, 3);
  assert.deepEqual(st.metadata.decay, { kind: "warmup", decay: 0.99, a: 1, b: 10 });
  assert.equal(st.tensors.get("a")!.dtype, "F32");
  assert.deepEqual(st.tensors.get("a")!.shape, [3, 5]);
  assert.equal(st.tensors.get("a")!.data.byteLength, 60);

  const k2 = new EmaKeeper();
  await k2.importState(st);
  const s1 = await k.snapshot("r1");
  const s2 = await k2.snapshot("r1");
  assert.deepEqual(s2, s1);
  // continues from the imported step: a stale push is refused, a new one applies the same as on the original
  assert.throws(() => k2.push("r1", 1, { a: pa(1), b: pb(1) }), StaleStepError);
  k.push("r1", 3, { a: pa(3), b: pb(3) });
  k2.push("r1", 3, { a: pa(3), b: pb(3) });
  await k.idle("r1");
  await k2.idle("r1");
  assert.deepEqual((await k2.snapshot("r1")).tensors, (await k.snapshot("r1")).tensors);

  // bad states leave the target untouched
  const before = await k2.snapshot("r1");
  const short = { metadata: st.metadata, tensors: new Map(st.tensors) };
  short.tensors.set("b", { dtype: "F32", shape: [7], data: new Uint8Array(27) });
  await assert.rejects(k2.importState(short), /27 bytes, shape needs 28/);
  const missing = { metadata: st.metadata, tensors: new Map([["a", st.tensors.get("a")!]]) };
  await assert.rejects(k2.importState(missing), /1 tensors, metadata lists 2/);
  const otherSpec = { metadata: { ...st.metadata, decay: { kind: "fixed" as const, decay: 0.5 } }, tensors: st.tensors };
  await assert.rejects(k2.importState(otherSpec), (e: unknown) => e instanceof EmaRangeError && e.code === "FAILED_PRECONDITION");
  assert.deepEqual(await k2.snapshot("r1"), before);
  // nothing applied yet: export is a precondition failure
  const k3 = new EmaKeeper();
  k3.registerRun(spec);
  await assert.rejects(k3.exportState("r1"), (e: unknown) => e instanceof EmaRangeError && e.code === "FAILED_PRECONDITION");
});

test("snapshot({ step }) waits for that step; ABORTED once it is replaced", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  const wait = k.snapshot("r1", { step: 2 });
  k.push("r1", 1, { a: pa(1), b: pb(1) });
  k.push("r1", 2, { a: pa(2), b: pb(2) });
  assert.equal((await wait).step, 2);
  k.push("r1", 3, { a: pa(3), b: pb(3) });
  await k.idle("r1");
  await assert.rejects(k.snapshot("r1", { step: 2 }), (e: unknown) => e instanceof EmaRangeError && e.code === "ABORTED");
});

test("dropRun rejects waiters", async () => {
  const k = new EmaKeeper();
  k.registerRun(spec);
  const w = k.whenApplied("r1", 5);
  k.dropRun("r1");
  await assert.rejects(w, EmaNotFoundError);
});
