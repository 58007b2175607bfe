// A small dependency-free SVG line plot (loss curves for the parity check).

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
  dashed?: boolean;
}

export function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[], width = 720, height = 420): string {
  const pad = { left: 64, right: 160, top: 40, bottom: 48 };
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(...all.map((p) => p.x));
  const xMax = Math.max(...all.map((p) => p.x));
  const yMin = Math.min(...all.map((p) => p.y));
  const yMax = Math.max(...all.map((p) => p.y));
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const sx = (x: number) => pad.left + ((x - xMin) / Math.max(1e-12, xMax - xMin)) * w;
  const sy = (y: number) => pad.top + h - ((y - yMin) / Math.max(1e-12, yMax - yMin)) * h;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = yMin + ((yMax - yMin) * i) / 5;
    const x = xMin + ((xMax - xMin) * i) / 5;
    parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`);
    parts.push(`<text x="${pad.left - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(3)}</text>`);
    parts.push(`<text x="${sx(x)}" y="${pad.top + h + 16}" text-anchor="middle">${Math.round(x)}</text>`);
  }
  parts.push(`<rect x="${pad.left}" y="${pad.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${pad.left + w / 2}" y="${height - 10}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${pad.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`);
    const ly = pad.top + 14 + i * 18;
    parts.push(`<line x1="${pad.left + w + 12}" x2="${pad.left + w + 36}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`);
    parts.push(`<text x="${pad.left + w + 42}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}
