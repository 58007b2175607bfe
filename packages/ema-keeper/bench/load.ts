// npm run bench:load -- --only ema-keeper [--duration 60 --clients 64]   (from the repository root)
// Load test of octet-ema-keeper's EmaService (issue 17): 64 clients on loopback for 60 s against the bin, pushes
// of whole and split steps to four shared runs (so that steps race, complete out of order, go stale or come twice),
// reads, re-registrations and imports, mixed with oversized and malformed requests. Then the keeper's EMA must
// equal, bit for bit, an in-process EmaKeeper that was pushed exactly the steps the service answered COMPLETE, in
// increasing order; every GetEma answer seen during the load must equal the replay at the step it named.
// Results: bench/LOAD.md.

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EmaKeeper, type ParamArray, type RunSpec } from "@octet/ema-keeper";
import { encodeBf16 } from "@octet/numerics";
import { octet, services } from "@octet/proto";
import {
  AUTH_TOKEN, Rng, WrongAnswer, bytesOf, clientStreamCall, closeClients, connectClients, garbageMessage, rawClientStreamCall, runLoadTest, serverStreamCall,
  unaryCall, type RequestKind,
} from "../../proto/bench/load-harness.js";

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
type Client = services.ema.v1.EmaServiceClient;
const SERVICE = "/octet.ema.v1.EmaService/";
const DEADLINE_MS = 60_000;
const CHUNK_BYTES = 1 << 20;
const DType = octet.common.v1.DType;
const PushStatus = octet.ema.v1.PushStatus;
const NonFinitePolicy = octet.ema.v1.NonFinitePolicy;

/** The runs every client pushes to. One 1.5 MiB tensor (sent in two chunks) and two small ones each. */
const SHAPES: Record<string, number[]> = { "layers.0.w": [512, 768], "layers.0.b": [768], "norm.w": [64, 64] };
const RUNS: RunSpec[] = [
  { run: "ema-f32", tensors: tensorsOf("F32"), decay: { kind: "fixed", decay: 0.99 }, updateInterval: 1, nonFinite: "reject" },
  { run: "ema-bf16", tensors: tensorsOf("BF16"), decay: { kind: "warmup", decay: 0.999, a: 1, b: 10 }, updateInterval: 1, nonFinite: "reject" },
  { run: "ema-every-2", tensors: tensorsOf("F32"), decay: { kind: "power", decay: 0.9999, gamma: 1, power: 2 / 3, minDecay: 0 }, updateInterval: 2, nonFinite: "reject" },
  { run: "ema-nan-ok", tensors: tensorsOf("F32"), decay: { kind: "fixed", decay: 0.9 }, updateInterval: 1, nonFinite: "allow" },
];

function tensorsOf(dtype: "F32" | "BF16") {
  return Object.entries(SHAPES).map(([name, shape]) => ({ name, shape, dtype }));
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function wireSpec(spec: RunSpec): octet.ema.v1.IRunSpec {
  const d = spec.decay;
  const decay: octet.ema.v1.IDecayPolicy =
    d.kind === "fixed" ? { fixed: { decay: d.decay } } : d.kind === "warmup" ? { warmup: { decay: d.decay, a: d.a, b: d.b } } : { power: { decay: d.decay, gamma: d.gamma, power: d.power, minDecay: d.minDecay } };
  return {
    run: spec.run,
    tensors: spec.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype === "BF16" ? DType.DTYPE_BF16 : DType.DTYPE_F32 })),
    decay,
    updateInterval: spec.updateInterval,
    nonFinite: spec.nonFinite === "allow" ? NonFinitePolicy.NON_FINITE_POLICY_ALLOW : NonFinitePolicy.NON_FINITE_POLICY_REJECT,
  };
}

/** Each tensor's base values; a step's parameters are base · (1 + step/1000) + sin(step), the same in any process. */
const BASE = new Map(Object.entries(SHAPES).map(([name, shape], k) => [name, new Rng(1000 + k).floats(numel(shape), 0.05)]));

/** The parameters of (run, step, tensor): float32, or bf16 bit patterns for a BF16 run; NaNs in the run that allows them. */
function params(spec: RunSpec, step: number, name: string): ParamArray {
  const base = BASE.get(name)!;
  const scale = 1 + step / 1000;
  const shift = Math.sin(step);
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) out[i] = base[i] * scale + shift;
  if (spec.nonFinite === "allow" && step % 7 === 0) out[(step * 31) % out.length] = Number.NaN;
  return spec.tensors[0].dtype === "BF16" ? encodeBf16(out) : out;
}

function chunksOf(spec: RunSpec, step: number, names: string[]): octet.ema.v1.IPushChunk[] {
  const out: octet.ema.v1.IPushChunk[] = [];
  for (const name of names) {
    const t = spec.tensors.find((x) => x.name === name)!;
    const bytes = bytesOf(params(spec, step, name));
    const dtype = t.dtype === "BF16" ? DType.DTYPE_BF16 : DType.DTYPE_F32;
    for (let offset = 0; offset < bytes.byteLength || offset === 0; offset += CHUNK_BYTES) {
      out.push({ chunk: { name, dtype, shape: offset === 0 ? t.shape : [], offset, data: bytes.subarray(offset, Math.min(bytes.byteLength, offset + CHUNK_BYTES)) } });
      if (bytes.byteLength === 0) break;
    }
  }
  return out;
}

interface Ctx {
  clients: Client[];
  anonymous: Client[];
  /** Next step to push, per run. */
  next: Map<string, number>;
  /** Steps answered COMPLETE, per run. */
  completed: Map<string, Set<number>>;
  /** GetEma answers seen during the load: run → step → digests (all must equal the replay's). */
  seen: Map<string, Map<number, Set<string>>>;
  /** Each client's successful imports, in order (the last one is what its run must hold). */
  imports: { run: string; step: number; digest: string }[][];
  sequence: number[];
}

async function push(ctx: Ctx, client: number, spec: RunSpec, step: number, names: string[]): Promise<octet.ema.v1.PushResponse> {
  const messages = [{ header: { run: spec.run, step } }, ...chunksOf(spec, step, names)];
  const reply = await clientStreamCall<octet.ema.v1.IPushChunk, octet.ema.v1.PushResponse>((o, cb) => ctx.clients[client].pushParameters(o, cb), messages, DEADLINE_MS);
  if (reply.status === PushStatus.PUSH_STATUS_COMPLETE) {
    const done = ctx.completed.get(spec.run)!;
    if (done.has(step)) throw new WrongAnswer(`${spec.run} step ${step} answered COMPLETE twice`);
    done.add(step);
  }
  return reply;
}

function nextStep(ctx: Ctx, spec: RunSpec): number {
  const step = ctx.next.get(spec.run)!;
  ctx.next.set(spec.run, step + (spec.updateInterval ?? 1));
  return step;
}

function digestOf(tensors: { name: string; data: Uint8Array }[]): string {
  const h = createHash("sha256");
  for (const t of [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    h.update(t.name);
    h.update(t.data);
  }
  return h.digest("hex");
}

/** GetEma (latest) of a run: its step and the digest of every tensor's float32 bytes. */
async function getEma(client: Client, run: string): Promise<{ step: number; updates: number; digest: string; tensors: Map<string, Uint8Array> }> {
  const messages = await serverStreamCall<octet.ema.v1.EmaChunk>((o) => client.getEma({ run }, o), DEADLINE_MS);
  const header = messages[0]?.header;
  if (!header) throw new WrongAnswer("GetEma: the first message is not the header");
  const parts = new Map<string, Uint8Array[]>();
  for (const m of messages.slice(1)) {
    if (!m.chunk) throw new WrongAnswer("GetEma: a message after the header is not a chunk");
    const name = m.chunk.name ?? "";
    const list = parts.get(name) ?? [];
    list.push(m.chunk.data ?? new Uint8Array(0));
    parts.set(name, list);
  }
  const tensors = new Map([...parts].map(([name, list]) => [name, new Uint8Array(Buffer.concat(list))]));
  return { step: Number(header.step), updates: Number(header.updates), digest: digestOf([...tensors].map(([name, data]) => ({ name, data }))), tensors };
}

const kinds: RequestKind<Ctx>[] = [
  {
    name: "push",
    class: "valid",
    weight: 30,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "PushParameters of every tensor of the next step of a shared run (1.6 MiB, 4 messages); FAILED_PRECONDITION when a later step completed first",
    async send(ctx, client, rng) {
      const spec = rng.pick(RUNS);
      const reply = await push(ctx, client, spec, nextStep(ctx, spec), spec.tensors.map((t) => t.name));
      if (reply.status !== PushStatus.PUSH_STATUS_COMPLETE && reply.status !== PushStatus.PUSH_STATUS_DUPLICATE) throw new WrongAnswer(`a whole step answered ${PushStatus[reply.status]}`);
    },
  },
  {
    name: "push-split",
    class: "valid",
    weight: 10,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "the next step of a shared run in two pushes (the large tensor, then the small ones): STAGED, then COMPLETE",
    async send(ctx, client, rng) {
      const spec = rng.pick(RUNS);
      const step = nextStep(ctx, spec);
      const names = spec.tensors.map((t) => t.name);
      const first = await push(ctx, client, spec, step, names.slice(0, 1));
      if (first.status === PushStatus.PUSH_STATUS_COMPLETE) throw new WrongAnswer("half a step answered COMPLETE");
      await push(ctx, client, spec, step, names.slice(1));
    },
  },
  {
    name: "push-again",
    class: "valid",
    weight: 5,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "a step of a shared run pushed before (one of the last 8): DUPLICATE when it was completed, FAILED_PRECONDITION when it is stale",
    async send(ctx, client, rng) {
      const spec = rng.pick(RUNS);
      const interval = spec.updateInterval ?? 1;
      const step = Math.max(interval, ctx.next.get(spec.run)! - interval * (1 + rng.int(8)));
      const reply = await push(ctx, client, spec, step, spec.tensors.map((t) => t.name));
      if (reply.status === PushStatus.PUSH_STATUS_STAGED) throw new WrongAnswer(`an old step answered STAGED`);
    },
  },
  {
    name: "get-ema",
    class: "valid",
    weight: 6,
    expect: ["OK", "FAILED_PRECONDITION"],
    what: "GetEma (latest) of a shared run: every tensor at the step the header names (checked against the replay afterwards)",
    async send(ctx, client, rng) {
      const run = rng.pick(RUNS).run;
      const got = await getEma(ctx.clients[client], run);
      const steps = ctx.seen.get(run)!;
      const digests = steps.get(got.step) ?? new Set<string>();
      digests.add(got.digest);
      steps.set(got.step, digests);
    },
  },
  {
    name: "get-status",
    class: "valid",
    weight: 6,
    expect: ["OK"],
    what: "GetStatus of a shared run",
    async send(ctx, client, rng) {
      await unaryCall<octet.ema.v1.RunStatus>((o, cb) => ctx.clients[client].getStatus({ run: rng.pick(RUNS).run }, o, cb), DEADLINE_MS);
    },
  },
  {
    name: "register-again",
    class: "valid",
    weight: 3,
    expect: ["OK"],
    what: "RegisterRun of a shared run with its spec again: created = false",
    async send(ctx, client, rng) {
      const reply = await unaryCall<octet.ema.v1.RegisterRunResponse>((o, cb) => ctx.clients[client].registerRun({ spec: wireSpec(rng.pick(RUNS)) }, o, cb), DEADLINE_MS);
      if (reply.created) throw new WrongAnswer("an identical registration created the run again");
    },
  },
  {
    name: "import",
    class: "valid",
    weight: 2,
    expect: ["OK"],
    what: "ImportEma of a small state into the client's own run (two tensors, a random step)",
    async send(ctx, client, rng) {
      const run = `import-c${client}`;
      const step = 1 + rng.int(100_000);
      const shapes: [string, number[]][] = [["a", [256]], ["b", [16, 16]]];
      const spec: octet.ema.v1.IRunSpec = { run, tensors: shapes.map(([name, shape]) => ({ name, shape, dtype: DType.DTYPE_F32 })), decay: { fixed: { decay: 0.5 } }, updateInterval: 1 };
      const tensors = shapes.map(([name, shape]) => ({ name, shape, data: bytesOf(rng.floats(numel(shape))) }));
      const messages: octet.ema.v1.IEmaChunk[] = [
        { header: { format: "octet.ema.v1", run, step, updates: 3, spec } },
        ...tensors.map((t) => ({ chunk: { name: t.name, dtype: DType.DTYPE_F32, shape: t.shape, offset: 0, data: t.data } })),
      ];
      const reply = await clientStreamCall<octet.ema.v1.IEmaChunk, octet.ema.v1.ImportEmaResponse>((o, cb) => ctx.clients[client].importEma(o, cb), messages, DEADLINE_MS);
      if (reply.run !== run || Number(reply.step) !== step) throw new WrongAnswer(`import answered ${reply.run}@${reply.step}`);
      ctx.imports[client].push({ run, step, digest: digestOf(tensors) });
    },
  },
  {
    name: "malformed-push",
    class: "malformed",
    weight: 8,
    expect: ["INVALID_ARGUMENT", "NOT_FOUND"],
    what: "PushParameters with an unknown tensor, the wrong dtype, a tensor 4 bytes short, a wrong offset, a NaN (run that rejects them), a step off the update interval, a negative step, a chunk before the header, or an unknown run (NOT_FOUND)",
    async send(ctx, client, rng) {
      const spec = RUNS[0];
      const step = ctx.next.get(spec.run)! + 1000; // far ahead: a bad push must not even be staged
      const good = chunksOf(spec, step, spec.tensors.map((t) => t.name));
      const small = good[good.length - 1].chunk!;
      const nan = Float32Array.from(params(spec, step, small.name!) as Float32Array);
      nan[3] = Number.NaN;
      const variants: octet.ema.v1.IPushChunk[][] = [
        [{ header: { run: spec.run, step } }, ...good, { chunk: { name: "no.such.tensor", dtype: DType.DTYPE_F32, shape: [4], offset: 0, data: new Uint8Array(16) } }],
        [{ header: { run: spec.run, step } }, ...good.slice(0, -1), { chunk: { ...small, dtype: DType.DTYPE_BF16 } }],
        [{ header: { run: spec.run, step } }, ...good.slice(0, -1), { chunk: { ...small, data: small.data!.subarray(4) } }],
        [{ header: { run: spec.run, step } }, { chunk: { ...good[1].chunk!, offset: 12 } }],
        [{ header: { run: spec.run, step } }, ...good.slice(0, -1), { chunk: { ...small, data: bytesOf(nan) } }],
        [{ header: { run: RUNS[2].run, step: 2 * ctx.next.get(RUNS[2].run)! + 1 } }, ...chunksOf(RUNS[2], 1, ["norm.w"])],
        [{ header: { run: spec.run, step: -5 } }, ...good],
        [...good.slice(0, 1), { header: { run: spec.run, step } }],
        [{ header: { run: "no-such-run", step: 1 } }, ...good],
      ];
      await clientStreamCall<octet.ema.v1.IPushChunk, octet.ema.v1.PushResponse>((o, cb) => ctx.clients[client].pushParameters(o, cb), rng.pick(variants), DEADLINE_MS);
    },
  },
  {
    name: "bad-names",
    class: "malformed",
    weight: 3,
    expect: ["INVALID_ARGUMENT"],
    what: "RegisterRun of run \"../../etc\" or \"a\\0b\", or of a tensor \"../../x\" (the checkpointer's name rule)",
    async send(ctx, client, rng) {
      const spec = wireSpec(RUNS[0]);
      const variants: octet.ema.v1.IRunSpec[] = [
        { ...spec, run: "../../etc" },
        { ...spec, run: "a\u0000b" },
        { ...spec, run: `bad-names-c${client}`, tensors: [{ name: "../../x", shape: [4], dtype: DType.DTYPE_F32 }] },
      ];
      const reply = await unaryCall<octet.ema.v1.RegisterRunResponse>((o, cb) => ctx.clients[client].registerRun({ spec: rng.pick(variants) }, o, cb), DEADLINE_MS);
      await unaryCall((o, cb) => ctx.clients[client].dropRun({ run: reply.spec?.run ?? "" }, o, cb), DEADLINE_MS).catch(() => undefined);
    },
  },
  {
    name: "garbage",
    class: "malformed",
    weight: 3,
    expect: ["INTERNAL", "INVALID_ARGUMENT"],
    what: "a PushParameters stream whose second message is not a protobuf message (grpc-js answers INTERNAL)",
    async send(ctx, client, rng) {
      const header = octet.ema.v1.PushChunk.encode({ header: { run: RUNS[0].run, step: ctx.next.get(RUNS[0].run)! + 1000 } }).finish();
      await rawClientStreamCall(ctx.clients[client], `${SERVICE}PushParameters`, [header, garbageMessage(rng)], DEADLINE_MS);
    },
  },
  {
    name: "oversized-message",
    class: "oversized",
    weight: 2,
    expect: ["RESOURCE_EXHAUSTED"],
    what: "a push whose chunk carries the whole 1.5 MiB tensor three times over, in one 4.5 MiB message (above the 4 MiB limit)",
    async send(ctx, client) {
      const spec = RUNS[0];
      const messages: octet.ema.v1.IPushChunk[] = [
        { header: { run: spec.run, step: ctx.next.get(spec.run)! + 1000 } },
        { chunk: { name: "layers.0.w", dtype: DType.DTYPE_F32, shape: SHAPES["layers.0.w"], offset: 0, data: new Uint8Array(3 * 512 * 768 * 4) } },
      ];
      await clientStreamCall((o, cb) => ctx.clients[client].pushParameters(o, cb), messages, DEADLINE_MS);
    },
  },
  {
    name: "oversized-register",
    class: "oversized",
    weight: 2,
    expect: ["RESOURCE_EXHAUSTED"],
    what: "RegisterRun of 1000 tensors of 2^29 float32 elements (2 TiB of EMA, issue 17's registration), or an ImportEma whose spec is as large",
    async send(ctx, client, rng) {
      const run = `huge-c${client}-${ctx.sequence[client]++}`;
      const spec: octet.ema.v1.IRunSpec = { run, tensors: Array.from({ length: 1000 }, (_, i) => ({ name: `t${i}`, shape: [2 ** 29], dtype: DType.DTYPE_F32 })), decay: { fixed: { decay: 0.99 } } };
      try {
        if (rng.next() < 0.5) {
          await unaryCall((o, cb) => ctx.clients[client].registerRun({ spec }, o, cb), DEADLINE_MS);
        } else {
          const messages: octet.ema.v1.IEmaChunk[] = [{ header: { format: "octet.ema.v1", run, step: 1, updates: 1, spec } }, { chunk: { name: "t0", dtype: DType.DTYPE_F32, offset: 0, data: new Uint8Array(1024) } }];
          await clientStreamCall((o, cb) => ctx.clients[client].importEma(o, cb), messages, DEADLINE_MS);
        }
      } finally {
        // Accepted (the bug this request looks for): drop it again so that the keeper does not keep it.
        await unaryCall((o, cb) => ctx.clients[client].dropRun({ run }, o, cb), DEADLINE_MS).catch(() => undefined);
      }
    },
  },
];

if (AUTH_TOKEN) {
  kinds.push({
    name: "unauthenticated",
    class: "unauthenticated",
    weight: 2,
    expect: ["UNAUTHENTICATED"],
    what: "a valid PushParameters or RegisterRun without the bearer token",
    async send(ctx, client, rng) {
      const spec = rng.pick(RUNS);
      if (rng.next() < 0.5) {
        await unaryCall((o, cb) => ctx.anonymous[client].registerRun({ spec: wireSpec(spec) }, o, cb), DEADLINE_MS);
      } else {
        const messages = [{ header: { run: spec.run, step: ctx.next.get(spec.run)! + 1000 } }, ...chunksOf(spec, 1, spec.tensors.map((t) => t.name))];
        await clientStreamCall((o, cb) => ctx.anonymous[client].pushParameters(o, cb), messages, DEADLINE_MS);
      }
    },
  });
}

/** Waits until every shared run has applied everything complete (GetStatus: nothing queued). */
async function settle(ctx: Ctx): Promise<void> {
  for (const spec of RUNS) {
    for (;;) {
      const st = await unaryCall<octet.ema.v1.RunStatus>((o, cb) => ctx.clients[0].getStatus({ run: spec.run }, o, cb), DEADLINE_MS);
      if (st.queuedSteps === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function verify(ctx: Ctx): Promise<{ compared: string[]; problems: string[] }> {
  const problems: string[] = [];
  const compared: string[] = [];
  let checkedReads = 0;
  let steps = 0;
  for (const spec of RUNS) {
    // The replay: the library keeper, pushed the completed steps one after another in increasing order.
    const keeper = new EmaKeeper();
    keeper.registerRun(spec);
    const seen = ctx.seen.get(spec.run)!;
    const order = [...ctx.completed.get(spec.run)!].sort((a, b) => a - b);
    steps += order.length;
    for (const step of order) {
      const tensors: Record<string, ParamArray> = {};
      for (const t of spec.tensors) tensors[t.name] = params(spec, step, t.name);
      const out = keeper.push(spec.run, step, tensors);
      if (out.status !== "complete") problems.push(`${spec.run}: the replay's push of step ${step} was ${out.status}`);
      await keeper.whenApplied(spec.run, step);
      const digests = seen.get(step);
      if (digests) {
        const snap = await keeper.snapshot(spec.run);
        const expected = digestOf([...snap.tensors].map(([name, v]) => ({ name, data: bytesOf(v) })));
        for (const d of digests) {
          checkedReads++;
          if (d !== expected) problems.push(`${spec.run}: a GetEma during the load named step ${step} but its tensors are not the replay's at that step`);
        }
        seen.delete(step);
      }
    }
    for (const step of seen.keys()) problems.push(`${spec.run}: a GetEma during the load named step ${step}, which no push completed`);
    const served = await getEma(ctx.clients[0], spec.run);
    const snap = await keeper.snapshot(spec.run);
    if (served.step !== snap.step || served.updates !== snap.updates) problems.push(`${spec.run}: the service is at step ${served.step} after ${served.updates} updates, the replay at ${snap.step} after ${snap.updates}`);
    for (const [name, v] of snap.tensors) {
      const got = served.tensors.get(name);
      if (!got || Buffer.compare(Buffer.from(got), Buffer.from(bytesOf(v))) !== 0) problems.push(`${spec.run}: tensor ${name} differs from the replay`);
    }
    compared.push(`${spec.run}: ${order.length} completed steps replayed (last ${snap.step}); final EMA ${[...snap.tensors.keys()].join(", ")} compared byte for byte`);
  }
  let imports = 0;
  for (const list of ctx.imports) {
    const last = list[list.length - 1];
    if (!last) continue;
    imports++;
    const served = await getEma(ctx.clients[0], last.run);
    if (served.step !== last.step || served.digest !== last.digest) problems.push(`${last.run}: holds step ${served.step}, not the last import (step ${last.step}) or not its values`);
  }
  compared.push(`${steps} completed steps in all; ${checkedReads} GetEma answers from during the load checked against the replay at their step`);
  compared.push(`${imports} clients' imported runs: each holds its last import's step and values`);
  return { compared, problems };
}

await runLoadTest<Ctx>({
  title: "octet-ema-keeper (EmaService)",
  packageDir: PACKAGE_DIR,
  serviceName: "octet.ema.v1.EmaService",
  kinds,
  notes: [
    "The keeper holds, per run, the float32 EMA of every tensor, the step it was last applied at and the number of updates.",
    "Steps complete when every tensor was pushed for them and are applied in increasing order; each completing push is",
    "answered COMPLETE. The replay is the library's EmaKeeper in this process, registered with the same specs and pushed",
    "exactly the steps the service answered COMPLETE, one after another in increasing order, with the same parameters",
    "(a pure function of run, step and tensor). The service's final GetEma must equal the replay byte for byte, at the same",
    "step and update count; every GetEma answered during the load must equal the replay at the step its header named.",
    "Rejected pushes must leave nothing behind (they would show as a different EMA).",
  ],
  async setup(address, clients) {
    const ctx: Ctx = {
      ...(await connectClients<Client>(services.ema.v1.EmaServiceClient, address, clients)),
      next: new Map(RUNS.map((r) => [r.run, r.updateInterval ?? 1])),
      completed: new Map(RUNS.map((r) => [r.run, new Set<number>()])),
      seen: new Map(RUNS.map((r) => [r.run, new Map()])),
      imports: Array.from({ length: clients }, () => []),
      sequence: new Array<number>(clients).fill(0),
    };
    for (const spec of RUNS) {
      const reply = await unaryCall<octet.ema.v1.RegisterRunResponse>((o, cb) => ctx.clients[0].registerRun({ spec: wireSpec(spec) }, o, cb), DEADLINE_MS);
      if (!reply.created) throw new Error(`${spec.run} existed before the test`);
    }
    return ctx;
  },
  settle,
  verify,
  close(ctx) {
    closeClients(ctx);
  },
});
