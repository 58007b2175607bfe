import assert from "node:assert/strict";
import { test } from "node:test";
import { checkRunName, checkTensorName } from "./names.js";

test("run names: 1-128 of [A-Za-z0-9._-], a letter or digit first, no '..'; the error names the name", () => {
  for (const ok of ["r", "up-tiny-fp8-20250101-120000", "job-42", "a.b_c-d", "x".repeat(128)]) assert.equal(checkRunName(ok), ok);
  for (const bad of ["", "../../etc", "a\0b", "a/b", ".hidden", "-x", "a..b", "x".repeat(129), "a b", "é"]) {
    assert.throws(() => checkRunName(bad), (err: Error) => err instanceof RangeError && err.message.startsWith(`invalid run name ${JSON.stringify(bad)}`));
  }
  assert.throws(() => checkRunName(7), TypeError);
});

test("tensor names: printable, '/'-separated segments without empty, '.' or '..'; the error names the name", () => {
  for (const ok of ["embed", "layers.0.attn.wq", "model/layers/0:w[1]", "_x", "x".repeat(512)]) assert.equal(checkTensorName(ok), ok);
  for (const bad of ["", "../../x", "a/../b", "a//b", "/abs", "a/", "a/./b", "a\0b", "a b", "x".repeat(513), ".x"]) {
    assert.throws(() => checkTensorName(bad), (err: Error) => err instanceof RangeError && err.message.startsWith(`invalid tensor name ${JSON.stringify(bad)}`));
  }
  assert.throws(() => checkTensorName(null), TypeError);
});
