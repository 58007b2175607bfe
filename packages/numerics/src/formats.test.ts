import { test } from "node:test";
import assert from "node:assert/strict";
import { FP8_FORMATS, decodeBf16, decodeFp8, encodeBf16, encodeFp8 } from "./formats.js";
import { asF32, asU16, readGolden } from "./testing/golden.js";

const golden = readGolden("casts");
const input = asF32(golden.get("input"));

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) return `index ${i}: input ${input[i]} (bits 0x${new Uint32Array(input.buffer, input.byteOffset)[i].toString(16)}) gave ${got[i]}, PyTorch ${want[i]}`;
  }
  return null;
}

test(`encodeFp8 e4m3 equals PyTorch ${golden.torch} float8_e4m3fn on ${input.length} values around every bf16 pattern`, () => {
  assert.equal(firstMismatch(encodeFp8(input, "e4m3"), golden.get("e4m3")), null);
});

test(`encodeFp8 e5m2 equals PyTorch float8_e5m2 (overflow to inf, NaN) on ${input.length} values`, () => {
  assert.equal(firstMismatch(encodeFp8(input, "e5m2"), golden.get("e5m2")), null);
});

test("encodeBf16 equals PyTorch's bfloat16 cast (round to nearest even, every NaN to 0xFFFF)", () => {
  assert.equal(firstMismatch(encodeBf16(input), asU16(golden.get("bf16"))), null);
});

test("PyTorch's non-saturating e4m3 cast: [448, 464] rounds to 448, (464, 480) and beyond become NaN", () => {
  const codes = encodeFp8(Float32Array.of(448, 464, 464.01, 479, 480, 1e9, -500, Infinity, -Infinity, NaN), "e4m3");
  assert.deepEqual([...codes], [0x7e, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0xff, 0x7f, 0xff, 0x7f]);
});

test("saturate clamps finite values to ±max and keeps NaN", () => {
  const x = Float32Array.of(1e9, -1e9, 470, Infinity, -Infinity, NaN, 3);
  assert.deepEqual([...decodeFp8(encodeFp8(x, "e4m3", { saturate: true }), "e4m3")], [448, -448, 448, 448, -448, NaN, 3]);
  assert.deepEqual([...decodeFp8(encodeFp8(x, "e5m2", { saturate: true }), "e5m2")], [57344, -57344, 448, 57344, -57344, NaN, 3]);
  // Without saturation E5M2 overflows to infinity, as PyTorch does.
  assert.deepEqual([...decodeFp8(encodeFp8(Float32Array.of(61440, 1e9), "e5m2"), "e5m2")], [Infinity, Infinity]);
});

test("decodeFp8 ∘ encodeFp8 is the identity on every finite code, both formats", () => {
  for (const format of ["e4m3", "e5m2"] as const) {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const values = decodeFp8(codes, format);
    const back = encodeFp8(values, format);
    let finite = 0;
    for (let c = 0; c < 256; c++) {
      if (!Number.isFinite(values[c])) continue;
      finite++;
      assert.equal(back[c], c, `${format} code 0x${c.toString(16)} (${values[c]}) re-encoded as 0x${back[c].toString(16)}`);
    }
    assert.equal(finite, format === "e4m3" ? 254 : 248);
    assert.equal(Math.max(...values.filter(Number.isFinite)), FP8_FORMATS[format].max);
    assert.equal(Math.min(...values.filter((v) => v > 0)), FP8_FORMATS[format].minSubnormal);
  }
});

test("decodeBf16 widens exactly", () => {
  assert.deepEqual([...decodeBf16(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0x0001))], [1, -2, Infinity, 2 ** -133]);
});

test("bad arguments throw TypeError/RangeError that name the problem", () => {
  assert.throws(() => encodeFp8([1, 2] as unknown as Float32Array, "e4m3"), { name: "TypeError", message: /Float32Array/ });
  assert.throws(() => encodeFp8(new Float32Array(1), "e3m4" as never), { name: "RangeError", message: /unknown FP8 format "e3m4"/ });
  assert.throws(() => decodeFp8(new Uint8Array(1), "fp8" as never), RangeError);
});
