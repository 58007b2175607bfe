// What the user sees: on a terminal, short lines and a progress bar per job (step, loss, val loss, tokens/s,
// ETA); otherwise one JSON object per line. The last line is always the JSON summary.

import cliProgress from "cli-progress";
import type { JobProgress } from "@octet/jobs";

export interface Ui {
  readonly tty: boolean;
  /** A line of text for people (on a terminal) or an event object (JSON lines). */
  info(text: string, event: Record<string, unknown>): void;
  progress(label: string, jobId: string, p: JobProgress): void;
  /** The job left the bar (finished, failed). */
  done(jobId: string): void;
  /** Plain report lines (printed in both modes). */
  report(lines: string[]): void;
  summary(obj: Record<string, unknown>): void;
  error(text: string): void;
  stop(): void;
}

const fmt = (n: number | null | undefined, digits = 4) => (n === null || n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits));

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "-";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

export function createUi(opts: { json: boolean; out?: NodeJS.WriteStream }): Ui {
  const out = opts.out ?? process.stdout;
  const tty = !opts.json && out.isTTY === true;
  const line = (s: string) => out.write(`${s}\n`);
  const json = (o: Record<string, unknown>) => line(JSON.stringify(o));

  if (!tty) {
    const last = new Map<string, { at: number; step: number; key: string; phase: string }>();
    return {
      tty,
      info: (_text, event) => json(event),
      progress(label, jobId, p) {
        // At most ~50 lines per job plus every phase change and evaluation, and not more than 2 a second.
        const prev = last.get(jobId);
        const key = `${p.phase}:${p.step}:${p.loss}:${p.valLoss}:${p.attempt}`;
        if (prev?.key === key) return;
        const every = Math.max(1, Math.floor(p.totalSteps / 50));
        const now = Date.now();
        const due =
          !prev ||
          p.step === p.totalSteps ||
          p.phase !== prev.phase ||
          (p.step - prev.step >= every && now - prev.at >= 500) ||
          (p.step !== prev.step && now - prev.at >= 10_000);
        if (!due) return;
        last.set(jobId, { at: now, step: p.step, key, phase: p.phase });
        json({ event: "progress", job: jobId, recipe: label, phase: p.phase, step: p.step, totalSteps: p.totalSteps, loss: p.loss, valLoss: p.valLoss, tokensPerSec: Math.round(p.tokensPerSec), etaSec: Number.isFinite(eta(jobId, p)) ? Math.round(eta(jobId, p)) : null });
      },
      done: () => {},
      report: (lines) => lines.forEach((l) => line(l)),
      summary: json,
      error: (text) => process.stderr.write(`${text}\n`),
      stop: () => {},
    };
  }

  const multi = new cliProgress.MultiBar(
    {
      format: "{label} {bar} {value}/{total} | loss {loss} | val {val} | {tps} tok/s | ETA {etaText}{phaseText}",
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 16,
      stream: out,
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; label: string; last: JobProgress }>();
  let stopped = false;
  const stop = () => {
    if (!stopped) multi.stop();
    stopped = true;
  };
  const payload = (label: string, jobId: string, p: JobProgress, phase: string = p.phase) => ({
    label: label.padEnd(4),
    loss: fmt(p.loss),
    val: fmt(p.valLoss),
    tps: p.tokensPerSec > 0 ? p.tokensPerSec.toFixed(0) : "-",
    etaText: formatDuration(eta(jobId, p)),
    phaseText: phase === "running" ? "" : ` | ${phase}`,
  });
  return {
    tty,
    info: (text) => (stopped ? line(text) : multi.log(`${text}\n`)),
    progress(label, jobId, p) {
      if (stopped) return;
      let entry = bars.get(jobId);
      if (!entry) {
        entry = { bar: multi.create(p.totalSteps, p.step, payload(label, jobId, p)), label, last: p };
        bars.set(jobId, entry);
      }
      entry.last = p;
      entry.bar.setTotal(p.totalSteps);
      entry.bar.update(p.step, payload(label, jobId, p));
    },
    done(jobId) {
      const entry = bars.get(jobId);
      if (entry && !stopped) entry.bar.update(entry.last.step, payload(entry.label, jobId, entry.last, "done"));
    },
    report(lines) {
      stop();
      lines.forEach((l) => line(l));
    },
    summary(obj) {
      stop();
      json(obj);
    },
    error(text) {
      stop();
      process.stderr.write(`${text}\n`);
    },
    stop,
  };
}

/** Seconds left at the step rate seen since this attempt of the job started reporting. */
const stepRate = new Map<string, { t0: number; s0: number }>();
export function eta(jobId: string, p: JobProgress, now = Date.now()): number {
  if (p.step >= p.totalSteps) return 0;
  const key = `${jobId}:${p.attempt}`;
  const r = stepRate.get(key);
  if (!r || p.step < r.s0) {
    stepRate.set(key, { t0: now, s0: p.step });
    return NaN;
  }
  const dt = (now - r.t0) / 1000;
  const ds = p.step - r.s0;
  return ds > 0 && dt > 0 ? ((p.totalSteps - p.step) * dt) / ds : NaN;
}
