// What one request may ask of the router: bounded sizes (refused before anything is allocated), large placements
// off the event loop under the call's deadline, state changes only with the bearer token.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { callUnary, checkHealth, createClient, services, status, type ServiceError } from "@octet/proto";
import { planPlacement } from "../placement.js";
import { routerLimitsFromEnv, DEFAULT_ROUTER_LIMITS } from "./limits.js";
import { startRouterServer, type RouterServer } from "./server.js";
import { LoadBalancerStore } from "./store.js";

type Client = services.router.v1.LoadBalancerServiceClient;
type GrpcError = ServiceError & { details: string };

const TOKEN = "router-test-token-0123456789";
let running: RouterServer;
let client: Client;

before(async () => {
  // Default limits, one worker for large placements, a token; no host: loopback.
  running = await startRouterServer({ port: 0, authToken: TOKEN, shutdownGraceMs: 100, limits: { maxPlacementWorkers: 1 } });
  client = createClient(services.router.v1.LoadBalancerServiceClient, running.address);
});

after(async () => {
  client.close();
  await running.server.shutdown();
});

const failsWith = (code: number, re: RegExp) => (err: GrpcError) => {
  assert.equal(err.code, code, err.details);
  assert.match(err.details, re);
  return true;
};

/** 65536 experts, 65536 redundant slots on one node of 64 GPUs: about 4·10⁹ inner-loop steps, valid under the defaults. */
function slowPlacement() {
  return { loads: Array.from({ length: 65_536 }, (_, i) => (i % 7) + 1), numGroups: 1, numNodes: 1, gpusPerNode: 64, redundantExperts: 65_536 };
}

async function waitUntil(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

test("the server listens on 127.0.0.1 unless told otherwise", () => {
  assert.match(running.address, /^127\.0\.0\.1:\d+$/);
});

test("the issue's PlanPlacement (65536 nodes × 32768 GPUs, 2^31 − 16 redundant experts) is refused at once, naming the field and the limit", async () => {
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  await assert.rejects(
    callUnary(client, "planPlacement", { loads: Array.from({ length: 16 }, () => 1), numGroups: 4, numNodes: 65_536, gpusPerNode: 32_768, redundantExperts: 2 ** 31 - 16 }, { deadlineMs: 5000 }),
    failsWith(status.RESOURCE_EXHAUSTED, /^num_nodes is 65536, above this server's limit of 4096 \(--max-nodes \/ OCTET_ROUTER_MAX_NODES\)$/),
  );
  assert.ok(performance.now() - t0 < 1000, "refused without computing");
  assert.ok(process.memoryUsage().rss - rssBefore < 64 << 20, "and without allocating");
  assert.equal(running.placements.running, 0);
  assert.equal(await checkHealth(running.address), "SERVING");
});

test("every size field is bounded: experts, redundant experts, nodes, GPUs per node, GPUs", async () => {
  const small = await startRouterServer({ port: 0, shutdownGraceMs: 100, limits: { maxExperts: 8, maxRedundantExperts: 4, maxNodes: 2, maxGpusPerNode: 4, maxGpus: 6 } });
  const c = createClient(services.router.v1.LoadBalancerServiceClient, small.address);
  const ok = { loads: [1, 2, 3, 4, 5, 6, 7, 8], numGroups: 2, numNodes: 2, gpusPerNode: 2, redundantExperts: 0 };
  try {
    assert.equal((await callUnary(c, "planPlacement", ok)).physicalToLogical.length, 8);
    const cases: [Partial<typeof ok>, RegExp][] = [
      [{ loads: new Array(9).fill(1) }, /loads \(the number of experts\) is 9, above this server's limit of 8 \(--max-experts/],
      [{ redundantExperts: 8 }, /redundant_experts is 8, above this server's limit of 4 \(--max-redundant-experts/],
      [{ numNodes: 3 }, /num_nodes is 3, above this server's limit of 2/],
      [{ gpusPerNode: 5 }, /gpus_per_node is 5, above this server's limit of 4 \(--max-gpus-per-node/],
      [{ gpusPerNode: 4 }, /num_nodes × gpus_per_node is 8, above this server's limit of 6 \(--max-gpus/],
    ];
    for (const [change, re] of cases) await assert.rejects(callUnary(c, "planPlacement", { ...ok, ...change }), failsWith(status.RESOURCE_EXHAUSTED, re));
    // Malformed (not too large) requests stay INVALID_ARGUMENT.
    await assert.rejects(callUnary(c, "planPlacement", { ...ok, numNodes: 0 }), failsWith(status.INVALID_ARGUMENT, /num_nodes must be an integer >= 1/));
    await assert.rejects(callUnary(c, "planPlacement", { ...ok, redundantExperts: 1 }), failsWith(status.INVALID_ARGUMENT, /must be divisible by the number of GPUs/));
    await assert.rejects(callUnary(c, "planPlacement", { ...ok, loads: [1, 2, 3, 4, 5, 6, 7, -8] }), failsWith(status.INVALID_ARGUMENT, /loads\[7\]/));
    // ReportLoads' experts are bounded by the same limit.
    await assert.rejects(
      callUnary(c, "reportLoads", { run: "r", layer: 0, experts: 9, loads: new Array(9).fill(1) }),
      failsWith(status.RESOURCE_EXHAUSTED, /experts is 9, above this server's limit of 8/),
    );
  } finally {
    c.close();
    await small.server.shutdown();
  }
});

test("a large placement runs on a worker thread and gives what planPlacement gives in process", { timeout: 60_000 }, async () => {
  const req = { loads: Array.from({ length: 2048 }, (_, i) => ((i * 7919) % 1000) + 1), numGroups: 1, numNodes: 4, gpusPerNode: 8, redundantExperts: 1024 };
  let sawWorker = false;
  const watch = setInterval(() => (sawWorker ||= running.placements.running > 0), 1);
  let reply;
  try {
    reply = await callUnary(client, "planPlacement", req, { deadlineMs: 30_000 });
  } finally {
    clearInterval(watch);
  }
  const expected = planPlacement(req);
  assert.equal(reply.mode, "global");
  assert.deepEqual(reply.physicalToLogical, Array.from(expected.physicalToLogical));
  assert.deepEqual(reply.replicaCounts, Array.from(expected.replicaCounts));
  assert.deepEqual(reply.gpuLoadAfter, Array.from(expected.gpuLoadAfter));
  assert.equal(reply.balanceAfter, expected.balanceAfter);
  assert.ok(sawWorker, "it ran on a worker");
  assert.equal(running.placements.running, 0);
});

test("a slow but valid placement with a short deadline gets DEADLINE_EXCEEDED while health checks keep answering; its worker is stopped", { timeout: 30_000 }, async () => {
  const t0 = performance.now();
  const placement = callUnary(client, "planPlacement", slowPlacement(), { deadlineMs: 600 });
  await waitUntil(() => running.placements.running === 1, 5000);
  assert.equal(running.placements.running, 1, "the placement is running on its worker");
  // Health and the other methods answer while it runs.
  const h0 = performance.now();
  assert.equal(await checkHealth(running.address, { deadlineMs: 500 }), "SERVING");
  assert.equal(await checkHealth(running.address, { service: services.router.v1.LoadBalancerServiceName, deadlineMs: 500 }), "SERVING");
  assert.deepEqual((await callUnary(client, "exportState", {}, { deadlineMs: 500 })).version, 1);
  assert.ok(performance.now() - h0 < 500, "answered promptly");
  await assert.rejects(placement, (err: GrpcError) => err.code === status.DEADLINE_EXCEEDED);
  assert.ok(performance.now() - t0 < 3000, "the deadline ended it");
  await waitUntil(() => running.placements.running === 0, 2000);
  assert.equal(running.placements.running, 0, "the worker was terminated");
});

test("large placements beyond --max-placement-workers are refused; a cancelled one frees its worker", { timeout: 30_000 }, async () => {
  const controller = new AbortController();
  const first = callUnary(client, "planPlacement", slowPlacement(), { deadlineMs: 30_000, signal: controller.signal });
  await waitUntil(() => running.placements.running === 1, 5000);
  await assert.rejects(
    callUnary(client, "planPlacement", slowPlacement(), { deadlineMs: 5000 }),
    failsWith(status.RESOURCE_EXHAUSTED, /1 large placements are already being computed, this server's limit \(--max-placement-workers/),
  );
  // Small placements do not queue behind it: they run at once on the event loop.
  assert.equal((await callUnary(client, "planPlacement", { loads: [1, 2, 3, 4], numGroups: 2, numNodes: 1, gpusPerNode: 2, redundantExperts: 0 }, { deadlineMs: 500 })).mode, "hierarchical");
  controller.abort();
  await assert.rejects(first, (err: GrpcError) => err.code === status.CANCELLED);
  await waitUntil(() => running.placements.running === 0, 2000);
  assert.equal(running.placements.running, 0);
});

test("the server's own time limit ends a placement sent without a deadline", { timeout: 30_000 }, async () => {
  const strict = await startRouterServer({ port: 0, shutdownGraceMs: 100, limits: { placementTimeoutMs: 300 } });
  const c = createClient(services.router.v1.LoadBalancerServiceClient, strict.address);
  try {
    await assert.rejects(
      callUnary(c, "planPlacement", slowPlacement()),
      failsWith(status.DEADLINE_EXCEEDED, /ran past this server's limit of 300 ms \(--placement-timeout-ms \/ OCTET_ROUTER_PLACEMENT_TIMEOUT_MS\)/),
    );
    assert.equal(strict.placements.running, 0);
  } finally {
    c.close();
    await strict.server.shutdown();
  }
});

test("with a token, ReportLoads and ImportState need it; GetBias, ExportState and PlanPlacement do not", async () => {
  const trusted = createClient(services.router.v1.LoadBalancerServiceClient, running.address, { authToken: TOKEN });
  try {
    const report = { run: "auth", layer: 0, experts: 2, loads: [3, 1] };
    await assert.rejects(callUnary(client, "reportLoads", report), failsWith(status.UNAUTHENTICATED, /ReportLoads needs a bearer token/));
    await assert.rejects(callUnary(client, "getBias", { run: "auth", layer: 0 }), (err: GrpcError) => err.code === status.NOT_FOUND, "the refused report created nothing");
    await callUnary(trusted, "reportLoads", report);
    assert.equal((await callUnary(client, "getBias", { run: "auth", layer: 0 })).step, 1);
    const state = await callUnary(client, "exportState", {});
    await assert.rejects(callUnary(client, "importState", { state, replace: true }), failsWith(status.UNAUTHENTICATED, /ImportState/));
    assert.equal((await callUnary(trusted, "importState", { state, replace: true })).layers, state.layers.length);
  } finally {
    trusted.close();
  }
});

test("store: run names follow the shared rule; layers, experts and report ids are bounded", () => {
  const store = new LoadBalancerStore({ maxExperts: 4, maxLayers: 2 });
  assert.throws(() => store.report({ run: "../../etc", layer: 0, experts: 2, loads: [1, 1] }), { name: "RangeError", message: /invalid run name "\.\.\/\.\.\/etc"/ });
  assert.throws(() => store.report({ run: "r", layer: 0, experts: 5, loads: [1, 1, 1, 1, 1] }), { code: status.RESOURCE_EXHAUSTED });
  assert.throws(() => store.report({ run: "r", layer: 0, experts: 2, loads: [1, 1], reportId: "x".repeat(257) }), { name: "RangeError", message: /report_id has 257 characters/ });
  store.report({ run: "r", layer: 0, experts: 2, loads: [1, 1] });
  store.report({ run: "r", layer: 1, experts: 2, loads: [1, 1] });
  store.report({ run: "r", layer: 1, experts: 2, loads: [1, 1] }); // an existing entry is no new layer
  assert.throws(() => store.report({ run: "r", layer: 2, experts: 2, loads: [1, 1] }), { code: status.RESOURCE_EXHAUSTED, message: /3 \(run, layer\) entries would be kept, above this server's limit of 2/ });
  const exported = store.exportState();
  const three = { version: 1, layers: [...exported.layers, { ...exported.layers[0], layer: 7 }] };
  assert.throws(() => new LoadBalancerStore({ maxLayers: 2 }).importState(three, true), { code: status.RESOURCE_EXHAUSTED });
  assert.throws(() => store.importState({ version: 1, layers: [{ ...exported.layers[0], layer: 9 }] }, false), { code: status.RESOURCE_EXHAUSTED }, "merging past the limit");
  assert.deepEqual(store.exportState(), exported, "refused imports changed nothing");
});

test("limits from flags and OCTET_ROUTER_* variables; a bad value names its source", () => {
  assert.deepEqual(routerLimitsFromEnv({}), DEFAULT_ROUTER_LIMITS);
  const limits = routerLimitsFromEnv({ OCTET_ROUTER_MAX_NODES: "64", OCTET_ROUTER_MAX_GPUS: "512" }, { maxGpus: "1024" });
  assert.equal(limits.maxNodes, 64);
  assert.equal(limits.maxGpus, 1024);
  assert.throws(() => routerLimitsFromEnv({ OCTET_ROUTER_MAX_EXPERTS: "lots" }), /OCTET_ROUTER_MAX_EXPERTS must be a positive integer, got "lots"/);
  assert.throws(() => routerLimitsFromEnv({}, { placementTimeoutMs: "0" }), /--placement-timeout-ms must be a positive integer/);
});
