// npm run bench:load -- --only router [--duration 60 --clients 64]   (from the repository root)
// Load test of octet-router's LoadBalancerService (issue 17): 64 clients on loopback for 60 s against the bin,
// valid load reports, retries, reads, placements and state imports mixed with oversized and malformed requests;
// then the service's ExportState must equal a LoadBalancerStore that replays, key by key in the order the service
// applied them (the step each reply carries), the reports it accepted, and the imports. Results: bench/LOAD.md.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { octet, services } from "@octet/proto";
import { LoadBalancerStore, stateToWire, type GammaPoint } from "@octet/router/service";
import {
  AUTH_TOKEN, WrongAnswer, closeClients, connectClients, garbageMessage, rawUnaryCall, runLoadTest, unaryCall, waitReady,
  Rng, type RequestKind,
} from "../../proto/bench/load-harness.js";

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
type Client = services.router.v1.LoadBalancerServiceClient;
const SERVICE = "/octet.router.v1.LoadBalancerService/";
const DEADLINE_MS = 30_000;

/** The keys the reports go to: shared by all clients, so that reports of one key race. */
const RUNS = ["llm-a", "llm-b", "llm-c", "llm-d"];
const LAYERS = 4;
const EXPERTS = 64;
/** γ changes at step 300, so that the order the reports are applied in matters to the bias. */
const GAMMA: GammaPoint[] = [{ step: 0, gamma: 0.001 }, { step: 300, gamma: 0.0005 }];

interface SentReport {
  run: string;
  layer: number;
  loads: number[];
  ranks: number;
  reportId: string;
}

interface Ctx {
  clients: Client[];
  /** Clients without the bearer token (when one is set). */
  anonymous: Client[];
  /** Accepted, non-duplicate reports: key → step the service applied it as → the report. */
  applied: Map<string, Map<number, SentReport>>;
  /** The last report each client sent (for retries). */
  lastReport: (SentReport & { bias: number[] })[];
  /** Each client's own import key and what it last imported there successfully, in order. */
  imports: octet.router.v1.ILayerState[][];
  sequence: number[];
}

const keyOf = (run: string, layer: number) => `${run}\u0000${layer}`;

function loadsFor(rng: Rng, ranks: number): number[] {
  // Skewed loads: a few hot experts, so that biases move both ways.
  return Array.from({ length: ranks * EXPERTS }, (_, i) => Math.floor(rng.next() * 1000 * (1 + ((i % EXPERTS) % 7 === 0 ? 3 : 0))));
}

function report(ctx: Ctx, client: number, sent: SentReport): Promise<octet.router.v1.ReportLoadsReply> {
  return unaryCall<octet.router.v1.ReportLoadsReply>(
    (o, cb) => ctx.clients[client].reportLoads({ run: sent.run, layer: sent.layer, experts: EXPERTS, loads: sent.loads, ranks: sent.ranks, reportId: sent.reportId, gamma: GAMMA }, o, cb),
    DEADLINE_MS,
  );
}

function recordApplied(ctx: Ctx, sent: SentReport, reply: octet.router.v1.ReportLoadsReply): void {
  const key = keyOf(sent.run, sent.layer);
  let steps = ctx.applied.get(key);
  if (!steps) ctx.applied.set(key, (steps = new Map()));
  const step = Number(reply.step);
  if (steps.has(step)) throw new WrongAnswer(`two reports of (${sent.run}, ${sent.layer}) were both applied as step ${step}`);
  steps.set(step, sent);
}

const kinds: RequestKind<Ctx>[] = [
  {
    name: "report",
    class: "valid",
    weight: 40,
    expect: ["OK"],
    what: `ReportLoads of ${EXPERTS} experts to one of ${RUNS.length} runs × ${LAYERS} layers, summed or 4 ranks × ${EXPERTS} rank-major, with a fresh report_id`,
    async send(ctx, client, rng) {
      const ranks = rng.next() < 0.5 ? 1 : 4;
      const sent: SentReport = { run: rng.pick(RUNS), layer: rng.int(LAYERS), loads: loadsFor(rng, ranks), ranks, reportId: `c${client}-${ctx.sequence[client]++}` };
      const reply = await report(ctx, client, sent);
      if (reply.duplicate) throw new WrongAnswer(`fresh report_id ${sent.reportId} answered as a duplicate`);
      if (reply.bias.length !== EXPERTS) throw new WrongAnswer(`bias of length ${reply.bias.length}`);
      recordApplied(ctx, sent, reply);
      ctx.lastReport[client] = { ...sent, bias: reply.bias };
    },
  },
  {
    name: "report-retry",
    class: "valid",
    weight: 8,
    expect: ["OK"],
    what: "the client's last ReportLoads again, same report_id: must be answered duplicate = true and change nothing",
    async send(ctx, client) {
      const last = ctx.lastReport[client];
      if (!last) return;
      const reply = await report(ctx, client, last);
      if (!reply.duplicate) {
        recordApplied(ctx, last, reply);
        throw new WrongAnswer(`retry of ${last.reportId} was applied again (step ${reply.step})`);
      }
    },
  },
  {
    name: "get-bias",
    class: "valid",
    weight: 15,
    expect: ["OK", "NOT_FOUND"],
    what: "GetBias of a random key (NOT_FOUND before its first report)",
    async send(ctx, client, rng) {
      const reply = await unaryCall<octet.router.v1.GetBiasReply>((o, cb) => ctx.clients[client].getBias({ run: rng.pick(RUNS), layer: rng.int(LAYERS) }, o, cb), DEADLINE_MS);
      if (reply.bias.length !== EXPERTS) throw new WrongAnswer(`bias of length ${reply.bias.length}`);
    },
  },
  {
    name: "plan-placement",
    class: "valid",
    weight: 8,
    expect: ["OK"],
    what: "PlanPlacement of 256 experts in 8 groups on 4 nodes × 8 GPUs with 32 redundant slots",
    async send(ctx, client, rng) {
      const loads = Array.from({ length: 256 }, () => rng.int(10_000));
      const reply = await unaryCall<octet.router.v1.PlanPlacementReply>(
        (o, cb) => ctx.clients[client].planPlacement({ loads, numGroups: 8, numNodes: 4, gpusPerNode: 8, redundantExperts: 32 }, o, cb),
        DEADLINE_MS,
      );
      if (reply.physicalToLogical.length !== 288) throw new WrongAnswer(`${reply.physicalToLogical.length} physical slots, expected 288`);
    },
  },
  {
    name: "export-state",
    class: "valid",
    weight: 1,
    expect: ["OK"],
    what: "ExportState (every key's bias, step, γ and recent report ids)",
    async send(ctx, client) {
      await unaryCall<octet.router.v1.RouterState>((o, cb) => ctx.clients[client].exportState({}, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "import-state",
    class: "valid",
    weight: 4,
    expect: ["OK"],
    what: "ImportState (merge) of one layer under the client's own run name, with a random bias and step",
    async send(ctx, client, rng) {
      const layer: octet.router.v1.ILayerState = {
        run: `import-c${client}`, layer: 0, experts: EXPERTS, step: rng.int(1000), bias: Array.from(rng.floats(EXPERTS, 0.01)), gamma: GAMMA,
        recentReportIds: [`import-${ctx.sequence[client]++}`],
      };
      const reply = await unaryCall<octet.router.v1.ImportStateReply>((o, cb) => ctx.clients[client].importState({ state: { version: 1, layers: [layer] }, replace: false }, o, cb), DEADLINE_MS);
      if (reply.layers !== 1) throw new WrongAnswer(`imported ${reply.layers} layers, expected 1`);
      ctx.imports[client].push(layer);
    },
  },
  {
    name: "malformed-report",
    class: "malformed",
    weight: 6,
    expect: ["INVALID_ARGUMENT"],
    what: "ReportLoads with a wrong number of loads, a negative or NaN load, another expert count, an empty run, or another γ schedule",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS);
      const layer = rng.int(LAYERS);
      const good = loadsFor(rng, 1);
      const variants: octet.router.v1.IReportLoadsRequest[] = [
        { run, layer, experts: EXPERTS, loads: good.slice(1), gamma: GAMMA },
        { run, layer, experts: EXPERTS, loads: good.map((v, i) => (i === 3 ? -1 : v)), gamma: GAMMA },
        { run, layer, experts: EXPERTS, loads: good.map((v, i) => (i === 5 ? Number.NaN : v)), gamma: GAMMA },
        { run, layer, experts: EXPERTS, loads: good, ranks: 3, gamma: GAMMA },
        { run: "", layer, experts: EXPERTS, loads: good, gamma: GAMMA },
        { run, layer, experts: EXPERTS, loads: good, gamma: [{ step: 0, gamma: 0.5 }] },
        { run, layer, experts: EXPERTS, loads: good, gamma: [{ step: 5, gamma: 0.001 }] },
      ];
      const req = rng.pick(variants);
      await unaryCall((o, cb) => ctx.clients[client].reportLoads({ ...req, reportId: `bad-c${client}-${ctx.sequence[client]++}` }, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "malformed-import",
    class: "malformed",
    weight: 2,
    expect: ["INVALID_ARGUMENT"],
    what: "ImportState with replace = true of a state that fails validation (version 2, a bias of the wrong length, a repeated key): nothing may be replaced",
    async send(ctx, client, rng) {
      const layer = (run: string, bias = EXPERTS): octet.router.v1.ILayerState => ({ run, layer: 0, experts: EXPERTS, step: 1, bias: Array.from(rng.floats(bias, 0.01)), gamma: GAMMA });
      const variants: octet.router.v1.IRouterState[] = [
        { version: 2, layers: [layer("x")] },
        { version: 1, layers: [layer("x"), layer("y", EXPERTS - 1)] },
        { version: 1, layers: [layer("x"), layer("x")] },
      ];
      await unaryCall((o, cb) => ctx.clients[client].importState({ state: rng.pick(variants), replace: true }, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "garbage",
    class: "malformed",
    weight: 3,
    expect: ["INTERNAL", "INVALID_ARGUMENT"],
    what: "bytes that are not a protobuf message, as ReportLoads (grpc-js answers INTERNAL: it cannot decode the request)",
    async send(ctx, client, rng) {
      await rawUnaryCall(ctx.clients[client], `${SERVICE}ReportLoads`, garbageMessage(rng), DEADLINE_MS);
    },
  },
  {
    name: "oversized-message",
    class: "oversized",
    weight: 2,
    expect: ["RESOURCE_EXHAUSTED"],
    what: `ReportLoads of 600 000 loads (${(600_000 * 8 / 2 ** 20).toFixed(1)} MiB, above the 4 MiB message limit)`,
    async send(ctx, client) {
      await unaryCall((o, cb) => ctx.clients[client].reportLoads({ run: RUNS[0], layer: 0, experts: EXPERTS, loads: new Array<number>(600_000).fill(1) }, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "oversized-placement",
    class: "oversized",
    weight: 3,
    expect: ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"],
    what: "PlanPlacement with num_nodes 65536, gpus_per_node 32768, redundant_experts 2^31 − 16 (issue 17's hang) or other sizes above the limits",
    async send(ctx, client, rng) {
      const variants: octet.router.v1.IPlanPlacementRequest[] = [
        { loads: new Array<number>(16).fill(1), numGroups: 1, numNodes: 65536, gpusPerNode: 32768, redundantExperts: 2 ** 31 - 16 },
        { loads: new Array<number>(16).fill(1), numGroups: 1, numNodes: 1, gpusPerNode: 16, redundantExperts: 2 ** 32 - 16 },
        { loads: new Array<number>(256).fill(1), numGroups: 8, numNodes: 2 ** 24, gpusPerNode: 1, redundantExperts: 2 ** 24 - 256 },
      ];
      await unaryCall((o, cb) => ctx.clients[client].planPlacement(rng.pick(variants), o, cb), 5000);
    },
  },
];

if (AUTH_TOKEN) {
  kinds.push({
    name: "unauthenticated",
    class: "unauthenticated",
    weight: 2,
    expect: ["UNAUTHENTICATED"],
    what: "a valid ReportLoads without the bearer token",
    async send(ctx, client, rng) {
      await unaryCall((o, cb) => ctx.anonymous[client].reportLoads({ run: rng.pick(RUNS), layer: 0, experts: EXPERTS, loads: loadsFor(rng, 1), gamma: GAMMA }, o, cb), DEADLINE_MS);
    },
  });
}

function replay(ctx: Ctx): LoadBalancerStore {
  const store = new LoadBalancerStore();
  for (const steps of ctx.applied.values()) {
    const order = [...steps.keys()].sort((a, b) => a - b);
    for (const step of order) {
      const sent = steps.get(step)!;
      const result = store.report({ run: sent.run, layer: sent.layer, experts: EXPERTS, loads: sent.loads, ranks: sent.ranks, reportId: sent.reportId, gamma: GAMMA });
      if (result.step !== step) throw new Error(`replay: (${sent.run}, ${sent.layer}) report ${sent.reportId} became step ${result.step}, the service said ${step} (a gap: a report the service applied but did not answer OK?)`);
    }
  }
  for (const imported of ctx.imports) {
    for (const layer of imported) {
      store.importState({
        version: 1,
        layers: [{ run: layer.run!, layer: layer.layer!, experts: layer.experts!, step: Number(layer.step), bias: layer.bias!, gamma: GAMMA, recentReportIds: layer.recentReportIds ?? [] }],
      }, false);
    }
  }
  return store;
}

await runLoadTest<Ctx>({
  title: "octet-router (LoadBalancerService)",
  packageDir: PACKAGE_DIR,
  serviceName: "octet.router.v1.LoadBalancerService",
  kinds,
  notes: [
    "The service keeps one aux-loss-free balancer per (run, layer): bias, step, γ schedule and the last 4096 report ids. Every",
    "reply to an accepted report carries the step it was applied as, which orders the reports of one key. The replay is a fresh",
    "LoadBalancerStore (the library the service runs) that applies, key by key in that order, exactly the reports answered OK",
    "with duplicate = false, then each client's imports in the order it sent them; its export must equal the service's",
    "ExportState field for field (biases as float32 bits). Retries must come back as duplicates, rejected requests must change",
    "nothing (the comparison shows they did not).",
  ],
  async setup(address, clients) {
    const ctx: Ctx = {
      ...(await connectClients<Client>(services.router.v1.LoadBalancerServiceClient, address, clients)),
      applied: new Map(),
      lastReport: [],
      imports: Array.from({ length: clients }, () => []),
      sequence: new Array<number>(clients).fill(0),
    };
    // Every key exists before the load, so that a malformed report can never be the one that creates it.
    const seed = new Rng(0);
    for (const run of RUNS) {
      for (let layer = 0; layer < LAYERS; layer++) {
        const sent: SentReport = { run, layer, loads: loadsFor(seed, 1), ranks: 1, reportId: `setup-${run}-${layer}` };
        recordApplied(ctx, sent, await report(ctx, 0, sent));
      }
    }
    return ctx;
  },
  async verify(ctx) {
    const served = await unaryCall<octet.router.v1.RouterState>((o, cb) => ctx.clients[0].exportState({}, o, cb), DEADLINE_MS);
    const expected = stateToWire(replay(ctx).exportState());
    const problems: string[] = [];
    const servedLayers = new Map((served.layers ?? []).map((l) => [keyOf(l.run ?? "", l.layer ?? 0), l]));
    const expectedLayers = new Map((expected.layers ?? []).map((l) => [keyOf(l.run!, l.layer!), l]));
    for (const key of new Set([...servedLayers.keys(), ...expectedLayers.keys()])) {
      const s = servedLayers.get(key);
      const e = expectedLayers.get(key);
      const name = key.replace("\u0000", ", layer ");
      if (!s || !e) {
        problems.push(`(${name}) is ${s ? "only in the service" : "only in the replay"}`);
        continue;
      }
      if (Number(s.step) !== Number(e.step)) problems.push(`(${name}) step ${s.step}, replay ${e.step}`);
      if (s.experts !== e.experts) problems.push(`(${name}) experts ${s.experts}, replay ${e.experts}`);
      const sb = Float32Array.from(s.bias ?? []);
      const eb = Float32Array.from(e.bias ?? []);
      const differing = sb.findIndex((v, i) => !Object.is(v, eb[i]));
      if (sb.length !== eb.length || differing >= 0) problems.push(`(${name}) bias differs at expert ${differing}: ${sb[differing]} vs replay ${eb[differing]}`);
      if (JSON.stringify((s.gamma ?? []).map((p) => [Number(p.step), p.gamma])) !== JSON.stringify((e.gamma ?? []).map((p) => [Number(p.step), p.gamma]))) problems.push(`(${name}) γ schedule differs`);
      if (JSON.stringify(s.recentReportIds) !== JSON.stringify(e.recentReportIds ?? [])) problems.push(`(${name}) recent report ids differ`);
    }
    const reports = [...ctx.applied.values()].reduce((n, m) => n + m.size, 0);
    const imports = ctx.imports.reduce((n, l) => n + l.length, 0);
    return {
      compared: [
        `${servedLayers.size} (run, layer) entries in the service, ${expectedLayers.size} in the replay`,
        `${reports} accepted reports replayed in the service's step order, ${imports} imports in each client's order`,
        "per entry: step, experts, bias (float32 bits), γ schedule, recent report ids in order",
      ],
      problems,
    };
  },
  close(ctx) {
    closeClients(ctx);
  },
});
