// npm run bench -w @octet/model [-- --config tiny --steps 6 --warmup 2 --recipes fp32,bf16,fp8,fp8-delayed]
// Tokens/s of a training step (forward + backward + clipping + AdamW + bias update) per recipe, where the
// step time goes (GEMMs — native FP32 / BF16 / FP8 scaled GEMMs, attention's included —, FP8 quantization,
// the rest), and the peer: PyTorch training the same architecture in fp32 on the same machine, run in the
// same process tree (bench/torch_peer.py under /usr/bin/python3), interleaved with our recipes. Debian's
// python3-torch calls the system BLAS for its fp32 GEMMs, which is netlib's reference BLAS unless another
// is installed; when OpenBLAS is present (libopenblas0-pthread) the peer also runs on it (through
// LD_LIBRARY_PATH, leaving the system's choice alone), and the faster PyTorch is the reference. The
// issue's aims: fp8 ≥ 0.5 × PyTorch fp32, bf16 ≥ 1 × PyTorch fp32. The config is printed in full.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { numericsBackend } from "@octet/numerics";
import { CpuBackend } from "../backend/cpu.js";
import { RECIPE_NAMES, type RecipeName } from "../config.js";
import { Trainer } from "../trainer.js";
import { checkedConfig, fail, parseIntOption, printJson, resolveConfig } from "./common.js";

const program = new Command()
  .name("octet-bench")
  .option("--config <name|file.json>", "preset name or JSON config file", "tiny")
  .option("--steps <n>", "timed steps per recipe", parseIntOption("--steps"), 6)
  .option("--warmup <n>", "untimed steps first", parseIntOption("--warmup"), 2)
  .option("--recipes <list>", "comma-separated recipes", RECIPE_NAMES.join(","))
  .option("--rounds <n>", "interleaved rounds (peer, recipes); the best round counts", parseIntOption("--rounds"), 2)
  .option("--python <path>", "Python with PyTorch for the peer", "/usr/bin/python3")
  .option("--no-peer", "skip the PyTorch peer")
  .parse();

const o = program.opts<{ config: string; steps: number; warmup: number; rounds: number; recipes: string; python: string; peer: boolean }>();

interface PeerResult {
  variant: string;
  tokensPerSec: number;
  stepMs: number;
  torch: string;
  threads: number;
  blas: string;
  params: number;
}

const PEER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_peer.py");
const OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread";

/** The PyTorch set-ups to run: as installed, and on OpenBLAS when it is there. */
function peerVariants(): { variant: string; env: NodeJS.ProcessEnv }[] {
  const v: { variant: string; env: NodeJS.ProcessEnv }[] = [{ variant: "system BLAS", env: {} }];
  if (existsSync(join(OPENBLAS_DIR, "libblas.so.3"))) {
    v.push({ variant: "OpenBLAS", env: { LD_LIBRARY_PATH: OPENBLAS_DIR, OPENBLAS_NUM_THREADS: "2" } });
  }
  return v;
}

/** Why the peer cannot run here (null: it can). */
function peerUnavailable(python: string): string | null {
  if (!existsSync(python)) return `${python} not found`;
  if (!existsSync(PEER_SCRIPT)) return `${PEER_SCRIPT} not found`;
  const r = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
  if (r.status !== 0) return `${python} has no torch (apt-get install -y python3-torch): ${(r.stderr || "").trim().split("\n").pop()}`;
  return null;
}

function runPeer(python: string, configPath: string, variant: string, env: NodeJS.ProcessEnv): PeerResult {
  const r = spawnSync(python, [PEER_SCRIPT, configPath, "--steps", String(o.steps), "--warmup", String(o.warmup), "--threads", "2"], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`PyTorch peer (${variant}) failed (exit ${r.status}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return { ...(JSON.parse(r.stdout.trim().split("\n").pop()!) as PeerResult), variant };
}

try {
  const recipes = o.recipes.split(",") as RecipeName[];
  const base = resolveConfig(o.config);
  for (const recipe of recipes) checkedConfig(base, recipe); // all validated before anything runs
  const tokensPerStep = base.train.batchSize * base.model.seqLen;

  // The peer runs before and after our recipes; the faster of its two runs is the reference (the VM's
  // speed drifts; taking its best favours the peer).
  const why = o.peer ? peerUnavailable(o.python) : "disabled (--no-peer)";
  const dir = mkdtempSync(join(tmpdir(), "octet-bench-"));
  const configPath = join(dir, "config.json");
  writeFileSync(configPath, JSON.stringify(checkedConfig(base, "fp32")));
  const peerRuns: PeerResult[] = [];
  const runPeers = (): void => {
    for (const { variant, env } of peerVariants()) peerRuns.push(runPeer(o.python, configPath, variant, env));
  };
  if (why) process.stderr.write(`PyTorch peer: skipped — ${why}\n`);
  if (o.rounds < 1) throw new RangeError("--rounds must be at least 1");

  // Rounds: each runs the peers, then every recipe; a recipe's figure is its best round, as the peer's
  // is its best run — on a VM shared with other work, the best of several interleaved runs is the
  // figure least disturbed by others, and it is taken the same way on both sides.
  type Row = { recipe: RecipeName; tokensPerSec: number; stepMs: number; gemmFraction: number; quantizeFraction: number; attentionFraction: number; gemmGflops: number; rounds: number[] };
  const best = new Map<RecipeName, Row>();
  for (let round = 0; round < o.rounds; round++) {
    if (!why) runPeers();
    for (const recipe of recipes) {
      const config = checkedConfig(base, recipe);
      const be = new CpuBackend();
      const t = new Trainer({ config, recipe, seed: 1, backend: be });
      for (let i = 0; i < o.warmup; i++) t.trainStep();
      be.resetTimes();
      let ms = 0;
      let tokens = 0;
      for (let i = 0; i < o.steps; i++) {
        const r = t.trainStep();
        ms += r.ms;
        tokens += r.tokens;
      }
      const row: Row = {
        recipe,
        tokensPerSec: Math.round((tokens / ms) * 1000),
        stepMs: +(ms / o.steps).toFixed(1),
        gemmFraction: +(be.times.gemmMs / ms).toFixed(3),
        quantizeFraction: +(be.times.quantizeMs / ms).toFixed(3),
        attentionFraction: +(be.times.attentionMs / ms).toFixed(3),
        gemmGflops: +(be.times.gemmFlops / (be.times.gemmMs * 1e6)).toFixed(1),
        rounds: [],
      };
      const prev = best.get(recipe);
      row.rounds = [...(prev?.rounds ?? []), row.tokensPerSec];
      best.set(recipe, !prev || row.tokensPerSec > prev.tokensPerSec ? row : { ...prev, rounds: row.rounds });
    }
  }
  if (!why) runPeers();
  rmSync(dir, { recursive: true, force: true });
  const rows = recipes.map((r) => best.get(r)!);

  const peer = peerRuns.length ? peerRuns.reduce((a, b) => (b.tokensPerSec > a.tokensPerSec ? b : a)) : null;
  const aims: Record<string, number> = { bf16: 1, fp8: 0.5 };
  const results = rows.map((r) => ({
    ...r,
    vsPytorchFp32: peer ? +(r.tokensPerSec / peer.tokensPerSec).toFixed(3) : null,
    aim: aims[r.recipe] ?? null,
    meetsAim: peer && aims[r.recipe] !== undefined ? r.tokensPerSec / peer.tokensPerSec >= aims[r.recipe] : null,
  }));
  for (const variant of new Set(peerRuns.map((p) => p.variant))) {
    const runs = peerRuns.filter((p) => p.variant === variant);
    const best = runs.reduce((a, b) => (b.tokensPerSec > a.tokensPerSec ? b : a));
    process.stderr.write(
      `pytorch fp32 (${variant}) ${String(best.tokensPerSec).padStart(6)} tok/s  step ${best.stepMs} ms  (torch ${best.torch}, ${best.threads} threads, ${best.blas}; runs: ${runs.map((p) => p.tokensPerSec).join(", ")} tok/s)${best === peer ? "  ← reference" : ""}\n`,
    );
  }
  for (const r of results) {
    const ratio = r.vsPytorchFp32 === null ? "" : `  ${r.vsPytorchFp32.toFixed(2)}× PyTorch fp32${r.aim === null ? "" : ` (aim ≥ ${r.aim}: ${r.meetsAim ? "met" : "missed"})`}`;
    process.stderr.write(
      `${r.recipe.padEnd(12)} ${String(r.tokensPerSec).padStart(6)} tok/s  step ${r.stepMs} ms (rounds: ${r.rounds.join(", ")} tok/s)${ratio}  GEMM ${(r.gemmFraction * 100).toFixed(1)}%  quantize ${(r.quantizeFraction * 100).toFixed(1)}%  attention ${(r.attentionFraction * 100).toFixed(1)}% (its GEMMs counted in GEMM too)  GEMM ${r.gemmGflops} GFLOP/s\n`,
    );
  }
  printJson({
    config: base,
    tokensPerStep,
    timedSteps: o.steps,
    warmupSteps: o.warmup,
    numerics: numericsBackend(),
    pytorch: peer ? { reference: peer, runs: peerRuns } : { skipped: why },
    results,
  });
} catch (err) {
  fail(err);
}
