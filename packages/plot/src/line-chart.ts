// A standalone SVG line chart: several named series (training curves as lines, sparse validation points as dots),
// dotted horizontal reference lines (the data's entropy floor), nice axis ticks, a legend and a title. Every text
// and attribute value is escaped, so names and labels may hold any characters. Non-finite points are skipped: a
// curve with NaN losses still draws, and a chart with no finite point says so instead of failing.

import { type Point, ticks } from "./scale.js";
import { attributes, escapeXml } from "./xml.js";

export interface Series {
  /** Legend label. */
  name: string;
  /** Any SVG paint (e.g. "#d62728"). */
  color: string;
  points: readonly Point[];
  /** Draw the line dashed (validation curves). */
  dashed?: boolean;
  /** Draw a dot at each point, joined by a thin line (sparse series such as validation loss). */
  dots?: boolean;
  /** Draw a dot at the last point (where a live curve currently ends). */
  markLast?: boolean;
  /**
   * The class of the series' path; its point dots get `<class>-point` and its last-point dot `<class>-last`. Every
   * series' path carries data-points, the number of points drawn, so pages and tests can find and count them.
   */
  className?: string;
}

/** A dotted horizontal line across the plot at `y`; the legend shows its name and value. */
export interface ReferenceLine {
  name: string;
  y: number;
  color: string;
}

export interface LineChartOptions {
  /** Drawn above the plot and used as the document's accessible name. */
  title?: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  referenceLines?: readonly ReferenceLine[];
  /** Pixels (defaults 760 × 440). */
  width?: number;
  height?: number;
  /** "right" (default): a column beside the plot; "inside": the plot's top-right corner (narrow charts). */
  legend?: "right" | "inside";
  /** Shown in the middle of the plot when no series has a finite point (default "no data"). */
  emptyText?: string;
  /** Extra attributes of the root <svg> element (id, data-*), values escaped. */
  attributes?: Readonly<Record<string, string | number>>;
}

/** Attributes the renderer sets on the root element itself. */
const OWN_ROOT_ATTRIBUTES = new Set(["xmlns", "width", "height", "viewBox", "font-family", "font-size", "role", "aria-label"]);
const LEGEND_ROW = 18;
const DASH = "5 3";
const REFERENCE_DASH = "2 3";
/** Rough width of one legend character at font-size 12, to size the inside legend's box. */
const CHAR_WIDTH = 6.5;

function checkOptions(opts: LineChartOptions): void {
  if (opts === null || typeof opts !== "object") throw new TypeError("lineChartSvg: options must be an object");
  for (const key of ["xLabel", "yLabel"] as const) {
    if (typeof opts[key] !== "string") throw new TypeError(`lineChartSvg: ${key} must be a string`);
  }
  if (opts.title !== undefined && typeof opts.title !== "string") throw new TypeError("lineChartSvg: title must be a string");
  if (!Array.isArray(opts.series)) throw new TypeError("lineChartSvg: series must be an array");
  opts.series.forEach((s, i) => {
    if (s === null || typeof s !== "object") throw new TypeError(`lineChartSvg: series[${i}] must be an object`);
    if (typeof s.name !== "string") throw new TypeError(`lineChartSvg: series[${i}].name must be a string`);
    if (typeof s.color !== "string") throw new TypeError(`lineChartSvg: series[${i}].color must be a string`);
    if (!Array.isArray(s.points)) throw new TypeError(`lineChartSvg: series[${i}] (${s.name}).points must be an array`);
  });
  if (opts.referenceLines !== undefined && !Array.isArray(opts.referenceLines)) throw new TypeError("lineChartSvg: referenceLines must be an array");
  (opts.referenceLines ?? []).forEach((r, i) => {
    if (r === null || typeof r !== "object" || typeof r.name !== "string" || typeof r.color !== "string" || typeof r.y !== "number") {
      throw new TypeError(`lineChartSvg: referenceLines[${i}] must be {name: string, y: number, color: string}`);
    }
  });
  for (const key of ["width", "height"] as const) {
    const v = opts[key];
    if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 200)) {
      throw new RangeError(`lineChartSvg: ${key} must be a number of at least 200 pixels, got ${v}`);
    }
  }
  if (opts.legend !== undefined && opts.legend !== "right" && opts.legend !== "inside") {
    throw new RangeError(`lineChartSvg: legend must be "right" or "inside", got ${JSON.stringify(opts.legend)}`);
  }
  for (const name of Object.keys(opts.attributes ?? {})) {
    if (OWN_ROOT_ATTRIBUTES.has(name)) throw new RangeError(`lineChartSvg: attribute ${name} is set by the renderer`);
  }
}

function finitePoints(points: readonly Point[]): Point[] {
  return points.filter((p) => p !== null && typeof p === "object" && Number.isFinite(p.x) && Number.isFinite(p.y));
}

/** [min, max] of the values (loops: spreading a long curve into Math.min would overflow the stack). */
function extent(values: Iterable<number>): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

const f = (n: number) => n.toFixed(1);

/** The chart as a standalone SVG document (ends with a newline). */
export function lineChartSvg(opts: LineChartOptions): string {
  checkOptions(opts);
  const width = opts.width ?? 760;
  const height = opts.height ?? 440;
  const legendInside = opts.legend === "inside";
  const refs = (opts.referenceLines ?? []).filter((r) => Number.isFinite(r.y));
  const series = opts.series.map((s) => ({ ...s, points: finitePoints(s.points) }));
  const hasPoints = series.some((s) => s.points.length > 0);

  const pad = { left: 68, right: legendInside ? 20 : 190, top: opts.title ? 44 : 16, bottom: 50 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const xRange = extent(series.flatMap((s) => s.points.map((p) => p.x))) ?? [0, 1];
  const yRange = extent([...series.flatMap((s) => s.points.map((p) => p.y)), ...refs.map((r) => r.y)]);
  let [xMin, xMax] = xRange;
  let [yMin, yMax] = yRange ?? [0, 1];
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) {
    yMin -= 0.5;
    yMax += 0.5;
  }
  // A little air above and below, so the curve's extremes do not sit on the frame.
  const yAir = (yMax - yMin) * 0.04;
  yMin -= yAir;
  yMax += yAir;
  const sx = (x: number) => pad.left + ((x - xMin) / (xMax - xMin)) * w;
  const sy = (y: number) => pad.top + h - ((y - yMin) / (yMax - yMin)) * h;

  const label = opts.title || `${opts.yLabel} by ${opts.xLabel}`;
  const root = attributes({ width, height, viewBox: `0 0 ${width} ${height}`, "font-family": "sans-serif", "font-size": 12, role: "img", "aria-label": label, ...opts.attributes });
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg"${root}>`];
  if (opts.title) parts.push(`<title>${escapeXml(opts.title)}</title>`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  if (opts.title) parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(opts.title)}</text>`);
  if (yRange) {
    for (const y of ticks(yMin, yMax)) {
      parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${f(sy(y))}" y2="${f(sy(y))}" stroke="#eee"/>`);
      parts.push(`<text class="y-tick" x="${pad.left - 6}" y="${f(sy(y) + 4)}" text-anchor="end">${escapeXml(y)}</text>`);
    }
  }
  if (hasPoints) {
    for (const x of ticks(xMin, xMax, 6)) {
      parts.push(`<line x1="${f(sx(x))}" x2="${f(sx(x))}" y1="${pad.top}" y2="${pad.top + h}" stroke="#f4f4f4"/>`);
      parts.push(`<text class="x-tick" x="${f(sx(x))}" y="${pad.top + h + 16}" text-anchor="middle">${escapeXml(x)}</text>`);
    }
  }
  parts.push(`<rect x="${pad.left}" y="${pad.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${pad.left + w / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${pad.top + h / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`);
  if (!hasPoints) {
    parts.push(`<text class="empty" x="${pad.left + w / 2}" y="${pad.top + h / 2}" text-anchor="middle" fill="#888">${escapeXml(opts.emptyText ?? "no data")}</text>`);
  }

  // Legend rows: reference lines first (they frame the curves), then each series that has points.
  const legend: { color: string; text: string; dash: string | null; dot: boolean }[] = [];
  for (const r of refs) {
    parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${f(sy(r.y))}" y2="${f(sy(r.y))}" stroke="${escapeXml(r.color)}" stroke-width="1.2" stroke-dasharray="${REFERENCE_DASH}"/>`);
    legend.push({ color: r.color, text: `${r.name} ${r.y.toFixed(3)}`, dash: REFERENCE_DASH, dot: false });
  }
  for (const s of series) {
    const color = escapeXml(s.color);
    const cls = s.className === undefined ? "" : ` class="${escapeXml(s.className)}"`;
    const dotClass = (suffix: string) => (s.className === undefined ? "" : ` class="${escapeXml(`${s.className}-${suffix}`)}"`);
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${f(sx(p.x))},${f(sy(p.y))}`).join(" ");
    const dash = s.dashed ? ` stroke-dasharray="${DASH}"` : "";
    // The path is drawn even when empty, so its data-points (0) can be read.
    const stroke = s.dots ? `stroke-width="1" stroke-opacity="0.6"` : `stroke-width="1.6"`;
    parts.push(`<path${cls} data-points="${s.points.length}" d="${d}" fill="none" stroke="${color}" ${stroke}${dash}/>`);
    // A line of one point draws nothing: give it a dot.
    if (s.dots || (s.points.length === 1 && !s.markLast)) {
      for (const p of s.points) parts.push(`<circle${dotClass("point")} cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3" fill="${color}"/>`);
    }
    if (s.markLast && s.points.length > 0) {
      const p = s.points[s.points.length - 1];
      parts.push(`<circle${dotClass("last")} cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3" fill="${color}"/>`);
    }
    if (s.points.length > 0) legend.push({ color: s.color, text: s.name, dash: s.dashed ? DASH : null, dot: Boolean(s.dots) });
  }

  if (legend.length > 0) {
    const boxWidth = 40 + Math.max(...legend.map((row) => row.text.length)) * CHAR_WIDTH;
    const lx = legendInside ? pad.left + w - boxWidth : pad.left + w + 12;
    const top = pad.top + 14;
    const rows: string[] = [];
    if (legendInside) rows.push(`<rect x="${f(lx - 6)}" y="${pad.top + 4}" width="${f(boxWidth)}" height="${legend.length * LEGEND_ROW + 4}" fill="white" fill-opacity="0.85"/>`);
    legend.forEach((row, i) => {
      const ly = top + i * LEGEND_ROW;
      const color = escapeXml(row.color);
      if (row.dot) rows.push(`<circle cx="${f(lx + 12)}" cy="${ly}" r="3" fill="${color}"/>`);
      else rows.push(`<line x1="${f(lx)}" x2="${f(lx + 24)}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${row.dash ? ` stroke-dasharray="${row.dash}"` : ""}/>`);
      rows.push(`<text x="${f(lx + 30)}" y="${ly + 4}">${escapeXml(row.text)}</text>`);
    });
    parts.push(`<g class="legend">`, ...rows, `</g>`);
  }
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
