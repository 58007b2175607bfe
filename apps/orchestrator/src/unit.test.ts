// Pure pieces: curve tidying and SVG, progress/result parsing, state mapping (the proto conversions are tested
// with them in @octet/jobs: packages/jobs/src/wire.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { esc, renderCurveSvg } from "./pages.js";
import { parseCurvePoint, parseProgress, parseResult, stateName, tidyCurve } from "./view.js";

test("tidyCurve keeps the latest entry per step, sorts, and thins evenly keeping both ends", () => {
  const pts = [
    { step: 3, loss: 3 },
    { step: 1, loss: 1 },
    { step: 2, loss: 2 },
    { step: 3, loss: 2.5 },
  ];
  assert.deepEqual(tidyCurve(pts), [
    { step: 1, loss: 1 },
    { step: 2, loss: 2 },
    { step: 3, loss: 2.5 },
  ]);
  const many = Array.from({ length: 1001 }, (_, i) => ({ step: i, loss: 1 / (i + 1) }));
  const thin = tidyCurve(many, 11);
  assert.deepEqual(
    thin.map((p) => p.step),
    [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
  );
  assert.equal(parseCurvePoint('{"step":1,"loss":null}'), null);
  assert.equal(parseCurvePoint("nope"), null);
  assert.deepEqual(parseCurvePoint('{"step":4,"loss":2,"valLoss":2.1,"tokensPerSec":9}'), { step: 4, loss: 2, valLoss: 2.1, tokensPerSec: 9 });
});

test("renderCurveSvg: one path vertex per point, scaled into the plot, val loss separate, empty curve labelled", () => {
  const svg = renderCurveSvg([
    { step: 0, loss: 4 },
    { step: 50, loss: 3, valLoss: 3.2 },
    { step: 100, loss: 2 },
  ]);
  const d = /<path class="loss" data-points="3" d="([^"]+)"/.exec(svg)?.[1];
  assert.ok(d, svg);
  const xy = [...d.matchAll(/[ML]([\d.]+),([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(xy.length, 3);
  // x grows with step, y (screen) grows as the loss falls; the middle point is midway
  assert.ok(xy[0][0] < xy[1][0] && xy[1][0] < xy[2][0]);
  assert.ok(xy[0][1] < xy[1][1] && xy[1][1] < xy[2][1]);
  assert.ok(Math.abs(xy[1][0] - (xy[0][0] + xy[2][0]) / 2) < 0.2);
  assert.match(svg, /<path class="val-loss" data-points="1"/);
  assert.match(svg, /data-last-step="100"/);
  assert.match(renderCurveSvg([]), /no curve points yet/);
  assert.match(renderCurveSvg([{ step: 7, loss: 1 }]), /data-points="1" d="M[\d.]+,[\d.]+"/);
  assert.equal(esc(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
});

test("progress and results are read defensively; BullMQ states fold into Octet's", () => {
  assert.equal(parseProgress(42), null); // a plain BullMQ percentage
  assert.equal(parseProgress({ foo: 1 }), null);
  const p = parseProgress({ step: 3, loss: null, phase: "weird", lastCheckpoint: { step: 2, path: "/c" } })!;
  assert.equal(p.phase, "running");
  assert.equal(p.loss, null);
  assert.deepEqual(p.lastCheckpoint, { step: 2, path: "/c" });
  assert.equal(parseResult("done"), null);
  assert.deepEqual(parseResult({ step: 5, loss: 1, checkpoints: [{ step: 5, path: "/c5" }, { bad: 1 }] })!.checkpoints, [{ step: 5, path: "/c5" }]);
  for (const s of ["wait", "waiting", "prioritized", "paused", "waiting-children"]) assert.equal(stateName(s, null), "waiting");
  assert.equal(stateName("failed", "cancelled"), "cancelled");
  assert.equal(stateName("failed", "boom"), "failed");
  assert.equal(stateName("unknown", null), "unknown");
});
