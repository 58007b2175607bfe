// The web view's HTML: an index of jobs and a page per job with its loss curve (server-rendered SVG). A job page
// that is not finished refreshes itself: it re-fetches its summary fragment and its curve every refresh interval
// and stops once the job has ended. Every link is relative, so the pages work behind a path prefix.
import { type CurvePoint, deviceLabel } from "@octet/jobs";
import { lineChartSvg } from "@octet/plot";
import { FINAL_STATES, JOB_STATES, type JobView, type ListPage } from "@octet/jobs/view";

export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function fmt(n: number | null | undefined, digits = 4): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(digits);
}

function time(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

export interface SvgOptions {
  width?: number;
  height?: number;
}

/**
 * The loss curve as an SVG document (@octet/plot's line chart): training loss as the path `.loss` with a dot
 * `.loss-last` where it currently ends, validation loss (where reported) as the dashed path `.val-loss` with a dot
 * `.val-loss-point` per point; both paths carry data-points (the number of points drawn, 0 before any), the svg
 * (#loss-curve) carries data-last-step and data-last-loss. Points are expected tidy (one per step, sorted: tidyCurve).
 */
export function renderCurveSvg(points: CurvePoint[], opts: SvgOptions = {}): string {
  const train = points.filter((p) => Number.isFinite(p.loss));
  const val = points.filter((p) => p.valLoss !== undefined && Number.isFinite(p.valLoss));
  const last = train[train.length - 1];
  return lineChartSvg({
    xLabel: "step",
    yLabel: "loss (nats/token)",
    series: [
      { name: "train", color: "#1f6feb", className: "loss", markLast: true, points: train.map((p) => ({ x: p.step, y: p.loss })) },
      { name: "val", color: "#d1242f", className: "val-loss", dots: true, dashed: true, points: val.map((p) => ({ x: p.step, y: p.valLoss! })) },
    ],
    width: opts.width ?? 800,
    height: opts.height ?? 320,
    legend: "inside",
    emptyText: "no curve points yet",
    attributes: { id: "loss-curve", "data-last-step": last ? last.step : "", "data-last-loss": last ? last.loss : "" },
  });
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#fff;text-decoration:none}header b{font-size:16px}
main{padding:16px 20px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #d8dee4;padding:5px 8px;text-align:left;white-space:nowrap}
th{background:#eaeef2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff;background:#57606a}
.state-active{background:#1f6feb}.state-completed{background:#1a7f37}.state-failed{background:#d1242f}.state-cancelled{background:#8250df}.state-delayed{background:#bf8700}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;background:#fff;padding:10px 14px;border:1px solid #d8dee4}dt{color:#57606a}dd{margin:0}
pre{background:#fff;border:1px solid #d8dee4;padding:8px;overflow:auto}
.filters a{margin-right:10px}.muted{color:#57606a}
`;

function layout(title: string, root: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><header><b>Octet</b><a href="${root}">Jobs</a><a href="${root}queues">Queue (bull-board)</a><a href="${root}metrics">Metrics</a><a href="${root}api/jobs">API</a></header>
<main>${body}</main></body></html>`;
}

function stateBadge(state: string, cancelRequested = false): string {
  return `<span class="state state-${esc(state)}">${esc(state)}${cancelRequested && !FINAL_STATES.has(state) ? " (cancel requested)" : ""}</span>`;
}

function configName(v: JobView): string {
  if (!v.spec) return "–";
  return typeof v.spec.config === "string" ? v.spec.config : "custom";
}

export function renderIndex(page: ListPage, opts: { state?: string; pageToken?: string; queue: string }): string {
  const c = page.counts;
  const filters = [`<a href="./">all</a>`, ...JOB_STATES.map((s) => `<a href="?state=${s}">${s}</a>`)].join("");
  const rows = page.jobs
    .map((j) => {
      const p = j.progress;
      const step = j.result ? `${j.result.step}` : p ? `${p.step}/${p.totalSteps}` : "–";
      const loss = j.result ? j.result.loss : (p?.loss ?? null);
      return `<tr data-job-id="${esc(j.id)}"><td><a href="jobs/${encodeURIComponent(j.id)}">${esc(j.id)}</a></td><td>${stateBadge(j.state, j.cancelRequested)}</td><td>${esc(j.run ?? "–")}</td><td>${esc(configName(j))}</td><td>${esc(j.spec?.recipe ?? "–")}</td><td class="num">${esc(j.spec?.gpus ?? "–")}</td><td class="num">${esc(j.priority)}</td><td class="num">${esc(step)}</td><td class="num">${esc(fmt(loss))}</td><td>${esc(time(j.createdAt))}</td></tr>`;
    })
    .join("\n");
  const next = page.nextPageToken ? `<p><a href="?${opts.state ? `state=${encodeURIComponent(opts.state)}&amp;` : ""}pageToken=${encodeURIComponent(page.nextPageToken)}">next page →</a></p>` : "";
  const body = `<h1>Jobs on queue ${esc(opts.queue)}</h1>
<p class="muted">waiting ${c.waiting} · delayed ${c.delayed} · active ${c.active} · completed ${c.completed} · failed/cancelled ${c.failed}</p>
<p class="filters">${filters}</p>
<table id="jobs"><thead><tr><th>id</th><th>state</th><th>run</th><th>config</th><th>recipe</th><th>gpus</th><th>priority</th><th>step</th><th>loss</th><th>created</th></tr></thead>
<tbody>${rows || `<tr><td colspan="10" class="muted">no jobs${opts.state ? ` in state ${esc(opts.state)}` : ""}</td></tr>`}</tbody></table>${next}`;
  return layout(`Octet jobs`, "./", body);
}

/** The part of a job page that refreshes: state, progress, result, error. Its root carries data-state. */
export function renderJobSummary(j: JobView): string {
  const p = j.progress;
  const r = j.result;
  const rows: [string, string][] = [
    ["state", stateBadge(j.state, j.cancelRequested)],
    ["run", esc(j.run ?? "–")],
    ["config / recipe", `${esc(configName(j))} / ${esc(j.spec?.recipe ?? "–")}`],
    ["gpus / priority", `${esc(j.spec?.gpus ?? "–")} / ${esc(j.priority)}`],
    ["attempts made", `${j.attemptsMade} of ${j.maxAttempts}`],
    ["created / started / finished", `${time(j.createdAt)} / ${time(j.startedAt)} / ${time(j.finishedAt)}`],
  ];
  if (j.waitingReason) rows.push(["waiting", `<span data-field="waiting-reason">${esc(j.waitingReason)}</span>`]);
  const device = r?.device ?? p?.device;
  if (device) rows.push(["device", `<span data-field="device">${esc(deviceLabel(device))}</span>`]);
  if (p) {
    rows.push(["phase", `<span data-field="phase">${esc(p.phase)}</span>`]);
    rows.push(["step", `<span data-field="step">${p.step}</span> / ${p.totalSteps}`]);
    rows.push(["loss / val loss", `<span data-field="loss">${fmt(p.loss)}</span> / ${fmt(p.valLoss)}`]);
    rows.push(["tokens/s", fmt(p.tokensPerSec, 0)]);
    rows.push(["last checkpoint", p.lastCheckpoint ? `step ${p.lastCheckpoint.step}: <code>${esc(p.lastCheckpoint.path)}</code>` : "–"]);
    if (p.resumedFrom !== null) rows.push(["resumed from", `step ${p.resumedFrom}`]);
    if (p.workerId) rows.push(["worker", esc(p.workerId)]);
    if (p.stats) {
      const s = p.stats;
      rows.push(["step time", `${fmt(s.stepMs, 1)} ms`]);
      if (s.memoryBytes !== null) rows.push(["device memory", `${fmt(s.memoryBytes / 2 ** 30, 2)} GiB in use (peak ${fmt((s.peakMemoryBytes ?? 0) / 2 ** 30, 2)})`]);
      rows.push(["EMA / checkpoint stall", `${fmt(s.emaStallMs, 0)} / ${fmt(s.checkpointStallMs, 0)} ms`]);
    }
  }
  const ema = r?.ema ?? p?.ema;
  if (ema) {
    const gap = ema.outages > 0 ? ` · keeper unreachable ${ema.outages}× (<span data-field="ema-gap">${ema.gapSteps}</span> steps missing)` : "";
    rows.push(["EMA", `step ${ema.step ?? "–"} · ${ema.failedPushes} failed, ${ema.coalescedPushes} coalesced pushes${gap}`]);
  }
  if (r) {
    rows.push(["final loss / val loss", `<span data-field="final-loss">${fmt(r.loss)}</span> / ${fmt(r.valLoss)}`]);
    if (r.entropyRate !== null) rows.push(["entropy floor", `${fmt(r.entropyRate)} nats/token`]);
    rows.push(["time", `${fmt(r.seconds, 1)} s`]);
  }
  if (j.checkpoints.length) rows.push(["checkpoints", j.checkpoints.map((c) => `step ${c.step}: <code>${esc(c.path)}</code>`).join("<br>")]);
  if (j.failedReason) rows.push([j.state === "failed" || j.state === "cancelled" ? "error" : "last attempt's error", `<code data-field="error">${esc(j.failedReason)}</code>`]);
  if (j.specError) rows.push(["invalid spec", `<code>${esc(j.specError)}</code>`]);
  return `<div id="summary" data-state="${esc(j.state)}"><dl>${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl></div>`;
}

export function renderJobPage(j: JobView, curve: CurvePoint[], refreshMs: number): string {
  const live = !FINAL_STATES.has(j.state);
  const id = encodeURIComponent(j.id);
  const body = `<h1>Job ${esc(j.id)}</h1>
<div id="job" data-id="${esc(j.id)}" data-refresh-ms="${refreshMs}" data-live="${live}">
${renderJobSummary(j)}
<h2>Loss curve</h2>
<div id="curve">${renderCurveSvg(curve)}</div>
<p class="muted">JSON: <a href="../api/jobs/${id}">../api/jobs/${esc(j.id)}</a></p>
<details><summary>spec</summary><pre>${esc(JSON.stringify(j.spec ?? j.data, null, 2))}</pre></details>
${j.stacktrace.length ? `<details><summary>stack traces</summary><pre>${esc(j.stacktrace.join("\n\n"))}</pre></details>` : ""}
</div>
<script>
(() => {
  const root = document.getElementById("job");
  const base = encodeURIComponent(root.dataset.id);
  const every = Number(root.dataset.refreshMs) || 1000;
  let refreshes = 0;
  async function tick() {
    try {
      const [s, c] = await Promise.all([fetch(base + "/summary", { cache: "no-store" }), fetch(base + "/curve.svg", { cache: "no-store" })]);
      if (s.ok) document.getElementById("summary").outerHTML = await s.text();
      if (c.ok) document.getElementById("curve").innerHTML = await c.text();
      root.dataset.refreshes = String(++refreshes);
      const state = document.getElementById("summary").dataset.state;
      if (["completed", "failed", "cancelled"].includes(state)) { root.dataset.live = "false"; return; }
    } catch (e) { /* the orchestrator may restart: keep trying */ }
    setTimeout(tick, every);
  }
  if (root.dataset.live === "true") setTimeout(tick, every);
})();
</script>`;
  return layout(`Job ${j.id}`, "../", body);
}

export function renderNotFound(what: string, root: string): string {
  return layout("Not found", root, `<h1>Not found</h1><p>${esc(what)}</p>`);
}
