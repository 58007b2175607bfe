// Axis ticks and curve thinning: the numeric helpers behind the line chart.

export interface Point {
  x: number;
  y: number;
}

/** "Nice" tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi], about `count` of them. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new RangeError(`ticks: bounds must be finite, got [${lo}, ${hi}]`);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`ticks: count must be a positive integer, got ${count}`);
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  // toPrecision(12) removes the float noise of repeated addition (0.30000000000000004 → 0.3).
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * At most about `maxPoints` points: the mean of each window of consecutive points, at the window's last x (a
 * readable training curve from a noisy one). Shorter curves come back unchanged.
 */
export function smooth(points: readonly Point[], maxPoints = 400): Point[] {
  if (!Number.isInteger(maxPoints) || maxPoints < 1) throw new RangeError(`smooth: maxPoints must be a positive integer, got ${maxPoints}`);
  if (points.length <= maxPoints) return [...points];
  const every = Math.ceil(points.length / maxPoints);
  const out: Point[] = [];
  for (let i = 0; i < points.length; i += every) {
    const win = points.slice(i, i + every);
    out.push({ x: win[win.length - 1].x, y: win.reduce((a, p) => a + p.y, 0) / win.length });
  }
  return out;
}
