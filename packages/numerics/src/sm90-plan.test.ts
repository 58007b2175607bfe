// The sm_90a GEMM's host planner (cuda/gemm_sm90_plan.{h,cc}) without a GPU: built with the system C++ compiler
// alone, driven through cuda/gemm_sm90_plan_cli.cc on an H100 SXM's numbers (132 SMs, 227 KiB of opt-in shared
// memory), and checked against the plans the harness printed on the GPU (bench/history/gemm-sm90-results.md, run 4)
// and the notes' account of version 5 (bench/history/GEMM-NOTES.md §8). A change to the time model, the kernel
// table or the search that moves any of these choices fails here. Skipped, with the reason, when no C++17 compiler
// is found.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const cudaDir = join(dirname(fileURLToPath(import.meta.url)), "..", "cuda");
const compiler = ["g++", "c++", "clang++"].find((c) => spawnSync(c, ["--version"]).status === 0);

/** One line of the CLI's output. */
interface PlanLine {
  shape: string;
  refused: boolean;
  kernel?: number;
  tile?: string;
  promote_k?: number;
  mc?: number;
  halves?: number;
  stages?: number;
  grid?: number;
  tiles?: number;
  group_n?: number;
  epilogue?: "direct" | "tma" | "tmaR1" | "tmaR2";
  epi_bytes?: number;
  splits?: number;
  est_us?: number;
}

let dir: string | null = null;
let exe: string | null = null;

/** Builds the CLI once (g++ without CUDA: the point of the split), or returns null when there is no compiler. */
function planner(): string | null {
  if (exe || !compiler) return exe;
  dir = mkdtempSync(join(tmpdir(), "octet-sm90-plan-"));
  const out = join(dir, "gemm_sm90_plan");
  const build = spawnSync(compiler, ["-std=c++17", "-O2", "-Wall", "-Wextra", join(cudaDir, "gemm_sm90_plan.cc"), join(cudaDir, "gemm_sm90_plan_cli.cc"), "-o", out], { encoding: "utf8" });
  assert.equal(build.status, 0, `${compiler} failed to build the planner without CUDA:\n${build.stderr}`);
  assert.doesNotMatch(build.stderr, /warning/i, `the planner builds with warnings:\n${build.stderr}`);
  exe = out;
  return exe;
}

process.on("exit", () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Plans for the shapes, in order. */
function plan(args: string[]): PlanLine[] {
  const r = spawnSync(planner()!, args, { encoding: "utf8" });
  assert.equal(r.status, 0, `gemm_sm90_plan ${args.join(" ")}:\n${r.stderr}`);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as PlanLine);
}

function one(args: string[]): PlanLine {
  const lines = plan(args);
  assert.equal(lines.length, 1);
  return lines[0];
}

/** The fields the harness prints in its config column: tile, stages, grid, epilogue, estimate (rounded to µs). */
function config(p: PlanLine): string {
  assert.equal(p.refused, false, `${p.shape} was refused`);
  const family = p.promote_k === 32 ? "p32" : p.mc === 2 ? "mc2" : "";
  const epilogue = p.epilogue === "direct" ? "" : ` ${p.epilogue}`;
  const splits = (p.splits ?? 1) > 1 ? ` sk${p.splits}` : "";
  return `${p.tile}${family} st${p.stages} grid${p.grid}${epilogue}${splits} est${Math.round(p.est_us!)}us`;
}

const skipReason = compiler ? undefined : "no C++ compiler (g++, c++, clang++) found";

test("M = 4096 DeepSeek-V3 shapes: 128 x 256 in halves for 5 of the 6, 4096x2112x7168 keeps 128 x 192", { skip: skipReason }, () => {
  const shapes = ["2112,7168", "24576,1536", "32768,512", "7168,16384", "4096,7168", "7168,2048"].map((nk) => `4096,${nk}`);
  const plans = plan(shapes);
  const halves = plans.filter((p) => p.tile === "128x256");
  assert.equal(halves.length, 5, `128x256 for ${halves.map((p) => p.shape).join(" ")}`);
  for (const p of halves) {
    // 3 stages beside the whole 128 x 256 bf16 tile staged for the TMA store (64 KiB): GEMM-NOTES.md §8.
    assert.deepEqual([p.halves, p.stages, p.epilogue, p.epi_bytes, p.grid, p.splits], [2, 3, "tma", 65536, 132, 1], p.shape);
  }
  // 9 N-tiles of 256 would waste most of the last one: 128 x 192 (11 N-tiles), as in every earlier run.
  const narrow = plans[0];
  assert.equal(narrow.shape, "4096,2112,7168");
  assert.equal(config(narrow), "128x192 st4 grid132 tma est104us");
  assert.equal(narrow.tiles, 32 * 11);
  assert.equal(plans[3].tiles, 32 * 28, "4096x7168x16384: 32 M-tiles x 28 N-tiles of 256");
});

test("small-M plans are those the harness printed on the H100 (run 4), K-long shapes on few tiles", { skip: skipReason }, () => {
  const expected: [string, string][] = [
    ["64,2112,7168", "64x16 st21 grid132 est26us"],
    ["64,4096,7168", "64x32 st18 grid128 est27us"],
    ["64,7168,2048", "64x64 st13 grid112 tma est10us"],
    ["64,7168,16384", "128x64 st8 grid112 tma est62us"],
    ["128,2112,7168", "128x16 st12 grid132 est26us"],
    ["128,4096,7168", "128x32 st11 grid128 est27us"],
    ["128,7168,2048", "128x64 st8 grid112 tma est10us"],
    ["128,7168,16384", "128x64 st8 grid112 tma est62us"],
    ["256,2112,7168", "128x32 st11 grid132 est27us"],
    ["1000,2112,1536", "128x192 st4 grid88 tma est10us"],
  ];
  const plans = plan(expected.map(([s]) => s));
  plans.forEach((p, i) => assert.equal(config(p), expected[i][1], p.shape));
  // Version 5: the wide-N, short-K shapes at M = 128 moved to the halves kernel (128x24576x1536 322 -> 337 TFLOP/s).
  for (const p of plan(["128,24576,1536", "128,32768,512"])) assert.equal(p.tile, "128x256", p.shape);
});

test("epilogue: the TMA store where D allows it, direct stores otherwise; fp32 output stages twice the bytes", { skip: skipReason }, () => {
  // D whose row pitch is not a multiple of 16 bytes (or misaligned) cannot take the TMA store.
  assert.equal(config(one(["--no-tma", "1000,2112,1536"])), "128x144 st6 grid120 est13us");
  for (const p of plan(["--no-tma", "4096,7168,2048", "4096,7168,16384"])) {
    assert.deepEqual([p.epilogue, p.epi_bytes], ["direct", 0], p.shape);
  }
  // fp32 output: the whole 128 x 192 tile staged is 96 KiB, which leaves room for 3 stages instead of 4.
  const fp32 = one(["--out", "fp32", "4096,2112,7168"]);
  assert.deepEqual([fp32.tile, fp32.epilogue, fp32.epi_bytes, fp32.stages], ["128x192", "tma", 128 * 192 * 4, 3]);
});

test("grouped GEMM: empty experts take no tiles, a launch of only empty experts has none", { skip: skipReason }, () => {
  // The harness's "E4 100x256 odd" (offsets 0, 0, 1, 66, 73): N = 100 in bf16 is a 200-byte row, so no TMA store.
  const odd = one(["--no-tma", "100,256:0,1,65,7"]);
  assert.equal(config(odd), "64x16 st21 grid28 est3us");
  assert.equal(odd.tiles, (1 + 2 + 1) * 7, "M-tiles 1 + 2 + 1 (empty expert skipped) x 7 N-tiles of 16");
  const empty = one(["256,1024:0,0"]);
  assert.deepEqual([empty.tiles, empty.grid], [0, 0]);
  // Dense M = 0 plans nothing either (the C API refuses M < 1 before planning).
  assert.deepEqual([one(["0,7168,2048"]).tiles, one(["0,7168,2048"]).grid], [0, 0]);
});

test("forced configurations (the harness's debug hooks): tile, precise and multicast families, stages, band, split-K", { skip: skipReason }, () => {
  assert.equal(one(["--force", "1,128,144,0,0", "4096,7168,2048"]).tile, "128x144");
  assert.equal(one(["--force", "1,128,200,0,0", "4096,7168,2048"]).refused, true, "128x200 is not compiled");
  // Promotion after every wgmma (the precise family), automatic tile within it: harness run 4, group precision.
  assert.equal(config(one(["--force", "3,0,0,0,0", "256,2112,7168"])), "64x64p32 st13 grid132 tma est28us");
  assert.equal(config(one(["--force", "3,0,0,0,0", "4096,4096,7168"])), "128x128p32 st5 grid132 tma est243us");
  // 2-CTA multicast: planned only where clusters fit (the occupancy calculator's answer on the GPU).
  assert.equal(one(["--force", "4,0,0,0,0", "4096,7168,16384"]).refused, true, "no cluster fits: no multicast plan");
  const mc = ["--force", "4,0,0,0,0", "--clusters", "66"];
  assert.equal(config(one([...mc, "65,2112,1024"])), "128x128mc2 st5 grid34 tma est7us");
  assert.equal(config(one([...mc, "--no-tma", "300,4100,1024"])), "128x128mc2 st6 grid132 est10us");
  assert.equal(one([...mc, "4096,7168:2048,2048"]).mc, 1, "grouped calls keep the automatic family");
  // Stages are capped by what fits; the band of N-tiles is taken as given.
  const capped = one(["--force", "1,128,192,2,8", "4096,7168,2048"]);
  assert.deepEqual([capped.tile, capped.stages, capped.group_n], ["128x192", 2, 8]);
  // Split-K only when forced, dense only: harness run 4, group v1v2 "100x4096x7168 sk4".
  assert.equal(config(one(["--splitk", "4", "100,4096,7168"])), "128x128 st6 grid128 sk4 est23us");
  assert.equal(one(["--splitk", "4", "4096,7168:100,100"]).refused, true, "no split-K for grouped GEMMs");
  // Epilogue overrides: 4 = the ring (one 8 KiB slot per warpgroup keeps a fourth stage), 1 = direct stores.
  const ring = one(["--epilogue", "4", "4096,7168,16384"]);
  assert.deepEqual([ring.tile, ring.epilogue, ring.epi_bytes, ring.stages], ["128x256", "tmaR1", 2 * 8192, 4]);
  assert.equal(one(["--epilogue", "1", "4096,7168,16384"]).epilogue, "direct");
});

test("invalid shapes are refused, bad arguments named", { skip: skipReason }, () => {
  for (const p of plan(["100,7168,100", "100,7168,0", "100,7168,-128", "100,0,128", "256,100:1"])) {
    assert.equal(p.refused, true, `${p.shape} should be refused (K not a positive multiple of 128, or N < 1)`);
  }
  const bad = (args: string[], problem: RegExp) => {
    const r = spawnSync(planner()!, args, { encoding: "utf8" });
    assert.equal(r.status, 2, `${args.join(" ")} should fail`);
    assert.match(r.stderr, problem);
  };
  bad(["4096,7168"], /shape: M,N,K/);
  bad(["4096,7168,x"], /not an integer: 'x'/);
  bad(["--out", "fp16", "64,64,128"], /--out: bf16 or fp32/);
  bad(["--force", "1,128", "64,64,128"], /--force: PATH,BM,BN,STAGES,GROUP_N/);
  bad([], /no shape given/);
});
