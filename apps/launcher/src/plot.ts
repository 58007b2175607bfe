// A dependency-free SVG line chart of loss curves, with optional horizontal reference lines (the data's
// entropy floor). Non-finite points are skipped.

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
  dashed?: boolean;
  /** Draw each point as a dot (sparse series such as validation loss). */
  dots?: boolean;
}

export interface HLine {
  name: string;
  y: number;
  color: string;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** "Nice" tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function lineChartSvg(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; hlines?: HLine[]; width?: number; height?: number }): string {
  const width = opts.width ?? 760;
  const height = opts.height ?? 440;
  const hlines = (opts.hlines ?? []).filter((h) => Number.isFinite(h.y));
  const series = opts.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)) }));
  const pad = { left: 68, right: 190, top: 44, bottom: 50 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = [...all.map((p) => p.y), ...hlines.map((h) => h.y)];
  const xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  let yMin = ys.length ? Math.min(...ys) : 0;
  let yMax = ys.length ? Math.max(...ys) : 1;
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) {
    yMin -= 0.5;
    yMax += 0.5;
  }
  const yPad = (yMax - yMin) * 0.04;
  yMin -= yPad;
  yMax += yPad;
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const sx = (x: number) => pad.left + ((x - xMin) / (xMax - xMin)) * w;
  const sy = (y: number) => pad.top + h - ((y - yMin) / (yMax - yMin)) * h;
  const f = (n: number) => n.toFixed(1);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`);
  for (const y of ticks(yMin, yMax)) {
    parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${f(sy(y))}" y2="${f(sy(y))}" stroke="#eee"/>`);
    parts.push(`<text x="${pad.left - 6}" y="${f(sy(y) + 4)}" text-anchor="end">${y}</text>`);
  }
  for (const x of ticks(xMin, xMax, 6)) {
    parts.push(`<line x1="${f(sx(x))}" x2="${f(sx(x))}" y1="${pad.top}" y2="${pad.top + h}" stroke="#f4f4f4"/>`);
    parts.push(`<text x="${f(sx(x))}" y="${pad.top + h + 16}" text-anchor="middle">${x}</text>`);
  }
  parts.push(`<rect x="${pad.left}" y="${pad.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${pad.left + w / 2}" y="${height - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${pad.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  const legend: string[] = [];
  let row = 0;
  const legendRow = (color: string, label: string, dash: string | null, dot: boolean) => {
    const ly = pad.top + 14 + row++ * 18;
    const lx = pad.left + w + 12;
    if (dot) legend.push(`<circle cx="${lx + 12}" cy="${ly}" r="3" fill="${color}"/>`);
    else legend.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`);
    legend.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(label)}</text>`);
  };
  for (const hl of hlines) {
    parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${f(sy(hl.y))}" y2="${f(sy(hl.y))}" stroke="${hl.color}" stroke-width="1.2" stroke-dasharray="2 3"/>`);
    legendRow(hl.color, `${hl.name} ${hl.y.toFixed(3)}`, "2 3", false);
  }
  for (const s of series) {
    if (s.points.length === 0) continue;
    if (s.dots) {
      for (const p of s.points) parts.push(`<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3" fill="${s.color}"/>`);
      if (s.points.length > 1) {
        const d = s.points.map((p, j) => `${j ? "L" : "M"}${f(sx(p.x))},${f(sy(p.y))}`).join(" ");
        parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1" stroke-opacity="0.6"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`);
      }
    } else {
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${f(sx(p.x))},${f(sy(p.y))}`).join(" ");
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`);
    }
    legendRow(s.color, s.name, s.dashed ? "5 3" : null, Boolean(s.dots));
  }
  parts.push(...legend);
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/** Mean of each window of `every` consecutive points (a readable training curve from a noisy one). */
export function smooth(points: { x: number; y: number }[], maxPoints = 400): { x: number; y: number }[] {
  if (points.length <= maxPoints) return points;
  const every = Math.ceil(points.length / maxPoints);
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i < points.length; i += every) {
    const win = points.slice(i, i + every);
    out.push({ x: win[win.length - 1].x, y: win.reduce((a, p) => a + p.y, 0) / win.length });
  }
  return out;
}
