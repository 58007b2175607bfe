import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { callUnary, createClient, services, status } from "@octet/proto";
import { LoadBalancerStore } from "./store.js";
import { startRouterServer, type RouterServer } from "./server.js";
import { updatedBias } from "../balance.js";
import { seededRandom } from "../testing/random.js";

type Client = services.router.v1.LoadBalancerServiceClient;

let running: RouterServer;
let client: Client;

before(async () => {
  running = await startRouterServer({ host: "127.0.0.1", port: 0, handleSignals: false });
  client = createClient(services.router.v1.LoadBalancerServiceClient, `127.0.0.1:${running.port}`);
});

after(async () => {
  client.close();
  await running.server.shutdown();
});

// γ = 2^-10 keeps every bias an exact float32 (small multiples of 2^-10), so the result cannot depend
// on the order in which concurrent reports are applied — any difference would be a lost or repeated update.
const exactGamma = [{ step: 0, gamma: 1 / 1024 }];

test("store: report creates the entry, moves the bias, dedups report ids, rejects bad input without change", () => {
  const store = new LoadBalancerStore();
  const first = store.report({ run: "r", layer: 0, experts: 4, loads: [8, 0, 0, 0], reportId: "a", gamma: exactGamma });
  assert.deepEqual(Array.from(first.bias), [-1 / 1024, 1 / 1024, 1 / 1024, 1 / 1024]);
  assert.equal(first.step, 1);
  const again = store.report({ run: "r", layer: 0, experts: 4, loads: [8, 0, 0, 0], reportId: "a" });
  assert.equal(again.duplicate, true);
  assert.equal(again.step, 1);
  const before = JSON.stringify(store.exportState());
  assert.throws(() => store.report({ run: "r", layer: 0, experts: 4, loads: [1, 2, 3] }), { name: "RangeError", message: /loads has length 3/ });
  assert.throws(() => store.report({ run: "r", layer: 0, experts: 5, loads: [1, 2, 3, 4, 5] }), { name: "RangeError", message: /experts is 5/ });
  assert.throws(() => store.report({ run: "r", layer: 0, experts: 4, loads: [1, NaN, 3, 4] }), { name: "RangeError", message: /loads\[1\]/ });
  assert.throws(() => store.report({ run: "", layer: 0, experts: 4, loads: [1, 2, 3, 4] }), { name: "RangeError", message: /run must not be empty/ });
  assert.throws(() => store.report({ run: "new", layer: 0, experts: 2, loads: [1, 2], gamma: [{ step: 3, gamma: 0.1 }] }), { name: "RangeError", message: /step 0/ });
  assert.equal(JSON.stringify(store.exportState()), before, "rejected reports changed nothing");
  // Per-rank loads (rank-major) are summed: rank 0 says e0 is hot, the sum says e1 is.
  const ranked = store.report({ run: "r", layer: 1, experts: 2, ranks: 2, loads: [3, 0, 0, 9], gamma: exactGamma });
  assert.deepEqual(Array.from(ranked.bias), [1 / 1024, -1 / 1024]);
});

test("store: export → import round-trips, and a bad import leaves the state untouched", () => {
  const store = new LoadBalancerStore();
  store.report({ run: "a", layer: 3, experts: 3, loads: [5, 1, 0], reportId: "x" });
  const exported = store.exportState();
  const copy = new LoadBalancerStore();
  assert.equal(copy.importState(JSON.parse(JSON.stringify(exported)), true), 1);
  assert.deepEqual(copy.exportState(), exported);
  // Deduplication survives the restore.
  assert.equal(copy.report({ run: "a", layer: 3, experts: 3, loads: [5, 1, 0], reportId: "x" }).duplicate, true);
  const bad = { version: 1, layers: [exported.layers[0], { ...exported.layers[0], layer: 4, bias: [0, 0] }] };
  assert.throws(() => copy.importState(bad, true), { name: "RangeError", message: /layers\[1\]\.bias has length 2/ });
  assert.deepEqual(copy.exportState(), exported);
});

test("gRPC: report, get, placement, export/import; bad requests get INVALID_ARGUMENT and change nothing", async () => {
  const reply = await callUnary(client, "reportLoads", { run: "g", layer: 2, experts: 4, loads: [9, 1, 1, 1], gamma: exactGamma });
  assert.deepEqual(reply.bias, [-1 / 1024, 1 / 1024, 1 / 1024, 1 / 1024]);
  assert.equal(reply.step, 1);
  assert.equal(reply.maxOverMean, 3);
  const got = await callUnary(client, "getBias", { run: "g", layer: 2 });
  assert.deepEqual(got.bias, reply.bias);
  await assert.rejects(callUnary(client, "getBias", { run: "nope", layer: 0 }), { code: status.NOT_FOUND });
  const exported = await callUnary(client, "exportState", {});
  await assert.rejects(callUnary(client, "reportLoads", { run: "g", layer: 2, experts: 4, loads: [1, 2] }), (err: { code: number; details: string }) => {
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /loads has length 2/);
    return true;
  });
  await assert.rejects(callUnary(client, "reportLoads", { run: "g", layer: 2, loads: [1, -2, 3, 4] }), { code: status.INVALID_ARGUMENT });
  await assert.rejects(callUnary(client, "importState", { state: { version: 7 }, replace: true }), { code: status.INVALID_ARGUMENT });
  assert.deepEqual(await callUnary(client, "exportState", {}), exported, "rejected requests changed nothing");

  const placement = await callUnary(client, "planPlacement", {
    loads: Array.from({ length: 16 }, (_, i) => (i === 3 ? 1000 : 10)),
    numGroups: 4,
    numNodes: 2,
    gpusPerNode: 2,
    redundantExperts: 4,
  });
  assert.equal(placement.mode, "hierarchical");
  assert.equal(placement.physicalToLogical.length, 20);
  assert.ok(placement.balanceAfter < placement.balanceBefore);
  await assert.rejects(callUnary(client, "planPlacement", { loads: [1, 2, 3], numGroups: 2, numNodes: 1, gpusPerNode: 1 }), { code: status.INVALID_ARGUMENT });

  // Import into a fresh key space, replacing everything, and read it back.
  await callUnary(client, "importState", { state: { version: 1, layers: [{ run: "imp", layer: 0, experts: 2, step: 7, bias: [0.5, -0.5] }] }, replace: true });
  const imported = await callUnary(client, "getBias", { run: "imp", layer: 0 });
  assert.deepEqual(imported.bias, [0.5, -0.5]);
  assert.equal(imported.step, 7);
  await assert.rejects(callUnary(client, "getBias", { run: "g", layer: 2 }), { code: status.NOT_FOUND });
});

test("load test: 20 concurrent clients × 25 reports to one (run, layer) lose no update", async () => {
  const experts = 16;
  const clients = 20;
  const reportsPerClient = 25;
  const random = seededRandom(42);
  const reports = Array.from({ length: clients }, (_, c) =>
    Array.from({ length: reportsPerClient }, (_, r) => ({
      reportId: `c${c}-r${r}`,
      loads: Array.from({ length: experts }, () => Math.floor(random() * 1000)),
    })),
  );
  const connections = Array.from({ length: clients }, () =>
    createClient(services.router.v1.LoadBalancerServiceClient, `127.0.0.1:${running.port}`),
  );
  try {
    // Create the entry first so that every client agrees on the schedule.
    await callUnary(connections[0], "reportLoads", { run: "load", layer: 0, experts, loads: new Array(experts).fill(1), gamma: exactGamma, reportId: "init" });
    await Promise.all(
      connections.map(async (connection, c) => {
        for (const report of reports[c]) {
          await callUnary(connection, "reportLoads", { run: "load", layer: 0, experts, ...report });
        }
      }),
    );
    // Retries of already-applied reports are not counted twice.
    await Promise.all(reports.map((list, c) => callUnary(connections[c], "reportLoads", { run: "load", layer: 0, ...list[0] })));
    let expected: Float32Array = updatedBias(new Float32Array(experts), new Array(experts).fill(1), 1 / 1024);
    for (const list of reports) for (const report of list) expected = updatedBias(expected, report.loads, 1 / 1024);
    const final = await callUnary(client, "getBias", { run: "load", layer: 0 });
    assert.equal(final.step, 1 + clients * reportsPerClient);
    assert.deepEqual(final.bias, Array.from(expected));
  } finally {
    for (const connection of connections) connection.close();
  }
});
