// The native kernel (native/route.cc) against the TypeScript routeTokens (the specification), bit for bit:
// indices, weights and scores, on fresh random inputs every run. The seed is printed; OCTET_TEST_SEED=<n>
// replays a run. Skipped when the addon is not built, unless OCTET_REQUIRE_NATIVE=1.
//
// The addon runs the copy of its kernel for the best instruction set the CPU supports; run without
// OCTET_NATIVE_ISA, this file also runs itself once per other supported instruction set (AVX2, scalar, ...)
// with the same seed, so every copy is checked against the specification.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { routeTokens, type RouteOptions, type RouteResult } from "./route.js";
import { loadNativeRouterKernels, nativeUnavailableReason, routerBackend, setRouterBackend } from "./native.js";
import { sigmoidF32 } from "./sigmoid.js";
import { seededNormal, seededRandom } from "./testing/random.js";

const kernels = loadNativeRouterKernels();
const skip = kernels ? false : `native router kernel unavailable: ${nativeUnavailableReason()}`;
const seed = process.env.OCTET_TEST_SEED !== undefined ? Number(process.env.OCTET_TEST_SEED) : (Math.random() * 2 ** 31) >>> 0;
console.log(`# route-native seed ${seed} (OCTET_TEST_SEED=${seed} replays)`);

test("native router kernel loads (required when OCTET_REQUIRE_NATIVE=1)", (t) => {
  if (!kernels) {
    if (process.env.OCTET_REQUIRE_NATIVE === "1") assert.fail(`OCTET_REQUIRE_NATIVE=1 but ${nativeUnavailableReason()}`);
    t.skip(String(skip));
    return;
  }
  const info = kernels.info();
  assert.ok(info.threads >= 1, JSON.stringify(info));
  assert.ok(info.supported.includes(info.isa) && info.supported.includes("scalar"), JSON.stringify(info));
  const forced = process.env.OCTET_NATIVE_ISA;
  assert.equal(info.isa, forced && forced !== "auto" ? forced : info.supported[0], "the forced instruction set, else the best supported");
  t.diagnostic(`native: ${info.isa} (${info.kernels}; supported: ${info.supported.join(", ")}); ${info.flags}; ${info.threads} threads; ${info.compiler}`);
});

test("routerBackend() says which path the sigmoid gate runs, with which instruction set, and why", { skip }, () => {
  const isa = kernels!.info().isa;
  assert.deepEqual(routerBackend(), { path: "native", isa, reason: null });
  setRouterBackend("typescript");
  try {
    assert.deepEqual(routerBackend(), { path: "typescript", isa: null, reason: 'forced by setRouterBackend("typescript")' });
  } finally {
    setRouterBackend("native");
  }
  assert.equal(routerBackend().path, "native");
  // OCTET_ROUTER_BACKEND=typescript disables the addon for the whole process (read once, at load).
  const script = `const { routerBackend } = await import(${JSON.stringify(new URL("./index.ts", import.meta.url).href)}); process.stdout.write(JSON.stringify(routerBackend()));`;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    encoding: "utf8",
    env: { ...process.env, OCTET_ROUTER_BACKEND: "typescript" },
  });
  assert.deepEqual(JSON.parse(out), { path: "typescript", isa: null, reason: "disabled by OCTET_ROUTER_BACKEND=typescript" });
  // A forced instruction set the CPU lacks, or an unknown one, is not silently replaced: the addon does not
  // load, the TypeScript path runs, routerBackend() says why and a warning says so on stderr.
  const bad = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    encoding: "utf8",
    env: { ...process.env, OCTET_NATIVE_ISA: "sse9" },
  });
  assert.equal(bad.status, 0, bad.stderr);
  const reported = JSON.parse(bad.stdout) as { path: string; isa: null; reason: string };
  assert.equal(reported.path, "typescript");
  assert.match(reported.reason, /^failed to load .*: OCTET_NATIVE_ISA must be avx512, avx2, scalar or auto, got "sse9"$/);
  assert.match(bad.stderr, /OCTET_ROUTER_NATIVE.*native routing kernel unavailable/);
});

const THIS_FILE = fileURLToPath(import.meta.url);
const otherIsas = kernels && !process.env.OCTET_NATIVE_ISA ? kernels.info().supported.filter((isa) => isa !== kernels.info().isa) : [];
for (const isa of otherIsas) {
  test(`with OCTET_NATIVE_ISA=${isa}, every test of this file passes too (same seed)`, () => {
    // A run of its own (NODE_TEST_CONTEXT would make it report into this run's stream instead).
    const env: NodeJS.ProcessEnv = { ...process.env, OCTET_NATIVE_ISA: isa, OCTET_TEST_SEED: String(seed), OCTET_REQUIRE_NATIVE: "1" };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", THIS_FILE], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      encoding: "utf8",
      env,
    });
    assert.equal(r.status, 0, `OCTET_NATIVE_ISA=${isa} OCTET_TEST_SEED=${seed} failed:\n${(r.stdout + r.stderr).slice(-4000)}`);
    assert.match(r.stdout, new RegExp(`# native: ${isa} \\(`), "the child ran the forced copy");
    assert.match(r.stdout, /^# fail 0$/m);
  });
}

function both(logits: Float32Array, opts: RouteOptions): { native: RouteResult; typescript: RouteResult } {
  setRouterBackend("native");
  const native = routeTokens(logits, opts);
  setRouterBackend("typescript");
  try {
    return { native, typescript: routeTokens(logits, opts) };
  } finally {
    setRouterBackend("native");
  }
}

function bitsEqual(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}[${i}]: native ${a[i]} vs TypeScript ${b[i]}`);
  }
}

function assertSame(logits: Float32Array, opts: RouteOptions, label: string): void {
  const { native, typescript } = both(logits, opts);
  const where = `${label} (seed ${seed})`;
  bitsEqual(native.indices, typescript.indices, `${where} indices`);
  bitsEqual(native.weights, typescript.weights, `${where} weights`);
  bitsEqual(native.scores, typescript.scores, `${where} scores`);
}

const CONFIGS = [
  { experts: 256, topK: 8, nGroup: 8, topkGroup: 4 },
  { experts: 64, topK: 6, nGroup: 8, topkGroup: 3 },
  { experts: 16, topK: 4, nGroup: 4, topkGroup: 1 },
  { experts: 16, topK: 2, nGroup: 1, topkGroup: 1 },
  { experts: 32, topK: 8, nGroup: 4, topkGroup: 4 },
  { experts: 12, topK: 3, nGroup: 6, topkGroup: 2 },
  // the kernel's other branches: topK > 16 (scalar insertion), 3 groups of 32 (padded top-2 tree),
  // 18 groups (per-group top-2, iterative group selection)
  { experts: 64, topK: 20, nGroup: 4, topkGroup: 2 },
  { experts: 96, topK: 6, nGroup: 3, topkGroup: 2 },
  { experts: 72, topK: 4, nGroup: 18, topkGroup: 5 },
];

type LogitKind = "normal" | "coarse" | "saturating" | "wide";
function makeLogits(kind: LogitKind, n: number, random: () => number, normal: () => number): Float32Array {
  switch (kind) {
    case "normal":
      return Float32Array.from({ length: n }, () => normal() * 2);
    case "coarse": // multiples of 1/4 in [-4, 4]: many exact ties
      return Float32Array.from({ length: n }, () => Math.round((random() * 8 - 4) * 4) / 4);
    case "saturating": { // around and beyond the saturation points ±30, -110, and ±inf
      const specials = [30, -30, 110, -110, 29.999998, 30.000002, -109.99999, -110.00001, 87, -87, -103, -104, 200, -200, 1e30, -1e30, Infinity, -Infinity, 0, -0];
      return Float32Array.from({ length: n }, () => (random() < 0.5 ? specials[Math.floor(random() * specials.length)] : (random() * 2 - 1) * 130));
    }
    case "wide":
      return Float32Array.from({ length: n }, () => normal() * 40);
  }
}

for (const config of CONFIGS) {
  test(`native = TypeScript bit for bit: ${config.experts} experts, topK ${config.topK}, ${config.nGroup} groups, topkGroup ${config.topkGroup}`, { skip }, () => {
    const random = seededRandom(seed ^ (config.experts * 131 + config.topK * 17 + config.nGroup));
    const normal = seededNormal(seed + config.experts + config.topkGroup);
    for (const tokens of [1, 7, 1000]) {
      for (const kind of ["normal", "coarse", "saturating", "wide"] as const) {
        // bias 0, small (the balancer's scale) and large negative (eligible scores below 0)
        for (const [biasLabel, biasOf] of [
          ["zero", () => 0],
          ["small", () => (random() - 0.5) * 0.1],
          ["negative", () => (random() - 0.8) * 3],
        ] as const) {
          const bias = Float32Array.from({ length: config.experts }, biasOf);
          const logits = makeLogits(kind, tokens * config.experts, random, normal);
          for (const normTopkProb of [true, false]) {
            const opts: RouteOptions = { tokens, ...config, bias, normTopkProb, routedScalingFactor: normTopkProb ? 2.5 : 1 + random() };
            assertSame(logits, opts, `tokens ${tokens}, ${kind} logits, ${biasLabel} bias, normTopkProb ${normTopkProb}`);
          }
        }
      }
    }
  });
}

test("native = TypeScript bit for bit at DeepSeek-V3's shape on 4096 tokens (parallel chunks)", { skip }, () => {
  const random = seededRandom(seed + 7);
  const normal = seededNormal(seed + 8);
  const experts = 256;
  const tokens = 4096;
  const bias = Float32Array.from({ length: experts }, () => (random() - 0.5) * 0.2);
  const logits = Float32Array.from({ length: tokens * experts }, () => normal());
  assertSame(logits, { tokens, experts, topK: 8, nGroup: 8, topkGroup: 4, bias, normTopkProb: true, routedScalingFactor: 2.5 }, "DeepSeek-V3 shape");
});

test("native sigmoid equals sigmoidF32 on 2^20 random floats and on every float of [29.99, 30.01] and [-110.01, -109.99]", { skip }, () => {
  const random = seededRandom(seed + 3);
  const x = new Float32Array(1 << 20);
  const view = new Uint32Array(x.buffer);
  for (let i = 0; i < x.length; i++) x[i] = i % 2 ? (random() * 2 - 1) * 140 : random() * 0.1;
  for (let i = 0; i < x.length; i += 7) view[i] = (random() * 2 ** 32) >>> 0; // arbitrary bit patterns (NaNs included)
  const fromNative = kernels!.sigmoidF32(x);
  for (let i = 0; i < x.length; i++) {
    const want = sigmoidF32(x[i]);
    if (!Object.is(Math.fround(want), fromNative[i]) && !(Number.isNaN(want) && Number.isNaN(fromNative[i]))) {
      assert.fail(`sigmoid(${x[i]}): native ${fromNative[i]} vs TypeScript ${want} (seed ${seed})`);
    }
  }
  const edges: number[] = [];
  for (const [lo, hi] of [[29.99, 30.01], [-110.01, -109.99]]) {
    for (let v = Math.fround(lo); v <= hi; v = nextUp(v)) edges.push(v);
  }
  const edgeArray = Float32Array.from(edges);
  const edgeNative = kernels!.sigmoidF32(edgeArray);
  edgeArray.forEach((v, i) => assert.equal(edgeNative[i], Math.fround(sigmoidF32(v)), `sigmoid(${v})`));
});

function nextUp(v: number): number {
  const f = new Float32Array([v]);
  const u = new Int32Array(f.buffer);
  u[0] += v >= 0 ? 1 : -1;
  if (v === 0) f[0] = 1e-45;
  return f[0];
}

test("NaN logits: RangeError naming the first NaN's position, from either path", { skip }, () => {
  const experts = 16;
  const tokens = 300;
  const opts: RouteOptions = { tokens, experts, topK: 4, nGroup: 4, topkGroup: 2, bias: new Float32Array(experts), normTopkProb: true, routedScalingFactor: 1 };
  for (const positions of [[0], [9], [15], [17 * experts + 3], [299 * experts + 15], [250 * experts + 1, 5 * experts + 7, 120 * experts]]) {
    const logits = new Float32Array(tokens * experts).fill(0.5);
    for (const p of positions) logits[p] = NaN;
    const first = Math.min(...positions);
    const message = `logits[${Math.floor(first / experts)}, ${first % experts}] is NaN`;
    assert.throws(() => routeTokens(logits, opts), { name: "RangeError", message });
    setRouterBackend("typescript");
    try {
      assert.throws(() => routeTokens(logits, opts), { name: "RangeError", message });
    } finally {
      setRouterBackend("native");
    }
  }
});

test("the kernel writes into out buffers and leaves scores alone when passed null", { skip }, () => {
  const experts = 64;
  const tokens = 50;
  const random = seededRandom(seed + 11);
  const logits = Float32Array.from({ length: tokens * experts }, () => random() * 6 - 3);
  const bias = Float32Array.from({ length: experts }, () => (random() - 0.5) * 0.1);
  const opts: RouteOptions = { tokens, experts, topK: 6, nGroup: 8, topkGroup: 3, bias, normTopkProb: true, routedScalingFactor: 2.5 };
  const reference = both(logits, opts).typescript;
  const indices = new Int32Array(tokens * 6);
  const weights = new Float32Array(tokens * 6);
  assert.equal(kernels!.routeSigmoid(logits, tokens, experts, 6, 8, 3, bias, true, 2.5, indices, weights, null), -1);
  bitsEqual(indices, reference.indices, "indices (scores null)");
  bitsEqual(weights, reference.weights, "weights (scores null)");
  assert.throws(() => kernels!.routeSigmoid(logits, tokens, experts, 6, 8, 3, bias, true, 2.5, new Int32Array(5), weights, null), RangeError);
});
