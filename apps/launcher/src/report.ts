// The end of a launch: the loss-curve plot, the short report for people and the one-line JSON summary.

import { existsSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { stepDirName } from "@octet/checkpointer";
import { type CurvePoint, type JobResult, deviceLabel } from "@octet/jobs";
import { type ReferenceLine, type Series, lineChartSvg, smooth } from "@octet/plot";

export interface FinishedJob {
  id: string;
  recipe: string;
  result: JobResult;
  curve: CurvePoint[];
}

const COLORS: Record<string, string> = { fp8: "#d62728", "fp8-delayed": "#ff7f0e", bf16: "#1f77b4", fp32: "#2ca02c" };

export function curveSvg(config: string, jobs: FinishedJob[]): string {
  const series: Series[] = [];
  // The reference (bf16) first, so the main recipe's curve is drawn over it.
  for (const j of [...jobs].reverse()) {
    const color = COLORS[j.recipe] ?? "#555";
    const train = j.curve.filter((p) => Number.isFinite(p.loss)).map((p) => ({ x: p.step, y: p.loss }));
    series.push({ name: `${j.recipe} train`, color, points: smooth(train) });
    const val = j.curve.filter((p) => p.valLoss !== undefined && p.valLoss !== null && Number.isFinite(p.valLoss)).map((p) => ({ x: p.step, y: p.valLoss! }));
    if (val.length) series.push({ name: `${j.recipe} val`, color, points: val, dashed: true, dots: true });
  }
  const r = jobs[0]?.result;
  const referenceLines: ReferenceLine[] = [];
  if (r?.entropyRate !== null && r?.entropyRate !== undefined) referenceLines.push({ name: "entropy floor", y: r.entropyRate, color: "#444" });
  return lineChartSvg({ title: `Octet — ${config}: loss (nats/token) by step`, xLabel: "step", yLabel: "loss (nats/token)", series, referenceLines });
}

/**
 * Where a job's last checkpoint is on disk: the path the trainer reported when it exists (absolute, or under the
 * checkpointer's data dir), else the checkpointer's layout <dataDir>/runs/<run>/step-<n>.
 */
export function checkpointPath(result: JobResult, dataDir: string | undefined): string | null {
  const last = result.checkpoints.length ? result.checkpoints.reduce((a, b) => (b.step > a.step ? b : a)) : null;
  if (!last) return null;
  const p = last.path.replace(/^file:\/\//, "");
  if (isAbsolute(p) && existsSync(p)) return p;
  if (dataDir) {
    if (p && existsSync(join(dataDir, p))) return join(dataDir, p);
    const layout = join(dataDir, "runs", result.run, stepDirName(last.step));
    if (existsSync(layout)) return layout;
  }
  return p || null;
}

const f4 = (n: number | null | undefined) => (n === null || n === undefined || !Number.isFinite(n) ? "n/a" : n.toFixed(4));

export function pretty(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

export interface ReportInput {
  config: string;
  main: FinishedJob;
  bf16?: FinishedJob;
  checkpoint: string | null;
  plot: string;
  web: string | null;
  keepOpen: boolean;
  logs: string;
  seconds: number;
}

/** |L(recipe) − L(bf16)| / L(bf16) on the final validation loss (as @octet/model's parity check reports it). */
export function relDiff(main: JobResult, bf16: JobResult): number {
  return Math.abs(main.valLoss - bf16.valLoss) / bf16.valLoss;
}

export function reportLines(r: ReportInput): string[] {
  const lines: string[] = [];
  const m = r.main.result;
  lines.push("");
  lines.push(`Result — ${r.config}, ${m.step} steps, ${Math.round(r.seconds)} s`);
  for (const j of [r.main, ...(r.bf16 ? [r.bf16] : [])]) {
    const x = j.result;
    lines.push(`  ${j.recipe.padEnd(11)} final loss ${f4(x.loss)}   validation ${f4(x.valLoss)}   ${Math.round(x.tokensPerSec)} tokens/s   on ${deviceLabel(x.device)}`);
  }
  if (m.entropyRate !== null && Number.isFinite(m.entropyRate)) {
    const gap = m.valLoss - m.entropyRate;
    const uni = m.unigramEntropy !== null && Number.isFinite(m.unigramEntropy) ? `; a model of token frequencies alone gets ${f4(m.unigramEntropy)}` : "";
    lines.push(`  entropy floor of the data: ${f4(m.entropyRate)} nats/token — validation is ${gap.toFixed(4)} above it${uni}`);
  } else {
    lines.push("  entropy floor of the data: unknown for this data set");
  }
  if (r.bf16) {
    const d = m.valLoss - r.bf16.result.valLoss;
    lines.push(
      `  ${r.main.recipe} vs bf16: validation loss ${f4(m.valLoss)} vs ${f4(r.bf16.result.valLoss)}, ` +
        `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(4)} (relative difference ${(relDiff(m, r.bf16.result) * 100).toFixed(3)}%)`,
    );
  }
  lines.push(`  checkpoint: ${r.checkpoint ? pretty(r.checkpoint) : "none reported"}`);
  lines.push(`  loss plot:  ${pretty(r.plot)}`);
  lines.push(`  logs:       ${pretty(r.logs)}`);
  if (r.web) {
    lines.push(
      r.keepOpen
        ? `  web view:   ${r.web}  (queue: ${r.web.replace(/\/jobs\/.*$/, "")}/queues) — the services stay up until Ctrl-C`
        : `  web view:   ${r.web} was served while the job ran; \`npm start -- --keep-open\` keeps it up afterwards`,
    );
  }
  return lines;
}
