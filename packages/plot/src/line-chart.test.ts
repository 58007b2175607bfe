import assert from "node:assert/strict";
import { test } from "node:test";
import { escapeXml, lineChartSvg, smooth, ticks } from "./index.js";

interface Element {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

const ENTITY = /&(amp|lt|gt|quot|#39);/g;

/**
 * Checks that `doc` is one well-formed XML element (tags nest and close, attributes are quoted, unique and free
 * of raw `<` and `&`, text has no raw `<` or stray `&`) and returns its elements in document order, with their
 * attributes and direct text unescaped.
 */
function parseXml(doc: string): Element[] {
  const token = /<(\/?)([A-Za-z_][-\w.:]*)((?:\s+[A-Za-z_:][-\w.:]*="[^"]*")*)\s*(\/?)>|([^<]+)/y;
  const unescape = (s: string, where: string) => {
    assert.ok(!/[<]/.test(s), `raw < in ${where}: ${s}`);
    assert.ok(!/&/.test(s.replace(ENTITY, "")), `stray & in ${where}: ${s}`);
    return s.replace(ENTITY, (_, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[e]!);
  };
  const out: Element[] = [];
  const open: Element[] = [];
  let roots = 0;
  let pos = 0;
  while (pos < doc.length) {
    token.lastIndex = pos;
    const m = token.exec(doc);
    assert.ok(m, `not well-formed at ${pos}: ${doc.slice(pos, pos + 60)}`);
    pos = token.lastIndex;
    const [, closing, name, rawAttrs, selfClosing, text] = m;
    if (text !== undefined) {
      if (open.length === 0) assert.match(text, /^\s*$/, "text outside the root element");
      else open[open.length - 1].text += unescape(text, "text");
      continue;
    }
    if (closing) {
      assert.equal(open.pop()?.name, name, `</${name}> closes the wrong element`);
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of rawAttrs.matchAll(/([A-Za-z_:][-\w.:]*)="([^"]*)"/g)) {
      assert.ok(!(a[1] in attrs), `duplicate attribute ${a[1]} on <${name}>`);
      attrs[a[1]] = unescape(a[2], `attribute ${a[1]}`);
    }
    const el = { name, attrs, text: "" };
    out.push(el);
    if (open.length === 0) roots++;
    if (!selfClosing) open.push(el);
  }
  assert.equal(open.length, 0, `unclosed: ${open.map((e) => e.name).join(", ")}`);
  assert.equal(roots, 1, "exactly one root element");
  return out;
}

/** The (x, y) screen coordinates of a path's vertices. */
function vertices(d: string): [number, number][] {
  return [...d.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

const curve = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => ({ x: i * 10, y: f(i) }));

test("an SVG document: well-formed, sized, titled, with axis labels and ticks on both axes", () => {
  const svg = lineChartSvg({ title: "tiny: loss by step", xLabel: "step", yLabel: "loss (nats/token)", series: [{ name: "train", color: "#d62728", points: curve(11, (i) => 4 - i * 0.2) }] });
  assert.ok(svg.endsWith("</svg>\n"));
  const els = parseXml(svg);
  const root = els[0];
  assert.equal(root.name, "svg");
  assert.equal(root.attrs.xmlns, "http://www.w3.org/2000/svg");
  assert.equal(root.attrs.width, "760");
  assert.equal(root.attrs.viewBox, "0 0 760 440");
  assert.equal(root.attrs["aria-label"], "tiny: loss by step");
  assert.equal(els.find((e) => e.name === "title")?.text, "tiny: loss by step");
  const texts = els.filter((e) => e.name === "text").map((e) => e.text);
  assert.ok(texts.includes("step") && texts.includes("loss (nats/token)") && texts.includes("tiny: loss by step"));
  const yTicks = els.filter((e) => e.attrs.class === "y-tick").map((e) => Number(e.text));
  const xTicks = els.filter((e) => e.attrs.class === "x-tick").map((e) => Number(e.text));
  assert.ok(yTicks.length >= 3 && yTicks.every((v) => v >= 1.9 && v <= 4.1), `y ticks ${yTicks}`);
  assert.deepEqual(xTicks, [0, 20, 40, 60, 80, 100]);
  // Higher values are drawn higher up (smaller screen y).
  const ys = els.filter((e) => e.attrs.class === "y-tick").map((e) => Number(e.attrs.y));
  for (let i = 1; i < ys.length; i++) assert.ok(ys[i] < ys[i - 1]);
});

test("every series' points are in its path, scaled into the frame; classes and data-points mark them", () => {
  const train = curve(5, (i) => 4 - i * 0.5);
  const val = [{ x: 20, y: 3.2 }];
  const svg = lineChartSvg({
    xLabel: "step",
    yLabel: "loss",
    series: [
      { name: "train", color: "#1f6feb", points: train, className: "loss", markLast: true },
      { name: "val", color: "#d1242f", points: val, className: "val-loss", dots: true, dashed: true },
    ],
    legend: "inside",
    width: 800,
    height: 320,
    attributes: { id: "loss-curve", "data-last-step": 40 },
  });
  const els = parseXml(svg);
  assert.equal(els[0].attrs.id, "loss-curve");
  assert.equal(els[0].attrs["data-last-step"], "40");
  assert.equal(els[0].attrs["aria-label"], "loss by step");
  const frame = els.find((e) => e.name === "rect" && e.attrs.stroke === "#333")!.attrs;
  const [fx, fy, fw, fh] = [frame.x, frame.y, frame.width, frame.height].map(Number);
  const loss = els.find((e) => e.attrs.class === "loss")!;
  assert.equal(loss.name, "path");
  assert.equal(loss.attrs["data-points"], "5");
  const xy = vertices(loss.attrs.d);
  assert.equal(xy.length, 5);
  for (const [x, y] of xy) assert.ok(x >= fx && x <= fx + fw && y >= fy && y <= fy + fh, `${x},${y} outside the frame`);
  assert.ok(Math.abs(xy[0][0] - fx) < 0.1 && Math.abs(xy[4][0] - (fx + fw)) < 0.1, "x spans the frame");
  for (let i = 1; i < 5; i++) assert.ok(xy[i][0] > xy[i - 1][0] && xy[i][1] > xy[i - 1][1], "x grows with step, falling loss goes down the screen");
  assert.ok(Math.abs(xy[2][0] - (xy[0][0] + xy[4][0]) / 2) < 0.2, "linear x scale");
  const last = els.find((e) => e.attrs.class === "loss-last")!;
  assert.deepEqual([Number(last.attrs.cx), Number(last.attrs.cy)], xy[4]);
  const valPath = els.find((e) => e.attrs.class === "val-loss")!;
  assert.equal(valPath.attrs["data-points"], "1");
  assert.equal(valPath.attrs["stroke-dasharray"], "5 3");
  const valDots = els.filter((e) => e.attrs.class === "val-loss-point");
  assert.equal(valDots.length, 1);
  // The validation point at step 20 is drawn where the training curve passes step 20.
  assert.equal(Number(valDots[0].attrs.cx), xy[2][0]);
  const legend = els.filter((e) => e.name === "text").map((e) => e.text);
  assert.ok(legend.includes("train") && legend.includes("val"));
});

test("reference lines are dotted, inside the y range, and labelled with their value", () => {
  const svg = lineChartSvg({
    title: "t",
    xLabel: "step",
    yLabel: "loss",
    series: [{ name: "fp8 train", color: "red", points: curve(3, (i) => 3 - i) }],
    referenceLines: [{ name: "entropy floor", y: 0.5, color: "#444" }, { name: "ignored", y: NaN, color: "#444" }],
  });
  const els = parseXml(svg);
  const floor = els.filter((e) => e.name === "line" && e.attrs["stroke-dasharray"] === "2 3" && e.attrs.stroke === "#444");
  assert.equal(floor.length, 2, "the line across the plot and its legend sample");
  const frame = els.find((e) => e.name === "rect" && e.attrs.stroke === "#333")!.attrs;
  const y = Number(floor[0].attrs.y1);
  assert.ok(y > Number(frame.y) && y < Number(frame.y) + Number(frame.height));
  const path = vertices(els.find((e) => e.name === "path")!.attrs.d);
  assert.ok(y > path[2][1], "the floor (0.5) is below the curve's lowest point (1)");
  assert.ok(els.some((e) => e.text === "entropy floor 0.500"));
  assert.ok(!svg.includes("ignored") && !svg.includes("NaN"));
});

test("labels, names, colors and attributes are escaped", () => {
  const evil = `<script>alert("x") & 'y'</script>`;
  const svg = lineChartSvg({
    title: evil,
    xLabel: evil,
    yLabel: "<y>",
    series: [{ name: evil, color: `red" onload="x`, points: [{ x: 1, y: 1 }, { x: 2, y: 2 }], className: `a"b` }],
    referenceLines: [{ name: "<floor>", y: 1.5, color: "#000" }],
    attributes: { "data-note": `"&<>` },
  });
  const els = parseXml(svg);
  assert.ok(!svg.includes("<script>"));
  assert.equal(els.filter((e) => e.name === "text" && e.text === evil).length, 3, "title, x label and legend hold the text as text");
  assert.equal(els.find((e) => e.name === "title")!.text, evil);
  assert.equal(els[0].attrs["data-note"], `"&<>`);
  assert.equal(els.find((e) => e.name === "path")!.attrs.stroke, `red" onload="x`);
  assert.ok(!els.some((e) => "onload" in e.attrs));
  assert.ok(els.some((e) => e.text === "<floor> 1.500"));
  assert.equal(escapeXml(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
});

test("empty and non-finite input: still a valid document, says there is no data, keeps empty paths countable", () => {
  const empty = lineChartSvg({ xLabel: "step", yLabel: "loss", series: [{ name: "train", color: "#000", points: [], className: "loss" }], emptyText: "no curve points yet" });
  let els = parseXml(empty);
  assert.equal(els.find((e) => e.attrs.class === "empty")!.text, "no curve points yet");
  const loss = els.find((e) => e.attrs.class === "loss")!;
  assert.equal(loss.attrs["data-points"], "0");
  assert.equal(loss.attrs.d, "");
  assert.ok(!els.some((e) => e.attrs.class === "x-tick" || e.attrs.class === "y-tick"));
  assert.ok(!empty.includes("<g class=\"legend\">"), "no legend rows for series without points");

  const nan = lineChartSvg({ xLabel: "x", yLabel: "y", series: [{ name: "s", color: "#000", points: [{ x: NaN, y: 1 }, { x: 1, y: Infinity }, { x: 2, y: NaN }] }] });
  els = parseXml(nan);
  assert.equal(els.find((e) => e.attrs.class === "empty")!.text, "no data");
  assert.ok(!nan.includes("NaN") && !nan.includes("Infinity"));

  const mixed = lineChartSvg({ xLabel: "x", yLabel: "y", series: [{ name: "s", color: "#000", points: [{ x: 0, y: 2 }, { x: 1, y: NaN }, { x: 2, y: 1 }] }] });
  els = parseXml(mixed);
  assert.equal(els.find((e) => e.name === "path")!.attrs["data-points"], "2");
  assert.ok(!mixed.includes("NaN") && !els.some((e) => e.attrs.class === "empty"));

  // One point, or a flat line: a finite scale, and the single point is visible as a dot.
  const one = lineChartSvg({ xLabel: "x", yLabel: "y", series: [{ name: "s", color: "#000", points: [{ x: 7, y: 1 }] }] });
  els = parseXml(one);
  assert.equal(els.filter((e) => e.name === "circle").length, 1);
  assert.match(els.find((e) => e.name === "path")!.attrs.d, /^M[\d.]+,[\d.]+$/);
  parseXml(lineChartSvg({ xLabel: "x", yLabel: "y", series: [{ name: "flat", color: "#000", points: curve(4, () => 2) }] }));
  parseXml(lineChartSvg({ xLabel: "x", yLabel: "y", series: [] }));
});

test("bad options are refused with errors naming them", () => {
  const base = { xLabel: "x", yLabel: "y", series: [] };
  assert.throws(() => lineChartSvg({ ...base, series: "no" as unknown as [] }), /series must be an array/);
  assert.throws(() => lineChartSvg({ ...base, series: [{ name: "s", color: "#000", points: null as unknown as [] }] }), (e: Error) => e instanceof TypeError && /series\[0\] \(s\)\.points/.test(e.message));
  assert.throws(() => lineChartSvg({ ...base, width: 0 }), (e: Error) => e instanceof RangeError && /width/.test(e.message));
  assert.throws(() => lineChartSvg({ ...base, height: NaN }), RangeError);
  assert.throws(() => lineChartSvg({ ...base, legend: "left" as "right" }), RangeError);
  assert.throws(() => lineChartSvg({ ...base, attributes: { width: 3 } }), /width is set by the renderer/);
  assert.throws(() => lineChartSvg({ ...base, attributes: { "on load": "x" } }), (e: Error) => e instanceof TypeError && /not a valid XML name/.test(e.message));
  assert.throws(() => lineChartSvg({ ...base, referenceLines: [{ name: "f", y: "1" as unknown as number, color: "#000" }] }), TypeError);
});

test("a long curve (beyond the argument limit of Math.min) draws", () => {
  const long = curve(300_000, (i) => Math.sin(i / 1000));
  const svg = lineChartSvg({ xLabel: "x", yLabel: "y", series: [{ name: "s", color: "#000", points: long, className: "s" }] });
  assert.match(svg, /class="s" data-points="300000"/);
});

test("ticks are nice round values covering the range; smooth thins by window means", () => {
  assert.deepEqual(ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(ticks(0.05, 0.35, 3), [0.1, 0.2, 0.3]);
  assert.deepEqual(ticks(2, 2), [2]);
  assert.deepEqual(ticks(0, 950, 6), [0, 200, 400, 600, 800]);
  assert.throws(() => ticks(0, NaN), RangeError);
  assert.equal(smooth(Array.from({ length: 1000 }, (_, i) => ({ x: i, y: i })), 100).length, 100);
  assert.deepEqual(smooth([{ x: 1, y: 1 }, { x: 2, y: 3 }, { x: 3, y: 5 }, { x: 4, y: 7 }], 2), [{ x: 2, y: 2 }, { x: 4, y: 6 }]);
  const short = [{ x: 1, y: 1 }];
  assert.deepEqual(smooth(short), short);
  assert.throws(() => smooth(short, 0), RangeError);
});
